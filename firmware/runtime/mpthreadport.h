// threadfleet's MicroPython thread port: every MicroPython thread is a pthread
// running on a stack we allocate and paint, registered in a fixed table.
//
// The port implements py/mpthread.h plus the primitives the supervisor builds
// on: a fair GIL with time slices, blocking waits a kill can interrupt, and
// soft/hard kill delivery. Everything host-specific (pthreads, mmap) lives in
// mpthreadport.c so a real MCU build swaps only that file.
#ifndef THREADFLEET_RUNTIME_MPTHREADPORT_H
#define THREADFLEET_RUNTIME_MPTHREADPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// py/mpthread.h's mutex type. The only user in our build is the GIL (our
// `_thread` replaces py/modthread.c), so it carries no state of its own.
typedef struct _mp_thread_mutex_t {
  int unused;
} mp_thread_mutex_t;

// Every word of a new thread's stack holds this until the thread writes it.
#define RT_STACK_PAINT ((uintptr_t)0x5AFEC0DE5AFEC0DEull)

// Compile-time cap on live VM threads (the runtime limit is rt_config's).
#define RT_MAX_THREADS 64

typedef enum {
  RT_BLOCK_NONE = 0,
  RT_BLOCK_SLEEP,  // time.sleep*
  RT_BLOCK_LOCK,   // a `_thread` lock acquire
} rt_block_kind_t;

typedef enum {
  RT_WAKE_READY = 0,  // the wait condition became true
  RT_WAKE_TIMEOUT,    // the deadline passed
  RT_WAKE_KILLED,     // a kill was requested for this thread
} rt_wake_t;

struct _mp_state_thread_t;
struct _nlr_buf_t;

// One VM thread. Fields marked (sched) are guarded by the scheduler mutex
// (rt_sched_lock); the rest belong to the thread itself or are set before it
// starts.
typedef struct rt_thread rt_thread_t;

// What a new thread runs: `created` on the creating thread with the sched
// lock held, once the id is known and before the thread can run; `run` on the
// new thread once it holds the GIL; `unwound` instead of the rest of `run`
// when a hard kill unwound it (with the GIL); `exiting` (may be NULL) last,
// with the GIL, once the port keeps neither its entry argument nor its kill
// exception as roots and no kill can unwind it any more: it may collect the
// heap.
typedef struct {
  void (*created)(rt_thread_t *t, void *arg);
  void (*run)(rt_thread_t *self, void *arg);
  void (*unwound)(rt_thread_t *self, void *arg);
  void (*exiting)(rt_thread_t *self);
} rt_thread_ops_t;

struct rt_thread {
  bool in_use;   // the slot holds a thread (live, or ended and not yet reaped)
  bool ended;    // the thread has finished; its stack awaits reaping
  bool reaping;  // a reaper is joining it
  uint32_t id;   // small, stable for the board's uptime; 0 for system threads
  bool system;   // a host thread registered to use the VM (not user code)
  const rt_thread_ops_t *ops;
  pthread_t pthread;
  uint8_t *stack_base;  // lowest address of the painted stack (NULL: not ours)
  size_t stack_size;
  // The last paint scan (sched): its peak, and the thread's CPU time read
  // just before it (-1: no scan yet). See rt_thread_stack_peak.
  size_t stack_peak_seen;
  int64_t stack_peak_cpu_ns;
  struct _mp_state_thread_t *ts;  // its VM state, on its own stack
  void *stack_top;                // highest address the GC must scan

  // GC visibility while the thread does not hold the GIL: callee-saved
  // registers are spilled to the stack and the stack pointer recorded.
  void *volatile gc_sp;

  // Blocking (sched).
  pthread_cond_t cond;         // signalled to re-check a wait
  rt_block_kind_t block_kind;  // what it waits for now
  void *block_obj;             // the lock it waits on (RT_BLOCK_LOCK)
  int64_t block_since_ns;

  // Kill delivery (sched). kill_exc is preallocated under the GIL (a GC root).
  bool kill_soft;  // pending exception injected
  bool kill_hard;  // unwind to the thread entry at the next safe point
  void *kill_exc;
  struct _nlr_buf_t *entry_nlr;  // where a hard kill unwinds to

  // Entry arguments (a GC root until the thread has started).
  void *entry_arg;

  // GIL bookkeeping (owner only).
  pthread_cond_t gil_cond;
  struct rt_thread *gil_next;  // FIFO of waiters
  int64_t gil_since_ns;
  bool gil_urgent;  // jump the GIL queue (a kill is pending)
};

// ---- Lifecycle -------------------------------------------------------------

// Registers the calling host thread as the VM's main thread (slot for GC and
// GIL). REQUIRES: called once, before mp_init.
void rt_threads_init(void *stack_top);
// Forgets every thread; REQUIRES: no VM thread is alive.
void rt_threads_deinit(void);

// Creates a VM thread with a painted stack of `stack_size` bytes (0: default).
// Returns its id, or 0 with *err set (EAGAIN: limit reached; ENOMEM).
uint32_t rt_thread_create(const rt_thread_ops_t *ops, void *arg, size_t stack_size, int *err);
// Joins and frees the stacks of ended threads. Returns how many are live.
size_t rt_threads_reap(void);
// Sets the max number of live user threads (system threads do not count).
void rt_threads_set_limit(size_t max_threads);
size_t rt_threads_limit(void);
size_t rt_threads_live(void);
size_t rt_thread_default_stack(void);

// The calling thread's record (NULL for a host thread not registered).
rt_thread_t *rt_self(void);
// Registers the calling host thread as a system VM thread (e.g. the control
// thread), so it can take the GIL. rt_thread_unregister undoes it.
rt_thread_t *rt_thread_register_system(void);
void rt_thread_unregister_system(rt_thread_t *t);

// ---- Scheduler mutex and blocking waits ------------------------------------

void rt_sched_lock(void);
void rt_sched_unlock(void);
// Waits on `cond` with the sched mutex until signalled or the monotonic
// deadline passes (spurious wake-ups possible: re-check). REQUIRES: sched lock.
void rt_sched_wait_until(pthread_cond_t *cond, int64_t deadline_ns);
// Looks up a live thread by id. REQUIRES: sched lock held.
rt_thread_t *rt_thread_find(uint32_t id);
// Calls fn for every live thread. REQUIRES: sched lock held.
void rt_threads_foreach(void (*fn)(rt_thread_t *t, void *ctx), void *ctx);

// Blocks the calling VM thread, which holds the GIL, until `ready(ctx)`
// returns true (checked under the sched lock; NULL means never), the absolute
// monotonic deadline passes (<0: none) or a kill is requested. The GIL is
// released while blocked and held again on return.
rt_wake_t rt_block(rt_block_kind_t kind, void *obj, int64_t deadline_ns, bool (*ready)(void *ctx), void *ctx);
// Marks the calling thread as about to block on `obj`, so others see the wait
// (the wait-for graph) before rt_block is entered. REQUIRES: sched lock held.
void rt_block_announce(rt_block_kind_t kind, void *obj);
// Wakes `t` to re-check its wait. REQUIRES: sched lock held.
void rt_thread_signal(rt_thread_t *t);

// ---- Kill ------------------------------------------------------------------

// Soft kill: makes `exc` (an exception object) pending on `t` and wakes it.
// Hard kill: additionally unwinds `t` to its entry at the next safe point,
// skipping every handler. Returns false if `t` has no VM state yet.
// REQUIRES: sched lock held.
bool rt_thread_kill(rt_thread_t *t, bool hard);
// Unwinds the calling thread if a hard kill is pending. Called at safe points.
void rt_check_hard_kill(void);

// ---- GIL -------------------------------------------------------------------

// Explicit release/acquire around blocking native code.
void rt_gil_release(void);
void rt_gil_acquire(void);
// Takes the GIL only if it is free and nobody queues for it; never waits.
bool rt_gil_try_acquire(void);
// Waits for the GIL in the queue like rt_gil_acquire, but gives up at the
// monotonic deadline_ns, or when keep_waiting(ctx), asked every poll_ns
// (with no port lock held; it may take the sched lock), returns false.
// Returns true holding the GIL; false having left the queue.
bool rt_gil_acquire_bounded(int64_t deadline_ns, int64_t poll_ns, bool (*keep_waiting)(void *ctx), void *ctx);
// While kept (machine.disable_irq), the calling thread does not hand the
// GIL over at its yield points, only when it blocks or a kill hurries.
void rt_gil_keep(bool keep);
// Time slice a thread keeps the GIL when others wait for it.
#define RT_GIL_SLICE_NS (1000 * 1000)

// ---- Progress: is the GIL's holder inside one native operation? ------------

// Counts the points where the VM can interrupt the thread that runs it
// (every bytecode branch: pending kills land there and the GIL bounces
// there; MICROPY_VM_HOOK_LOOP) and every change of the GIL's holder. Only the
// GIL's holder writes it.
extern uintptr_t rt_vm_steps;
static inline void rt_vm_step(void) {
  __atomic_store_n(&rt_vm_steps, __atomic_load_n(&rt_vm_steps, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}
// How long the GIL's holder (in *holder, may be NULL; NULL: the GIL is free,
// result 0) has held it without passing such a point: inside one native
// operation (a long regular expression match, a big sort, a compile).
// Measured by sampling rt_vm_steps: each call is a sample, and the result
// counts from the first sample that saw the current count, so it is short by
// at most the time between two samples. REQUIRES: sched lock.
int64_t rt_gil_native_ns(int64_t now_ns, rt_thread_t **holder);
// Since when (monotonic ns) `t` has held the GIL without passing such a
// point, sampling as rt_gil_native_ns; -1 if t does not hold the GIL.
// REQUIRES: sched lock.
int64_t rt_thread_native_since_ns(const rt_thread_t *t, int64_t now_ns);

// Work the GIL's holder does at its next yield point (a GIL bounce, or
// letting the GIL go: a blocking wait, the end of a thread) once asked, e.g.
// reading figures only the GIL may read. `work` runs with the GIL held,
// possibly in the middle of bytecode, without the sched lock: it must not
// allocate or raise.
void rt_gil_set_yield_work(void (*work)(void));
// Asks for the yield work (from any thread, no lock needed).
void rt_gil_request_yield_work(void);

// ---- Measurements ----------------------------------------------------------

int64_t rt_now_ns(void);  // monotonic
// CPU time consumed by `t`, in nanoseconds (-1 if unavailable). One system
// call on Linux (a thread's CPU clock has no vDSO path): read it once per
// snapshot and pass it on.
int64_t rt_thread_cpu_ns(const rt_thread_t *t);
// Deepest stack use ever seen on `t`'s painted stack, in bytes: the distance
// from the stack's top to the lowest word that no longer holds the paint.
// `cpu_ns` is t's CPU time read just now (rt_thread_cpu_ns). A thread whose
// CPU time has not moved since the previous scan has executed nothing since,
// so it cannot have written its stack: the previous result is returned
// without rescanning (exactly what a full scan would find; nothing else
// writes below a thread's own frames). cpu_ns < 0 always scans.
// REQUIRES: sched lock held.
size_t rt_thread_stack_peak(rt_thread_t *t, int64_t cpu_ns);
// The same figure by a full scan every time, no memory of earlier scans (the
// reference rt_thread_stack_peak is tested and benchmarked against).
size_t rt_thread_stack_peak_full(const rt_thread_t *t);
// Stack in use the last time `t` released the GIL (or now, for the caller).
size_t rt_thread_stack_used(rt_thread_t *t);

// ---- GC --------------------------------------------------------------------

// Marks the stacks, spilled registers and roots of every other thread, then
// calls the hook (if set) with the sched lock held for further roots.
void rt_gc_collect_others(void);
void rt_gc_set_hook(void (*mark_more)(void));

#endif  // THREADFLEET_RUNTIME_MPTHREADPORT_H
