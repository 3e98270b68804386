// Host threads entering the VM (see supervisor.h: sup_vm_run) and the VM host
// thread's service loop for work that must run there (soft reset).
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "firmware/runtime/text_print.h"
#include "firmware/supervisor/internal.h"
#include "py/gc.h"
#include "py/runtime.h"

// The VM thread state a host thread uses while inside sup_vm_run.
#define HOST_VM_STACK_LIMIT (128 * 1024)
// How often a host thread waiting for the VM looks at what holds it.
#define VM_WAIT_POLL_MS 10

// REQUIRES: sched lock.
static bool vm_busy_locked(int64_t now, char *why, size_t why_len) {
  rt_thread_t *holder;
  int64_t native_ns = rt_gil_native_ns(now, &holder);
  const sup_thread_t *t = sup_thread_of(holder);
  if (!t || native_ns < (int64_t)SUP_NATIVE_BUSY_MS * 1000000) return false;
  if (why) {
    snprintf(why, why_len, "the VM is busy: thread %u (%s) has been in native code for %.1f s", t->id,
             t->name, (double)native_ns / 1e9);
  }
  return true;
}

bool sup_vm_busy(char *why, size_t why_len) {
  rt_sched_lock();
  bool busy = vm_busy_locked(rt_now_ns(), why, why_len);
  rt_sched_unlock();
  return busy;
}

typedef struct {
  char *why;
  size_t why_len;
} vm_wait_t;

static bool keep_waiting(void *ctx) {
  vm_wait_t *w = ctx;
  return !sup_vm_busy(w->why, w->why_len);
}

// Takes the GIL for a host thread, within the bounds sup_vm_run promises.
// False (with why) if it gave up.
static bool vm_enter_bounded(char *why, size_t why_len) {
  if (sup_vm_busy(why, why_len)) return false;
  vm_wait_t w = {why, why_len};
  int64_t deadline = rt_now_ns() + (int64_t)SUP_VM_WAIT_MAX_MS * 1000000;
  if (rt_gil_acquire_bounded(deadline, (int64_t)VM_WAIT_POLL_MS * 1000000, keep_waiting, &w)) return true;
  if (!sup_vm_busy(why, why_len))
    snprintf(why, why_len, "the VM is busy: waited %d ms for it", SUP_VM_WAIT_MAX_MS);
  return false;
}

// With no program running, a host thread's garbage (file objects of a push,
// a script compiled for its syntax) is all the heap holds besides modules:
// it is collected when less than this fraction of the heap is free, so an
// idle board's health does not show garbage as a full heap (fleetd marks a
// board with under 10 % free DEGRADED). Programs' garbage goes when they end
// (sup_spawn_exiting).
#define IDLE_COLLECT_FREE_FRACTION 4

// Collects an idle board's low heap, once per change of it: a heap full of
// live data (modules) is not collected call after call. REQUIRES: GIL held.
static void collect_idle_heap(void) {
  static size_t used_after_last;  // GIL
  if (rt_threads_live() > 0) return;
  rt_heap_stats_t heap;
  rt_vm_heap_stats(&heap);
  if (heap.free >= heap.total / IDLE_COLLECT_FREE_FRACTION || heap.used == used_after_last) return;
  gc_collect();
  rt_vm_heap_stats(&heap);
  used_after_last = heap.used;
  sup_heap_figures_publish();
}

bool sup_vm_run(void (*fn)(void *ctx), void *ctx, char *err, size_t err_len) {
  rt_thread_t *self = rt_self();
  if (!self) self = rt_thread_register_system();
  if (!self) {
    snprintf(err, err_len, "too many threads use the VM");
    errno = EBUSY;
    return false;
  }
  // The VM host thread has its state already; other host threads get one on
  // this frame for the duration of the call.
  bool own_state = mp_thread_get_state() == NULL;
  mp_state_thread_t ts;
  if (own_state) {
    mp_thread_init_state(&ts, HOST_VM_STACK_LIMIT, NULL, NULL);
    ts.nlr_top = NULL;
    self->stack_top = &ts + 1;
  }
  bool got_gil = vm_enter_bounded(err, err_len);
  bool entered = got_gil && sup.vm_up;  // else a reset is replacing the VM
  if (got_gil && !entered) snprintf(err, err_len, "the VM is busy: the board is resetting");
  bool ok = false;
  if (entered) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
      fn(ctx);
      nlr_pop();
      ok = true;
    } else {
      rt_text_t text;
      mp_print_t print = rt_text_printer(&text, err, err_len);
      mp_obj_print_helper(&print, MP_OBJ_FROM_PTR(nlr.ret_val), PRINT_EXC);
    }
    collect_idle_heap();
  }
  if (got_gil) rt_gil_release();
  if (own_state) {
    rt_sched_lock();
    mp_thread_set_state(NULL);
    rt_sched_unlock();
  }
  errno = entered ? 0 : EBUSY;
  return ok;
}

void sup_vm_detach(void) {
  rt_thread_t *self = rt_self();
  if (self && self->system && self->ts == NULL) rt_thread_unregister_system(self);
}

// ---- The VM host thread's service loop --------------------------------------------

static uint64_t reset_asked, reset_done;  // sched
static uint64_t reset_collected;          // the newest result a requester has seen (sched)
static int reset_result;                  // sched

// A reset that left threads alive (stuck in native code) cannot bring the VM
// back: the board restarts instead, once its requester has its answer (a
// Reset call says `hard`), or after this long.
#define HARD_RESET_ANSWER_WAIT_MS 2000

static bool resets_served;  // sched

bool sup_resets_served(void) {
  rt_sched_lock();
  bool served = resets_served;
  rt_sched_unlock();
  return served;
}

int sup_host_serve(volatile int *stop) {
  rt_sched_lock();
  resets_served = true;  // before main.py starts: its machine.reset() is served
  rt_sched_unlock();
  sup_boot_begin(false);
  rt_sched_lock();
  while (!*stop) {
    if (reset_asked > reset_done) {
      uint64_t ticket = reset_asked;
      rt_sched_unlock();
      bool by_lab = false;
      int result = sup_reset_vm(&by_lab);
      // The answer to a Reset call comes once the board has booted: the
      // caller's next call sees main.py (or boot.py) running.
      if (result == 0) sup_boot_begin(by_lab);
      rt_sched_lock();
      reset_result = result;
      reset_done = ticket;
      pthread_cond_broadcast(&sup.changed);
      if (result == 0) continue;
      int64_t deadline = rt_now_ns() + (int64_t)HARD_RESET_ANSWER_WAIT_MS * 1000000;
      while (reset_collected < ticket && !*stop && rt_now_ns() < deadline)
        rt_sched_wait_until(&sup.changed, deadline);
      resets_served = false;
      rt_sched_unlock();
      return SUP_HOST_HARD_RESET;
    }
    rt_sched_wait_until(&sup.changed, rt_now_ns() + 100 * 1000000);
    if (sup_boot_pending()) {
      rt_sched_unlock();
      sup_boot_advance();
      rt_sched_lock();
    }
  }
  resets_served = false;
  rt_sched_unlock();
  return 0;
}

uint64_t sup_reset_begin(bool safe_boot) {
  rt_sched_lock();
  if (safe_boot) sup_boot_ask_safe();
  uint64_t ticket = ++reset_asked;
  pthread_cond_broadcast(&sup.changed);
  rt_sched_unlock();
  return ticket;
}

// REQUIRES: sched lock.
static bool reset_collect(uint64_t ticket, int *result) {
  if (reset_done < ticket) return false;
  *result = reset_result;
  if (reset_collected < ticket) reset_collected = ticket;
  pthread_cond_broadcast(&sup.changed);
  return true;
}

bool sup_reset_finished(uint64_t ticket, int *result) {
  rt_sched_lock();
  bool done = reset_collect(ticket, result);
  rt_sched_unlock();
  return done;
}

int sup_reset_request(int64_t timeout_ms) {
  int64_t deadline = rt_now_ns() + timeout_ms * 1000000;
  uint64_t ticket = sup_reset_begin(false);
  int rc = -ETIMEDOUT;
  rt_sched_lock();
  while (!reset_collect(ticket, &rc) && rt_now_ns() < deadline) rt_sched_wait_until(&sup.changed, deadline);
  rt_sched_unlock();
  return rc;
}
