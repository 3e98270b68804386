// What the BoardControl handler files share (internal to firmware/rpc/board_*.c):
// the scratch memory big messages are built in, request decoding, response
// sending, status helpers, and each file's handlers for board_service.c's
// method table.
#ifndef THREADFLEET_RPC_CONTROL_BOARD_INTERNAL_H
#define THREADFLEET_RPC_CONTROL_BOARD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "firmware/rpc/control/board_pb.h"
#include "firmware/rpc/control/board_service.h"
#include "firmware/rpc/transport/call.h"
#include "firmware/supervisor/files.h"
#include "firmware/supervisor/supervisor.h"
#include "pb_decode.h"
#include "pb_encode.h"

// Messages of up to ~50 KiB (a snapshot with 32 threads) do not belong on an
// I/O thread's stack, nor in a per-call allocation: they are built in one
// static scratch area, one handler at a time. A handler takes it for the
// length of one callback and gives it back before returning. on_done
// handlers never take it (the transport may call them from rpc_call_finish).
// ListFilesResponse.entries capacity (board.options).
#define BOARD_FILES_MAX 64
// Longest path a request may carry (board.options); every path field has it.
#define BOARD_PATH_MAX (sizeof(((BOARD_PB(ReadFileRequest) *)0)->path) - 1)

typedef struct {
  union {
    BOARD_PB(ListFilesResponse) list_files;
    BOARD_PB(StartProgramRequest) start_program;
    BOARD_PB(StartThreadRequest) start_thread;
    BOARD_PB(ListThreadsResponse) list_threads;
    BOARD_PB(WatchHealthResponse) watch_health;
    BOARD_PB(StreamOutputResponse) stream_output;
    BOARD_PB(ExecRequest) exec_request;
    BOARD_PB(ExecResponse) exec_response;
    BOARD_PB(KillThreadResponse) kill_thread;
    BOARD_PB(KillProgramResponse) kill_program;
    BOARD_PB(WriteFileRequest) write_file;
    BOARD_PB(ReadFileResponse) read_file;
    BOARD_PB(GetMachineResponse) get_machine;
  } msg;
  sup_thread_info_t threads[SUP_MAX_THREAD_RECORDS];
  sup_program_info_t programs[SUP_MAX_PROGRAMS];
  sup_file_entry_t entries[BOARD_FILES_MAX];  // ListFiles
  uint8_t out[RPC_MAX_MESSAGE];               // the encoded response
} board_scratch_t;

board_scratch_t *board_scratch_take(void);
void board_scratch_give(board_scratch_t *scratch);

// ---- Requests (board_request.c)

// Room for a refusal message (board_finish cuts at 256 bytes anyway).
#define BOARD_WHY_MAX 256

// Decodes a request into dst and checks what nanopb does not. Returns false
// with the reason in why:
//   "<field> is longer than N bytes" / "is larger than N bytes" / "has more
//   than N entries": a field over its board.options limit (the first one);
//   "<field> \"...\" contains a NUL byte": a string nanopb would cut short;
//   "malformed request: <nanopb's reason>": anything else.
bool board_decode_why(const uint8_t *msg, size_t len, const pb_msgdesc_t *fields, void *dst, char *why,
                      size_t why_len);
// The same, finishing the call with INVALID_ARGUMENT and the reason.
bool board_decode(rpc_call_t *call, const uint8_t *msg, size_t len, const pb_msgdesc_t *fields, void *dst);
// The name of a request field in messages ("path", "args"), or NULL.
const char *board_field_name(const pb_msgdesc_t *message, uint32_t tag);
// Writes len bytes of `in` to out quoted, C-escaped (\xNN for bytes outside
// printable ASCII) and cut with "..." to fit cap. Returns the length written.
size_t board_quote(const char *in, size_t len, char *out, size_t cap);

// True for an absolute path ("/a/b") without control characters, empty, "."
// or ".." components and without a trailing "/", at most BOARD_PATH_MAX
// bytes; "/" itself only when allow_root. Otherwise false with "bad path
// \"...\": <rule>" in why.
bool board_path_ok(const char *path, bool allow_root, char *why, size_t why_len);

// Encodes src into scratch->out and queues it. Returns rpc_call_send's
// answer (false: the queue is full, retry later); an encoding failure
// finishes the call with INTERNAL and returns false.
bool board_send(rpc_call_t *call, board_scratch_t *scratch, const pb_msgdesc_t *fields, const void *src);

// Finishes the call with a status and a printf-style message.
void board_finish(rpc_call_t *call, rpc_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Finishes a call that failed on the flash (a sup_file_* result) with the
// status and message its errno calls for; `what` names the thing
// ("file /a.py").
void board_flash_failed(rpc_call_t *call, int rc, const char *what);

// The status a flash or supervisor errno stands for (-ENOENT: NOT_FOUND, ...).
rpc_status_t board_status_of(int neg_errno);

// Finishes a call whose work needed the VM while it was busy (-EBUSY):
// UNAVAILABLE, "<what>: the VM is busy: thread 7 (match) has been in native
// code for 12.0 s".
void board_finish_vm_busy(rpc_call_t *call, const char *what);

// Monotonic clock, the same as rpc_call_deadline_ns's.
int64_t board_now_ns(void);

// The board's configuration (board_service_configure).
const sup_config_t *board_config(void);
void board_net_stats(board_net_stats_t *out);
// False (and *out untouched) when no listener reports channel figures.
bool board_channel_stats(board_channel_stats_t *out);

// Poll interval of handlers that wait for the board (kills, Exec, output).
#define BOARD_POLL_MS 10

// ---- Handlers, per file ------------------------------------------------------------

// board_files.c
void board_list_files(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_write_file_message(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_write_file_half_close(rpc_call_t *call);
void board_write_file_done(rpc_call_t *call);
void board_read_file_message(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_read_file_poll(rpc_call_t *call);
void board_read_file_done(rpc_call_t *call);
void board_delete_file(rpc_call_t *call, const uint8_t *msg, size_t len);

// board_programs.c
void board_start_program(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_start_thread_message(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_start_thread_poll(rpc_call_t *call);
void board_kill_thread_message(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_kill_program_message(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_kill_poll(rpc_call_t *call);
void board_list_threads(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_exec_message(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_exec_poll(rpc_call_t *call);
void board_exec_done(rpc_call_t *call);
// Fills a message's threads and programs (program_id 0: all): live ones
// first, then the most recently ended when include_ended, up to the maxima;
// each program with its thread ids. Uses s->threads and s->programs.
void board_fill_records(board_scratch_t *s, uint32_t program_id, bool include_ended,
                        BOARD_PB(ThreadInfo) * threads, pb_size_t *thread_count, size_t max_threads,
                        BOARD_PB(ProgramInfo) * programs, pb_size_t *program_count, size_t max_programs);
// Frees the call's user state (calloc'd by the handler); for on_done.
void board_free_user(rpc_call_t *call);

// board_health.c
void board_watch_health_message(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_watch_health_poll(rpc_call_t *call);

// board_output.c
void board_stream_output_message(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_stream_output_poll(rpc_call_t *call);

// board_machine.c
void board_get_machine(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_set_pin(rpc_call_t *call, const uint8_t *msg, size_t len);
void board_set_adc(rpc_call_t *call, const uint8_t *msg, size_t len);
// The simulated hardware as a snapshot carries it.
void board_fill_machine(BOARD_PB(MachineState) * out);

#endif  // THREADFLEET_RPC_CONTROL_BOARD_INTERNAL_H
