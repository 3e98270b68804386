// BoardControl v1: the method table, the board's configuration, the helpers
// every handler file shares (board_internal.h), and the two RPCs too small
// for a file of their own: GetInfo and Reset.
#include "firmware/rpc/control/board_service.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "firmware/rpc/control/board_internal.h"
#include "firmware/runtime/board_profile.h"
#include "firmware/storage/lfsdev.h"

// ---- Configuration ---------------------------------------------------------------------

static sup_config_t config;             // written once, before serving
static char board_name[SUP_NAME_MAX];   // config.board_name points here
static board_service_config_t service;  // net_stats hook
static bool configured;

void board_service_configure(const board_service_config_t *c) {
  config = c->board ? *c->board : sup_default_config();
  snprintf(board_name, sizeof(board_name), "%s", config.board_name ? config.board_name : "");
  config.board_name = board_name;
  service = *c;
  service.board = &config;
  configured = true;
}

const sup_config_t *board_config(void) {
  if (!configured) board_service_configure(&(board_service_config_t){0});
  return &config;
}

void board_net_stats(board_net_stats_t *out) {
  memset(out, 0, sizeof(*out));
  if (service.net_stats) service.net_stats(out, service.net_stats_ctx);
}

bool board_channel_stats(board_channel_stats_t *out) {
  if (!service.channel_stats) return false;
  memset(out, 0, sizeof(*out));
  service.channel_stats(out, service.channel_stats_ctx);
  return true;
}

// ---- Shared helpers ------------------------------------------------------------------------

static board_scratch_t scratch;
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;

board_scratch_t *board_scratch_take(void) {
  pthread_mutex_lock(&scratch_lock);
  return &scratch;
}

void board_scratch_give(board_scratch_t *s) {
  (void)s;
  pthread_mutex_unlock(&scratch_lock);
}

bool board_send(rpc_call_t *call, board_scratch_t *s, const pb_msgdesc_t *fields, const void *src) {
  pb_ostream_t out = pb_ostream_from_buffer(s->out, sizeof(s->out));
  if (!pb_encode(&out, fields, src)) {
    board_finish(call, RPC_STATUS_INTERNAL, "cannot encode the response: %s", PB_GET_ERROR(&out));
    return false;
  }
  return rpc_call_send(call, s->out, out.bytes_written);
}

void board_finish(rpc_call_t *call, rpc_status_t status, const char *fmt, ...) {
  char message[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof(message), fmt, ap);
  va_end(ap);
  rpc_call_finish(call, status, message[0] ? message : NULL);
}

rpc_status_t board_status_of(int neg_errno) {
  switch (-neg_errno) {
    case 0:
      return RPC_STATUS_OK;
    case ENOENT:
    case ESRCH:
      return RPC_STATUS_NOT_FOUND;
    case ENOSPC:
    case ENOMEM:
    case EAGAIN:
      return RPC_STATUS_RESOURCE_EXHAUSTED;
    case ENOTEMPTY:
    case ENOTDIR:
    case EISDIR:
    case EEXIST:
      return RPC_STATUS_FAILED_PRECONDITION;
    case EINVAL:
      return RPC_STATUS_INVALID_ARGUMENT;
    case ETIMEDOUT:
      return RPC_STATUS_DEADLINE_EXCEEDED;
    case EBUSY:
      return RPC_STATUS_UNAVAILABLE;
    default:
      return RPC_STATUS_INTERNAL;
  }
}

void board_finish_vm_busy(rpc_call_t *call, const char *what) {
  char why[160];
  if (!sup_vm_busy(why, sizeof(why))) snprintf(why, sizeof(why), "the VM is busy");
  board_finish(call, RPC_STATUS_UNAVAILABLE, "%s: %s", what, why);
}

int64_t board_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// ---- GetInfo -------------------------------------------------------------------------------

static void get_info(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(GetInfoRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(GetInfoRequest_fields), &req)) return;
  const sup_config_t *c = board_config();
  sup_health_t health;
  sup_health(&health);
  // The flash's figures need the VM; while it is busy, the last ones read.
  static _Atomic uint64_t last_flash_total, last_flash_used;
  uint64_t flash_total = 0, flash_used = 0;
  if (sup_file_usage(&flash_total, &flash_used) == 0) {
    atomic_store(&last_flash_total, flash_total);
    atomic_store(&last_flash_used, flash_used);
  } else {
    flash_total = atomic_load(&last_flash_total);
    flash_used = atomic_load(&last_flash_used);
  }

  BOARD_PB(GetInfoResponse) resp = {.has_info = true};
  BOARD_PB(BoardInfo) *info = &resp.info;
  snprintf(info->name, sizeof(info->name), "%s", c->board_name);
  snprintf(info->firmware_version, sizeof(info->firmware_version), "%s", THREADFLEET_VERSION);
  snprintf(info->micropython_version, sizeof(info->micropython_version), "%s",
           THREADFLEET_MICROPYTHON_VERSION);
  info->uptime_us = (uint64_t)health.uptime_us;
  info->heap_size_bytes = (uint32_t)c->heap_bytes;
  info->max_threads = health.max_threads;
  info->flash_size_bytes = flash_total ? flash_total : lfsdev_size();
  info->flash_used_bytes = flash_used;
  info->output_buffer_bytes = (uint32_t)c->output_buffer_bytes;
  info->max_stack_bytes = (uint32_t)c->max_stack_bytes;
  snprintf(info->profile, sizeof(info->profile), "%s", board_profile_current()->name);

  board_scratch_t *s = board_scratch_take();
  bool sent = board_send(call, s, BOARD_PB(GetInfoResponse_fields), &resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

// ---- Reset ---------------------------------------------------------------------------------

// The VM host thread (in sup_host_serve) does the reset; this I/O thread goes
// on serving and answers once the VM is back, so a client's next call lands
// on the fresh VM, or with `hard` when the board restarts instead. The call's
// user pointer holds the reset's ticket.
static void reset(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(ResetRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(ResetRequest_fields), &req)) return;
  rpc_call_set_user(call, (void *)(uintptr_t)sup_reset_begin(req.safe_boot));
  rpc_call_poll_in(call, 5);
}

static void reset_poll(rpc_call_t *call) {
  int survivors = 0;
  if (!sup_reset_finished((uint64_t)(uintptr_t)rpc_call_user(call), &survivors)) {
    rpc_call_poll_in(call, 5);
    return;
  }
  // Threads stuck in native code survived: the board restarts (hard reset)
  // once this answer is out.
  BOARD_PB(ResetResponse) resp = {.hard = survivors > 0};
  board_scratch_t *s = board_scratch_take();
  bool sent = board_send(call, s, BOARD_PB(ResetResponse_fields), &resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

// ---- The method table, in board.proto's order -----------------------------------------------

static const rpc_method_t methods[] = {
    {.name = "GetInfo", .on_message = get_info},
    {.name = "ListFiles", .on_message = board_list_files},
    {.name = "WriteFile",
     .client_streaming = true,
     .on_message = board_write_file_message,
     .on_half_close = board_write_file_half_close,
     .on_done = board_write_file_done},
    {.name = "ReadFile",
     .server_streaming = true,
     .on_message = board_read_file_message,
     .poll = board_read_file_poll,
     .on_done = board_free_user},
    {.name = "DeleteFile", .on_message = board_delete_file},
    {.name = "StartProgram", .on_message = board_start_program},
    {.name = "StartThread",
     .on_message = board_start_thread_message,
     .poll = board_start_thread_poll,
     .on_done = board_free_user},
    {.name = "KillThread",
     .on_message = board_kill_thread_message,
     .poll = board_kill_poll,
     .on_done = board_free_user},
    {.name = "KillProgram",
     .on_message = board_kill_program_message,
     .poll = board_kill_poll,
     .on_done = board_free_user},
    {.name = "ListThreads", .on_message = board_list_threads},
    {.name = "WatchHealth",
     .server_streaming = true,
     .on_message = board_watch_health_message,
     .poll = board_watch_health_poll,
     .on_done = board_free_user},
    {.name = "StreamOutput",
     .server_streaming = true,
     .on_message = board_stream_output_message,
     .poll = board_stream_output_poll,
     .on_done = board_free_user},
    {.name = "Exec", .on_message = board_exec_message, .poll = board_exec_poll, .on_done = board_exec_done},
    {.name = "Reset", .on_message = reset, .poll = reset_poll},
    {.name = "GetMachine", .on_message = board_get_machine},
    {.name = "SetPin", .on_message = board_set_pin},
    {.name = "SetAdc", .on_message = board_set_adc},
};

const rpc_service_t board_service = {
    .name = "threadfleet.board.v1.BoardControl",
    .methods = methods,
    .method_count = sizeof(methods) / sizeof(methods[0]),
};
