// threadfleet's MicroPython HAL (see mphalport.h).
#include <time.h>

#include "py/mphal.h"
#include "py/mpprint.h"
#include "py/runtime.h"
#include "py/stream.h"

static rt_output_sink_t output_sink;

void rt_output_set_sink(rt_output_sink_t sink) { output_sink = sink; }

void rt_output_write(int stream, const char *data, size_t len) {
  if (output_sink) output_sink(stream, data, len);
}

mp_uint_t mp_hal_stdout_tx_strn(const char *str, size_t len) {
  rt_output_write(1, str, len);
  return len;
}

static void stderr_print_strn(void *env, const char *str, size_t len) {
  (void)env;
  rt_output_write(2, str, len);
}

const mp_print_t rt_stderr_print = {NULL, stderr_print_strn};

// A board has no console input: programs read EOF.
int mp_hal_stdin_rx_chr(void) { return -1; }

mp_uint_t mp_hal_ticks_ms(void) { return (mp_uint_t)(rt_now_ns() / 1000000); }
mp_uint_t mp_hal_ticks_us(void) { return (mp_uint_t)(rt_now_ns() / 1000); }
mp_uint_t mp_hal_ticks_cpu(void) { return (mp_uint_t)rt_now_ns(); }

uint64_t mp_hal_time_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool sched_pending(void *ctx) {
  (void)ctx;
  return MP_STATE_VM(sched_state) == MP_SCHED_PENDING;
}

// Sleeps wait on the thread's own condition variable without the GIL, so a
// kill wakes them at once; the kill's exception is then raised here. A
// handler scheduled meanwhile (a machine.Pin IRQ, a Timer) wakes them to
// run it, as a board's sleep does, and the sleep goes on to its end.
static void sleep_ns(int64_t ns) {
  int64_t deadline = rt_now_ns() + ns;
  while (ns > 0 && rt_block(RT_BLOCK_SLEEP, NULL, deadline, sched_pending, NULL) == RT_WAKE_READY) {
    mp_handle_pending(true);
  }
  mp_handle_pending(true);
}

void mp_hal_delay_ms(mp_uint_t ms) { sleep_ns((int64_t)ms * 1000000); }

void rt_event_wait_ms(mp_uint_t timeout_ms) {
  const mp_uint_t step_ms = 10;
  sleep_ns((int64_t)(timeout_ms < step_ms ? timeout_ms : step_ms) * 1000000);
}
void mp_hal_delay_us(mp_uint_t us) { sleep_ns((int64_t)us * 1000); }

// Text written through sys.stdout: a board sends it as is (no CR insertion).
void mp_hal_stdout_tx_strn_cooked(const char *str, size_t len) { rt_output_write(1, str, len); }

// Nothing is ever readable on a board's console; it is always writable.
uintptr_t mp_hal_stdio_poll(uintptr_t poll_flags) { return poll_flags & MP_STREAM_POLL_WR; }
