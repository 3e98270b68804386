// The supervisor's lifecycle, kill policy and health (see supervisor.h).
//
// A monitor thread (a plain host thread, never in the VM) escalates kills
// whose grace period ran out, reports lock waits that became stalls, and
// reaps the stacks of ended threads.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "firmware/machine/machine_state.h"
#include "firmware/runtime/mphalport.h"
#include "firmware/runtime/vm.h"
#include "firmware/supervisor/internal.h"

// The monitor wakes often only while a kill is on its way (grace periods are
// short); otherwise it only has stalls to judge, which take seconds, and an
// idle board should not wake 100 times a second (a lab runs many boards).
#define MONITOR_BUSY_PERIOD_MS 10
#define MONITOR_IDLE_PERIOD_MS 100

sup_state_t sup;

static pthread_t monitor_thread;
static bool monitor_stop;            // sched
static pthread_cond_t monitor_wake;  // signalled (sched held) on a kill request or stop

sup_config_t sup_default_config(void) {
  return (sup_config_t){
      .board_name = "board",
      .heap_bytes = 256 * 1024,
      .max_threads = 16,
      .output_buffer_bytes = 64 * 1024,
      .max_stack_bytes = SUP_DEFAULT_MAX_STACK,
      .stall_after_ms = 5000,
      .kill_grace_ms = 200,
  };
}

int64_t sup_uptime_us(int64_t mono_ns) { return (mono_ns - sup.boot_ns) / 1000; }

// ---- Heap figures -----------------------------------------------------------------

void sup_heap_figures_publish(void) {
  if (!sup.vm_up) return;  // no heap to read while a reset replaces the VM
  rt_heap_stats_t heap;
  rt_vm_heap_stats(&heap);
  rt_sched_lock();
  sup.heap = heap;
  rt_sched_unlock();
}

// Fresh figures if the GIL is free this instant; else the holder is asked to
// read them at its next yield point (for the next snapshot).
static void heap_figures_refresh(void) {
  rt_thread_t *self = rt_self();
  if (!self) self = rt_thread_register_system();
  if (self && rt_gil_try_acquire()) {
    sup_heap_figures_publish();
    rt_gil_release();
  } else {
    rt_gil_request_yield_work();
  }
}

// ---- Kill policy -----------------------------------------------------------------

void sup_kill_request(sup_thread_t *t, int64_t grace_ms) {
  int64_t grace_ns = (grace_ms < 0 ? sup.config.kill_grace_ms : grace_ms) * 1000000;
  int64_t now = rt_now_ns();
  if (t->kill_phase == SUP_KILL_NONE) {
    rt_gil_native_ns(now, NULL);  // a sample now: was it stuck already? (escalate_kills)
    t->kill_grace_ns = grace_ns;
    t->kill_phase = SUP_KILL_SOFT;
    t->kill_requested_ns = now;
    t->kill_deadline_ns = now + grace_ns;
    rt_thread_kill(t->rt, false);
    pthread_cond_signal(&monitor_wake);
    return;
  }
  // A kill is on its way: a shorter grace brings its next step (and the
  // ones after it) closer, a longer one changes nothing.
  if (t->kill_phase == SUP_KILL_GAVE_UP || grace_ns >= t->kill_grace_ns) return;
  t->kill_grace_ns = grace_ns;
  if (now + grace_ns < t->kill_deadline_ns) t->kill_deadline_ns = now + grace_ns;
  pthread_cond_signal(&monitor_wake);
}

int sup_thread_kill(uint32_t thread_id, int64_t grace_ms) {
  if (grace_ms > SUP_KILL_GRACE_MAX_MS) return -EINVAL;
  rt_sched_lock();
  sup_thread_t *t = sup_thread_rec(thread_id);
  int rc = !t ? -ENOENT : !t->rt ? -ESRCH : 0;
  if (rc == 0) sup_kill_request(t, grace_ms);
  rt_sched_unlock();
  return rc;
}

int sup_program_kill(uint32_t program_id, int64_t grace_ms) {
  if (grace_ms > SUP_KILL_GRACE_MAX_MS) return -EINVAL;
  rt_sched_lock();
  sup_program_t *p = sup_program_rec(program_id);
  int rc = p ? 0 : -ENOENT;
  if (p && p->info.state == SUP_PROGRAM_RUNNING) p->killing = true;
  for (size_t i = 0; rc == 0 && i < SUP_MAX_THREAD_RECORDS; i++) {
    sup_thread_t *t = &sup.threads[i];
    if (t->in_use && t->rt && t->program_id == program_id) sup_kill_request(t, grace_ms);
  }
  rt_sched_unlock();
  return rc;
}

// A thread that has held the VM since before its kill without passing a
// point where the kill can land is inside one native operation: neither
// phase of the kill can reach it before it comes back, so it is reported
// unkillable at the end of the first grace, and unwound (the hard phase) if
// it ever comes back. REQUIRES: sched lock held.
static bool stuck_since_kill(sup_thread_t *t, int64_t now) {
  int64_t since = rt_thread_native_since_ns(t->rt, now);
  if (since < 0 || since > t->kill_requested_ns) return false;
  t->kill_phase = SUP_KILL_GAVE_UP;
  t->unkillable = true;
  rt_thread_kill(t->rt, true);
  sup_event_emit(SUP_EVENT_THREAD_UNKILLABLE, t->id, t->program_id, NULL, 0,
                 "thread %u (%s) is stuck in native code for %lld ms: the kill lands when it returns; Reset "
                 "restarts the board",
                 t->id, t->name, (long long)((now - since) / 1000000));
  return true;
}

// REQUIRES: sched lock held.
static void escalate_kills(int64_t now) {
  for (size_t i = 0; i < SUP_MAX_THREAD_RECORDS; i++) {
    sup_thread_t *t = &sup.threads[i];
    if (!t->in_use || !t->rt || now < t->kill_deadline_ns) continue;
    if (t->kill_phase == SUP_KILL_SOFT && stuck_since_kill(t, now)) continue;
    if (t->kill_phase == SUP_KILL_SOFT) {
      // It swallowed ThreadKilled or is stuck: unwind it, skipping handlers.
      t->kill_phase = SUP_KILL_HARD;
      t->kill_deadline_ns = now + t->kill_grace_ns;
      rt_thread_kill(t->rt, true);
    } else if (t->kill_phase == SUP_KILL_HARD) {
      t->kill_phase = SUP_KILL_GAVE_UP;
      t->unkillable = true;
      sup_event_emit(SUP_EVENT_THREAD_UNKILLABLE, t->id, t->program_id, NULL, 0,
                     "thread %u (%s) is still alive %lld ms after a kill (stuck in native code?)", t->id,
                     t->name, (long long)(2 * t->kill_grace_ns / 1000000));
    }
  }
}

// REQUIRES: sched lock held.
static void report_stalls(int64_t now) {
  int64_t stall_ns = sup.config.stall_after_ms * 1000000;
  for (size_t i = 0; i < SUP_MAX_THREAD_RECORDS; i++) {
    sup_thread_t *t = &sup.threads[i];
    if (!t->in_use || !t->rt || t->rt->block_kind != RT_BLOCK_LOCK) continue;
    int64_t since = t->rt->block_since_ns;
    if (now - since < stall_ns || t->stall_reported_for == since) continue;
    t->stall_reported_for = since;
    sup_event_emit(SUP_EVENT_STALL, t->id, t->program_id, NULL, 0,
                   "stall: thread %u (%s) has waited %lld ms for lock %u held by thread %u", t->id, t->name,
                   (long long)((now - since) / 1000000), sup_lock_id(t->rt->block_obj),
                   sup_lock_owner(t->rt->block_obj));
  }
}

// REQUIRES: sched lock held.
static bool kills_in_progress(void) {
  for (size_t i = 0; i < SUP_MAX_THREAD_RECORDS; i++) {
    const sup_thread_t *t = &sup.threads[i];
    if (t->in_use && t->rt && (t->kill_phase == SUP_KILL_SOFT || t->kill_phase == SUP_KILL_HARD)) return true;
  }
  return false;
}

static void *monitor_main(void *arg) {
  (void)arg;
  rt_sched_lock();
  while (!monitor_stop) {
    int64_t now = rt_now_ns();
    rt_gil_native_ns(now, NULL);  // a sample per tick at least: native_us is short by a tick at most
    escalate_kills(now);
    report_stalls(now);
    rt_sched_unlock();
    rt_threads_reap();
    rt_sched_lock();
    if (monitor_stop) break;
    // Decided under the lock a kill request takes, so none is missed.
    int64_t period_ms = kills_in_progress() ? MONITOR_BUSY_PERIOD_MS : MONITOR_IDLE_PERIOD_MS;
    rt_sched_wait_until(&monitor_wake, rt_now_ns() + period_ms * 1000000);
  }
  rt_sched_unlock();
  return NULL;
}

// ---- Lifecycle -------------------------------------------------------------------

static bool vm_start(void *stack_top) {
  rt_vm_config_t vm = {.heap_bytes = sup.config.heap_bytes, .emit_native = sup.config.emit_native};
  if (!rt_vm_init(&vm, stack_top)) {
    fprintf(stderr, "supervisor: cannot allocate a %zu-byte heap\n", sup.config.heap_bytes);
    return false;
  }
  rt_vm_enter();
  if (sup.config.on_vm_start) sup.config.on_vm_start(sup.config.on_vm_start_ctx);
  sup_rootfs_guard();
  sup.vm_up = true;
  sup_heap_figures_publish();
  rt_vm_leave();
  mach_vm_started();
  return true;
}

static void *vm_stack_top;

// Tears the VM down; host threads that get the GIL meanwhile see vm_up false
// and leave it alone.
static void vm_stop(void) {
  rt_vm_enter();
  sup.vm_up = false;
  rt_vm_leave();
  rt_vm_deinit();
}

bool sup_init(const sup_config_t *config, void *stack_top) {
  memset(&sup, 0, sizeof(sup));
  sup.config = *config;
  sup.boot_ns = rt_now_ns();
  sup.next_program_id = 1;
  pthread_cond_init(&sup.changed, NULL);
  pthread_cond_init(&monitor_wake, NULL);
  rt_output_set_sink(sup_output_capture);
  rt_gc_set_hook(sup_locks_mark);
  rt_gil_set_yield_work(sup_heap_figures_publish);
  rt_threads_set_limit(config->max_threads);
  vm_stack_top = stack_top;
  mach_start(config->board_name);
  if (!vm_start(stack_top)) {
    char by[8];
    mach_vm_stopping(by, sizeof(by));
    mach_stop();
    return false;
  }
  monitor_stop = false;
  pthread_create(&monitor_thread, NULL, monitor_main, NULL);
  return true;
}

// True once every one of the `live` threads the port counts is reported
// unkillable: waiting longer for them is pointless. (A thread whose record
// has ended but which is still on its way out, collecting its program's
// heap, is waited for.)
static bool every_live_thread_unkillable(size_t live) {
  size_t unkillable = 0;
  rt_sched_lock();
  for (size_t i = 0; i < SUP_MAX_THREAD_RECORDS; i++) {
    const sup_thread_t *t = &sup.threads[i];
    if (t->in_use && t->rt && t->unkillable) unkillable++;
  }
  rt_sched_unlock();
  return unkillable >= live;
}

// Kills every live thread and waits for them. Returns how many survived.
static int kill_all_and_wait(void) {
  int64_t grace_ms = sup.config.kill_grace_ms;
  rt_sched_lock();
  sup.killing_all = true;
  for (size_t i = 0; i < SUP_MAX_THREAD_RECORDS; i++) {
    sup_thread_t *t = &sup.threads[i];
    if (t->in_use && t->rt) sup_kill_request(t, grace_ms);
  }
  rt_sched_unlock();
  int64_t deadline = rt_now_ns() + (3 * grace_ms + 500) * 1000000;
  size_t live;
  while ((live = rt_threads_reap()) > 0 && rt_now_ns() < deadline && !every_live_thread_unkillable(live)) {
    struct timespec ts = {0, 2 * 1000000};
    nanosleep(&ts, NULL);
  }
  rt_sched_lock();
  sup.killing_all = false;
  rt_sched_unlock();
  return (int)live;
}

int sup_deinit(void) {
  int survivors = kill_all_and_wait();
  rt_sched_lock();
  monitor_stop = true;
  pthread_cond_signal(&monitor_wake);
  rt_sched_unlock();
  pthread_join(monitor_thread, NULL);
  // A survivor holds the VM (or waits for it): tearing the VM down would wait
  // for it forever, and freeing state under it would crash it.
  if (survivors > 0) return survivors;
  pthread_cond_destroy(&monitor_wake);
  char by[8];
  mach_vm_stopping(by, sizeof(by));
  mach_stop();
  vm_stop();
  sup_locks_forget();
  sup_programs_clear();
  rt_output_set_sink(NULL);
  pthread_cond_destroy(&sup.changed);
  return 0;
}

int sup_reset(void) { return sup_reset_vm(NULL); }

int sup_reset_vm(bool *by_lab) {
  int survivors = kill_all_and_wait();
  if (survivors > 0) {
    rt_sched_lock();
    sup_event_emit(SUP_EVENT_RESET, 0, 0, NULL, 0,
                   "soft reset impossible: %d thread(s) stuck in native code; the board restarts", survivors);
    rt_sched_unlock();
    return survivors;
  }
  // A program's machine.reset() or watchdog asked for this one, or a Reset
  // call did (`by` empty): the event says which.
  char by[96];
  mach_reset_cause_t cause = mach_vm_stopping(by, sizeof(by));
  if (by_lab) *by_lab = !by[0];
  vm_stop();
  sup_locks_forget();
  rt_sched_lock();
  sup.metric_count = 0;
  rt_sched_unlock();
  vm_start(vm_stack_top);
  rt_sched_lock();
  if (!by[0]) {
    sup_event_emit(SUP_EVENT_RESET, 0, 0, NULL, 0, "soft reset: fresh VM, files kept");
  } else {
    sup_event_emit(cause == MACH_RESET_WATCHDOG ? SUP_EVENT_WATCHDOG_RESET : SUP_EVENT_MACHINE_RESET, 0, 0,
                   NULL, 0, "%s", by);
  }
  rt_sched_unlock();
  return 0;
}

// ---- Health ----------------------------------------------------------------------

void sup_health(sup_health_t *out) {
  memset(out, 0, sizeof(*out));
  heap_figures_refresh();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  out->process_cpu_us = (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
                        (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;

  rt_sched_lock();
  out->heap_total = sup.heap.total;
  out->heap_used = sup.heap.used;
  out->heap_free = sup.heap.free;
  out->heap_largest_free = sup.heap.largest_free;
  int64_t now = rt_now_ns();
  out->uptime_us = sup_uptime_us(now);
  out->max_threads = (uint32_t)rt_threads_limit();
  // Counts only: no CPU clock reads, no stack scans (the thread list of a
  // snapshot has those).
  int64_t stall_us = sup.config.stall_after_ms * 1000;
  for (size_t i = 0; i < SUP_MAX_THREAD_RECORDS; i++) {
    const sup_thread_t *t = &sup.threads[i];
    if (!t->in_use) continue;
    int64_t wait_us;
    sup_thread_state_t state = sup_thread_state(t, now, &wait_us);
    out->threads_by_state[state]++;
    if (!t->rt) continue;
    out->live_threads++;
    if (t->unkillable) out->unkillable_threads++;
    if (t->rt->block_kind != RT_BLOCK_LOCK) continue;
    uint32_t cycle[SUP_MAX_CYCLE];
    if (sup_lock_cycle(t->rt, cycle, SUP_MAX_CYCLE) > 0) out->deadlocked_threads++;
    if (sup_lock_id(t->rt->block_obj) && wait_us >= stall_us) out->stalled_threads++;
  }
  memcpy(out->metrics, sup.metrics, sup.metric_count * sizeof(sup_metric_t));
  out->metric_count = sup.metric_count;
  rt_sched_unlock();
}
