// The simulated board hardware (see machine_state.h).
#include "firmware/machine/machine_state.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "firmware/machine/machine_schedule.h"
#include "firmware/runtime/board_profile.h"
#include "firmware/runtime/mpthreadport.h"
#include "firmware/supervisor/supervisor.h"

// With nothing due the ticker still looks every this often: a thread that
// died holding the IRQ mask lets held-back interrupts through at this pace.
#define TICKER_IDLE_MS 100

typedef struct {
  bool configured;  // a program set it up (Pin())
  mach_pin_mode_t mode;
  mach_pin_pull_t pull;
  uint8_t out;  // the level the program drives (OUT, OPEN_DRAIN)
  bool lab_driven;
  uint8_t lab;
  uint32_t irq_trigger;  // MACH_IRQ_* bits; 0: no handler
  uint32_t irq_program;
  uint64_t irq_count;
  bool irq_held;  // an edge came while IRQs were masked
} pin_t;

typedef struct {
  bool opened;  // a program opened it (ADC())
  bool lab_set;
  uint32_t value_u16;
} adc_t;

typedef struct {
  bool in_use;
  uint32_t gen;  // bumped when the slot is handed to another timer
  int32_t id;
  mach_timer_mode_t mode;
  int64_t period_ns;
  bool running;
  bool has_callback;
  uint32_t program_id;
  int64_t due_ns;
  uint64_t fired;
} timer_slot_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ticker_cond;  // signalled (mu held) when timers, the watchdog or the mask change
static pthread_t ticker;
static bool ticker_running, ticker_stop;

// All of the below: mu.
static bool vm_up;  // handlers may be scheduled (the VM exists)
static pin_t pins[MACH_PIN_MAX];
static adc_t adcs[MACH_ADC_MAX];
static timer_slot_t timers[MACH_TIMER_MAX];
static struct {
  bool armed, fired;
  uint32_t timeout_ms;
  uint32_t program_id;
  int64_t fed_ns;
  uint32_t resets;  // for the board's uptime
} wdt;
static mach_reset_cause_t reset_cause = MACH_RESET_POWER_ON;
static mach_reset_cause_t pending_cause;  // 0: none asked
static char pending_by[96];
static uint32_t freq_hz;
static uint8_t unique_id[8];

// The thread (rt id) that masked IRQs, 0 if none. Atomic: the waiters'
// ready check runs under the sched lock, not mu.
static _Atomic uint32_t irq_owner;

// ---- Helpers -------------------------------------------------------------------------

static const board_profile_t *profile(void) { return board_profile_current(); }

static uint32_t cap(uint32_t n, uint32_t max) { return n < max ? n : max; }

static bool program_running(uint32_t program_id) {
  sup_program_info_t info;
  return program_id && sup_program_get(program_id, &info) && info.state == SUP_PROGRAM_RUNNING;
}

static void signal_sleeper(rt_thread_t *t, void *ctx) {
  (void)ctx;
  if (t->block_kind == RT_BLOCK_SLEEP) rt_thread_signal(t);
}

// Wakes every sleeping VM thread to run what was scheduled (mphalport.c's
// sleeps wake when the scheduler has work) or to look at the mask again.
static void wake_sleepers(void) {
  rt_sched_lock();
  rt_threads_foreach(signal_sleeper, NULL);
  rt_sched_unlock();
}

// Whether a live thread holds the IRQ mask; a thread that died holding it
// gives it up. REQUIRES: sched lock.
static bool mask_held_locked(void) {
  uint32_t owner = atomic_load(&irq_owner);
  if (owner == 0) return false;
  if (rt_thread_find(owner)) return true;
  atomic_compare_exchange_strong(&irq_owner, &owner, 0);
  return false;
}

static bool mask_held(void) {
  rt_sched_lock();
  bool held = mask_held_locked();
  rt_sched_unlock();
  return held;
}

static uint8_t pin_level(const pin_t *p) {
  if (p->mode == MACH_PIN_OUT) return p->out;
  if (p->mode == MACH_PIN_OPEN_DRAIN && p->out == 0) return 0;
  if (p->lab_driven) return p->lab;
  return p->pull == MACH_PULL_UP ? 1 : 0;
}

// Runs the pin's handler if its level went from `before` to a triggering
// edge (or holds it back while IRQs are masked). Returns true when a
// handler was scheduled. REQUIRES: mu.
static bool pin_edge(uint32_t n, uint8_t before) {
  pin_t *p = &pins[n];
  uint8_t now = pin_level(p);
  if (now == before || !vm_up || p->irq_trigger == 0) return false;
  if (!(p->irq_trigger & (now ? MACH_IRQ_RISING : MACH_IRQ_FALLING))) return false;
  if (!program_running(p->irq_program)) {
    p->irq_trigger = 0;  // its program ended: so did the handler
    return false;
  }
  if (mask_held()) {
    p->irq_held = true;
    return false;
  }
  if (!machine_schedule_pin(n)) return false;  // the queue is full: dropped, as on a port
  p->irq_count++;
  return true;
}

static void fill_pin(uint32_t n, mach_pin_state_t *out) {
  const pin_t *p = &pins[n];
  *out = (mach_pin_state_t){.pin = n,
                            .mode = p->mode,
                            .pull = p->pull,
                            .value = pin_level(p),
                            .lab_driven = p->lab_driven,
                            .irq = p->irq_trigger != 0,
                            .irq_count = p->irq_count};
}

// ---- The ticker ----------------------------------------------------------------------

// Fires the timers that are due. Returns true when a callback was scheduled;
// lowers *next_ns to the next due time. REQUIRES: mu.
static bool fire_timers(int64_t now, bool masked, int64_t *next_ns) {
  bool scheduled = false;
  for (int i = 0; i < MACH_TIMER_MAX; i++) {
    timer_slot_t *t = &timers[i];
    if (!t->in_use || !t->running) continue;
    if (t->due_ns > now) {
      if (t->due_ns < *next_ns) *next_ns = t->due_ns;
      continue;
    }
    if (!program_running(t->program_id)) {
      t->running = false;  // timers end with their program
      continue;
    }
    if (masked) continue;  // held back until enable_irq (which wakes us)
    if (t->has_callback && machine_schedule_timer(i)) {
      t->fired++;
      scheduled = true;
    }
    if (t->mode == MACH_TIMER_ONE_SHOT) {
      t->running = false;
      continue;
    }
    t->due_ns += t->period_ns;
    if (t->due_ns <= now) t->due_ns = now + t->period_ns;  // fell behind: no burst
    if (t->due_ns < *next_ns) *next_ns = t->due_ns;
  }
  return scheduled;
}

// Restarts the VM when the watchdog was not fed in time. REQUIRES: mu.
static void watch_dog(int64_t now, int64_t *next_ns) {
  if (!wdt.armed || wdt.fired) return;
  int64_t deadline = wdt.fed_ns + (int64_t)wdt.timeout_ms * 1000000;
  if (now < deadline) {
    if (deadline < *next_ns) *next_ns = deadline;
    return;
  }
  wdt.fired = true;
  wdt.resets++;
  pending_cause = MACH_RESET_WATCHDOG;
  snprintf(pending_by, sizeof(pending_by), "watchdog not fed for %lld ms (timeout %u ms): the VM restarted",
           (long long)((now - wdt.fed_ns) / 1000000), wdt.timeout_ms);
  if (sup_resets_served()) {
    sup_reset_begin(false);
  } else {
    // `fleetboard run` has no VM to restart for: the program ends instead.
    sup_program_kill(wdt.program_id, -1);
  }
}

// Stops the timers and drops the IRQ handlers of programs that ended, so
// the lab does not see them running until they next come due. REQUIRES: mu.
static void end_with_programs(void) {
  for (int i = 0; i < MACH_TIMER_MAX; i++) {
    if (timers[i].in_use && timers[i].running && !program_running(timers[i].program_id))
      timers[i].running = false;
  }
  for (uint32_t n = 0; n < MACH_PIN_MAX; n++) {
    if (pins[n].irq_trigger && !program_running(pins[n].irq_program)) pins[n].irq_trigger = 0;
  }
}

// Delivers the pin edges held back while IRQs were masked. REQUIRES: mu.
static bool deliver_held_edges(void) {
  bool scheduled = false;
  for (uint32_t n = 0; n < MACH_PIN_MAX; n++) {
    pin_t *p = &pins[n];
    if (!p->irq_held) continue;
    p->irq_held = false;
    if (p->irq_trigger && program_running(p->irq_program) && machine_schedule_pin(n)) {
      p->irq_count++;
      scheduled = true;
    }
  }
  return scheduled;
}

static void *ticker_main(void *arg) {
  (void)arg;
  int64_t swept_ns = 0;  // the last end_with_programs
  pthread_mutex_lock(&mu);
  while (!ticker_stop) {
    int64_t now = rt_now_ns();
    int64_t next = now + (int64_t)TICKER_IDLE_MS * 1000000;
    bool scheduled = false;
    if (vm_up && now - swept_ns >= (int64_t)TICKER_IDLE_MS * 1000000) {
      end_with_programs();
      swept_ns = now;
    }
    if (vm_up) {
      bool masked = mask_held();
      scheduled = fire_timers(now, masked, &next);
      if (!masked) scheduled |= deliver_held_edges();
      watch_dog(now, &next);
    }
    if (scheduled) wake_sleepers();
    struct timespec at = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
    pthread_cond_timedwait(&ticker_cond, &mu, &at);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

// ---- Lifecycle -----------------------------------------------------------------------

void mach_start(const char *board_name) {
  // FNV-1a over the name: stable per board, different between boards.
  uint64_t h = 1469598103934665603ull;
  for (const char *c = board_name ? board_name : ""; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < sizeof(unique_id); i++) unique_id[i] = (uint8_t)(h >> (8 * i));
  reset_cause = MACH_RESET_POWER_ON;
  freq_hz = profile()->freq_hz;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&ticker_cond, &attr);
  pthread_condattr_destroy(&attr);
  ticker_stop = false;
  ticker_running = pthread_create(&ticker, NULL, ticker_main, NULL) == 0;
  pthread_mutex_unlock(&mu);
}

void mach_stop(void) {
  pthread_mutex_lock(&mu);
  ticker_stop = true;
  pthread_cond_signal(&ticker_cond);
  pthread_mutex_unlock(&mu);
  if (ticker_running) pthread_join(ticker, NULL);
  ticker_running = false;
  pthread_cond_destroy(&ticker_cond);
}

mach_reset_cause_t mach_vm_stopping(char *by, size_t by_len) {
  pthread_mutex_lock(&mu);
  vm_up = false;
  for (uint32_t n = 0; n < MACH_PIN_MAX; n++) {
    pin_t *p = &pins[n];
    *p = (pin_t){.lab_driven = p->lab_driven, .lab = p->lab};
  }
  for (uint32_t c = 0; c < MACH_ADC_MAX; c++) adcs[c].opened = false;
  memset(timers, 0, sizeof(timers));
  wdt.armed = wdt.fired = false;
  atomic_store(&irq_owner, 0);
  mach_reset_cause_t cause = pending_cause ? pending_cause : MACH_RESET_SOFT;
  snprintf(by, by_len, "%s", pending_cause ? pending_by : "");
  reset_cause = cause;
  pending_cause = 0;
  pending_by[0] = '\0';
  machine_forget_objects();
  pthread_mutex_unlock(&mu);
  return cause;
}

void mach_vm_started(void) {
  pthread_mutex_lock(&mu);
  freq_hz = profile()->freq_hz;
  machine_forget_objects();
  vm_up = true;
  pthread_cond_signal(&ticker_cond);
  pthread_mutex_unlock(&mu);
}

// ---- The lab -------------------------------------------------------------------------

void mach_snapshot(mach_state_t *out) {
  memset(out, 0, sizeof(*out));
  int64_t now = rt_now_ns();
  pthread_mutex_lock(&mu);
  for (uint32_t n = 0; n < MACH_PIN_MAX && out->pin_count < MACH_SNAPSHOT_PINS; n++) {
    const pin_t *p = &pins[n];
    if (p->configured || p->lab_driven || p->irq_trigger) fill_pin(n, &out->pins[out->pin_count++]);
  }
  for (uint32_t c = 0; c < MACH_ADC_MAX; c++) {
    if (!adcs[c].opened && !adcs[c].lab_set) continue;
    out->adcs[out->adc_count++] =
        (mach_adc_state_t){.channel = c, .value_u16 = adcs[c].value_u16, .lab_set = adcs[c].lab_set};
  }
  // Hardware ids first, then the virtual timers.
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < MACH_TIMER_MAX; i++) {
      const timer_slot_t *t = &timers[i];
      if (!t->in_use || (pass == 0) != (t->id >= 0)) continue;
      out->timers[out->timer_count++] = (mach_timer_state_t){.id = t->id,
                                                             .mode = t->mode,
                                                             .period_ms = (uint32_t)(t->period_ns / 1000000),
                                                             .running = t->running,
                                                             .fired = t->fired};
    }
  }
  out->wdt_armed = wdt.armed;
  out->wdt_timeout_ms = wdt.timeout_ms;
  out->wdt_since_feed_ms = wdt.armed ? (uint32_t)((now - wdt.fed_ns) / 1000000) : 0;
  out->wdt_resets = wdt.resets;
  out->reset_cause = reset_cause;
  out->freq_hz = freq_hz;
  pthread_mutex_unlock(&mu);
}

int mach_set_pin(uint32_t pin, uint32_t value, bool release, mach_pin_state_t *out, char *why,
                 size_t why_len) {
  if (!mach_pin_exists(pin)) {
    snprintf(why, why_len, "pin %u does not exist: the %s profile has pins 0-%u", pin, profile()->name,
             profile()->pin_count - 1);
    return -EINVAL;
  }
  if (!release && value > 1) {
    snprintf(why, why_len, "value %u is not a level: 0 or 1", value);
    return -EINVAL;
  }
  pthread_mutex_lock(&mu);
  pin_t *p = &pins[pin];
  if (p->mode == MACH_PIN_OUT && !release) {
    pthread_mutex_unlock(&mu);
    snprintf(why, why_len, "pin %u is an output the program drives: it cannot be driven from the lab", pin);
    return -EPERM;
  }
  uint8_t before = pin_level(p);
  p->lab_driven = !release;
  p->lab = release ? 0 : (uint8_t)value;
  bool scheduled = pin_edge(pin, before);
  fill_pin(pin, out);
  pthread_mutex_unlock(&mu);
  if (scheduled) wake_sleepers();
  return 0;
}

int mach_set_adc(uint32_t channel, uint32_t value_u16, mach_adc_state_t *out, char *why, size_t why_len) {
  if (!mach_adc_exists(channel)) {
    if (profile()->adc_count == 0) {
      snprintf(why, why_len, "channel %u does not exist: the %s profile has no ADC", channel,
               profile()->name);
    } else {
      snprintf(why, why_len, "channel %u does not exist: the %s profile has channels 0-%u", channel,
               profile()->name, profile()->adc_count - 1);
    }
    return -EINVAL;
  }
  if (value_u16 > 65535) {
    snprintf(why, why_len, "value_u16 %u is over 65535", value_u16);
    return -EINVAL;
  }
  pthread_mutex_lock(&mu);
  adcs[channel].lab_set = true;
  adcs[channel].value_u16 = value_u16;
  *out = (mach_adc_state_t){.channel = channel, .value_u16 = value_u16, .lab_set = true};
  pthread_mutex_unlock(&mu);
  return 0;
}

// ---- The program ---------------------------------------------------------------------

bool mach_pin_exists(uint32_t pin) { return pin < cap(profile()->pin_count, MACH_PIN_MAX); }

void mach_pin_configure(uint32_t pin, int mode, int pull, int value) {
  pthread_mutex_lock(&mu);
  pin_t *p = &pins[pin];
  uint8_t before = pin_level(p);
  if (value >= 0) p->out = value ? 1 : 0;
  if (mode >= 0) p->mode = (mach_pin_mode_t)mode;
  if (pull >= 0) p->pull = (mach_pin_pull_t)pull;
  p->configured = true;
  bool scheduled = pin_edge(pin, before);
  pthread_mutex_unlock(&mu);
  if (scheduled) wake_sleepers();
}

uint32_t mach_pin_read(uint32_t pin) {
  pthread_mutex_lock(&mu);
  uint32_t level = pin_level(&pins[pin]);
  pthread_mutex_unlock(&mu);
  return level;
}

void mach_pin_set_irq(uint32_t pin, uint32_t trigger, uint32_t program_id) {
  pthread_mutex_lock(&mu);
  pins[pin].irq_trigger = trigger;
  pins[pin].irq_program = program_id;
  pins[pin].irq_held = false;
  pthread_mutex_unlock(&mu);
}

bool mach_adc_exists(uint32_t channel) { return channel < cap(profile()->adc_count, MACH_ADC_MAX); }

void mach_adc_open(uint32_t channel) {
  pthread_mutex_lock(&mu);
  adcs[channel].opened = true;
  pthread_mutex_unlock(&mu);
}

uint32_t mach_adc_read_u16(uint32_t channel) {
  pthread_mutex_lock(&mu);
  uint32_t v = adcs[channel].value_u16;
  pthread_mutex_unlock(&mu);
  return v;
}

int mach_timer_claim(int32_t id, uint32_t *gen) {
  pthread_mutex_lock(&mu);
  int slot = -1;
  for (int i = 0; id >= 0 && i < MACH_TIMER_MAX && slot < 0; i++) {
    if (timers[i].in_use && timers[i].id == id) slot = i;  // a hardware timer has one slot
  }
  for (int i = 0; i < MACH_TIMER_MAX && slot < 0; i++) {
    if (!timers[i].in_use) slot = i;
  }
  // All taken: a stopped virtual timer gives its slot up (its object, if
  // still around, claims another when it is started again).
  for (int i = 0; i < MACH_TIMER_MAX && slot < 0; i++) {
    if (timers[i].id < 0 && !timers[i].running) slot = i;
  }
  if (slot >= 0 && !(timers[slot].in_use && timers[slot].id == id && id >= 0)) {
    uint32_t next_gen = timers[slot].gen + 1;
    timers[slot] = (timer_slot_t){.in_use = true, .gen = next_gen, .id = id, .mode = MACH_TIMER_PERIODIC};
  }
  if (slot >= 0) *gen = timers[slot].gen;
  pthread_mutex_unlock(&mu);
  return slot;
}

bool mach_timer_valid(int slot, uint32_t gen) {
  pthread_mutex_lock(&mu);
  bool valid = slot >= 0 && slot < MACH_TIMER_MAX && timers[slot].in_use && timers[slot].gen == gen;
  pthread_mutex_unlock(&mu);
  return valid;
}

void mach_timer_start(int slot, mach_timer_mode_t mode, int64_t period_ns, bool has_callback,
                      uint32_t program_id) {
  pthread_mutex_lock(&mu);
  timer_slot_t *t = &timers[slot];
  t->mode = mode;
  t->period_ns = period_ns;
  t->has_callback = has_callback;
  t->program_id = program_id;
  t->fired = 0;
  t->due_ns = rt_now_ns() + period_ns;
  t->running = true;
  pthread_cond_signal(&ticker_cond);
  pthread_mutex_unlock(&mu);
}

void mach_timer_stop(int slot) {
  pthread_mutex_lock(&mu);
  timers[slot].running = false;
  if (timers[slot].id < 0) timers[slot].in_use = false;
  pthread_mutex_unlock(&mu);
}

void mach_wdt_arm(uint32_t timeout_ms, uint32_t program_id) {
  pthread_mutex_lock(&mu);
  wdt.armed = true;
  wdt.timeout_ms = timeout_ms;
  wdt.program_id = program_id;
  wdt.fed_ns = rt_now_ns();
  pthread_cond_signal(&ticker_cond);
  pthread_mutex_unlock(&mu);
}

void mach_wdt_feed(void) {
  pthread_mutex_lock(&mu);
  wdt.fed_ns = rt_now_ns();
  pthread_mutex_unlock(&mu);
}

mach_reset_cause_t mach_reset_cause(void) {
  pthread_mutex_lock(&mu);
  mach_reset_cause_t cause = reset_cause;
  pthread_mutex_unlock(&mu);
  return cause;
}

uint32_t mach_freq(void) {
  pthread_mutex_lock(&mu);
  uint32_t hz = freq_hz;
  pthread_mutex_unlock(&mu);
  return hz;
}

void mach_set_freq(uint32_t hz) {
  pthread_mutex_lock(&mu);
  freq_hz = hz;
  pthread_mutex_unlock(&mu);
}

void mach_unique_id(uint8_t *out, size_t *len) {
  size_t n = cap(profile()->unique_id_bytes, sizeof(unique_id));
  pthread_mutex_lock(&mu);
  memcpy(out, unique_id, n);
  pthread_mutex_unlock(&mu);
  *len = n;
}

bool mach_request_reset(mach_reset_cause_t cause, const char *by) {
  if (!sup_resets_served()) return false;
  pthread_mutex_lock(&mu);
  pending_cause = cause;
  snprintf(pending_by, sizeof(pending_by), "%s", by);
  pthread_mutex_unlock(&mu);
  sup_reset_begin(false);
  return true;
}

// ---- The IRQ mask --------------------------------------------------------------------

static bool mask_free(void *ctx) {
  (void)ctx;
  return !mask_held_locked();
}

int mach_irq_disable(void) {
  rt_thread_t *self = rt_self();
  uint32_t me = self->id;
  if (atomic_load(&irq_owner) == me) return 0;
  for (;;) {
    uint32_t none = 0;
    rt_sched_lock();
    bool free = !mask_held_locked();
    bool got = free && atomic_compare_exchange_strong(&irq_owner, &none, me);
    rt_sched_unlock();
    if (got) break;
    // Another thread has them masked: wait without the VM (a kill still lands).
    if (rt_block(RT_BLOCK_SLEEP, NULL, -1, mask_free, NULL) == RT_WAKE_KILLED) return -EINTR;
  }
  rt_gil_keep(true);
  return 1;
}

void mach_irq_enable(void) {
  rt_thread_t *self = rt_self();
  uint32_t me = self->id;
  if (!atomic_compare_exchange_strong(&irq_owner, &me, 0)) return;
  rt_gil_keep(false);
  pthread_mutex_lock(&mu);
  pthread_cond_signal(&ticker_cond);  // held-back timers and edges are due now
  pthread_mutex_unlock(&mu);
  wake_sleepers();  // threads waiting for the mask
}
