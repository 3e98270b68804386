// `_thread.LockType`: a lock whose owner and waiters the supervisor knows, so
// it can draw the wait-for graph (deadlocks), time waits (stalls), wake a
// waiter for a kill and release what a killed thread held.
//
// Lock state is guarded by the sched lock: waiters check it without the GIL.
#include <errno.h>

#include "firmware/supervisor/internal.h"
#include "py/gc.h"
#include "py/runtime.h"

typedef struct _sup_lock_t {
  mp_obj_base_t base;
  uint32_t id;     // for health: "thread 3 waits on lock 7"
  uint32_t owner;  // thread id of the last acquirer while locked, else 0
  bool locked;
  uint16_t waiters;               // threads blocked in acquire (sched)
  struct _sup_lock_t *next_held;  // chain of locked locks (sched)
} sup_lock_t;

// Every locked lock, so a killed thread's locks can be found and released.
// Not a VM root pointer: waiters change it without the GIL, so the GC marks
// each entry under the sched lock instead (sup_locks_mark).
static sup_lock_t *held_locks;
static uint32_t next_lock_id = 1;

void sup_locks_mark(void) {
  for (sup_lock_t *l = held_locks; l; l = l->next_held) gc_collect_root((void **)&l, 1);
}

void sup_locks_forget(void) {
  held_locks = NULL;
  next_lock_id = 1;
}

static void held_push(sup_lock_t *l) {
  l->next_held = held_locks;
  held_locks = l;
}

static void held_remove(sup_lock_t *l) {
  for (sup_lock_t **p = &held_locks; *p; p = &(*p)->next_held) {
    if (*p == l) {
      *p = l->next_held;
      l->next_held = NULL;
      return;
    }
  }
}

// REQUIRES: sched lock held.
static bool lock_try_take(void *ctx) {
  sup_lock_t *l = ctx;
  if (l->locked) return false;
  l->locked = true;
  l->owner = (uint32_t)mp_thread_get_id();
  held_push(l);
  return true;
}

static void wake_waiter(rt_thread_t *t, void *ctx) {
  if (t->block_kind == RT_BLOCK_LOCK && t->block_obj == ctx) rt_thread_signal(t);
}

// REQUIRES: sched lock held.
static void lock_give_back(sup_lock_t *l) {
  l->locked = false;
  l->owner = 0;
  held_remove(l);
  if (l->waiters) rt_threads_foreach(wake_waiter, l);
}

uint32_t sup_lock_id(const void *lock) { return lock ? ((const sup_lock_t *)lock)->id : 0; }
uint32_t sup_lock_owner(const void *lock) { return lock ? ((const sup_lock_t *)lock)->owner : 0; }

size_t sup_lock_cycle(const rt_thread_t *start, uint32_t *cycle, size_t max) {
  size_t n = 0;
  const rt_thread_t *t = start;
  while (t && t->block_kind == RT_BLOCK_LOCK && n < max) {
    cycle[n++] = t->id;
    uint32_t owner = sup_lock_owner(t->block_obj);
    if (owner == start->id) return n;
    t = owner ? rt_thread_find(owner) : NULL;
  }
  return 0;
}

size_t sup_locks_release_owned_by(uint32_t thread_id) {
  size_t released = 0;
  sup_lock_t *l = held_locks;
  while (l) {
    sup_lock_t *next = l->next_held;
    if (l->owner == thread_id) {
      lock_give_back(l);
      released++;
    }
    l = next;
  }
  return released;
}

// ---- Python API ----------------------------------------------------------------

static mp_obj_t lock_make(void) {
  sup_lock_t *l = mp_obj_malloc(sup_lock_t, &sup_type_lock);
  rt_sched_lock();
  l->id = next_lock_id++;
  rt_sched_unlock();
  l->owner = 0;
  l->locked = false;
  l->waiters = 0;
  l->next_held = NULL;
  return MP_OBJ_FROM_PTR(l);
}

mp_obj_t sup_lock_new(void) { return lock_make(); }

static void report_deadlock_if_any(rt_thread_t *self, sup_lock_t *l) {
  // The wait about to start closes a cycle iff following owners from `l`
  // leads back to us.
  uint32_t cycle[SUP_MAX_CYCLE];
  size_t n = 0;
  cycle[n++] = self->id;
  uint32_t owner = l->owner;
  while (owner && owner != self->id && n < SUP_MAX_CYCLE) {
    rt_thread_t *t = rt_thread_find(owner);
    if (!t || t->block_kind != RT_BLOCK_LOCK) return;
    cycle[n++] = owner;
    owner = sup_lock_owner(t->block_obj);
  }
  if (owner != self->id) return;
  sup_thread_t *rec = sup_thread_of(self);
  sup_event_emit(SUP_EVENT_DEADLOCK, self->id, rec ? rec->program_id : 0, cycle, n,
                 "deadlock: %zu threads wait on each other's locks", n);
}

// acquire(waitflag=1, timeout=-1): True if taken, False if not (no wait or
// timed out). A kill while waiting raises fleet.ThreadKilled.
static mp_obj_t lock_acquire(size_t n_args, const mp_obj_t *args) {
  sup_lock_t *l = MP_OBJ_TO_PTR(args[0]);
  bool wait = n_args < 2 || mp_obj_is_true(args[1]);
  mp_float_t timeout = n_args < 3 ? -1 : mp_obj_get_float(args[2]);
  if (!wait && timeout >= 0)
    mp_raise_ValueError(MP_ERROR_TEXT("can't specify a timeout for a non-blocking call"));

  rt_sched_lock();
  bool taken = lock_try_take(l);
  rt_thread_t *self = rt_self();
  if (!taken && wait) {
    // Announce the wait and look for a cycle in one critical section: the
    // last thread to join a cycle always sees all the others waiting.
    rt_block_announce(RT_BLOCK_LOCK, l);
    report_deadlock_if_any(self, l);
    l->waiters++;
  }
  rt_sched_unlock();
  if (taken || !wait) return mp_obj_new_bool(taken);

  int64_t deadline = timeout < 0 ? -1 : rt_now_ns() + (int64_t)(timeout * 1e9);
  rt_wake_t why;
  while ((why = rt_block(RT_BLOCK_LOCK, l, deadline, lock_try_take, l)) == RT_WAKE_KILLED) {
    rt_sched_lock();
    l->waiters--;
    rt_sched_unlock();
    // Raises fleet.ThreadKilled while the kill is pending (always, but for a
    // race with its delivery elsewhere); then there is nothing to do but wait.
    mp_handle_pending(true);
    rt_sched_lock();
    l->waiters++;
    rt_sched_unlock();
  }
  rt_sched_lock();
  l->waiters--;
  rt_sched_unlock();
  return mp_obj_new_bool(why == RT_WAKE_READY);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(lock_acquire_obj, 1, 3, lock_acquire);

static mp_obj_t lock_release(mp_obj_t self_in) {
  sup_lock_t *l = MP_OBJ_TO_PTR(self_in);
  rt_sched_lock();
  bool was_locked = l->locked;
  if (was_locked) lock_give_back(l);
  rt_sched_unlock();
  if (!was_locked) mp_raise_msg(&mp_type_RuntimeError, MP_ERROR_TEXT("release unlocked lock"));
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(lock_release_obj, lock_release);

static mp_obj_t lock_locked(mp_obj_t self_in) {
  sup_lock_t *l = MP_OBJ_TO_PTR(self_in);
  return mp_obj_new_bool(l->locked);
}
static MP_DEFINE_CONST_FUN_OBJ_1(lock_locked_obj, lock_locked);

static mp_obj_t lock_exit(size_t n_args, const mp_obj_t *args) { return lock_release(args[0]); }
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(lock_exit_obj, 4, 4, lock_exit);

static const mp_rom_map_elem_t lock_locals_table[] = {
    {MP_ROM_QSTR(MP_QSTR_acquire), MP_ROM_PTR(&lock_acquire_obj)},
    {MP_ROM_QSTR(MP_QSTR_release), MP_ROM_PTR(&lock_release_obj)},
    {MP_ROM_QSTR(MP_QSTR_locked), MP_ROM_PTR(&lock_locked_obj)},
    {MP_ROM_QSTR(MP_QSTR___enter__), MP_ROM_PTR(&lock_acquire_obj)},
    {MP_ROM_QSTR(MP_QSTR___exit__), MP_ROM_PTR(&lock_exit_obj)},
};
static MP_DEFINE_CONST_DICT(lock_locals, lock_locals_table);

MP_DEFINE_CONST_OBJ_TYPE(sup_type_lock, MP_QSTR_lock, MP_TYPE_FLAG_NONE, locals_dict, &lock_locals);
