// What fleetboard's commands share (see board_common.h).
#include "firmware/app/board_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "firmware/storage/lfsdev.h"

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

void board_mount_flash(void *ctx) {
  (void)ctx;
  char err[128];
  if (!lfsdev_mount(err, sizeof(err))) fprintf(stderr, "fleetboard: %s\n", err);
}
