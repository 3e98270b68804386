// BoardControl v1 (proto/threadfleet/board/v1/board.proto): the board's gRPC
// service, as nanopb handlers on the event-driven call API (call.h). The
// handlers only adapt protobuf to the board's domain calls: the supervisor
// (programs, threads, health, output) and the flash (supervisor/files.h).
//
// Example (fleetboard's wiring):
//   sup_init(&sup_config, &stack_marker);
//   board_service_configure(&(board_service_config_t){.board = &sup_config});
//   rpc_h2_conn_t *conn = rpc_h2_conn_new(&board_service, io, peer, &limits);
//   ...
//   sup_host_serve(&stop);  // on the VM host thread: Reset needs it
//
// Threading: handlers run on the connections' I/O threads, several at once;
// each enters the VM through sup_vm_run, so an I/O thread must call
// sup_vm_detach() before it exits (fleetboard's listener does, through its
// on_thread_exit hook).
#ifndef THREADFLEET_RPC_CONTROL_BOARD_SERVICE_H
#define THREADFLEET_RPC_CONTROL_BOARD_SERVICE_H

#include <stdint.h>

#include "firmware/rpc/transport/call.h"
#include "firmware/supervisor/supervisor.h"

#ifdef __cplusplus
extern "C" {
#endif

// The network figures of a health snapshot; the network stack owns them.
typedef struct {
  uint32_t tcp_connections;
  uint64_t tx_bytes, rx_bytes;
  uint32_t tls_sessions;
} board_net_stats_t;

// The control channel's figures of a health snapshot (HealthSnapshot.channel);
// the listener owns them.
typedef struct {
  uint32_t connections, max_connections;
  uint64_t refused_connections, failed_handshakes, idle_closed, send_timeouts, refused_calls;
  uint32_t buffered_bytes, budget_bytes;
} board_channel_stats_t;

typedef struct {
  // The configuration the supervisor was started with (copied; the board
  // name too). GetInfo and the default kill grace come from it.
  const sup_config_t *board;
  // Fills the network part of health snapshots; NULL: all zero.
  void (*net_stats)(board_net_stats_t *out, void *ctx);
  void *net_stats_ctx;
  // Fills the control-channel part of health snapshots; NULL: none.
  void (*channel_stats)(board_channel_stats_t *out, void *ctx);
  void *channel_stats_ctx;
} board_service_config_t;

// Tells the service about the board. REQUIRES: called once before the first
// call is served (without it GetInfo reports sup_default_config()'s values).
void board_service_configure(const board_service_config_t *config);

// "threadfleet.board.v1.BoardControl" with every RPC of board.proto.
extern const rpc_service_t board_service;

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_CONTROL_BOARD_SERVICE_H
