// The thread registry: one record per supervised thread, kept after the
// thread ends (oldest ended records are reused first) so a user can still
// see how it ended.
#include <stdio.h>
#include <string.h>

#include "firmware/runtime/text_print.h"
#include "firmware/supervisor/internal.h"
#include "py/objstr.h"
#include "py/runtime.h"

sup_thread_t *sup_thread_rec(uint32_t id) {
  for (size_t i = 0; i < SUP_MAX_THREAD_RECORDS; i++) {
    if (sup.threads[i].in_use && sup.threads[i].id == id) return &sup.threads[i];
  }
  return NULL;
}

sup_thread_t *sup_thread_of(const rt_thread_t *rt) {
  return rt && !rt->system ? sup_thread_rec(rt->id) : NULL;
}

static sup_thread_t *record_alloc(void) {
  sup_thread_t *oldest = NULL;
  for (size_t i = 0; i < SUP_MAX_THREAD_RECORDS; i++) {
    sup_thread_t *t = &sup.threads[i];
    if (!t->in_use) return t;
    if (!t->rt && (!oldest || t->id < oldest->id)) oldest = t;
  }
  return oldest;  // never NULL: live threads are far fewer than records
}

sup_thread_t *sup_thread_begin(rt_thread_t *rt, uint32_t program_id, const char *name) {
  sup_thread_t *t = record_alloc();
  memset(t, 0, sizeof(*t));
  t->in_use = true;
  t->id = rt->id;
  t->program_id = program_id;
  t->rt = rt;
  t->start_ns = rt_now_ns();
  t->stack_size = rt->stack_size;
  t->kill_grace_ns = sup.config.kill_grace_ms * 1000000;
  snprintf(t->name, sizeof(t->name), "%s", name);
  return t;
}

void sup_thread_end(sup_thread_t *t, sup_thread_state_t state) {
  t->end_state = state;
  t->end_ns = rt_now_ns();
  int64_t cpu_ns = rt_thread_cpu_ns(t->rt);
  t->cpu_us_final = cpu_ns < 0 ? -1 : cpu_ns / 1000;
  t->stack_peak_final = rt_thread_stack_peak(t->rt, cpu_ns);
  t->rt = NULL;
  t->kill_phase = SUP_KILL_NONE;
  sup_metrics_forget_thread(t->id);
}

static sup_thread_state_t live_state(const rt_thread_t *rt) {
  switch (rt->block_kind) {
    case RT_BLOCK_SLEEP:
      return SUP_THREAD_SLEEPING;
    case RT_BLOCK_LOCK:
      return SUP_THREAD_WAITING_LOCK;
    default:
      return SUP_THREAD_RUNNING;
  }
}

sup_thread_state_t sup_thread_state(const sup_thread_t *t, int64_t now_ns, int64_t *wait_us) {
  *wait_us = 0;
  const rt_thread_t *rt = t->rt;
  if (!rt) return t->end_state;
  if (rt->block_kind != RT_BLOCK_NONE) *wait_us = (now_ns - rt->block_since_ns) / 1000;
  return live_state(rt);
}

void sup_thread_fill_info(const sup_thread_t *t, int64_t now_ns, sup_thread_info_t *out) {
  memset(out, 0, sizeof(*out));
  out->id = t->id;
  out->program_id = t->program_id;
  memcpy(out->name, t->name, sizeof(out->name));
  out->unkillable = t->unkillable;
  out->start_us = sup_uptime_us(t->start_ns);
  out->stack_size = (uint32_t)t->stack_size;
  out->output_bytes = t->output_bytes;
  memcpy(out->exception, t->exception, sizeof(out->exception));
  memcpy(out->traceback, t->traceback, sizeof(out->traceback));
  out->state = sup_thread_state(t, now_ns, &out->wait_us);
  rt_thread_t *rt = t->rt;
  if (!rt) {
    out->end_us = sup_uptime_us(t->end_ns);
    out->cpu_us = t->cpu_us_final;
    out->stack_peak = (uint32_t)t->stack_peak_final;
    return;
  }
  // An unkillable thread in native code shows it whatever the time: that is
  // why the kill could not land.
  int64_t native_since = rt_thread_native_since_ns(rt, now_ns);
  int64_t native_ns = native_since >= 0 ? now_ns - native_since : 0;
  if (native_ns >= (int64_t)SUP_NATIVE_BUSY_MS * 1000000 || (native_ns > 0 && t->unkillable))
    out->native_us = native_ns / 1000;
  int64_t cpu_ns = rt_thread_cpu_ns(rt);
  out->cpu_us = cpu_ns < 0 ? -1 : cpu_ns / 1000;
  out->stack_peak = (uint32_t)rt_thread_stack_peak(rt, cpu_ns);
  out->stack_used = (uint32_t)rt_thread_stack_used(rt);
  if (rt->block_kind == RT_BLOCK_LOCK) {
    out->waiting_lock_id = sup_lock_id(rt->block_obj);
    uint32_t cycle[SUP_MAX_CYCLE];
    out->deadlocked = sup_lock_cycle(rt, cycle, SUP_MAX_CYCLE) > 0;
  }
}

size_t sup_threads_list(sup_thread_info_t *out, size_t max, uint32_t program_id, bool include_ended) {
  size_t n = 0;
  rt_sched_lock();
  int64_t now = rt_now_ns();
  // Records are not kept in id order; emit by ascending id.
  uint32_t last = 0;
  while (n < max) {
    sup_thread_t *next = NULL;
    for (size_t i = 0; i < SUP_MAX_THREAD_RECORDS; i++) {
      sup_thread_t *t = &sup.threads[i];
      if (!t->in_use || t->id <= last) continue;
      if (program_id && t->program_id != program_id) continue;
      if (!include_ended && !t->rt) continue;
      if (!next || t->id < next->id) next = t;
    }
    if (!next) break;
    sup_thread_fill_info(next, now, &out[n++]);
    last = next->id;
  }
  rt_sched_unlock();
  return n;
}

bool sup_thread_get(uint32_t thread_id, sup_thread_info_t *out) {
  rt_sched_lock();
  sup_thread_t *t = sup_thread_rec(thread_id);
  if (t) sup_thread_fill_info(t, rt_now_ns(), out);
  rt_sched_unlock();
  return t != NULL;
}

uint32_t sup_current_program(void) {
  rt_sched_lock();
  sup_thread_t *t = sup_thread_of(rt_self());
  uint32_t id = t ? t->program_id : 0;
  rt_sched_unlock();
  return id;
}

// ---- How a thread ended ----------------------------------------------------------

static void exception_text(mp_obj_t exc, char *out, size_t cap, bool traceback) {
  rt_text_t text;
  mp_print_t print = rt_text_printer(&text, out, cap);
  if (traceback) {
    mp_obj_print_exception(&print, exc);
  } else {
    mp_obj_print_helper(&print, exc, PRINT_EXC);
  }
}

bool sup_thread_prepare(rt_thread_t *self) {
  mp_obj_t exc = mp_obj_new_exception(&sup_type_ThreadKilled);
  rt_sched_lock();
  self->kill_exc = MP_OBJ_TO_PTR(exc);
  bool killed = self->kill_soft;
  rt_sched_unlock();
  return !killed;
}

static bool is_kill(mp_obj_t exc) {
  return mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(mp_obj_get_type(exc)),
                                 MP_OBJ_FROM_PTR(&sup_type_ThreadKilled));
}

sup_thread_state_t sup_thread_outcome(rt_thread_t *self, mp_obj_t exc, mp_obj_t fun, int *exit_code) {
  const mp_obj_type_t *type = mp_obj_get_type(exc);
  if (mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(type), MP_OBJ_FROM_PTR(&mp_type_SystemExit))) {
    mp_obj_t code = mp_obj_exception_get_value(exc);
    *exit_code = code == mp_const_none ? 0 : mp_obj_is_int(code) ? (int)mp_obj_get_int(code) : 1;
    return SUP_THREAD_FINISHED;
  }
  if (is_kill(exc)) return SUP_THREAD_KILLED;
  // Print it the way MicroPython does, to the program's stderr.
  if (fun != MP_OBJ_NULL) {
    mp_printf(MICROPY_ERROR_PRINTER, "Unhandled exception in thread started by ");
    mp_obj_print_helper(MICROPY_ERROR_PRINTER, fun, PRINT_REPR);
    mp_printf(MICROPY_ERROR_PRINTER, "\n");
  }
  mp_obj_print_exception(MICROPY_ERROR_PRINTER, exc);
  char summary[SUP_EXC_MAX], traceback[SUP_TRACEBACK_MAX];
  exception_text(exc, summary, sizeof(summary), false);
  exception_text(exc, traceback, sizeof(traceback), true);
  *exit_code = 1;
  rt_sched_lock();
  sup_thread_t *t = sup_thread_of(self);
  if (t) {
    memcpy(t->exception, summary, sizeof(summary));
    memcpy(t->traceback, traceback, sizeof(traceback));
  }
  rt_sched_unlock();
  return SUP_THREAD_FAILED;
}
