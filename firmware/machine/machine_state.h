// The simulated board hardware behind `machine`: pins, ADC channels, timers,
// the watchdog, the IRQ mask and the reset cause, in fixed tables behind one
// mutex, so the lab (BoardControl's GetMachine/SetPin/SetAdc, on the
// channel's threads) and the program (modmachine.c, under the GIL) see the
// same hardware.
//
// Example (the lab drives pin 4 high; a program's IRQ handler on it runs):
//   char why[128];
//   mach_pin_state_t pin;
//   if (mach_set_pin(4, 1, false, &pin, why, sizeof why) != 0) ... why says
//
// Interrupts are simulated as a port's ISRs would do it: an edge on a pin
// with a handler, or a timer that is due, schedules the handler with
// micropython.schedule's queue (modmachine.c's machine_schedule_*), and a
// sleeping VM thread is woken to run it. A "ticker" host thread (never in
// the VM) fires timers and watches the watchdog.
//
// Lock order: GIL -> machine mutex -> sched lock (rt_sched_lock). Every
// function here may be called from any thread unless stated otherwise.
#ifndef THREADFLEET_MACHINE_MACHINE_STATE_H
#define THREADFLEET_MACHINE_MACHINE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Compile-time capacities; a profile's counts (board_profile.h) are at most
// these. The lab sees at most MACH_SNAPSHOT_PINS of the pins in use
// (board.options: MachineState.pins max_count).
#define MACH_PIN_MAX 64
#define MACH_ADC_MAX 8
#define MACH_TIMER_MAX 8
#define MACH_SNAPSHOT_PINS 32

// The numbers are the proto's (PinMode, PinPull, TimerMode, ResetCause),
// and machine's constants have the same values.
typedef enum {
  MACH_PIN_UNSET = 0,
  MACH_PIN_IN = 1,
  MACH_PIN_OUT = 2,
  MACH_PIN_OPEN_DRAIN = 3
} mach_pin_mode_t;
typedef enum { MACH_PULL_NONE = 0, MACH_PULL_UP = 1, MACH_PULL_DOWN = 2 } mach_pin_pull_t;
#define MACH_IRQ_RISING 1
#define MACH_IRQ_FALLING 2
typedef enum { MACH_TIMER_ONE_SHOT = 1, MACH_TIMER_PERIODIC = 2 } mach_timer_mode_t;
typedef enum {
  MACH_RESET_POWER_ON = 1,
  MACH_RESET_HARD = 2,
  MACH_RESET_WATCHDOG = 3,
  MACH_RESET_DEEPSLEEP = 4,
  MACH_RESET_SOFT = 5,
} mach_reset_cause_t;

// What read_uv() scales read_u16()'s 0..65535 to: the 3.3 V reference of
// both ESP32 (11 dB attenuation) and RP2040 boards.
#define MACH_ADC_FULL_SCALE_UV 3300000u

typedef struct {
  uint32_t pin;
  mach_pin_mode_t mode;
  mach_pin_pull_t pull;
  uint32_t value;  // the level on the pin
  bool lab_driven;
  bool irq;
  uint64_t irq_count;
} mach_pin_state_t;

typedef struct {
  uint32_t channel;
  uint32_t value_u16;
  bool lab_set;
} mach_adc_state_t;

typedef struct {
  int32_t id;
  mach_timer_mode_t mode;
  uint32_t period_ms;
  bool running;
  uint64_t fired;
} mach_timer_state_t;

typedef struct {
  mach_pin_state_t pins[MACH_SNAPSHOT_PINS];
  size_t pin_count;
  mach_adc_state_t adcs[MACH_ADC_MAX];
  size_t adc_count;
  mach_timer_state_t timers[MACH_TIMER_MAX];
  size_t timer_count;
  bool wdt_armed;
  uint32_t wdt_timeout_ms, wdt_since_feed_ms, wdt_resets;
  mach_reset_cause_t reset_cause;
  uint32_t freq_hz;
} mach_state_t;

// ---- Lifecycle (the supervisor) ----------------------------------------------------

// Starts the ticker; unique_id() derives from board_name. Call once, before
// the VM starts; reset_cause() then says POWER_ON.
void mach_start(const char *board_name);
// Stops the ticker. REQUIRES: mach_vm_stopping was called.
void mach_stop(void);
// The VM is about to be torn down (every thread has ended): timers stop,
// handlers and the IRQ mask are forgotten, nothing is scheduled any more.
// Returns why this restart happens; `by` gets what asked for it
// ("machine.reset()", "watchdog not fed for 1000 ms"), or "" when nothing
// in `machine` did (a Reset call: the cause is then SOFT).
mach_reset_cause_t mach_vm_stopping(char *by, size_t by_len);
// A fresh VM is up: pins keep what the lab drives, the program's settings
// are gone, freq() is the profile's again.
void mach_vm_started(void);

// ---- The lab -------------------------------------------------------------------------

// Everything the lab sees (MachineState), pins by number.
void mach_snapshot(mach_state_t *out);
// Drives `pin` to value (0/1), or stops driving it (release). An edge runs
// the pin's IRQ handler. Returns 0 and the pin's state; -EINVAL (a pin the
// profile does not have, a value not 0/1) or -EPERM (the program drives the
// pin as an output) with the reason in why.
int mach_set_pin(uint32_t pin, uint32_t value, bool release, mach_pin_state_t *out, char *why,
                 size_t why_len);
// Sets what ADC channel reads. Returns 0, or -EINVAL (no such channel, a
// value over 65535) with the reason in why.
int mach_set_adc(uint32_t channel, uint32_t value_u16, mach_adc_state_t *out, char *why, size_t why_len);

// ---- The program (modmachine.c; GIL held) ----------------------------------------------

// The pin a program may name: 0..pin_count-1. REQUIRES: nothing.
bool mach_pin_exists(uint32_t pin);
// mode/pull < 0: unchanged; value < 0: unchanged (else the output level).
void mach_pin_configure(uint32_t pin, int mode, int pull, int value);
uint32_t mach_pin_read(uint32_t pin);
// The pin's IRQ handler is set (trigger: MACH_IRQ_* bits) or removed
// (trigger 0); it belongs to program_id and ends with it.
void mach_pin_set_irq(uint32_t pin, uint32_t trigger, uint32_t program_id);

bool mach_adc_exists(uint32_t channel);
void mach_adc_open(uint32_t channel);
uint32_t mach_adc_read_u16(uint32_t channel);

// A timer slot for `id` (-1: a new virtual timer; a hardware id: its one
// slot). Returns the slot index and its generation, or -1 when all
// MACH_TIMER_MAX slots hold timers that run.
int mach_timer_claim(int32_t id, uint32_t *gen);
// Whether slot/gen is still the timer the caller created.
bool mach_timer_valid(int slot, uint32_t gen);
void mach_timer_start(int slot, mach_timer_mode_t mode, int64_t period_ns, bool has_callback,
                      uint32_t program_id);
// Stops it; a virtual timer's slot is freed.
void mach_timer_stop(int slot);

// Arms (or re-times) the watchdog: not fed within timeout_ms, the VM
// restarts with WATCHDOG as its cause.
void mach_wdt_arm(uint32_t timeout_ms, uint32_t program_id);
void mach_wdt_feed(void);

mach_reset_cause_t mach_reset_cause(void);
uint32_t mach_freq(void);
void mach_set_freq(uint32_t hz);
// machine.unique_id(): *len bytes (the profile's length) derived from the
// board's name, the same every start.
void mach_unique_id(uint8_t *out, size_t *len);

// Asks for a VM restart with this cause (the VM host thread does it).
// Returns false when this process does not serve resets (`fleetboard run`).
bool mach_request_reset(mach_reset_cause_t cause, const char *by);

// machine.disable_irq(): waits until no other thread has IRQs disabled, then
// masks them for the caller (timers and pin edges are held back until
// enable, and the caller keeps the VM at its yield points). Returns 1 if
// this call masked them, 0 if the caller had already, -EINTR when a kill
// came while it waited (the caller raises it). REQUIRES: a VM thread.
int mach_irq_disable(void);
// machine.enable_irq(state) with the caller's mask: unmasks, delivering the
// interrupts held back. A caller that does not hold the mask: no effect.
void mach_irq_enable(void);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_MACHINE_MACHINE_STATE_H
