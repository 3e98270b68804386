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

bool board_limit_set(board_limit_t *limit, const char *s) {
  limit->set = board_parse_size(s, &limit->value);
  return limit->set;
}

size_t board_limit_or(const board_limit_t *limit, size_t profile_default) {
  return limit->set ? limit->value : profile_default;
}

const board_profile_t *board_profile_arg(const char *name, const char *command) {
  const board_profile_t *profile = board_profile_find(name);
  if (!profile)
    fprintf(stderr, "%s: --profile must be one of %s (got %s)\n", command, board_profile_names(), name);
  return profile;
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
