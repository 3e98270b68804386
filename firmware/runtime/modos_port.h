// Port part of the `os` module (included by extmod/modos.c): os.urandom.
//
// A board draws its random bytes from a hardware RNG (esp32: the RF noise
// source, rp2: the ring oscillator); the simulated board draws them from the
// kernel's getrandom(), so os.urandom is as unpredictable as on the board.
#include <errno.h>
#include <sys/random.h>

#include "py/mperrno.h"
#include "py/runtime.h"

// os.urandom(n) -> n random bytes. n < 0 raises ValueError; a kernel that
// cannot give randomness raises OSError with its errno.
static mp_obj_t mp_os_urandom(mp_obj_t n_in) {
  mp_int_t n = mp_obj_get_int(n_in);
  if (n < 0) mp_raise_ValueError(MP_ERROR_TEXT("urandom: n must be >= 0"));
  vstr_t vstr;
  vstr_init_len(&vstr, (size_t)n);
  size_t filled = 0;
  // getrandom() gives at most 32 MiB per call and a large request may be cut
  // short by a signal (the supervisor's kill): every round makes progress or
  // uses up one of a few retries, so the loop ends.
  int interrupted_left = 16;
  while (filled < (size_t)n) {
    ssize_t got = getrandom(vstr.buf + filled, (size_t)n - filled, 0);
    if (got < 0 && errno == EINTR && interrupted_left-- > 0) continue;
    if (got <= 0) {
      vstr_clear(&vstr);
      mp_raise_OSError(got < 0 ? errno : MP_EIO);
    }
    filled += (size_t)got;
  }
  return mp_obj_new_bytes_from_vstr(&vstr);
}
static MP_DEFINE_CONST_FUN_OBJ_1(mp_os_urandom_obj, mp_os_urandom);
