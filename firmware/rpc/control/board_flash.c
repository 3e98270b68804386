// The flash as the control channel uses it (see board_flash.h). Each call
// enters the VM once through sup_vm_run and works through MicroPython's VFS,
// so the control channel and the board's programs see one file system.
//
// No MicroPython object outlives a call: a host thread's C state is not a GC
// root, so files are opened and closed within each call.
#include "firmware/rpc/control/board_flash.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "extmod/vfs.h"
#include "firmware/supervisor/supervisor.h"
#include "py/objstr.h"
#include "py/objtuple.h"
#include "py/runtime.h"
#include "py/stream.h"

#define STAT_MODE_DIR 0x4000

bool board_flash_path_ok(const char *path, bool allow_root) {
  size_t len = strlen(path);
  if (len == 0 || path[0] != '/' || len > BOARD_FLASH_PATH_MAX) return false;
  if (len == 1) return allow_root;
  if (path[len - 1] == '/') return false;
  for (const char *c = path + 1; *c;) {
    const char *end = strchr(c, '/');
    size_t n = end ? (size_t)(end - c) : strlen(c);
    if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return false;
    c += n + (end ? 1 : 0);
  }
  return true;
}

// ---- Running a piece of VFS work --------------------------------------------------

typedef struct {
  void (*fn)(void *arg);
  void *arg;
  int rc;
} vfs_job_t;

// The errno an exception stands for: OSError's own, -ENOMEM for a full
// heap, -EIO for anything else.
static int errno_of(mp_obj_t exc) {
  const mp_obj_type_t *type = mp_obj_get_type(exc);
  if (mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(type), MP_OBJ_FROM_PTR(&mp_type_MemoryError))) return -ENOMEM;
  if (!mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(type), MP_OBJ_FROM_PTR(&mp_type_OSError))) return -EIO;
  mp_obj_t value = mp_obj_exception_get_value(exc);
  return mp_obj_is_small_int(value) ? -(int)MP_OBJ_SMALL_INT_VALUE(value) : -EIO;
}

static void vfs_job_run(void *ctx) {
  vfs_job_t *job = ctx;
  nlr_buf_t nlr;
  if (nlr_push(&nlr) == 0) {
    job->fn(job->arg);
    nlr_pop();
  } else {
    job->rc = errno_of(MP_OBJ_FROM_PTR(nlr.ret_val));
  }
}

// Runs fn(arg) in the VM; an exception it raises becomes the negative errno.
static int vfs_call(void (*fn)(void *arg), void *arg) {
  vfs_job_t job = {fn, arg, 0};
  char err[96];
  if (!sup_vm_run(vfs_job_run, &job, err, sizeof(err))) return errno == EBUSY ? -EBUSY : -EIO;
  return job.rc;
}

static mp_obj_t str_of(const char *s) { return mp_obj_new_str(s, strlen(s)); }

static mp_obj_t open_file(const char *path, const char *mode) {
  mp_obj_t args[2] = {str_of(path), str_of(mode)};
  mp_map_t no_kw;
  mp_map_init(&no_kw, 0);
  return mp_vfs_open(2, args, &no_kw);
}

// Closes a file without raising; returns 0 or the errno closing gave.
static int close_file(mp_obj_t file) {
  nlr_buf_t nlr;
  if (nlr_push(&nlr) == 0) {
    mp_stream_close(file);
    nlr_pop();
    return 0;
  }
  return errno_of(MP_OBJ_FROM_PTR(nlr.ret_val));
}

// ---- Stat and list -------------------------------------------------------------------

typedef struct {
  const char *path;
  bool is_dir;
  uint64_t size;
} stat_args_t;

static void do_stat(void *arg) {
  stat_args_t *a = arg;
  mp_obj_tuple_t *st = MP_OBJ_TO_PTR(mp_vfs_stat(str_of(a->path)));
  a->is_dir = (mp_obj_get_int(st->items[0]) & STAT_MODE_DIR) != 0;
  a->size = a->is_dir ? 0 : (uint64_t)mp_obj_get_int(st->items[6]);
}

int board_flash_stat(const char *path, bool *is_dir, uint64_t *size_bytes) {
  stat_args_t a = {.path = path};
  int rc = vfs_call(do_stat, &a);
  if (rc == 0) {
    *is_dir = a.is_dir;
    *size_bytes = a.size;
  }
  return rc;
}

typedef struct {
  const char *dir;
  board_flash_entry_t *out;
  size_t max, count;
  bool truncated;
} list_args_t;

// Keeps the `max` smallest names, sorted: inserts e in place, dropping the
// largest when full.
static void list_insert(list_args_t *a, const board_flash_entry_t *e) {
  size_t pos = a->count;
  while (pos > 0 && strcmp(a->out[pos - 1].name, e->name) > 0) pos--;
  if (a->count == a->max) {
    a->truncated = true;
    if (pos == a->max) return;
    a->count--;
  }
  memmove(&a->out[pos + 1], &a->out[pos], (a->count - pos) * sizeof(*e));
  a->out[pos] = *e;
  a->count++;
}

static void do_list(void *arg) {
  list_args_t *a = arg;
  mp_obj_t dir = str_of(a->dir);
  mp_obj_t iter = mp_vfs_ilistdir(1, &dir);
  for (mp_obj_t item; (item = mp_iternext(iter)) != MP_OBJ_STOP_ITERATION;) {
    size_t n;
    mp_obj_t *fields;
    mp_obj_tuple_get(item, &n, &fields);
    board_flash_entry_t e = {0};
    snprintf(e.name, sizeof(e.name), "%s", mp_obj_str_get_str(fields[0]));
    e.is_dir = (mp_obj_get_int(fields[1]) & STAT_MODE_DIR) != 0;
    e.size_bytes = !e.is_dir && n > 3 ? (uint64_t)mp_obj_get_int(fields[3]) : 0;
    list_insert(a, &e);
  }
}

int board_flash_list(const char *dir, board_flash_entry_t *out, size_t max, size_t *count, bool *truncated) {
  list_args_t a = {.dir = dir, .out = out, .max = max};
  bool is_dir = false;
  uint64_t size;
  int rc = board_flash_stat(dir, &is_dir, &size);
  if (rc == 0 && !is_dir) rc = -ENOTDIR;
  if (rc == 0) rc = vfs_call(do_list, &a);
  *count = a.count;
  *truncated = a.truncated;
  return rc;
}

// ---- Writing ---------------------------------------------------------------------------

typedef struct {
  const char *path;
  const void *data;
  size_t len;
  int rc;
} write_args_t;

// mkdir for every missing parent of path.
static void make_parents(const char *path) {
  char dir[BOARD_FLASH_PATH_MAX + sizeof(BOARD_FLASH_TMP_SUFFIX)];
  for (const char *slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    size_t n = (size_t)(slash - path);
    if (n >= sizeof(dir)) return;
    memcpy(dir, path, n);
    dir[n] = '\0';
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
      mp_vfs_mkdir(str_of(dir));
      nlr_pop();
    } else if (errno_of(MP_OBJ_FROM_PTR(nlr.ret_val)) != -EEXIST) {
      nlr_jump(nlr.ret_val);
    }
  }
}

static void write_with_mode(write_args_t *a, const char *mode) {
  mp_obj_t file = open_file(a->path, mode);
  int err = 0;
  if (a->len > 0) mp_stream_rw(file, (void *)a->data, a->len, &err, MP_STREAM_RW_WRITE);
  int close_err = close_file(file);
  a->rc = err ? -err : close_err;
}

static void do_create(void *arg) {
  write_args_t *a = arg;
  make_parents(a->path);
  write_with_mode(a, "wb");
}

static void do_append(void *arg) { write_with_mode(arg, "ab"); }

int board_flash_create(const char *path) {
  write_args_t a = {.path = path};
  int rc = vfs_call(do_create, &a);
  return rc ? rc : a.rc;
}

int board_flash_append(const char *path, const void *data, size_t len) {
  write_args_t a = {.path = path, .data = data, .len = len};
  int rc = vfs_call(do_append, &a);
  return rc ? rc : a.rc;
}

// ---- Reading ---------------------------------------------------------------------------

typedef struct {
  const char *path;
  uint64_t offset;
  void *buf;
  size_t cap, got;
  int rc;
} read_args_t;

static void do_read(void *arg) {
  read_args_t *a = arg;
  mp_obj_t file = open_file(a->path, "rb");
  int err = 0;
  if (a->offset > 0) mp_stream_seek(file, (mp_off_t)a->offset, MP_SEEK_SET, &err);
  if (!err) a->got = mp_stream_rw(file, a->buf, a->cap, &err, MP_STREAM_RW_READ);
  int close_err = close_file(file);
  a->rc = err ? -err : close_err;
}

int board_flash_read(const char *path, uint64_t offset, void *buf, size_t cap, size_t *got) {
  read_args_t a = {.path = path, .offset = offset, .buf = buf, .cap = cap};
  int rc = vfs_call(do_read, &a);
  if (rc == 0) rc = a.rc;
  *got = rc == 0 ? a.got : 0;
  return rc;
}

// ---- Rename, remove, usage ---------------------------------------------------------

typedef struct {
  const char *from, *to;
} rename_args_t;

static void do_rename(void *arg) {
  rename_args_t *a = arg;
  mp_vfs_rename(str_of(a->from), str_of(a->to));
}

int board_flash_rename(const char *from, const char *to) {
  rename_args_t a = {from, to};
  return vfs_call(do_rename, &a);
}

static void do_remove(void *arg) {
  stat_args_t *a = arg;
  do_stat(a);
  if (a->is_dir)
    mp_vfs_rmdir(str_of(a->path));
  else
    mp_vfs_remove(str_of(a->path));
}

int board_flash_remove(const char *path) {
  stat_args_t a = {.path = path};
  return vfs_call(do_remove, &a);
}

typedef struct {
  uint64_t total, used;
} usage_args_t;

static void do_usage(void *arg) {
  usage_args_t *a = arg;
  mp_obj_tuple_t *st = MP_OBJ_TO_PTR(mp_vfs_statvfs(str_of("/")));
  uint64_t block = (uint64_t)mp_obj_get_int(st->items[1]);
  uint64_t blocks = (uint64_t)mp_obj_get_int(st->items[2]);
  uint64_t free_blocks = (uint64_t)mp_obj_get_int(st->items[3]);
  a->total = block * blocks;
  a->used = block * (blocks - free_blocks);
}

int board_flash_usage(uint64_t *total_bytes, uint64_t *used_bytes) {
  usage_args_t a = {0};
  int rc = vfs_call(do_usage, &a);
  *total_bytes = a.total;
  *used_bytes = a.used;
  return rc;
}
