// Programs: a script started on the board, the threads it spawns, and their
// output, captured in a ring buffer tagged by thread.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/supervisor/spawn.h"
#include "py/compile.h"
#include "py/runtime.h"

// Malloc'd, not in the GC heap: it is made outside the VM.
typedef struct {
  sup_spawn_t spawn;
  char *source;
  size_t source_len;
  char *file;  // name shown in tracebacks
  size_t argc;
  char **argv;
} program_start_t;

static void program_start_free(program_start_t *ps) {
  for (size_t i = 0; i < ps->argc; i++) free(ps->argv[i]);
  free(ps->argv);
  free(ps->source);
  free(ps->file);
  free(ps);
}

sup_program_t *sup_program_rec(uint32_t id) {
  for (size_t i = 0; i < SUP_MAX_PROGRAMS; i++) {
    if (sup.programs[i].in_use && sup.programs[i].info.id == id) return &sup.programs[i];
  }
  return NULL;
}

void sup_programs_clear(void) {
  for (size_t i = 0; i < SUP_MAX_PROGRAMS; i++) {
    free(sup.programs[i].data);
    memset(&sup.programs[i], 0, sizeof(sup.programs[i]));
  }
}

// A free slot, or the oldest ended program's. REQUIRES: sched lock.
static sup_program_t *program_alloc(void) {
  sup_program_t *oldest = NULL;
  for (size_t i = 0; i < SUP_MAX_PROGRAMS; i++) {
    sup_program_t *p = &sup.programs[i];
    if (!p->in_use) return p;
    if (p->info.state != SUP_PROGRAM_RUNNING && (!oldest || p->info.id < oldest->info.id)) oldest = p;
  }
  return oldest;
}

void sup_program_thread_started(uint32_t program_id, uint32_t thread_id) {
  sup_program_t *p = sup_program_rec(program_id);
  if (!p) return;
  if (p->info.main_thread_id == 0) p->info.main_thread_id = thread_id;  // the first is the main
  p->info.threads_started++;
  p->info.threads_live++;
}

bool sup_program_thread_ended(uint32_t program_id, uint32_t thread_id, sup_thread_state_t state,
                              int exit_code) {
  sup_program_t *p = sup_program_rec(program_id);
  if (!p) return false;
  if (thread_id == p->info.main_thread_id) {
    // A killed main thread has no exit code of its own: report 1, like a
    // failure.
    p->info.exit_code = state == SUP_THREAD_KILLED && exit_code == 0 ? 1 : exit_code;
    p->main_outcome = state;
  }
  if (--p->info.threads_live > 0) {
    pthread_cond_broadcast(&sup.changed);
    return false;
  }
  // The program ends with its last thread; its state says how the main did.
  p->info.state = p->main_outcome == SUP_THREAD_KILLED   ? SUP_PROGRAM_KILLED
                  : p->main_outcome == SUP_THREAD_FAILED ? SUP_PROGRAM_FAILED
                                                         : SUP_PROGRAM_FINISHED;
  p->info.end_us = sup_uptime_us(rt_now_ns());
  static const char *const names[] = {"", "running", "finished", "failed", "killed"};
  sup_event_emit(SUP_EVENT_PROGRAM_ENDED, thread_id, program_id, NULL, 0, "program %u (%s) %s, exit code %d",
                 program_id, p->info.name, names[p->info.state], p->info.exit_code);
  pthread_cond_broadcast(&sup.changed);
  return true;
}

// ---- The main thread -------------------------------------------------------------

static void set_argv(const program_start_t *ps) {
  mp_obj_list_t *argv = MP_OBJ_TO_PTR(mp_sys_argv);
  argv->len = 0;
  for (size_t i = 0; i < ps->argc; i++) {
    mp_obj_list_append(mp_sys_argv, mp_obj_new_str(ps->argv[i], strlen(ps->argv[i])));
  }
}

static void program_run(rt_thread_t *self, void *arg) {
  program_start_t *ps = arg;
  // Every program gets its own globals, like a fresh `__main__`.
  mp_obj_dict_t *globals = mp_obj_new_dict(4);
  mp_obj_dict_store(MP_OBJ_FROM_PTR(globals), MP_OBJ_NEW_QSTR(MP_QSTR___name__),
                    MP_OBJ_NEW_QSTR(MP_QSTR___main__));
  mp_obj_dict_store(MP_OBJ_FROM_PTR(globals), MP_OBJ_NEW_QSTR(MP_QSTR___file__),
                    mp_obj_new_str(ps->file, strlen(ps->file)));
  mp_globals_set(globals);
  mp_locals_set(globals);
  int exit_code = 0;
  sup_thread_state_t outcome = SUP_THREAD_FINISHED;
  if (!sup_thread_prepare(self)) {
    outcome = SUP_THREAD_KILLED;
  } else {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
      set_argv(ps);
      qstr file = qstr_from_str(ps->file);
      mp_lexer_t *lex = mp_lexer_new_from_str_len(file, ps->source, ps->source_len, 0);
      mp_parse_tree_t tree = mp_parse(lex, MP_PARSE_FILE_INPUT);
      mp_obj_t module = mp_compile(&tree, file, false);
      mp_call_function_0(module);
      nlr_pop();
    } else {
      outcome = sup_thread_outcome(self, MP_OBJ_FROM_PTR(nlr.ret_val), MP_OBJ_NULL, &exit_code);
    }
  }
  program_start_free(ps);
  sup_spawn_finish(self, outcome, exit_code);
}

static void program_unwound(rt_thread_t *self, void *arg) {
  program_start_free(arg);
  sup_spawn_unwound(self, NULL);
}

static const rt_thread_ops_t program_ops = {
    .created = sup_spawn_created,
    .run = program_run,
    .unwound = program_unwound,
    .exiting = sup_spawn_exiting,
};

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static program_start_t *program_start_new(const sup_program_spec_t *spec) {
  program_start_t *ps = calloc(1, sizeof(*ps));
  if (!ps) return NULL;
  const char *name = spec->name && spec->name[0] ? spec->name : "<program>";
  ps->file = dup_n(name, strlen(name));
  ps->source = dup_n(spec->source, spec->source_len);
  ps->source_len = spec->source_len;
  ps->argv = calloc(spec->argc + 1, sizeof(char *));
  bool ok = ps->file && ps->source && ps->argv;
  for (size_t i = 0; ok && i < spec->argc; i++) {
    ps->argv[i] = dup_n(spec->argv[i], strlen(spec->argv[i]));
    ok = ps->argv[i] != NULL;
    ps->argc = i + 1;
  }
  snprintf(ps->spawn.name, sizeof(ps->spawn.name), "main");
  if (!ok) {
    program_start_free(ps);
    return NULL;
  }
  return ps;
}

int sup_program_start(const sup_program_spec_t *spec, uint32_t *program_id, uint32_t *main_thread_id,
                      char *err, size_t err_len) {
  program_start_t *ps = program_start_new(spec);
  char *ring = malloc(sup.config.output_buffer_bytes);
  if (!ps || !ring) {
    if (ps) program_start_free(ps);
    free(ring);
    snprintf(err, err_len, "out of memory for the program");
    return -ENOMEM;
  }
  rt_sched_lock();
  sup_program_t *p = program_alloc();
  if (!p) {
    rt_sched_unlock();
    program_start_free(ps);
    free(ring);
    snprintf(err, err_len, "too many programs running (limit %d)", SUP_MAX_PROGRAMS);
    return -ENOSPC;
  }
  free(p->data);
  memset(p, 0, sizeof(*p));
  p->in_use = true;
  p->data = ring;
  p->capacity = sup.config.output_buffer_bytes;
  p->info.id = sup.next_program_id++;
  p->info.state = SUP_PROGRAM_RUNNING;
  p->info.start_us = sup_uptime_us(rt_now_ns());
  snprintf(p->info.name, sizeof(p->info.name), "%s", ps->file);
  ps->spawn.program_id = p->info.id;
  uint32_t id = p->info.id;
  rt_sched_unlock();

  int rc = 0;
  size_t stack =
      SUP_MAIN_THREAD_STACK < sup.config.max_stack_bytes ? SUP_MAIN_THREAD_STACK : sup.config.max_stack_bytes;
  uint32_t tid = rt_thread_create(&program_ops, ps, stack, &rc);
  rt_sched_lock();
  if (tid == 0) {
    p->in_use = false;
    rt_sched_unlock();
    program_start_free(ps);
    if (rc == EAGAIN) {
      snprintf(err, err_len, "can't start program: board limit of %zu threads reached", rt_threads_limit());
      return -EAGAIN;
    }
    snprintf(err, err_len, "can't start program: out of memory for its stack");
    return -ENOMEM;
  }
  rt_sched_unlock();
  *program_id = id;
  *main_thread_id = tid;
  return 0;
}

int sup_program_wait(uint32_t program_id, int64_t timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? -1 : rt_now_ns() + timeout_ms * 1000000;
  rt_sched_lock();
  int rc = 0;
  for (;;) {
    sup_program_t *p = sup_program_rec(program_id);
    if (!p) {
      rc = -ENOENT;
      break;
    }
    if (p->info.state != SUP_PROGRAM_RUNNING) break;
    if (deadline >= 0 && rt_now_ns() >= deadline) {
      rc = -ETIMEDOUT;
      break;
    }
    rt_sched_wait_until(&sup.changed, rt_now_ns() + 50 * 1000000);  // re-check periodically
  }
  rt_sched_unlock();
  return rc;
}

bool sup_program_get(uint32_t program_id, sup_program_info_t *out) {
  rt_sched_lock();
  sup_program_t *p = sup_program_rec(program_id);
  if (p) *out = p->info;
  rt_sched_unlock();
  return p != NULL;
}

size_t sup_programs_list(sup_program_info_t *out, size_t max) {
  size_t n = 0;
  rt_sched_lock();
  for (size_t i = 0; i < SUP_MAX_PROGRAMS && n < max; i++) {
    if (sup.programs[i].in_use) out[n++] = sup.programs[i].info;
  }
  rt_sched_unlock();
  return n;
}

// ---- Output ------------------------------------------------------------------------

void sup_set_output_observer(sup_output_observer_t fn, void *ctx) {
  rt_sched_lock();
  sup.observer = fn;
  sup.observer_ctx = ctx;
  rt_sched_unlock();
}

static void ring_append(sup_program_t *p, uint32_t thread_id, int stream, const char *data, size_t len) {
  sup_chunk_t *last = p->chunk_head ? &p->chunks[(p->chunk_head - 1) % SUP_OUTPUT_CHUNKS] : NULL;
  if (last && last->thread_id == thread_id && last->stream == stream &&
      last->offset + last->len == p->written && last->len + len < UINT32_MAX) {
    last->len += (uint32_t)len;
  } else {
    p->chunks[p->chunk_head % SUP_OUTPUT_CHUNKS] = (sup_chunk_t){
        .offset = p->written, .len = (uint32_t)len, .thread_id = thread_id, .stream = (uint8_t)stream};
    p->chunk_head++;
  }
  // Only the newest `capacity` bytes stay.
  size_t skip = len > p->capacity ? len - p->capacity : 0;
  for (size_t i = skip; i < len; i++) p->data[(p->written + i) % p->capacity] = data[i];
  p->written += len;
  p->info.output_bytes = p->written;
}

void sup_output_capture(int stream, const char *data, size_t len) {
  rt_sched_lock();
  sup_thread_t *t = sup_thread_of(rt_self());
  uint32_t thread_id = t ? t->id : 0;
  uint32_t program_id = t ? t->program_id : 0;
  sup_program_t *p = program_id ? sup_program_rec(program_id) : NULL;
  if (t) t->output_bytes += len;
  if (p) ring_append(p, thread_id, stream, data, len);
  sup_output_observer_t observer = sup.observer;
  void *ctx = sup.observer_ctx;
  rt_sched_unlock();
  if (observer) observer(program_id, thread_id, stream, data, len, ctx);
}

int sup_output_read(uint32_t program_id, uint64_t offset, sup_output_chunk_t *chunks, size_t max_chunks,
                    char *buf, size_t buf_len, uint64_t *first_kept) {
  rt_sched_lock();
  sup_program_t *p = sup_program_rec(program_id);
  if (!p) {
    rt_sched_unlock();
    return -ENOENT;
  }
  uint64_t kept_from = p->written > p->capacity ? p->written - p->capacity : 0;
  uint64_t oldest_chunk = p->chunk_head > SUP_OUTPUT_CHUNKS ? p->chunk_head - SUP_OUTPUT_CHUNKS : 0;
  if (p->chunk_head > oldest_chunk) {
    const sup_chunk_t *c = &p->chunks[oldest_chunk % SUP_OUTPUT_CHUNKS];
    if (c->offset > kept_from) kept_from = c->offset;
  }
  *first_kept = kept_from;
  if (offset < kept_from) offset = kept_from;
  size_t n = 0, used = 0;
  for (uint64_t i = oldest_chunk; i < p->chunk_head && n < max_chunks && used < buf_len; i++) {
    const sup_chunk_t *c = &p->chunks[i % SUP_OUTPUT_CHUNKS];
    uint64_t end = c->offset + c->len;
    if (end <= offset) continue;
    uint64_t from = c->offset > offset ? c->offset : offset;
    size_t len = (size_t)(end - from);
    if (len > buf_len - used) len = buf_len - used;
    for (size_t k = 0; k < len; k++) buf[used + k] = p->data[(from + k) % p->capacity];
    chunks[n++] = (sup_output_chunk_t){
        .offset = from, .thread_id = c->thread_id, .stream = c->stream, .data = buf + used, .len = len};
    used += len;
  }
  rt_sched_unlock();
  return (int)n;
}
