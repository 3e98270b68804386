// Port part of the `time` module (included by extmod/modtime.c).
#include <time.h>

#include "py/obj.h"

// time.time() is whole seconds, as on the esp32 and rp2 ports (time_ns() has
// the fraction): the upstream localtime/gmtime/mktime take integer seconds,
// so time.localtime(time.time()) works as a board program expects.
static mp_obj_t mp_time_time_get(void) { return mp_obj_new_int_from_ull(mp_hal_time_ns() / 1000000000ull); }

static mp_obj_t mp_time_localtime_get(void) {
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  mp_obj_t tuple[8] = {
      mp_obj_new_int(tm.tm_year + 1900),    mp_obj_new_int(tm.tm_mon + 1),  mp_obj_new_int(tm.tm_mday),
      mp_obj_new_int(tm.tm_hour),           mp_obj_new_int(tm.tm_min),      mp_obj_new_int(tm.tm_sec),
      mp_obj_new_int((tm.tm_wday + 6) % 7), mp_obj_new_int(tm.tm_yday + 1),
  };
  return mp_obj_new_tuple(8, tuple);
}
