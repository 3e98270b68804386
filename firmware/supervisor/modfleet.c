// The `fleet` module a board offers its programs:
//   fleet.name()            the board's name
//   fleet.thread_name([s])  the calling thread's name (set it with s)
//   fleet.report(**kv)      numeric metrics that show in the board's health,
//                           SUP_MAX_METRICS for the board, freed when their
//                           thread ends
//   fleet.ThreadKilled      what a kill raises (a BaseException: `except
//                           Exception:` does not swallow it)
#include <stdio.h>
#include <string.h>

#include "firmware/supervisor/internal.h"
#include "py/mperrno.h"
#include "py/objexcept.h"
#include "py/runtime.h"

MP_DEFINE_CONST_OBJ_TYPE(sup_type_ThreadKilled, MP_QSTR_ThreadKilled, MP_TYPE_FLAG_NONE, make_new,
                         mp_obj_exception_make_new, print, mp_obj_exception_print, attr,
                         mp_obj_exception_attr, parent, &mp_type_BaseException);

static mp_obj_t fleet_name(void) {
  const char *name = sup.config.board_name ? sup.config.board_name : "";
  return mp_obj_new_str(name, strlen(name));
}
static MP_DEFINE_CONST_FUN_OBJ_0(fleet_name_obj, fleet_name);

static mp_obj_t fleet_thread_name(size_t n_args, const mp_obj_t *args) {
  const char *new_name = n_args ? mp_obj_str_get_str(args[0]) : NULL;
  char name[SUP_NAME_MAX] = "";
  rt_sched_lock();
  sup_thread_t *t = sup_thread_of(rt_self());
  if (t && new_name) snprintf(t->name, sizeof(t->name), "%s", new_name);
  if (t) memcpy(name, t->name, sizeof(name));
  rt_sched_unlock();
  return mp_obj_new_str(name, strlen(name));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(fleet_thread_name_obj, 0, 1, fleet_thread_name);

static sup_metric_t *metric_find(uint32_t thread_id, const char *key) {
  for (size_t i = 0; i < sup.metric_count; i++) {
    if (sup.metrics[i].thread_id == thread_id && strcmp(sup.metrics[i].key, key) == 0) return &sup.metrics[i];
  }
  return NULL;
}

void sup_metrics_forget_thread(uint32_t thread_id) {
  size_t kept = 0;
  for (size_t i = 0; i < sup.metric_count; i++) {
    if (sup.metrics[i].thread_id == thread_id) continue;
    sup.metrics[kept++] = sup.metrics[i];
  }
  sup.metric_count = kept;
}

// Raises OSError(ENOSPC, "...") naming the key that does not fit.
static NORETURN void raise_table_full(const char *key) {
  vstr_t message;
  vstr_init(&message, 96);
  vstr_printf(&message,
              "fleet.report: no room for '%s': the board keeps %d metrics and live threads use them all", key,
              SUP_MAX_METRICS);
  mp_obj_t args[2] = {MP_OBJ_NEW_SMALL_INT(MP_ENOSPC), mp_obj_new_str_from_vstr(&message)};
  nlr_raise(mp_obj_new_exception_args(&mp_type_OSError, 2, args));
}

// Every key is checked before any is stored: a call that does not fit
// changes nothing. Slots are the calling thread's until it ends.
static mp_obj_t fleet_report(size_t n_args, const mp_obj_t *args, mp_map_t *kwargs) {
  if (n_args)
    mp_raise_TypeError(MP_ERROR_TEXT("report() takes keyword arguments only, e.g. report(temp=21.5)"));
  for (size_t i = 0; i < kwargs->alloc; i++) {
    if (!mp_map_slot_is_filled(kwargs, i)) continue;
    qstr key = mp_obj_str_get_qstr(kwargs->table[i].key);
    mp_obj_t v = kwargs->table[i].value;
    if (!mp_obj_is_int(v) && !mp_obj_is_float(v) && !mp_obj_is_bool(v))
      mp_raise_msg_varg(&mp_type_TypeError, MP_ERROR_TEXT("report(): %q must be a number"), key);
    if (qstr_len(key) >= SUP_NAME_MAX)
      mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("report(): name %q is longer than %d characters"),
                        key, SUP_NAME_MAX - 1);
  }
  uint32_t tid = (uint32_t)mp_thread_get_id();
  const char *missing = NULL;
  rt_sched_lock();
  size_t new_keys = 0;
  for (size_t i = 0; i < kwargs->alloc; i++) {
    if (!mp_map_slot_is_filled(kwargs, i)) continue;
    const char *key = mp_obj_str_get_str(kwargs->table[i].key);
    if (metric_find(tid, key)) continue;
    if (sup.metric_count + ++new_keys > SUP_MAX_METRICS) {
      missing = key;
      break;
    }
  }
  for (size_t i = 0; !missing && i < kwargs->alloc; i++) {
    if (!mp_map_slot_is_filled(kwargs, i)) continue;
    const char *key = mp_obj_str_get_str(kwargs->table[i].key);
    sup_metric_t *slot = metric_find(tid, key);
    if (!slot) {
      slot = &sup.metrics[sup.metric_count++];
      slot->thread_id = tid;
      snprintf(slot->key, sizeof(slot->key), "%s", key);
    }
    slot->value = mp_obj_get_float(kwargs->table[i].value);
  }
  rt_sched_unlock();
  if (missing) raise_table_full(missing);
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(fleet_report_obj, 0, fleet_report);

static const mp_rom_map_elem_t fleet_globals_table[] = {
    {MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_fleet)},
    {MP_ROM_QSTR(MP_QSTR_name), MP_ROM_PTR(&fleet_name_obj)},
    {MP_ROM_QSTR(MP_QSTR_thread_name), MP_ROM_PTR(&fleet_thread_name_obj)},
    {MP_ROM_QSTR(MP_QSTR_report), MP_ROM_PTR(&fleet_report_obj)},
    {MP_ROM_QSTR(MP_QSTR_ThreadKilled), MP_ROM_PTR(&sup_type_ThreadKilled)},
};
static MP_DEFINE_CONST_DICT(fleet_globals, fleet_globals_table);

const mp_obj_module_t sup_module_fleet = {
    .base = {&mp_type_module},
    .globals = (mp_obj_dict_t *)&fleet_globals,
};

MP_REGISTER_MODULE(MP_QSTR_fleet, sup_module_fleet);
