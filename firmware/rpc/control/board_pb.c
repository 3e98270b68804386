// Supervisor records to BoardControl messages (see board_pb.h).
#include "firmware/rpc/control/board_pb.h"

#include <stdlib.h>
#include <string.h>

// The supervisor's enums use the proto's numbers, so mapping is a cast.
_Static_assert((int)SUP_THREAD_RUNNING == threadfleet_board_v1_ThreadState_THREAD_STATE_RUNNING &&
                   (int)SUP_THREAD_KILLED == threadfleet_board_v1_ThreadState_THREAD_STATE_KILLED,
               "thread states");
_Static_assert((int)SUP_PROGRAM_RUNNING == threadfleet_board_v1_ProgramState_PROGRAM_STATE_RUNNING &&
                   (int)SUP_PROGRAM_KILLED == threadfleet_board_v1_ProgramState_PROGRAM_STATE_KILLED,
               "program states");
_Static_assert((int)SUP_EVENT_THREAD_STARTED == threadfleet_board_v1_EventKind_EVENT_KIND_THREAD_STARTED &&
                   (int)SUP_EVENT_RESET == threadfleet_board_v1_EventKind_EVENT_KIND_RESET &&
                   (int)SUP_EVENT_WATCHDOG_RESET ==
                       threadfleet_board_v1_EventKind_EVENT_KIND_WATCHDOG_RESET &&
                   (int)SUP_EVENT_MACHINE_RESET == threadfleet_board_v1_EventKind_EVENT_KIND_MACHINE_RESET &&
                   (int)SUP_EVENT_BOOT == threadfleet_board_v1_EventKind_EVENT_KIND_BOOT,
               "event kinds");

// Copies text into a fixed field, cut to fit (the field's limit is board.options').
static void copy_text(char *dst, size_t cap, const char *src) {
  size_t n = strnlen(src, cap - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}
#define COPY_TEXT(dst, src) copy_text((dst), sizeof(dst), (src))

void board_pb_exception(const char *exception, const char *traceback, BOARD_PB(ExceptionInfo) * out) {
  memset(out, 0, sizeof(*out));
  const char *colon = strstr(exception, ": ");
  if (colon) {
    size_t n = (size_t)(colon - exception);
    if (n >= sizeof(out->type)) n = sizeof(out->type) - 1;
    memcpy(out->type, exception, n);
    COPY_TEXT(out->message, colon + 2);
  } else {
    COPY_TEXT(out->type, exception);
  }
  COPY_TEXT(out->traceback, traceback);
}

void board_pb_thread(const sup_thread_info_t *in, BOARD_PB(ThreadInfo) * out) {
  memset(out, 0, sizeof(*out));
  out->id = in->id;
  COPY_TEXT(out->name, in->name);
  out->program_id = in->program_id;
  out->state = (BOARD_PB(ThreadState))in->state;
  out->unkillable = in->unkillable;
  out->start_time_us = (uint64_t)in->start_us;
  out->end_time_us = (uint64_t)in->end_us;
  out->cpu_time_us = (uint64_t)in->cpu_us;
  out->stack_size_bytes = in->stack_size;
  out->stack_used_bytes = in->stack_used;
  out->stack_peak_bytes = in->stack_peak;
  out->waiting_lock_id = in->state == SUP_THREAD_WAITING_LOCK ? in->waiting_lock_id : 0;
  out->wait_time_us = out->waiting_lock_id ? (uint64_t)in->wait_us : 0;
  out->output_bytes = in->output_bytes;
  out->native_time_us = (uint64_t)in->native_us;
  if (in->state == SUP_THREAD_FAILED) {
    out->has_exception = true;
    board_pb_exception(in->exception, in->traceback, &out->exception);
  }
}

void board_pb_program(const sup_program_info_t *in, const uint32_t *thread_ids, size_t thread_count,
                      BOARD_PB(ProgramInfo) * out) {
  memset(out, 0, sizeof(*out));
  out->id = in->id;
  COPY_TEXT(out->name, in->name);
  out->state = (BOARD_PB(ProgramState))in->state;
  out->main_thread_id = in->main_thread_id;
  size_t cap = sizeof(out->thread_ids) / sizeof(out->thread_ids[0]);
  out->thread_ids_count = (pb_size_t)(thread_count < cap ? thread_count : cap);
  memcpy(out->thread_ids, thread_ids, out->thread_ids_count * sizeof(uint32_t));
  out->start_time_us = (uint64_t)in->start_us;
  out->end_time_us = (uint64_t)in->end_us;
  out->output_bytes = in->output_bytes;
  out->exit_code = in->state == SUP_PROGRAM_RUNNING ? 0 : in->exit_code;
}

void board_pb_event(const sup_event_t *in, BOARD_PB(Event) * out) {
  memset(out, 0, sizeof(*out));
  out->time_us = (uint64_t)in->time_us;
  out->kind = (BOARD_PB(EventKind))in->kind;
  bool names_thread = in->kind != SUP_EVENT_DEADLOCK && in->kind != SUP_EVENT_PROGRAM_ENDED &&
                      in->kind != SUP_EVENT_RESET && in->kind != SUP_EVENT_WATCHDOG_RESET &&
                      in->kind != SUP_EVENT_MACHINE_RESET && in->kind != SUP_EVENT_BOOT;
  out->thread_id = names_thread ? in->thread_id : 0;
  out->program_id = in->program_id;
  COPY_TEXT(out->message, in->message);
  size_t cap = sizeof(out->cycle_thread_ids) / sizeof(out->cycle_thread_ids[0]);
  size_t n = in->cycle_len < cap ? in->cycle_len : cap;
  out->cycle_thread_ids_count = (pb_size_t)n;
  memcpy(out->cycle_thread_ids, in->cycle, n * sizeof(uint32_t));
}

void board_pb_chunk(const sup_output_chunk_t *in, BOARD_PB(OutputChunk) * out) {
  memset(out, 0, sizeof(*out));
  out->offset = in->offset;
  out->thread_id = in->thread_id;
  out->stream = in->stream == 2 ? threadfleet_board_v1_OutputStream_OUTPUT_STREAM_STDERR
                                : threadfleet_board_v1_OutputStream_OUTPUT_STREAM_STDOUT;
  size_t n = in->len < sizeof(out->data.bytes) ? in->len : sizeof(out->data.bytes);
  memcpy(out->data.bytes, in->data, n);
  out->data.size = (pb_size_t)n;
}

// ---- Choosing what fits ------------------------------------------------------------

static bool thread_live(const sup_thread_info_t *t) { return t->state <= SUP_THREAD_WAITING_LOCK; }

// Live first (by id), then ended, most recent first.
static int thread_priority(const void *a, const void *b) {
  const sup_thread_info_t *x = a, *y = b;
  if (thread_live(x) != thread_live(y)) return thread_live(x) ? -1 : 1;
  if (!thread_live(x) && x->end_us != y->end_us) return x->end_us > y->end_us ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int thread_by_id(const void *a, const void *b) {
  const sup_thread_info_t *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

size_t board_keep_live_threads(sup_thread_info_t *threads, size_t n) {
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    if (!thread_live(&threads[i])) continue;
    if (kept != i) threads[kept] = threads[i];
    kept++;
  }
  return kept;
}

size_t board_pick_threads(sup_thread_info_t *threads, size_t n, size_t max) {
  if (n <= max) return n;
  qsort(threads, n, sizeof(*threads), thread_priority);
  qsort(threads, max, sizeof(*threads), thread_by_id);
  return max;
}

static int program_priority(const void *a, const void *b) {
  const sup_program_info_t *x = a, *y = b;
  bool xr = x->state == SUP_PROGRAM_RUNNING, yr = y->state == SUP_PROGRAM_RUNNING;
  if (xr != yr) return xr ? -1 : 1;
  if (!xr && x->end_us != y->end_us) return x->end_us > y->end_us ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int program_by_id(const void *a, const void *b) {
  const sup_program_info_t *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

size_t board_pick_programs(sup_program_info_t *programs, size_t n, size_t max) {
  if (n > max) qsort(programs, n, sizeof(*programs), program_priority);
  size_t keep = n < max ? n : max;
  qsort(programs, keep, sizeof(*programs), program_by_id);
  return keep;
}

size_t board_pick_program_threads(const sup_thread_info_t *threads, size_t n,
                                  const sup_program_info_t *program, uint32_t *out, size_t max) {
  size_t count = 0;
  if (max == 0) return 0;
  if (program->main_thread_id) out[count++] = program->main_thread_id;
  // Others in id (= start) order; when they do not all fit, ended ones give
  // way from the oldest end on.
  size_t others = 0, live = 0;
  for (size_t i = 0; i < n; i++) {
    if (threads[i].program_id != program->id || threads[i].id == program->main_thread_id) continue;
    others++;
    live += thread_live(&threads[i]);
  }
  size_t room = max - count;
  size_t ended_room = room > live ? room - live : 0;
  size_t ended_total = others - live;
  size_t ended_skip = ended_total > ended_room ? ended_total - ended_room : 0;
  // The ended threads to skip are those with the oldest end: find the
  // ended_skip-th smallest end time by repeated selection (n is small).
  int64_t skip_before = INT64_MIN;
  for (size_t k = 0; k < ended_skip; k++) {
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
      const sup_thread_info_t *t = &threads[i];
      if (t->program_id == program->id && t->id != program->main_thread_id && !thread_live(t) &&
          t->end_us > skip_before && t->end_us < next)
        next = t->end_us;
    }
    skip_before = next;
  }
  for (size_t i = 0; i < n && count < max; i++) {
    const sup_thread_info_t *t = &threads[i];
    if (t->program_id != program->id || t->id == program->main_thread_id) continue;
    if (!thread_live(t) && ended_skip > 0 && t->end_us <= skip_before) continue;
    out[count++] = t->id;
  }
  return count;
}
