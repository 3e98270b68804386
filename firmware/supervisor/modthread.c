// `_thread`, the supervisor's way: the same API as MicroPython's py/modthread.c
// (start_new_thread, allocate_lock, get_ident, stack_size, exit, LockType), but
// every thread is registered with the supervisor, belongs to the program of
// the thread that started it, and can be listed and killed.
#include <errno.h>
#include <string.h>

#include "firmware/supervisor/internal.h"
#include "firmware/supervisor/spawn.h"
#include "py/runtime.h"

// Held in the GC heap (the port keeps it as a root until the thread runs).
typedef struct {
  sup_spawn_t spawn;
  mp_obj_dict_t *globals;
  mp_obj_dict_t *locals;
  mp_obj_t fun;
  size_t n_args, n_kw;
  mp_obj_t args[];
} thread_args_t;

// The calling thread's program's _thread.stack_size setting (0: the
// default); with `set`, replaces it with `bytes` and returns the previous one.
// A running program's record is never reused, so every user thread finds its
// own.
static size_t own_stack_setting(size_t bytes, bool set) {
  rt_sched_lock();
  sup_thread_t *t = sup_thread_of(rt_self());
  sup_program_t *p = t ? sup_program_rec(t->program_id) : NULL;
  size_t previous = p ? p->thread_stack_bytes : 0;
  if (p && set) p->thread_stack_bytes = bytes;
  rt_sched_unlock();
  return previous;
}

static void callable_name(mp_obj_t fun, char *out, size_t len) {
  mp_obj_t dest[2];
  mp_load_method_maybe(fun, MP_QSTR___name__, dest);
  const char *name = dest[0] != MP_OBJ_NULL && mp_obj_is_str(dest[0]) ? mp_obj_str_get_str(dest[0])
                                                                      : mp_obj_get_type_str(fun);
  strncpy(out, name, len - 1);
  out[len - 1] = '\0';
}

static void thread_run(rt_thread_t *self, void *arg) {
  thread_args_t *a = arg;
  mp_globals_set(a->globals);
  mp_locals_set(a->locals);
  if (!sup_thread_prepare(self)) {
    sup_spawn_finish(self, SUP_THREAD_KILLED, 0);
    return;
  }
  int exit_code = 0;
  sup_thread_state_t outcome = SUP_THREAD_FINISHED;
  nlr_buf_t nlr;
  if (nlr_push(&nlr) == 0) {
    mp_call_function_n_kw(a->fun, a->n_args, a->n_kw, a->args);
    nlr_pop();
  } else {
    outcome = sup_thread_outcome(self, MP_OBJ_FROM_PTR(nlr.ret_val), a->fun, &exit_code);
  }
  sup_spawn_finish(self, outcome, exit_code);
}

static const rt_thread_ops_t thread_ops = {
    .created = sup_spawn_created,
    .run = thread_run,
    .unwound = sup_spawn_unwound,
    .exiting = sup_spawn_exiting,
};

static mp_obj_t mod_thread_start_new_thread(size_t n_args, const mp_obj_t *args) {
  size_t stack_bytes = own_stack_setting(0, false);
  // A real port fails here too, when its RTOS cannot have the stack (esp32:
  // "OSError: can't create thread"); this board says which limit it hit.
  if (stack_bytes > sup.config.max_stack_bytes) {
    mp_raise_msg_varg(
        &mp_type_OSError,
        MP_ERROR_TEXT("can't start thread: a stack of %lu bytes is over the board's limit of %lu "
                      "bytes (see _thread.stack_size)"),
        (unsigned long)stack_bytes, (unsigned long)sup.config.max_stack_bytes);
  }
  size_t pos_len;
  mp_obj_t *pos;
  mp_obj_get_array(args[1], &pos_len, &pos);
  mp_map_t *kw = NULL;
  if (n_args == 3) {
    if (!mp_obj_is_type(args[2], &mp_type_dict))
      mp_raise_TypeError(MP_ERROR_TEXT("expecting a dict for keyword args"));
    kw = &((mp_obj_dict_t *)MP_OBJ_TO_PTR(args[2]))->map;
  }
  size_t n_kw = kw ? kw->used : 0;
  thread_args_t *a = m_new_obj_var(thread_args_t, args, mp_obj_t, pos_len + 2 * n_kw);
  a->spawn.program_id = sup_current_program();
  callable_name(args[0], a->spawn.name, sizeof(a->spawn.name));
  a->globals = mp_globals_get();
  a->locals = mp_locals_get();
  a->fun = args[0];
  a->n_args = pos_len;
  a->n_kw = n_kw;
  memcpy(a->args, pos, pos_len * sizeof(mp_obj_t));
  for (size_t i = 0, n = pos_len; kw && i < kw->alloc; i++) {
    if (mp_map_slot_is_filled(kw, i)) {
      a->args[n++] = kw->table[i].key;
      a->args[n++] = kw->table[i].value;
    }
  }
  int err = 0;
  uint32_t id = rt_thread_create(&thread_ops, a, stack_bytes, &err);
  if (id == 0 && err == EAGAIN) {
    mp_raise_msg_varg(&mp_type_OSError,
                      MP_ERROR_TEXT("can't start thread: board limit of %d threads reached"),
                      (int)rt_threads_limit());
  }
  if (id == 0)
    mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("can't start thread: out of memory for its stack"));
  return mp_obj_new_int_from_uint(id);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mod_thread_start_new_thread_obj, 2, 3,
                                           mod_thread_start_new_thread);

static mp_obj_t mod_thread_get_ident(void) { return mp_obj_new_int_from_uint(mp_thread_get_id()); }
static MP_DEFINE_CONST_FUN_OBJ_0(mod_thread_get_ident_obj, mod_thread_get_ident);

// stack_size([size]): returns the previous setting and sets a new one; no
// argument means 0, the default (as in MicroPython). Any size is taken, as on
// every MicroPython port: start_new_thread judges it.
static mp_obj_t mod_thread_stack_size(size_t n_args, const mp_obj_t *args) {
  mp_int_t size = n_args ? mp_obj_get_int(args[0]) : 0;
  if (size < 0) mp_raise_ValueError(MP_ERROR_TEXT("size must be 0 or positive"));
  return mp_obj_new_int_from_uint(own_stack_setting((size_t)size, true));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mod_thread_stack_size_obj, 0, 1, mod_thread_stack_size);

static mp_obj_t mod_thread_exit(void) { mp_raise_type(&mp_type_SystemExit); }
static MP_DEFINE_CONST_FUN_OBJ_0(mod_thread_exit_obj, mod_thread_exit);

static mp_obj_t mod_thread_allocate_lock(void) { return sup_lock_new(); }
static MP_DEFINE_CONST_FUN_OBJ_0(mod_thread_allocate_lock_obj, mod_thread_allocate_lock);

static const mp_rom_map_elem_t mp_module_thread_globals_table[] = {
    {MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__thread)},
    {MP_ROM_QSTR(MP_QSTR_LockType), MP_ROM_PTR(&sup_type_lock)},
    {MP_ROM_QSTR(MP_QSTR_get_ident), MP_ROM_PTR(&mod_thread_get_ident_obj)},
    {MP_ROM_QSTR(MP_QSTR_stack_size), MP_ROM_PTR(&mod_thread_stack_size_obj)},
    {MP_ROM_QSTR(MP_QSTR_start_new_thread), MP_ROM_PTR(&mod_thread_start_new_thread_obj)},
    {MP_ROM_QSTR(MP_QSTR_exit), MP_ROM_PTR(&mod_thread_exit_obj)},
    {MP_ROM_QSTR(MP_QSTR_allocate_lock), MP_ROM_PTR(&mod_thread_allocate_lock_obj)},
};
static MP_DEFINE_CONST_DICT(mp_module_thread_globals, mp_module_thread_globals_table);

const mp_obj_module_t sup_module_thread = {
    .base = {&mp_type_module},
    .globals = (mp_obj_dict_t *)&mp_module_thread_globals,
};

MP_REGISTER_MODULE(MP_QSTR__thread, sup_module_thread);
