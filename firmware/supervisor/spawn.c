// Start and end of every supervised thread (see spawn.h).
#include "firmware/supervisor/spawn.h"

#include "firmware/net/modsocket.h"
#include "py/gc.h"
#include "py/runtime.h"

// Set by sup_spawn_finish when the calling thread was its program's last:
// that program's id (0: it was not the last).
static __thread uint32_t ended_program_id;

void sup_spawn_created(rt_thread_t *t, void *arg) {
  const sup_spawn_t *spawn = arg;
  sup_thread_t *rec = sup_thread_begin(t, spawn->program_id, spawn->name);
  sup_program_thread_started(spawn->program_id, t->id);
  // A thread started while its program (or the board) is being killed is
  // killed at birth: it never runs user code.
  sup_program_t *p = sup_program_rec(spawn->program_id);
  if (sup.killing_all || (p && p->killing)) sup_kill_request(rec, -1);
  sup_event_emit(SUP_EVENT_THREAD_STARTED, t->id, spawn->program_id, NULL, 0, "thread %u (%s) started", t->id,
                 spawn->name);
}

void sup_spawn_finish(rt_thread_t *self, sup_thread_state_t state, int exit_code) {
  rt_sched_lock();
  sup_thread_t *t = sup_thread_of(self);
  if (t->kill_phase != SUP_KILL_NONE) state = SUP_THREAD_KILLED;
  size_t released = state == SUP_THREAD_KILLED ? sup_locks_release_owned_by(t->id) : 0;
  uint32_t program_id = t->program_id;
  bool was_unkillable = t->unkillable;
  sup_thread_end(t, state);
  switch (state) {
    case SUP_THREAD_KILLED:
      sup_event_emit(SUP_EVENT_THREAD_KILLED, self->id, program_id, NULL, 0,
                     "thread %u (%s) killed%s; released %zu lock(s) it held", self->id, t->name,
                     was_unkillable ? " late" : "", released);
      break;
    case SUP_THREAD_FAILED:
      sup_event_emit(SUP_EVENT_THREAD_FAILED, self->id, program_id, NULL, 0, "thread %u (%s) failed: %s",
                     self->id, t->name, t->exception);
      break;
    default:
      sup_event_emit(SUP_EVENT_THREAD_ENDED, self->id, program_id, NULL, 0, "thread %u (%s) finished",
                     self->id, t->name);
      break;
  }
  ended_program_id = sup_program_thread_ended(program_id, self->id, state, exit_code) ? program_id : 0;
  rt_sched_unlock();
}

void sup_spawn_exiting(rt_thread_t *self) {
  (void)self;
  uint32_t program_id = ended_program_id;
  if (program_id == 0) return;
  ended_program_id = 0;
  // What the program leaves open on the board goes with it.
  net_socket_program_ended(program_id);
  // Nothing of the program stays reachable from here: this thread's VM state
  // goes back to the board's own globals, and its pending kill is void.
  mp_locals_set(mp_state_ctx.thread.dict_locals);
  mp_globals_set(mp_state_ctx.thread.dict_globals);
  MP_STATE_THREAD(mp_pending_exception) = MP_OBJ_NULL;
  gc_collect();
  sup_heap_figures_publish();
}

void sup_spawn_unwound(rt_thread_t *self, void *arg) {
  (void)arg;
  sup_spawn_finish(self, SUP_THREAD_KILLED, 1);
}
