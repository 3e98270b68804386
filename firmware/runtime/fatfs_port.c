// The clock FAT stamps on files (oofatfs's get_fattime, lib/oofatfs/ff.h):
// the board's wall clock, as the one time.localtime() reads.
#include <time.h>

#include "py/mpconfig.h"

#if MICROPY_VFS_FAT
#include "lib/oofatfs/ff.h"

// FAT's packed local time: years since 1980 in bits 31-25, month 24-21, day
// 20-16, hour 15-11, minute 10-5, seconds / 2 in 4-0.
DWORD get_fattime(void) {
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  return ((DWORD)(tm.tm_year + 1900 - 1980) << 25) | ((DWORD)(tm.tm_mon + 1) << 21) |
         ((DWORD)tm.tm_mday << 16) | ((DWORD)tm.tm_hour << 11) | ((DWORD)tm.tm_min << 5) |
         ((DWORD)tm.tm_sec / 2);
}
#endif  // MICROPY_VFS_FAT
