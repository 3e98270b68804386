// The board's root file system stays mounted: a program's os.umount('/')
// (or vfs.umount) raises OSError(EPERM) and "/" keeps working, for the
// program, for every other program and for the control channel's file calls
// (once it left them failing with "flash error 19" until the board
// restarted).
//
// MicroPython has no veto on unmounting: mp_vfs_umount takes the mount out
// of the table first and then calls the file system's umount(). So the
// object mounted at "/" is replaced by a guard that forwards every attribute
// to the file system except umount, which puts "/" back into the table and
// raises. The unmount and the remount happen under the GIL in one native
// call: no other thread sees "/" missing.
#include "extmod/vfs.h"
#include "firmware/supervisor/internal.h"
#include "py/mperrno.h"
#include "py/runtime.h"

#define ROOTFS_REFUSAL "the board's flash stays mounted at /: programs may not unmount it"

typedef struct {
  mp_obj_base_t base;
  mp_obj_t fs;  // the file system it guards (VfsLfs2)
} rootfs_guard_t;

static const mp_obj_type_t rootfs_guard_type;

// The mount table's entry for "/", or NULL.
static mp_vfs_mount_t *root_mount(void) {
  for (mp_vfs_mount_t *m = MP_STATE_VM(vfs_mount_table); m; m = m->next) {
    if (m->len == 1 && m->str[0] == '/') return m;
  }
  return NULL;
}

static mp_obj_t guard_umount(mp_obj_t self_in) {
  if (!root_mount()) {
    // Called from os.umount: "/" is out of the table; the current
    // directory, if it was on "/", now points at MP_VFS_ROOT.
    bool was_current = MP_STATE_VM(vfs_cur) == MP_VFS_ROOT;
    mp_obj_t args[2] = {self_in, MP_OBJ_NEW_QSTR(MP_QSTR__slash_)};
    mp_vfs_mount(2, args, (mp_map_t *)&mp_const_empty_map);
    if (was_current) MP_STATE_VM(vfs_cur) = root_mount();
  }
  mp_obj_t args[2] = {MP_OBJ_NEW_SMALL_INT(MP_EPERM), mp_obj_new_str_from_cstr(ROOTFS_REFUSAL)};
  nlr_raise(mp_obj_new_exception_args(&mp_type_OSError, 2, args));
}
static MP_DEFINE_CONST_FUN_OBJ_1(guard_umount_obj, guard_umount);

// Loads only (stores and deletes are refused): umount is the guard's, every
// other attribute the file system's, bound to it.
static void guard_attr(mp_obj_t self_in, qstr attr, mp_obj_t *dest) {
  if (dest[0] != MP_OBJ_NULL) return;
  if (attr == MP_QSTR_umount) {
    dest[0] = MP_OBJ_FROM_PTR(&guard_umount_obj);
    dest[1] = self_in;
    return;
  }
  rootfs_guard_t *self = MP_OBJ_TO_PTR(self_in);
  mp_load_method_maybe(self->fs, attr, dest);
}

// Imports look files up through the VFS protocol's fast path.
static mp_import_stat_t guard_import_stat(void *self_in, const char *path) {
  rootfs_guard_t *self = self_in;
  const mp_vfs_proto_t *proto = MP_OBJ_TYPE_GET_SLOT(mp_obj_get_type(self->fs), protocol);
  return proto->import_stat(MP_OBJ_TO_PTR(self->fs), path);
}

static const mp_vfs_proto_t guard_proto = {.import_stat = guard_import_stat};

static MP_DEFINE_CONST_OBJ_TYPE(rootfs_guard_type, MP_QSTR_Flash, MP_TYPE_FLAG_NONE, attr, guard_attr,
                                protocol, &guard_proto);

void sup_rootfs_guard(void) {
  mp_vfs_mount_t *root = root_mount();
  if (!root || mp_obj_get_type(root->obj) == &rootfs_guard_type) return;
  if (!MP_OBJ_TYPE_HAS_SLOT(mp_obj_get_type(root->obj), protocol)) return;  // see internal.h
  rootfs_guard_t *guard = mp_obj_malloc(rootfs_guard_t, &rootfs_guard_type);
  guard->fs = root->obj;
  root->obj = MP_OBJ_FROM_PTR(guard);
}
