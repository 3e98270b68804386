// What every supervised thread shares, whether a program's main thread or one
// started by `_thread.start_new_thread`: its record is made when the port
// creates it, and finished the same way however it ends.
#ifndef THREADFLEET_SUPERVISOR_SPAWN_H
#define THREADFLEET_SUPERVISOR_SPAWN_H

#include "firmware/supervisor/internal.h"

// The head of every thread-entry argument block.
typedef struct {
  uint32_t program_id;
  char name[SUP_NAME_MAX];
} sup_spawn_t;

// rt_thread_ops_t.created: makes the supervisor's record (sched lock held).
void sup_spawn_created(rt_thread_t *t, void *arg);
// rt_thread_ops_t.unwound: a hard kill unwound the thread.
void sup_spawn_unwound(rt_thread_t *self, void *arg);
// Ends the calling thread's record with `state` (GIL held).
void sup_spawn_finish(rt_thread_t *self, sup_thread_state_t state, int exit_code);
// rt_thread_ops_t.exiting: the last thread of a program collects the heap,
// so a board whose programs have ended shows its heap free, not full of
// their garbage.
void sup_spawn_exiting(rt_thread_t *self);

#endif  // THREADFLEET_SUPERVISOR_SPAWN_H
