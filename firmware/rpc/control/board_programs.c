// BoardControl's program and thread RPCs: StartProgram, StartThread,
// KillThread, KillProgram, ListThreads, Exec. Domain work (checking a
// script's syntax, loading it from flash, choosing records) sits in plain
// functions at the top; the handlers below adapt protobuf to them and to the
// supervisor. Handlers that wait for the board (a kill, a snippet) poll.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/rpc/control/board_internal.h"
#include "firmware/rpc/control/board_literal.h"

// How long StartThread waits for the module import to tell NOT_FOUND.
#define START_THREAD_IMPORT_WAIT_MS 2000
// Exec's deadline when the call has none.
#define EXEC_DEFAULT_DEADLINE_MS 10000
// Largest number of output chunks read at once.
#define OUTPUT_CHUNKS 64
// KillThread/KillProgram wait past two grace periods (soft, then hard kill;
// the supervisor marks survivors unkillable after the second) by this much.
#define KILL_WAIT_SLACK_MS 100
// A kill answers this long before the call's deadline at the latest.
#define KILL_ANSWER_MARGIN_MS 20
// A killed thread usually ends within a few ms (woken, unwound at once): for
// this long a kill is looked at every millisecond, then every BOARD_POLL_MS.
// (A busy host made 1 kill in 100 wait the whole 10 ms step.)
#define KILL_FAST_POLL_MS 20

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

// ---- Records: which threads and programs a message carries ------------------------------

void board_fill_records(board_scratch_t *s, uint32_t program_id, bool include_ended,
                        BOARD_PB(ThreadInfo) * threads, pb_size_t *thread_count, size_t max_threads,
                        BOARD_PB(ProgramInfo) * programs, pb_size_t *program_count, size_t max_programs) {
  size_t m = sup_programs_list(s->programs, COUNT_OF(s->programs));
  size_t kept = 0;
  for (size_t i = 0; i < m; i++) {
    bool wanted = (program_id == 0 || s->programs[i].id == program_id) &&
                  (include_ended || s->programs[i].state == SUP_PROGRAM_RUNNING);
    if (wanted) s->programs[kept++] = s->programs[i];
  }
  m = board_pick_programs(s->programs, kept, max_programs);
  // Every program lists its threads, ended ones too.
  size_t n = sup_threads_list(s->threads, COUNT_OF(s->threads), program_id, true);
  uint32_t ids[32];
  for (size_t i = 0; i < m; i++) {
    size_t count = board_pick_program_threads(s->threads, n, &s->programs[i], ids, COUNT_OF(ids));
    board_pb_program(&s->programs[i], ids, count, &programs[i]);
  }
  *program_count = (pb_size_t)m;

  // The thread list proper is the same records (one CPU clock read and stack
  // scan per thread and message), without the ended ones if so asked.
  if (!include_ended) n = board_keep_live_threads(s->threads, n);
  n = board_pick_threads(s->threads, n, max_threads);
  for (size_t i = 0; i < n; i++) board_pb_thread(&s->threads[i], &threads[i]);
  *thread_count = (pb_size_t)n;
}

// ---- StartProgram ----------------------------------------------------------------------------

static void start_failed(rpc_call_t *call, int rc, const char *err) {
  board_finish(
      call,
      rc == -EAGAIN || rc == -ENOMEM || rc == -ENOSPC ? RPC_STATUS_RESOURCE_EXHAUSTED : RPC_STATUS_INTERNAL,
      "%s", err);
}

static void start_program(rpc_call_t *call, board_scratch_t *s) {
  BOARD_PB(StartProgramRequest) *req = &s->msg.start_program;
  const char *source = NULL;
  char *loaded = NULL;
  size_t len = 0;
  const char *name = req->name;
  if (req->which_code == BOARD_PB(StartProgramRequest_path_tag)) {
    const char *path = req->code.path;
    char why[BOARD_WHY_MAX];
    if (!board_path_ok(path, false, why, sizeof(why))) {
      board_finish(call, RPC_STATUS_INVALID_ARGUMENT, "%s", why);
      return;
    }
    int rc = sup_file_load_script(path, &loaded, &len);
    if (rc == -ENOENT || rc == -EISDIR) {
      board_finish(call, RPC_STATUS_NOT_FOUND, "script %s not found", path);
      return;
    }
    if (rc == -EFBIG) {
      board_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "script %s is larger than the board's %d-byte limit",
                   path, SUP_SCRIPT_MAX);
      return;
    }
    if (rc != 0) {
      char what[BOARD_PATH_MAX + 16];
      snprintf(what, sizeof(what), "script %s", path);
      board_flash_failed(call, rc, what);
      return;
    }
    source = loaded;
    if (!name[0]) name = base_name(path);
  } else if (req->which_code == BOARD_PB(StartProgramRequest_source_tag)) {
    source = req->code.source;
    len = strlen(source);
    if (!name[0]) name = "inline";
  } else {
    board_finish(call, RPC_STATUS_INVALID_ARGUMENT, "StartProgram needs a path or a source");
    return;
  }

  char message[SUP_EXC_MAX];
  int syntax = sup_file_check_syntax(name, source, len, message, sizeof(message));
  if (syntax != 0) {
    free(loaded);
    board_finish(call, syntax == -EBUSY ? RPC_STATUS_UNAVAILABLE : RPC_STATUS_INVALID_ARGUMENT, "%s",
                 message);
    return;
  }
  const char *argv[1 + COUNT_OF(req->args)];
  argv[0] = name;
  for (size_t i = 0; i < req->args_count; i++) argv[1 + i] = req->args[i];
  sup_program_spec_t spec = {
      .name = name, .source = source, .source_len = len, .argv = argv, .argc = 1 + req->args_count};
  uint32_t program_id = 0, thread_id = 0;
  char err[128];
  int rc = sup_program_start(&spec, &program_id, &thread_id, err, sizeof(err));
  free(loaded);
  if (rc != 0) {
    start_failed(call, rc, err);
    return;
  }
  BOARD_PB(StartProgramResponse) resp = {.program_id = program_id, .main_thread_id = thread_id};
  if (board_send(call, s, BOARD_PB(StartProgramResponse_fields), &resp))
    rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

void board_start_program(rpc_call_t *call, const uint8_t *msg, size_t len) {
  board_scratch_t *s = board_scratch_take();
  if (board_decode(call, msg, len, BOARD_PB(StartProgramRequest_fields), &s->msg.start_program))
    start_program(call, s);
  board_scratch_give(s);
}

// ---- StartThread -----------------------------------------------------------------------------

typedef struct {
  uint32_t program_id, thread_id;
  char function[SUP_NAME_MAX + 1];
  int64_t import_deadline_ns;
} start_thread_state_t;

static bool start_thread_args_ok(rpc_call_t *call, const BOARD_PB(StartThreadRequest) * req) {
  if (!board_module_name_ok(req->module)) {
    board_finish(call, RPC_STATUS_INVALID_ARGUMENT, "'%s' is not a module name (e.g. 'app.sensors')",
                 req->module);
    return false;
  }
  if (!board_identifier_ok(req->function)) {
    board_finish(call, RPC_STATUS_INVALID_ARGUMENT, "'%s' is not a function name", req->function);
    return false;
  }
  for (size_t i = 0; i < req->args_count; i++) {
    if (board_literal_ok(req->args[i])) continue;
    board_finish(call, RPC_STATUS_INVALID_ARGUMENT,
                 "argument %zu (%s) is not a Python literal: use a number, a string, True, False, None, "
                 "or a tuple, list or dict of those",
                 i + 1, req->args[i]);
    return false;
  }
  return true;
}

static void start_thread(rpc_call_t *call, board_scratch_t *s) {
  const BOARD_PB(StartThreadRequest) *req = &s->msg.start_thread;
  if (!start_thread_args_ok(call, req)) return;
  const char *args[COUNT_OF(req->args)];
  for (size_t i = 0; i < req->args_count; i++) args[i] = req->args[i];
  char source[2048];
  int len = board_thread_source(source, sizeof(source), req->module, req->function, args, req->args_count);
  if (len < 0) {
    board_finish(call, RPC_STATUS_INVALID_ARGUMENT, "the call to %s.%s is too long", req->module,
                 req->function);
    return;
  }
  char name[SUP_PATH_MAX];
  snprintf(name, sizeof(name), "%s.%s", req->module, req->function);
  const char *argv[] = {name};
  sup_program_spec_t spec = {
      .name = name, .source = source, .source_len = (size_t)len, .argv = argv, .argc = 1};
  start_thread_state_t *st = calloc(1, sizeof(*st));
  if (!st) {
    board_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the call");
    return;
  }
  char err[128];
  int rc = sup_program_start(&spec, &st->program_id, &st->thread_id, err, sizeof(err));
  if (rc != 0) {
    free(st);
    start_failed(call, rc, err);
    return;
  }
  snprintf(st->function, sizeof(st->function), "%s", req->function);
  st->import_deadline_ns = board_now_ns() + (int64_t)START_THREAD_IMPORT_WAIT_MS * 1000000;
  rpc_call_set_user(call, st);
  rpc_call_poll_in(call, 1);
}

void board_start_thread_message(rpc_call_t *call, const uint8_t *msg, size_t len) {
  board_scratch_t *s = board_scratch_take();
  if (board_decode(call, msg, len, BOARD_PB(StartThreadRequest_fields), &s->msg.start_thread))
    start_thread(call, s);
  board_scratch_give(s);
}

// Answers once the import is done (the thread took the function's name) or
// failed: an ImportError is NOT_FOUND. Any other outcome, or an import still
// running at the deadline, answers with the ids (the record tells the rest).
void board_start_thread_poll(rpc_call_t *call) {
  start_thread_state_t *st = rpc_call_user(call);
  if (!st) return;
  sup_thread_info_t info;
  bool known = sup_thread_get(st->thread_id, &info);
  bool imported = known && strcmp(info.name, st->function) == 0;
  bool ended = known && info.state > SUP_THREAD_WAITING_LOCK;
  if (ended && !imported && strncmp(info.exception, "ImportError", 11) == 0) {
    board_finish(call, RPC_STATUS_NOT_FOUND, "%s", info.exception);
    return;
  }
  if (!imported && !ended && known && board_now_ns() < st->import_deadline_ns) {
    rpc_call_poll_in(call, 2);
    return;
  }
  BOARD_PB(StartThreadResponse) resp = {.program_id = st->program_id, .thread_id = st->thread_id};
  board_scratch_t *s = board_scratch_take();
  bool sent = board_send(call, s, BOARD_PB(StartThreadResponse_fields), &resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

// ---- KillThread and KillProgram --------------------------------------------------------------

typedef struct {
  bool program;  // KillProgram (else KillThread)
  uint32_t id;
  int64_t started_ns, deadline_ns;
} kill_state_t;

static int64_t grace_of(uint32_t grace_ms) {
  return grace_ms ? (int64_t)grace_ms : board_config()->kill_grace_ms;
}

static void reply_thread(rpc_call_t *call, uint32_t thread_id) {
  board_scratch_t *s = board_scratch_take();
  BOARD_PB(KillThreadResponse) *resp = &s->msg.kill_thread;
  memset(resp, 0, sizeof(*resp));
  bool known = sup_thread_get(thread_id, &s->threads[0]);
  if (known) {
    resp->has_thread = true;
    board_pb_thread(&s->threads[0], &resp->thread);
  }
  bool sent = known && board_send(call, s, BOARD_PB(KillThreadResponse_fields), resp);
  board_scratch_give(s);
  if (!known)
    board_finish(call, RPC_STATUS_NOT_FOUND, "thread %u is no longer remembered", (unsigned)thread_id);
  else if (sent)
    rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

static void reply_program(rpc_call_t *call, uint32_t program_id) {
  board_scratch_t *s = board_scratch_take();
  BOARD_PB(KillProgramResponse) *resp = &s->msg.kill_program;
  memset(resp, 0, sizeof(*resp));
  sup_program_info_t program;
  bool known = sup_program_get(program_id, &program);
  bool sent = false;
  if (known) {
    size_t n = sup_threads_list(s->threads, COUNT_OF(s->threads), program_id, true);
    uint32_t ids[32];
    size_t count = board_pick_program_threads(s->threads, n, &program, ids, COUNT_OF(ids));
    resp->has_program = true;
    board_pb_program(&program, ids, count, &resp->program);
    for (size_t i = 0; i < n && resp->unkillable_thread_ids_count < COUNT_OF(resp->unkillable_thread_ids);
         i++) {
      if (s->threads[i].state <= SUP_THREAD_WAITING_LOCK)
        resp->unkillable_thread_ids[resp->unkillable_thread_ids_count++] = s->threads[i].id;
    }
    sent = board_send(call, s, BOARD_PB(KillProgramResponse_fields), resp);
  }
  board_scratch_give(s);
  if (!known)
    board_finish(call, RPC_STATUS_NOT_FOUND, "program %u is no longer remembered", (unsigned)program_id);
  else if (sent)
    rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

// False (the call finished INVALID_ARGUMENT) for a grace over the board's limit.
static bool grace_ok(rpc_call_t *call, uint32_t grace_ms) {
  if (grace_ms <= SUP_KILL_GRACE_MAX_MS) return true;
  board_finish(call, RPC_STATUS_INVALID_ARGUMENT, "grace_ms %u is over the board's limit of %d ms",
               (unsigned)grace_ms, SUP_KILL_GRACE_MAX_MS);
  return false;
}

static void kill_wait(rpc_call_t *call, bool program, uint32_t id, int64_t grace_ms) {
  kill_state_t *k = calloc(1, sizeof(*k));
  if (!k) {
    board_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the call");
    return;
  }
  k->program = program;
  k->id = id;
  k->started_ns = board_now_ns();
  k->deadline_ns = k->started_ns + (2 * grace_ms + KILL_WAIT_SLACK_MS) * 1000000;
  // Answer with the record as it is before the caller gives up: an answer
  // after its deadline reaches nobody. The kill goes on regardless.
  int64_t call_deadline = rpc_call_deadline_ns(call);
  int64_t answer_by = call_deadline - (int64_t)KILL_ANSWER_MARGIN_MS * 1000000;
  if (call_deadline >= 0 && answer_by < k->deadline_ns) k->deadline_ns = answer_by;
  rpc_call_set_user(call, k);
  rpc_call_poll_in(call, 1);
}

void board_kill_thread_message(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(KillThreadRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(KillThreadRequest_fields), &req) ||
      !grace_ok(call, req.grace_ms))
    return;
  int64_t grace_ms = grace_of(req.grace_ms);
  int rc = sup_thread_kill(req.thread_id, grace_ms);
  if (rc == -ENOENT) {
    board_finish(call, RPC_STATUS_NOT_FOUND, "thread %u not found", (unsigned)req.thread_id);
  } else if (rc == -ESRCH) {
    reply_thread(call, req.thread_id);  // already ended: its record, unchanged
  } else {
    kill_wait(call, false, req.thread_id, grace_ms);
  }
}

void board_kill_program_message(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(KillProgramRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(KillProgramRequest_fields), &req) ||
      !grace_ok(call, req.grace_ms))
    return;
  int64_t grace_ms = grace_of(req.grace_ms);
  sup_program_info_t program;
  if (!sup_program_get(req.program_id, &program) || sup_program_kill(req.program_id, grace_ms) != 0) {
    board_finish(call, RPC_STATUS_NOT_FOUND, "program %u not found", (unsigned)req.program_id);
  } else if (program.state != SUP_PROGRAM_RUNNING) {
    reply_program(call, req.program_id);
  } else {
    kill_wait(call, true, req.program_id, grace_ms);
  }
}

// Answers once the thread (or every thread of the program) has ended or is
// unkillable, or at the deadline.
void board_kill_poll(rpc_call_t *call) {
  kill_state_t *k = rpc_call_user(call);
  if (!k) return;
  bool settled = true;
  if (k->program) {
    sup_program_info_t program;
    settled = !sup_program_get(k->id, &program) || program.state != SUP_PROGRAM_RUNNING;
  } else {
    sup_thread_info_t info;
    settled = !sup_thread_get(k->id, &info) || info.state > SUP_THREAD_WAITING_LOCK || info.unkillable;
  }
  int64_t now = board_now_ns();
  if (!settled && now < k->deadline_ns) {
    rpc_call_poll_in(call, now - k->started_ns < KILL_FAST_POLL_MS * 1000000LL ? 1 : BOARD_POLL_MS);
    return;
  }
  if (k->program)
    reply_program(call, k->id);
  else
    reply_thread(call, k->id);
}

// ---- ListThreads -----------------------------------------------------------------------------

void board_list_threads(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(ListThreadsRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(ListThreadsRequest_fields), &req)) return;
  board_scratch_t *s = board_scratch_take();
  BOARD_PB(ListThreadsResponse) *resp = &s->msg.list_threads;
  memset(resp, 0, sizeof(*resp));
  board_fill_records(s, req.program_id, req.include_finished, resp->threads, &resp->threads_count,
                     COUNT_OF(resp->threads), resp->programs, &resp->programs_count,
                     COUNT_OF(resp->programs));
  bool sent = board_send(call, s, BOARD_PB(ListThreadsResponse_fields), resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

// ---- Exec ------------------------------------------------------------------------------------

typedef struct {
  uint32_t program_id, thread_id;
  int64_t deadline_ns;
  bool answered;  // the snippet ended and its result was sent
} exec_state_t;

#define EXEC_NAME "<exec>"

void board_exec_message(rpc_call_t *call, const uint8_t *msg, size_t len) {
  // A snippet is answered when it has run: while a thread is stuck in native
  // code it could only wait out the deadline.
  if (sup_vm_busy(NULL, 0)) {
    board_finish_vm_busy(call, "Exec");
    return;
  }
  exec_state_t *e = calloc(1, sizeof(*e));
  if (!e) {
    board_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the call");
    return;
  }
  board_scratch_t *s = board_scratch_take();
  BOARD_PB(ExecRequest) *req = &s->msg.exec_request;
  bool decoded = board_decode(call, msg, len, BOARD_PB(ExecRequest_fields), req);
  int rc = 0;
  char err[128] = "";
  if (decoded) {
    const char *argv[] = {EXEC_NAME};
    sup_program_spec_t spec = {
        .name = EXEC_NAME, .source = req->source, .source_len = strlen(req->source), .argv = argv, .argc = 1};
    rc = sup_program_start(&spec, &e->program_id, &e->thread_id, err, sizeof(err));
  }
  board_scratch_give(s);
  if (!decoded || rc != 0) {
    free(e);
    if (decoded) start_failed(call, rc, err);
    return;
  }
  int64_t deadline = rpc_call_deadline_ns(call);
  e->deadline_ns = deadline >= 0 ? deadline : board_now_ns() + (int64_t)EXEC_DEFAULT_DEADLINE_MS * 1000000;
  rpc_call_set_user(call, e);
  rpc_call_poll_in(call, 1);
}

// The snippet's output from its start, as much as fits; true if more was written.
static bool exec_output(uint32_t program_id, uint8_t *buf, size_t cap, size_t *used) {
  sup_output_chunk_t chunks[OUTPUT_CHUNKS];
  uint64_t offset = 0, first_kept = 0;
  *used = 0;
  while (*used < cap) {
    int n = sup_output_read(program_id, offset, chunks, OUTPUT_CHUNKS, (char *)buf + *used, cap - *used,
                            &first_kept);
    if (n <= 0) break;
    for (int i = 0; i < n; i++) *used += chunks[i].len;
    offset = chunks[n - 1].offset + chunks[n - 1].len;
  }
  sup_program_info_t program;
  return sup_program_get(program_id, &program) && program.output_bytes > *used;
}

static void exec_reply(rpc_call_t *call, exec_state_t *e) {
  board_scratch_t *s = board_scratch_take();
  BOARD_PB(ExecResponse) *resp = &s->msg.exec_response;
  memset(resp, 0, sizeof(*resp));
  size_t used = 0;
  resp->output_truncated = exec_output(e->program_id, resp->output.bytes, sizeof(resp->output.bytes), &used);
  resp->output.size = (pb_size_t)used;
  sup_thread_info_t *main_thread = &s->threads[0];
  if (sup_thread_get(e->thread_id, main_thread) && main_thread->exception[0]) {
    resp->has_exception = true;
    board_pb_exception(main_thread->exception, main_thread->traceback, &resp->exception);
  }
  e->answered = true;
  bool sent = board_send(call, s, BOARD_PB(ExecResponse_fields), resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

void board_exec_poll(rpc_call_t *call) {
  exec_state_t *e = rpc_call_user(call);
  if (!e) return;
  sup_program_info_t program;
  bool ended = !sup_program_get(e->program_id, &program) || program.state != SUP_PROGRAM_RUNNING;
  if (ended) {
    exec_reply(call, e);
    return;
  }
  int64_t now = board_now_ns();
  if (now >= e->deadline_ns) {
    sup_program_kill(e->program_id, -1);
    e->answered = true;
    board_finish(call, RPC_STATUS_DEADLINE_EXCEEDED,
                 "the snippet did not finish before the deadline; killed it");
    return;
  }
  int64_t left_ms = (e->deadline_ns - now) / 1000000;
  rpc_call_poll_in(call, left_ms < BOARD_POLL_MS ? (int)left_ms : BOARD_POLL_MS);
}

void board_exec_done(rpc_call_t *call) {
  exec_state_t *e = rpc_call_user(call);
  // Cancelled or disconnected while the snippet ran: nobody waits for it.
  if (e && !e->answered) sup_program_kill(e->program_id, -1);
  board_free_user(call);
}

void board_free_user(rpc_call_t *call) {
  free(rpc_call_user(call));
  rpc_call_set_user(call, NULL);
}
