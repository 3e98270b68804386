// Files on the flash for host threads (see files.h). Each call runs one job
// inside the VM through sup_vm_run and works through MicroPython's VFS; a
// host thread's C state is not a GC root, so files are opened and closed
// within each job.
#include "firmware/supervisor/files.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extmod/vfs.h"
#include "firmware/runtime/text_print.h"
#include "firmware/supervisor/supervisor.h"
#include "py/compile.h"
#include "py/objstr.h"
#include "py/objtuple.h"
#include "py/runtime.h"
#include "py/stream.h"

#define STAT_MODE_DIR 0x4000
// Partial files the boot sweep removes per walk of the flash: it collects
// their paths first (littlefs may skip entries of a directory that changes
// while it is listed), then walks again while a walk filled the batch.
#define SWEEP_BATCH 16
#define SWEEP_MAX_WALKS 64

// ---- Running a piece of VFS work ---------------------------------------------------

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
// vfs_job_run catches every exception, so a false sup_vm_run means the VM
// was never entered.
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

// ---- Stat and list ---------------------------------------------------------------------

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

int sup_file_stat(const char *path, bool *is_dir, uint64_t *size_bytes) {
  stat_args_t a = {.path = path};
  int rc = vfs_call(do_stat, &a);
  if (rc == 0) {
    *is_dir = a.is_dir;
    *size_bytes = a.size;
  }
  return rc;
}

// One entry of an ilistdir() iteration: (name, type, inode[, size]).
static void entry_of(mp_obj_t item, sup_file_entry_t *e) {
  size_t n;
  mp_obj_t *fields;
  mp_obj_tuple_get(item, &n, &fields);
  memset(e, 0, sizeof(*e));
  snprintf(e->name, sizeof(e->name), "%s", mp_obj_str_get_str(fields[0]));
  e->is_dir = (mp_obj_get_int(fields[1]) & STAT_MODE_DIR) != 0;
  e->size_bytes = !e->is_dir && n > 3 ? (uint64_t)mp_obj_get_int(fields[3]) : 0;
}

typedef struct {
  const char *dir;
  sup_file_entry_t *out;
  size_t max, count;
  bool truncated;
} list_args_t;

// Keeps the `max` smallest names, sorted: inserts e in place, dropping the
// largest when full.
static void list_insert(list_args_t *a, const sup_file_entry_t *e) {
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
    sup_file_entry_t e;
    entry_of(item, &e);
    list_insert(a, &e);
  }
}

int sup_file_list(const char *dir, sup_file_entry_t *out, size_t max, size_t *count, bool *truncated) {
  list_args_t a = {.dir = dir, .out = out, .max = max};
  bool is_dir = false;
  uint64_t size;
  int rc = sup_file_stat(dir, &is_dir, &size);
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
  char dir[SUP_FILE_PATH_MAX + 1];
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

int sup_file_create(const char *path) {
  write_args_t a = {.path = path};
  int rc = vfs_call(do_create, &a);
  return rc ? rc : a.rc;
}

int sup_file_append(const char *path, const void *data, size_t len) {
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

int sup_file_read(const char *path, uint64_t offset, void *buf, size_t cap, size_t *got) {
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

int sup_file_rename(const char *from, const char *to) {
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

int sup_file_remove(const char *path) {
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

int sup_file_usage(uint64_t *total_bytes, uint64_t *used_bytes) {
  usage_args_t a = {0};
  int rc = vfs_call(do_usage, &a);
  *total_bytes = a.total;
  *used_bytes = a.used;
  return rc;
}

// ---- Partial files ---------------------------------------------------------------------

static atomic_uint partial_seq;  // numbers the partial names of this process

int sup_file_partial_name(const char *path, char *out, size_t cap) {
  unsigned seq = atomic_fetch_add(&partial_seq, 1);
  int n = snprintf(out, cap, "%s%s%08x", path, SUP_FILE_PARTIAL_MARK, seq);
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static bool is_hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool sup_file_is_partial(const char *name) {
  size_t len = strlen(name);
  size_t mark_len = sizeof(SUP_FILE_PARTIAL_MARK) - 1;
  if (len < SUP_FILE_PARTIAL_SUFFIX_LEN) return false;
  const char *suffix = name + len - SUP_FILE_PARTIAL_SUFFIX_LEN;
  if (memcmp(suffix, SUP_FILE_PARTIAL_MARK, mark_len) != 0) return false;
  for (const char *c = suffix + mark_len; *c; c++) {
    if (!is_hex_digit(*c)) return false;
  }
  return true;
}

typedef struct {
  char paths[SWEEP_BATCH][SUP_FILE_PATH_MAX + 1];
  uint64_t sizes[SWEEP_BATCH];
  size_t found;
} sweep_args_t;

// Collects the partial files under dir (a path of len bytes in a buffer of
// SUP_FILE_PATH_MAX + 1) into a, depth first, until the batch is full.
// Directories whose paths do not fit the buffer cannot hold a partial file
// the control channel made (its paths fit), so they are not entered.
static void sweep_collect(char *dir, size_t len, sweep_args_t *a) {
  mp_obj_t dir_obj = str_of(dir[0] ? dir : "/");
  mp_obj_t iter = mp_vfs_ilistdir(1, &dir_obj);
  for (mp_obj_t item; a->found < SWEEP_BATCH && (item = mp_iternext(iter)) != MP_OBJ_STOP_ITERATION;) {
    sup_file_entry_t e;
    entry_of(item, &e);
    size_t name_len = strlen(e.name);
    if (len + 1 + name_len > SUP_FILE_PATH_MAX) continue;
    dir[len] = '/';
    memcpy(dir + len + 1, e.name, name_len + 1);
    if (e.is_dir) {
      sweep_collect(dir, len + 1 + name_len, a);
    } else if (sup_file_is_partial(e.name)) {
      memcpy(a->paths[a->found], dir, len + 1 + name_len + 1);
      a->sizes[a->found++] = e.size_bytes;
    }
    dir[len] = '\0';
  }
}

static void do_sweep(void *arg) {
  sweep_args_t *a = arg;
  char dir[SUP_FILE_PATH_MAX + 1] = "";
  a->found = 0;
  sweep_collect(dir, 0, a);
}

int sup_file_remove_partials(size_t *removed, uint64_t *removed_bytes) {
  static sweep_args_t sweep;  // ~2.4 KB, used once at boot: not on the stack
  *removed = 0;
  *removed_bytes = 0;
  for (int walk = 0; walk < SWEEP_MAX_WALKS; walk++) {
    int rc = vfs_call(do_sweep, &sweep);
    if (rc != 0) return rc;
    for (size_t i = 0; i < sweep.found; i++) {
      rc = sup_file_remove(sweep.paths[i]);
      if (rc != 0) return rc;
      (*removed)++;
      *removed_bytes += sweep.sizes[i];
    }
    if (sweep.found < SWEEP_BATCH) return 0;
  }
  return 0;
}

// ---- Scripts ---------------------------------------------------------------------------

int sup_file_load_script(const char *path, char **source, size_t *len) {
  bool is_dir = false;
  uint64_t size = 0;
  int rc = sup_file_stat(path, &is_dir, &size);
  if (rc != 0) return rc;
  if (is_dir) return -EISDIR;
  if (size > SUP_SCRIPT_MAX) return -EFBIG;
  char *buf = malloc((size_t)size + 1);
  if (!buf) return -ENOMEM;
  size_t got = 0;
  while (got < size) {
    size_t n = 0;
    rc = sup_file_read(path, got, buf + got, (size_t)size - got, &n);
    if (rc != 0 || n == 0) break;
    got += n;
  }
  if (rc != 0) {
    free(buf);
    return rc;
  }
  buf[got] = '\0';
  *source = buf;
  *len = got;
  return 0;
}

typedef struct {
  const char *name, *source;
  size_t len;
  char *message;  // the SyntaxError, if any
  size_t cap;
} syntax_check_t;

static void syntax_check_run(void *ctx) {
  syntax_check_t *c = ctx;
  nlr_buf_t nlr;
  if (nlr_push(&nlr) == 0) {
    qstr file = qstr_from_str(c->name);
    mp_lexer_t *lex = mp_lexer_new_from_str_len(file, c->source, c->len, 0);
    mp_parse_tree_t tree = mp_parse(lex, MP_PARSE_FILE_INPUT);
    mp_compile(&tree, file, false);
    nlr_pop();
    return;
  }
  mp_obj_t exc = MP_OBJ_FROM_PTR(nlr.ret_val);
  // Only a SyntaxError is the script's fault; a full heap shows when it runs.
  if (!mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(mp_obj_get_type(exc)), MP_OBJ_FROM_PTR(&mp_type_SyntaxError)))
    return;
  rt_text_t text;
  mp_print_t print = rt_text_printer(&text, c->message, c->cap);
  mp_obj_print_helper(&print, exc, PRINT_EXC);
  size_t n = 0, *values = NULL;
  mp_obj_exception_get_traceback(exc, &n, &values);
  if (n >= 3) mp_printf(&print, " (%s, line %u)", qstr_str((qstr)values[0]), (unsigned)values[1]);
}

int sup_file_check_syntax(const char *name, const char *source, size_t len, char *message, size_t cap) {
  if (cap == 0) return -EINVAL;
  message[0] = '\0';
  syntax_check_t c = {name, source, len, message, cap};
  if (!sup_vm_run(syntax_check_run, &c, message, cap)) return -EBUSY;
  return message[0] == '\0' ? 0 : -EINVAL;
}
