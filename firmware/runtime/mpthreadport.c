// threadfleet's MicroPython thread port (see mpthreadport.h).
//
// Locking order: GIL -> sched mutex -> GIL queue mutex. No code takes the GIL
// while holding the sched mutex, so the GC (which runs under the GIL) may take
// the sched mutex to walk the thread table.
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "py/gc.h"
#include "py/mpthread.h"
#include "py/nlr.h"
#include "py/runtime.h"

#if MICROPY_PY_THREAD

#define RT_STACK_MIN (16 * 1024)
#define RT_STACK_DEFAULT (64 * 1024)

static rt_thread_t threads[RT_MAX_THREADS];  // fixed table, no heap (sched)
static pthread_mutex_t sched_mutex = PTHREAD_MUTEX_INITIALIZER;
static uint32_t next_id = 1;    // ids are never reused within an uptime
static size_t user_live;        // live user threads (sched)
static size_t user_limit = 16;  // max live user threads (sched)
static size_t page_size;

static __thread rt_thread_t *tls_self;  // the calling thread's record
static __thread mp_state_thread_t *tls_state;
static __thread bool tls_gil_kept;  // rt_gil_keep

// ---- The GIL ---------------------------------------------------------------
// A FIFO hand-off lock. The owner keeps it for a time slice even when others
// wait (MicroPython bounces the GIL every 32 branches; handing it over each
// time would cost a context switch per few microseconds of work). A waiter
// with a pending kill is served first so kills land at once.
static _Atomic(rt_thread_t *) gil_owner;
static atomic_int gil_nwait;  // threads queued for the GIL
static atomic_int gil_hurry;  // a queued thread has a kill pending
static pthread_mutex_t gil_mutex = PTHREAD_MUTEX_INITIALIZER;
static rt_thread_t *gil_head;  // FIFO of waiters (gil_mutex)

uintptr_t rt_vm_steps;
// What the last sample of the GIL's holder saw (sched): see rt_gil_native_ns.
static rt_thread_t *sampled_holder;
static uintptr_t sampled_steps;
static int64_t sampled_since_ns;

// Work the GIL's holder does at its next yield point when asked (see
// rt_gil_request_yield_work).
static void (*yield_work)(void);
static atomic_int yield_work_wanted;

int64_t rt_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void gil_enqueue(rt_thread_t *t) {
  t->gil_next = NULL;
  rt_thread_t **p = &gil_head;
  while (*p) p = &(*p)->gil_next;
  *p = t;
  atomic_fetch_add(&gil_nwait, 1);
}

// Takes `t` out of the queue. REQUIRES: t is queued.
static void gil_unqueue(rt_thread_t *t) {
  for (rt_thread_t **p = &gil_head; *p; p = &(*p)->gil_next) {
    if (*p == t) {
      *p = t->gil_next;
      t->gil_next = NULL;
      atomic_fetch_sub(&gil_nwait, 1);
      return;
    }
  }
}

// Removes and returns the next thread to serve: an urgent one first.
static rt_thread_t *gil_dequeue(void) {
  rt_thread_t **p = &gil_head;
  for (rt_thread_t **q = &gil_head; *q; q = &(*q)->gil_next) {
    if ((*q)->gil_urgent) {
      p = q;
      break;
    }
  }
  rt_thread_t *t = *p;
  if (t) {
    *p = t->gil_next;
    t->gil_next = NULL;
    atomic_fetch_sub(&gil_nwait, 1);
  }
  return t;
}

static void gil_took(rt_thread_t *t) {
  rt_vm_step();  // a new holder: whatever the last one was doing is over
  t->gil_since_ns = rt_now_ns();
  if (t->gil_urgent) {
    t->gil_urgent = false;
    atomic_store(&gil_hurry, 0);
  }
}

// Waits on `cond` with `mutex` until signalled or the monotonic deadline
// passes (spurious wake-ups possible: re-check).
static void cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t deadline_ns) {
  // Condition variables time out on CLOCK_REALTIME: convert the time left.
  int64_t left = deadline_ns - rt_now_ns();
  struct timespec abs;
  clock_gettime(CLOCK_REALTIME, &abs);
  int64_t at = (int64_t)abs.tv_sec * 1000000000 + abs.tv_nsec + (left > 0 ? left : 0);
  abs.tv_sec = at / 1000000000;
  abs.tv_nsec = at % 1000000000;
  pthread_cond_timedwait(cond, mutex, &abs);
}

// The uncontended case: the GIL is free and nobody queues for it.
static bool gil_take_free(rt_thread_t *self) {
  rt_thread_t *expected = NULL;
  return atomic_load(&gil_nwait) == 0 && atomic_compare_exchange_strong(&gil_owner, &expected, self);
}

// Whether queued `self` holds the GIL now: handed over by the last owner,
// or free while self is first in line. REQUIRES: gil_mutex; self queued
// (and no longer, when this returns true).
static bool gil_got(rt_thread_t *self) {
  if (atomic_load(&gil_owner) == self) return true;  // handed over (and unqueued) by the owner
  rt_thread_t *expected = NULL;
  if (gil_head != self || !atomic_compare_exchange_strong(&gil_owner, &expected, self)) return false;
  gil_unqueue(self);
  return true;
}

void rt_gil_acquire(void) {
  rt_thread_t *self = tls_self;
  if (!gil_take_free(self)) {
    pthread_mutex_lock(&gil_mutex);
    gil_enqueue(self);
    while (!gil_got(self)) pthread_cond_wait(&self->gil_cond, &gil_mutex);
    pthread_mutex_unlock(&gil_mutex);
  }
  gil_took(self);
}

bool rt_gil_try_acquire(void) {
  rt_thread_t *self = tls_self;
  if (!gil_take_free(self)) return false;
  gil_took(self);
  return true;
}

bool rt_gil_acquire_bounded(int64_t deadline_ns, int64_t poll_ns, bool (*keep_waiting)(void *ctx),
                            void *ctx) {
  rt_thread_t *self = tls_self;
  if (gil_take_free(self)) {
    gil_took(self);
    return true;
  }
  pthread_mutex_lock(&gil_mutex);
  gil_enqueue(self);  // keeps its place in the queue however often it asks
  bool got;
  while (!(got = gil_got(self))) {
    int64_t now = rt_now_ns();
    if (now >= deadline_ns) break;
    int64_t wake = now + poll_ns < deadline_ns ? now + poll_ns : deadline_ns;
    cond_wait_until(&self->gil_cond, &gil_mutex, wake);
    if (gil_got(self) || rt_now_ns() < wake) continue;
    // keep_waiting may take the sched lock, which comes before gil_mutex.
    pthread_mutex_unlock(&gil_mutex);
    bool go_on = keep_waiting(ctx);
    pthread_mutex_lock(&gil_mutex);
    if (!go_on) break;
  }
  if (!got && !(got = gil_got(self))) gil_unqueue(self);
  pthread_mutex_unlock(&gil_mutex);
  if (got) gil_took(self);
  return got;
}

static void gil_handoff(void) {
  pthread_mutex_lock(&gil_mutex);
  rt_thread_t *expected = NULL;
  if (gil_head && atomic_compare_exchange_strong(&gil_owner, &expected, gil_head)) {
    // The CAS made gil_head the owner; remove it from the queue and wake it.
    rt_thread_t *next = gil_head;
    gil_head = next->gil_next;
    next->gil_next = NULL;
    atomic_fetch_sub(&gil_nwait, 1);
    pthread_cond_signal(&next->gil_cond);
  }
  pthread_mutex_unlock(&gil_mutex);
}

static void gil_release_now(void) {
  if (atomic_load(&gil_nwait) == 0) {
    atomic_store(&gil_owner, NULL);
    // A waiter may have queued between the check and the store: serve it.
    if (atomic_load(&gil_nwait) == 0) return;
    gil_handoff();
    return;
  }
  pthread_mutex_lock(&gil_mutex);
  rt_thread_t *next = gil_dequeue();
  atomic_store(&gil_owner, next);
  if (next) pthread_cond_signal(&next->gil_cond);
  pthread_mutex_unlock(&gil_mutex);
}

// Records where the stack ends so the GC can scan it while we are away.
// noinline: its frame lies below the caller's spilled registers.
static __attribute__((noinline)) void gil_release_recording_sp(rt_thread_t *t) {
  volatile uintptr_t marker = 0;
  t->gc_sp = (void *)&marker;
  gil_release_now();
}

static __attribute__((noinline)) void gil_release_spilled(rt_thread_t *t) {
  __builtin_unwind_init();  // spill callee-saved registers into this frame
  gil_release_recording_sp(t);
  __asm__ volatile("" ::: "memory");  // no tail call: keep the spill frame
}

// Does the yield work if it was asked for. REQUIRES: GIL held.
static void serve_yield_work(void) {
  if (atomic_load(&yield_work_wanted) && atomic_exchange(&yield_work_wanted, 0)) yield_work();
}

void rt_gil_keep(bool keep) { tls_gil_kept = keep; }

void rt_gil_release(void) {
  serve_yield_work();
  gil_release_spilled(tls_self);
}

// ---- py/mpthread.h ----------------------------------------------------------

mp_state_thread_t *mp_thread_get_state(void) { return tls_state; }

void mp_thread_set_state(mp_state_thread_t *state) {
  tls_state = state;
  if (tls_self) tls_self->ts = state;
}

mp_uint_t mp_thread_get_id(void) { return tls_self ? tls_self->id : 0; }

void mp_thread_start(void) {}
void mp_thread_finish(void) {}

void mp_thread_mutex_init(mp_thread_mutex_t *mutex) { (void)mutex; }

// The GIL: taking it when already held is a no-op (see unlock below).
int mp_thread_mutex_lock(mp_thread_mutex_t *mutex, int wait) {
  (void)mutex;
  (void)wait;
  if (atomic_load(&gil_owner) != tls_self) rt_gil_acquire();
  return 1;
}

// The GIL's yield point (the VM bounces the GIL every 32 branches): release
// only when someone waits and our slice is used up or a kill is in a hurry.
// A hard kill of the caller is delivered here too.
void mp_thread_mutex_unlock(mp_thread_mutex_t *mutex) {
  (void)mutex;
  rt_check_hard_kill();
  serve_yield_work();
  if (atomic_load(&gil_nwait) == 0) return;
  if (tls_gil_kept && !atomic_load(&gil_hurry)) return;
  rt_thread_t *self = tls_self;
  if (atomic_load(&gil_hurry) || rt_now_ns() - self->gil_since_ns >= RT_GIL_SLICE_NS) {
    gil_release_spilled(self);
  }
}

// ---- Thread table -----------------------------------------------------------

void rt_sched_lock(void) { pthread_mutex_lock(&sched_mutex); }
void rt_sched_unlock(void) { pthread_mutex_unlock(&sched_mutex); }
void rt_sched_wait_until(pthread_cond_t *cond, int64_t deadline_ns) {
  cond_wait_until(cond, &sched_mutex, deadline_ns);
}

rt_thread_t *rt_self(void) { return tls_self; }

static rt_thread_t *slot_alloc(void) {
  for (size_t i = 0; i < RT_MAX_THREADS; i++) {
    rt_thread_t *t = &threads[i];
    if (!t->in_use) {
      memset(t, 0, sizeof(*t));
      t->in_use = true;
      t->stack_peak_cpu_ns = -1;
      pthread_cond_init(&t->cond, NULL);
      pthread_cond_init(&t->gil_cond, NULL);
      return t;
    }
  }
  return NULL;
}

static void slot_free(rt_thread_t *t) {
  pthread_cond_destroy(&t->cond);
  pthread_cond_destroy(&t->gil_cond);
  t->in_use = false;
}

void rt_threads_init(void *stack_top) {
  page_size = (size_t)sysconf(_SC_PAGESIZE);
  rt_sched_lock();
  rt_thread_t *t = slot_alloc();
  t->system = true;
  t->pthread = pthread_self();
  t->stack_top = stack_top;
  rt_sched_unlock();
  tls_self = t;
  mp_thread_set_state(&mp_state_ctx.thread);
  atomic_store(&gil_owner, NULL);
}

void rt_threads_deinit(void) {
  rt_threads_reap();
  rt_sched_lock();
  for (size_t i = 0; i < RT_MAX_THREADS; i++) {
    rt_thread_t *t = &threads[i];
    if (t->in_use && t == tls_self) slot_free(t);
  }
  rt_sched_unlock();
  tls_self = NULL;
  tls_state = NULL;
  atomic_store(&gil_owner, NULL);
}

rt_thread_t *rt_thread_register_system(void) {
  rt_sched_lock();
  rt_thread_t *t = slot_alloc();
  if (t) {
    t->system = true;
    t->pthread = pthread_self();
  }
  rt_sched_unlock();
  tls_self = t;
  return t;
}

void rt_thread_unregister_system(rt_thread_t *t) {
  rt_sched_lock();
  slot_free(t);
  rt_sched_unlock();
  tls_self = NULL;
  tls_state = NULL;
}

void rt_threads_set_limit(size_t max_threads) {
  rt_sched_lock();
  user_limit = max_threads < RT_MAX_THREADS - 4 ? max_threads : RT_MAX_THREADS - 4;
  rt_sched_unlock();
}

size_t rt_threads_limit(void) { return user_limit; }
size_t rt_threads_live(void) { return user_live; }
size_t rt_thread_default_stack(void) { return RT_STACK_DEFAULT; }

rt_thread_t *rt_thread_find(uint32_t id) {
  for (size_t i = 0; i < RT_MAX_THREADS; i++) {
    rt_thread_t *t = &threads[i];
    if (t->in_use && !t->ended && !t->system && t->id == id) return t;
  }
  return NULL;
}

void rt_threads_foreach(void (*fn)(rt_thread_t *t, void *ctx), void *ctx) {
  for (size_t i = 0; i < RT_MAX_THREADS; i++) {
    rt_thread_t *t = &threads[i];
    if (t->in_use && !t->ended && !t->system) fn(t, ctx);
  }
}

// ---- Thread creation --------------------------------------------------------

static void *thread_trampoline(void *arg) {
  rt_thread_t *t = arg;
  tls_self = t;
  rt_sched_lock();  // wait for rt_thread_create to finish registering us
  rt_sched_unlock();
  mp_state_thread_t ts;
  // The VM may use the stack from here down to the base, less the margin the
  // stack check keeps for native code between checks.
  size_t usable = (size_t)((uint8_t *)&ts - t->stack_base);
  mp_thread_init_state(&ts, usable, NULL, NULL);
  ts.nlr_top = NULL;
  t->stack_top = &ts + 1;
  rt_gil_acquire();

  // The entry argument is read from t at each use, never kept in this frame:
  // `exiting` may collect the heap, and this frame is scanned.
  nlr_buf_t nlr;
  if (nlr_push(&nlr) == 0) {
    t->entry_nlr = &nlr;
    t->ops->run(t, t->entry_arg);
    nlr_pop();
  } else {
    t->ops->unwound(t, t->entry_arg);
  }

  rt_sched_lock();
  t->entry_arg = NULL;
  t->kill_exc = NULL;
  t->entry_nlr = NULL;  // nothing may unwind it any more
  rt_sched_unlock();
  if (t->ops->exiting) t->ops->exiting(t);
  serve_yield_work();

  rt_sched_lock();
  t->ended = true;
  t->ts = NULL;
  user_live--;
  rt_sched_unlock();
  gil_release_now();
  return NULL;
}

static uint8_t *stack_alloc(size_t size) {
  // One guard page below the stack turns an overflow into a fault, not
  // silent corruption of a neighbour.
  uint8_t *mem =
      mmap(NULL, size + page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (mem == MAP_FAILED) return NULL;
  mprotect(mem, page_size, PROT_NONE);
  uint8_t *base = mem + page_size;
  for (uintptr_t *w = (uintptr_t *)base; w < (uintptr_t *)(base + size); w++) *w = RT_STACK_PAINT;
  return base;
}

static void stack_free(uint8_t *base, size_t size) { munmap(base - page_size, size + page_size); }

uint32_t rt_thread_create(const rt_thread_ops_t *ops, void *arg, size_t stack_size, int *err) {
  rt_threads_reap();
  if (stack_size == 0) stack_size = RT_STACK_DEFAULT;
  if (stack_size < RT_STACK_MIN) stack_size = RT_STACK_MIN;
  stack_size = (stack_size + page_size - 1) & ~(page_size - 1);
  uint8_t *stack = stack_alloc(stack_size);
  if (!stack) {
    *err = ENOMEM;
    return 0;
  }

  // The new thread takes the sched lock first thing, so `created` runs
  // before any of its code does.
  rt_sched_lock();
  rt_thread_t *t = user_live < user_limit ? slot_alloc() : NULL;
  int rc = t ? 0 : EAGAIN;
  pthread_attr_t attr;
  if (rc == 0) rc = pthread_attr_init(&attr);
  if (rc == 0) {
    t->id = next_id;
    t->ops = ops;
    t->entry_arg = arg;
    t->stack_base = stack;
    t->stack_size = stack_size;
    pthread_attr_setstack(&attr, stack, stack_size);
    rc = pthread_create(&t->pthread, &attr, thread_trampoline, t);
    pthread_attr_destroy(&attr);
  }
  if (rc != 0) goto er;
  next_id++;
  user_live++;
  ops->created(t, arg);
  rt_sched_unlock();
  return t->id;

er:
  if (t) slot_free(t);
  rt_sched_unlock();
  stack_free(stack, stack_size);
  *err = t ? ENOMEM : EAGAIN;
  return 0;
}

size_t rt_threads_reap(void) {
  rt_thread_t *done[RT_MAX_THREADS];
  size_t n = 0;
  rt_sched_lock();
  for (size_t i = 0; i < RT_MAX_THREADS; i++) {
    rt_thread_t *t = &threads[i];
    if (t->in_use && t->ended && !t->reaping) {
      t->reaping = true;  // ours to join: another reaper may run concurrently
      done[n++] = t;
    }
  }
  rt_sched_unlock();
  for (size_t i = 0; i < n; i++) {
    pthread_join(done[i]->pthread, NULL);
    stack_free(done[i]->stack_base, done[i]->stack_size);
    rt_sched_lock();
    slot_free(done[i]);
    rt_sched_unlock();
  }
  return user_live;
}

// ---- Blocking and kill ------------------------------------------------------

void rt_thread_signal(rt_thread_t *t) { pthread_cond_signal(&t->cond); }

void rt_block_announce(rt_block_kind_t kind, void *obj) {
  rt_thread_t *self = tls_self;
  if (self->block_kind == kind && self->block_obj == obj) return;
  self->block_kind = kind;
  self->block_obj = obj;
  self->block_since_ns = rt_now_ns();
}

rt_wake_t rt_block(rt_block_kind_t kind, void *obj, int64_t deadline_ns, bool (*ready)(void *ctx),
                   void *ctx) {
  rt_thread_t *self = tls_self;
  rt_gil_release();
  rt_sched_lock();
  rt_block_announce(kind, obj);
  rt_wake_t why;
  for (;;) {
    // A soft kill wakes the wait only while its exception is undelivered:
    // cleanup code (finally, with) of a killed thread may still sleep and
    // take locks.
    bool kill_pending = self->kill_soft && self->ts && self->ts->mp_pending_exception != MP_OBJ_NULL;
    if (kill_pending || self->kill_hard) {
      why = RT_WAKE_KILLED;
      break;
    }
    if (ready && ready(ctx)) {
      why = RT_WAKE_READY;
      break;
    }
    if (deadline_ns >= 0) {
      if (rt_now_ns() >= deadline_ns) {
        why = RT_WAKE_TIMEOUT;
        break;
      }
      rt_sched_wait_until(&self->cond, deadline_ns);
    } else {
      pthread_cond_wait(&self->cond, &sched_mutex);
    }
  }
  self->block_kind = RT_BLOCK_NONE;
  self->block_obj = NULL;
  rt_sched_unlock();
  rt_gil_acquire();
  rt_check_hard_kill();
  return why;
}

bool rt_thread_kill(rt_thread_t *t, bool hard) {
  if (hard) t->kill_hard = true;
  t->kill_soft = true;
  if (t->ts && t->kill_exc) t->ts->mp_pending_exception = MP_OBJ_FROM_PTR(t->kill_exc);
  t->gil_urgent = true;
  atomic_store(&gil_hurry, 1);
  pthread_cond_signal(&t->cond);
  return t->ts != NULL;
}

void rt_check_hard_kill(void) {
  rt_thread_t *self = tls_self;
  if (!self || !self->kill_hard || !self->entry_nlr) return;
  // Never unwind out of a region where the GC is locked (a finaliser).
  if (MP_STATE_THREAD(gc_lock_depth) != 0) return;
  self->kill_hard = false;
  MP_STATE_THREAD(mp_pending_exception) = MP_OBJ_NULL;
  MP_STATE_THREAD(nlr_top) = self->entry_nlr;
  nlr_jump(self->kill_exc);
}

// ---- Progress and yield work ------------------------------------------------

int64_t rt_gil_native_ns(int64_t now_ns, rt_thread_t **holder) {
  rt_thread_t *owner = atomic_load(&gil_owner);
  uintptr_t steps = __atomic_load_n(&rt_vm_steps, __ATOMIC_RELAXED);
  if (owner != sampled_holder || steps != sampled_steps) {
    sampled_holder = owner;
    sampled_steps = steps;
    sampled_since_ns = now_ns;
  }
  if (holder) *holder = owner;
  return owner ? now_ns - sampled_since_ns : 0;
}

int64_t rt_thread_native_since_ns(const rt_thread_t *t, int64_t now_ns) {
  rt_thread_t *holder;
  rt_gil_native_ns(now_ns, &holder);
  return holder == t ? sampled_since_ns : -1;
}

void rt_gil_set_yield_work(void (*work)(void)) { yield_work = work; }

void rt_gil_request_yield_work(void) {
  if (yield_work) atomic_store(&yield_work_wanted, 1);
}

// ---- Measurements -----------------------------------------------------------

int64_t rt_thread_cpu_ns(const rt_thread_t *t) {
  clockid_t clk;
  struct timespec ts;
  if (pthread_getcpuclockid(t->pthread, &clk) != 0 || clock_gettime(clk, &ts) != 0) return -1;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// The first word in [w, end) that is not paint, or end. Eight words a step
// (the OR of their differences from the paint vectorises), then one by one.
__attribute__((no_sanitize_address)) static const uintptr_t *first_unpainted(const uintptr_t *w,
                                                                             const uintptr_t *end) {
  while (end - w >= 8) {
    uintptr_t diff = 0;
    for (int i = 0; i < 8; i++) diff |= w[i] ^ RT_STACK_PAINT;
    if (diff != 0) break;
    w += 8;
  }
  while (w < end && *w == RT_STACK_PAINT) w++;
  return w;
}

size_t rt_thread_stack_peak_full(const rt_thread_t *t) {
  if (!t->stack_base) return 0;
  const uintptr_t *end = (const uintptr_t *)(t->stack_base + t->stack_size);
  const uintptr_t *w = first_unpainted((const uintptr_t *)t->stack_base, end);
  return (size_t)((const uint8_t *)end - (const uint8_t *)w);
}

size_t rt_thread_stack_peak(rt_thread_t *t, int64_t cpu_ns) {
  if (cpu_ns >= 0 && cpu_ns == t->stack_peak_cpu_ns) return t->stack_peak_seen;
  // cpu_ns was read before this scan: whatever the thread writes after the
  // read moves its CPU time, so the next call rescans.
  t->stack_peak_seen = rt_thread_stack_peak_full(t);
  t->stack_peak_cpu_ns = cpu_ns;
  return t->stack_peak_seen;
}

size_t rt_thread_stack_used(rt_thread_t *t) {
  if (!t->stack_base) return 0;
  const uint8_t *top = t->stack_base + t->stack_size;
  const uint8_t *sp = t == tls_self ? (const uint8_t *)__builtin_frame_address(0) : t->gc_sp;
  if (!sp || sp < t->stack_base || sp > top) return 0;
  return (size_t)(top - sp);
}

// ---- GC ---------------------------------------------------------------------

static void (*gc_hook)(void);

void rt_gc_set_hook(void (*mark_more)(void)) { gc_hook = mark_more; }

__attribute__((no_sanitize_address)) void rt_gc_collect_others(void) {
  rt_thread_t *self = tls_self;
  rt_sched_lock();
  for (size_t i = 0; i < RT_MAX_THREADS; i++) {
    rt_thread_t *t = &threads[i];
    if (!t->in_use || t->ended) continue;
    gc_collect_root(&t->kill_exc, 1);
    gc_collect_root(&t->entry_arg, 1);
    if (t == self || !t->ts || !t->gc_sp) continue;
    void **lo = (void **)t->gc_sp;
    void **hi = (void **)t->stack_top;
    if (lo < hi) gc_collect_root(lo, (size_t)(hi - lo));
  }
  if (gc_hook) gc_hook();
  rt_sched_unlock();
}

#endif  // MICROPY_PY_THREAD
