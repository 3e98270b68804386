// The VM's lifecycle (see vm.h).
#include "firmware/runtime/vm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "py/gc.h"
#include "py/mperrno.h"
#include "py/runtime.h"
#include "py/stackctrl.h"
#include "shared/runtime/gchelper.h"

static void *heap;
static size_t heap_bytes;
// MicroPython's atomic sections (pending exceptions, the scheduler) must
// exclude each other across threads, and may nest.
static pthread_mutex_t atomic_mutex;

void rt_begin_atomic(void) { pthread_mutex_lock(&atomic_mutex); }
void rt_end_atomic(void) { pthread_mutex_unlock(&atomic_mutex); }

unsigned int rt_random_seed(void) {
  unsigned int seed = 0;
  if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) seed = (unsigned int)rt_now_ns();
  return seed;
}

bool rt_vm_init(const rt_vm_config_t *config, void *stack_top) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&atomic_mutex, &attr);
  pthread_mutexattr_destroy(&attr);

  heap_bytes = config->heap_bytes;
  heap = malloc(heap_bytes);
  if (!heap) return false;
  rt_threads_init(stack_top);
  mp_stack_set_top(stack_top);
  mp_stack_set_limit(256 * 1024);
  gc_init(heap, (uint8_t *)heap + heap_bytes);
  mp_init();  // returns holding the GIL
  mp_sys_path = mp_obj_new_list(0, NULL);
  mp_obj_list_append(mp_sys_path, MP_OBJ_NEW_QSTR(MP_QSTR_));
  mp_obj_list_append(mp_sys_path, MP_OBJ_NEW_QSTR(MP_QSTR__slash_lib));
  rt_gil_release();
  return true;
}

void rt_vm_deinit(void) {
  rt_gil_acquire();
  gc_sweep_all();
  mp_deinit();
  rt_threads_deinit();
  free(heap);
  heap = NULL;
  pthread_mutex_destroy(&atomic_mutex);
}

void rt_vm_enter(void) { rt_gil_acquire(); }
void rt_vm_leave(void) { rt_gil_release(); }

void rt_vm_heap_stats(rt_heap_stats_t *out) {
  gc_info_t info;
  gc_info(&info);
  out->total = info.total;
  out->used = info.used;
  out->free = info.free;
  out->largest_free = info.max_free * MICROPY_BYTES_PER_GC_BLOCK;
}

size_t rt_vm_heap_size(void) { return heap_bytes; }

// Runs on the thread holding the GIL; every other thread has spilled its
// registers and recorded its stack pointer when it released the GIL.
void gc_collect(void) {
  gc_collect_start();
  gc_helper_collect_regs_and_stack();
  rt_gc_collect_others();
  gc_collect_end();
}

// An exception escaped every handler: a bug in the port, not in user code.
void nlr_jump_fail(void *val) {
  fprintf(stderr, "fatal: uncaught NLR %p\n", val);
  abort();
}
