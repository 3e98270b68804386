// The board's identity as its profile says (see board_identity.h).
#include "firmware/runtime/board_identity.h"

#include <string.h>

#include "firmware/runtime/board_profile.h"
#include "py/builtin.h"
#include "py/objstr.h"
#include "py/objtuple.h"
#include "py/runtime.h"

extern const mp_obj_module_t mp_module_os;  // extmod/modos.c

// The port's modules: fixed (read-only) globals like upstream's ROM ones, so a
// store such as `sys.path = [...]` falls through to the delegation below and
// reaches upstream's sys.path, which the import machinery reads.

static mp_obj_dict_t sys_globals;
static mp_obj_dict_t os_globals;
const mp_obj_module_t rt_sys_module = {.base = {&mp_type_module}, .globals = &sys_globals};
static const mp_obj_module_t os_module = {.base = {&mp_type_module}, .globals = &os_globals};

MP_REGISTER_MODULE_DELEGATION(rt_sys_module, mp_module_sys_attr);
// The globals' tables live on the GC heap; these keep them (and the strings
// and tuples they hold) alive.
MP_REGISTER_ROOT_POINTER(struct _mp_map_elem_t *rt_sys_globals_table);
MP_REGISTER_ROOT_POINTER(struct _mp_map_elem_t *rt_os_globals_table);

static mp_obj_t new_str(const char *s) { return mp_obj_new_str(s, strlen(s)); }

// A copy of `tuple` (an attrtuple: its field names follow its items) with
// the item named `field` replaced by `value`.
static mp_obj_t attrtuple_with(mp_obj_t tuple, qstr field, mp_obj_t value) {
  mp_obj_tuple_t *t = MP_OBJ_TO_PTR(tuple);
  const qstr *fields = MP_OBJ_TO_PTR(t->items[t->len]);
  mp_obj_tuple_t *copy = MP_OBJ_TO_PTR(mp_obj_new_attrtuple(fields, t->len, t->items));
  for (size_t i = 0; i < t->len; i++) {
    if (fields[i] == field) copy->items[i] = value;
  }
  return MP_OBJ_FROM_PTR(copy);
}

// Fills `globals` with a copy of `upstream`'s attributes, each of the
// `n_overrides` (name, value) pairs replacing the attribute of that name.
static mp_map_elem_t *copy_globals(mp_obj_dict_t *globals, const mp_obj_module_t *upstream,
                                   const mp_map_elem_t *overrides, size_t n_overrides) {
  const mp_map_t *from = &upstream->globals->map;
  mp_map_elem_t *table = m_new(mp_map_elem_t, from->used);
  for (size_t i = 0; i < from->used; i++) {
    table[i] = from->table[i];
    for (size_t j = 0; j < n_overrides; j++) {
      if (table[i].key == overrides[j].key) table[i].value = overrides[j].value;
    }
  }
  globals->base.type = &mp_type_dict;
  mp_map_init_fixed_table(&globals->map, from->used, (const mp_obj_t *)table);
  return table;
}

static mp_obj_t uname_for(const board_profile_t *p) {
  mp_obj_t upstream = mp_call_function_0(mp_load_attr(MP_OBJ_FROM_PTR(&mp_module_os), MP_QSTR_uname));
  mp_obj_t with_sysname = attrtuple_with(upstream, MP_QSTR_sysname, new_str(p->platform));
  mp_obj_t with_nodename = attrtuple_with(with_sysname, MP_QSTR_nodename, new_str(p->platform));
  return attrtuple_with(with_nodename, MP_QSTR_machine, new_str(p->machine));
}

// os.uname() of the profile: upstream's release and version, the profile's
// sysname, nodename and machine.
static mp_obj_t board_uname(void) { return MP_STATE_VM(rt_os_uname); }
static MP_DEFINE_CONST_FUN_OBJ_0(board_uname_obj, board_uname);
MP_REGISTER_ROOT_POINTER(mp_obj_t rt_os_uname);

void rt_board_identity_install(void) {
  const board_profile_t *p = board_profile_current();
  mp_obj_t implementation = mp_load_attr(MP_OBJ_FROM_PTR(&mp_module_sys), MP_QSTR_implementation);
  const mp_map_elem_t sys_overrides[] = {
      {MP_OBJ_NEW_QSTR(MP_QSTR_platform), new_str(p->platform)},
      {MP_OBJ_NEW_QSTR(MP_QSTR_implementation),
       attrtuple_with(implementation, MP_QSTR__machine, new_str(p->machine))},
  };
  MP_STATE_VM(rt_sys_globals_table) =
      copy_globals(&sys_globals, &mp_module_sys, sys_overrides, MP_ARRAY_SIZE(sys_overrides));
  MP_STATE_VM(rt_os_uname) = uname_for(p);
  const mp_map_elem_t os_overrides[] = {
      {MP_OBJ_NEW_QSTR(MP_QSTR_uname), MP_OBJ_FROM_PTR(&board_uname_obj)},
  };
  MP_STATE_VM(rt_os_globals_table) =
      copy_globals(&os_globals, &mp_module_os, os_overrides, MP_ARRAY_SIZE(os_overrides));

  mp_obj_t modules = MP_OBJ_FROM_PTR(&MP_STATE_VM(mp_loaded_modules_dict));
  mp_obj_dict_store(modules, MP_OBJ_NEW_QSTR(MP_QSTR_sys), MP_OBJ_FROM_PTR(&rt_sys_module));
  mp_obj_dict_store(modules, MP_OBJ_NEW_QSTR(MP_QSTR_usys), MP_OBJ_FROM_PTR(&rt_sys_module));
  mp_obj_dict_store(modules, MP_OBJ_NEW_QSTR(MP_QSTR_os), MP_OBJ_FROM_PTR(&os_module));
}
