// What fleetboard's commands share (see board_common.h).
#include "firmware/app/board_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "firmware/storage/lfsdev.h"
#include "firmware/supervisor/supervisor.h"

bool board_parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) return false;
  if (*end == 'k' || *end == 'K') {
    v *= 1024;
    end++;
  } else if (*end == 'm' || *end == 'M') {
    v *= 1024 * 1024;
    end++;
  }
  if (*end) return false;
  *out = (size_t)v;
  return true;
}

bool board_max_stack_ok(size_t bytes, const char *command) {
  if (bytes >= SUP_MAX_STACK_LOWEST && bytes <= SUP_MAX_STACK_HIGHEST) return true;
  fprintf(stderr, "%s: --max-stack must be between %dk and %dm (got %zu bytes)\n", command,
          SUP_MAX_STACK_LOWEST / 1024, SUP_MAX_STACK_HIGHEST / (1024 * 1024), bytes);
  return false;
}

void board_mount_flash(void *ctx) {
  (void)ctx;
  char err[128];
  if (!lfsdev_mount(err, sizeof(err))) fprintf(stderr, "fleetboard: %s\n", err);
}
