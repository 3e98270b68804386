// threadfleet's MicroPython HAL: time from the monotonic clock, sleeps that a
// kill can interrupt, and output routed to the supervisor (see rt_output_*).
#ifndef THREADFLEET_RUNTIME_MPHALPORT_H
#define THREADFLEET_RUNTIME_MPHALPORT_H

#include <stddef.h>
#include <stdint.h>

#include "py/mpconfig.h"

// Output from the VM goes to one sink; `stream` is 1 (stdout) or 2 (stderr).
typedef void (*rt_output_sink_t)(int stream, const char *data, size_t len);
void rt_output_set_sink(rt_output_sink_t sink);
void rt_output_write(int stream, const char *data, size_t len);

mp_uint_t mp_hal_ticks_ms(void);
mp_uint_t mp_hal_ticks_us(void);
mp_uint_t mp_hal_ticks_cpu(void);
uint64_t mp_hal_time_ns(void);
void mp_hal_delay_ms(mp_uint_t ms);
void mp_hal_delay_us(mp_uint_t us);
static inline void mp_hal_set_interrupt_char(int c) { (void)c; }

#endif  // THREADFLEET_RUNTIME_MPHALPORT_H
