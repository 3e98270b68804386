// Port part of the `time` module (included by extmod/modtime.c).
#include <time.h>

#include "py/obj.h"

static mp_obj_t mp_time_time_get(void) {
#if MICROPY_PY_BUILTINS_FLOAT && MICROPY_FLOAT_IMPL == MICROPY_FLOAT_IMPL_DOUBLE
  return mp_obj_new_float((mp_float_t)mp_hal_time_ns() / 1e9);
#else
  return mp_obj_new_int_from_ull(mp_hal_time_ns() / 1000000000ull);
#endif
}

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
