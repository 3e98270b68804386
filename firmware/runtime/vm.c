// The VM's lifecycle (see vm.h).
#include "firmware/runtime/vm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "firmware/runtime/board_identity.h"
#include "firmware/runtime/exec_memory.h"
#include "py/emitglue.h"
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
  mp_obj_list_append(mp_sys_path, MP_OBJ_NEW_QSTR(MP_QSTR__dot_frozen));
  mp_obj_list_append(mp_sys_path, MP_OBJ_NEW_QSTR(MP_QSTR__slash_lib));
  if (config->emit_native) MP_STATE_VM(default_emit_opt) = MP_EMIT_OPT_NATIVE_PYTHON;
  rt_board_identity_install();
  rt_gil_release();
  return true;
}

void rt_vm_deinit(void) {
  rt_gil_acquire();
  gc_sweep_all();
  mp_deinit();
  rt_exec_free_all();
  rt_threads_deinit();
  free(heap);
  heap = NULL;
  pthread_mutex_destroy(&atomic_mutex);
}

void rt_vm_enter(void) { rt_gil_acquire(); }
void rt_vm_leave(void) { rt_gil_release(); }

// The GC's allocation table: 2 bits a block, 4 blocks a byte, lowest bits
// first (py/gc.c's ATB_GET_KIND); 0 is a free block, 1 the head of an
// object, 2 its tail, 3 a head marked during a collection.
#define ATB_BLOCKS_PER_BYTE 4
#define ATB_FREE 0
#define ATB_HEAD 1
#define ATB_TAIL 2

// A run of free blocks ends at the next head (py/gc.c's gc_info rule).
typedef struct {
  size_t used, free, run, max_run;  // blocks
} heap_walk_t;

static void walk_byte(heap_walk_t *w, uint8_t b) {
  for (int i = 0; i < ATB_BLOCKS_PER_BYTE; i++, b >>= 2) {
    switch (b & 3) {
      case ATB_FREE:
        w->free++;
        w->run++;
        break;
      case ATB_HEAD:
        w->used++;
        if (w->run > w->max_run) w->max_run = w->run;
        w->run = 0;
        break;
      case ATB_TAIL:
        w->used++;
        break;
      default:  // a mark: only seen during a collection
        break;
    }
  }
}

// The figures gc_info gives (total, used, free, max_free) from one pass over
// the allocation table, a whole table word at a time where it is all free or
// all tail (the common case: most of a board's heap is one or the other),
// instead of gc_info's block-by-block walk that also sizes every object.
void rt_vm_heap_stats(rt_heap_stats_t *out) {
  const mp_state_mem_area_t *area = &MP_STATE_MEM(area);
  const uint8_t *atb = area->gc_alloc_table_start;
  size_t len = area->gc_alloc_table_byte_len;
  heap_walk_t w = {0};
  size_t i = 0;
  while (i < len) {
    uint64_t word;
    if (len - i >= sizeof(word)) {
      memcpy(&word, atb + i, sizeof(word));
      if (word == 0) {
        w.free += sizeof(word) * ATB_BLOCKS_PER_BYTE;
        w.run += sizeof(word) * ATB_BLOCKS_PER_BYTE;
        i += sizeof(word);
        continue;
      }
      if (word == 0xAAAAAAAAAAAAAAAAull) {  // every block a tail
        w.used += sizeof(word) * ATB_BLOCKS_PER_BYTE;
        i += sizeof(word);
        continue;
      }
    }
    walk_byte(&w, atb[i++]);
  }
  if (w.run > w.max_run) w.max_run = w.run;
  out->total = (size_t)(area->gc_pool_end - area->gc_pool_start);
  out->used = w.used * MICROPY_BYTES_PER_GC_BLOCK;
  out->free = w.free * MICROPY_BYTES_PER_GC_BLOCK;
  out->largest_free = w.max_run * MICROPY_BYTES_PER_GC_BLOCK;
}

void rt_vm_path_prepend(const char *dir) {
  mp_obj_t insert[4];
  mp_load_method(mp_sys_path, MP_QSTR_insert, insert);
  insert[2] = MP_OBJ_NEW_SMALL_INT(0);
  insert[3] = mp_obj_new_str(dir, strlen(dir));
  mp_call_method_n_kw(2, 0, insert);
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
