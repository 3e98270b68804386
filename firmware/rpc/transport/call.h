// A gRPC call as a method handler sees it. The HTTP/2 layer (h2server.c)
// owns calls; handlers (board_service.c) implement rpc_method_t.
//
// Model: event driven, no thread per call (MCU style). One I/O thread per
// connection decodes frames and invokes the handler's callbacks; a handler
// never blocks for long. A call that cannot answer at once (server
// streaming, waiting for a program) asks to be polled again with
// rpc_call_poll_in(); the I/O thread calls `poll` when that time comes and
// whenever the stream can take more data.
//
// Example (unary):
//   static void get_info(rpc_call_t *call, const uint8_t *req, size_t len) {
//     uint8_t out[256]; size_t n = encode_info(out, sizeof out);
//     rpc_call_send(call, out, n);
//     rpc_call_finish(call, RPC_STATUS_OK, NULL);
//   }
#ifndef THREADFLEET_RPC_TRANSPORT_CALL_H
#define THREADFLEET_RPC_TRANSPORT_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// gRPC status codes (the subset we return).
typedef enum {
  RPC_STATUS_OK = 0,
  RPC_STATUS_CANCELLED = 1,
  RPC_STATUS_UNKNOWN = 2,
  RPC_STATUS_INVALID_ARGUMENT = 3,
  RPC_STATUS_DEADLINE_EXCEEDED = 4,
  RPC_STATUS_NOT_FOUND = 5,
  RPC_STATUS_ALREADY_EXISTS = 6,
  RPC_STATUS_PERMISSION_DENIED = 7,
  RPC_STATUS_RESOURCE_EXHAUSTED = 8,
  RPC_STATUS_FAILED_PRECONDITION = 9,
  RPC_STATUS_ABORTED = 10,
  RPC_STATUS_UNIMPLEMENTED = 12,
  RPC_STATUS_INTERNAL = 13,
  RPC_STATUS_UNAVAILABLE = 14,
} rpc_status_t;

// Largest request or response message accepted/sent (gRPC's 4 MiB default
// is too much for a board). A larger request gets RESOURCE_EXHAUSTED.
#define RPC_MAX_MESSAGE (64 * 1024)

typedef struct rpc_call rpc_call_t;

typedef struct {
  const char *name;  // method name, e.g. "GetInfo"
  bool client_streaming;
  bool server_streaming;
  // A complete request message arrived (unary and server streaming: once).
  // The buffer is valid only during the call.
  void (*on_message)(rpc_call_t *call, const uint8_t *msg, size_t len);
  // The client has sent its last message (END_STREAM). May be NULL.
  void (*on_half_close)(rpc_call_t *call);
  // Asked for via rpc_call_poll_in, or when flow control lets the stream
  // send again. May be NULL.
  void (*poll)(rpc_call_t *call);
  // The call is gone (finished, cancelled, past its deadline, connection
  // lost): release the handler's state. Called exactly once; at the deadline
  // itself, even if the status has not reached the client yet. May be NULL.
  void (*on_done)(rpc_call_t *call);
} rpc_method_t;

typedef struct {
  const char *name;  // full service name, "threadfleet.board.v1.BoardControl"
  const rpc_method_t *methods;
  size_t method_count;
} rpc_service_t;

// Queues one response message (copied). Returns false if the call is
// already finished or the per-call send queue (RPC_MAX_MESSAGE * 2) is full:
// the handler should retry from its next poll. Also false when the channel's
// byte budget (h2server.h) cannot take the message: the call is then finished
// with RESOURCE_EXHAUSTED naming the budget.
bool rpc_call_send(rpc_call_t *call, const uint8_t *msg, size_t len);
// Bytes of queued response data not yet handed to HTTP/2.
size_t rpc_call_pending_bytes(const rpc_call_t *call);
// Charges `bytes` of the handler's own memory for this call (a buffer it
// allocates) to the channel's byte budget until the call is freed, after
// on_done. Returns true when charged (or there is no budget). False when the
// call is finished, or the budget cannot take them: the call is then finished
// with RESOURCE_EXHAUSTED naming the budget; the handler allocates nothing.
bool rpc_call_charge(rpc_call_t *call, size_t bytes);
// Gives back charged bytes early (the handler freed that buffer), so the
// call's own response never waits for them. At most what was charged.
void rpc_call_release(rpc_call_t *call, size_t bytes);
// Ends the call with a status and an optional human message (sent as
// grpc-message). Further sends fail. Safe to call once; later calls ignored.
void rpc_call_finish(rpc_call_t *call, rpc_status_t status, const char *message);
// Calls `poll` again after ms milliseconds (0: as soon as possible).
void rpc_call_poll_in(rpc_call_t *call, int ms);
// The call's deadline from grpc-timeout (monotonic ns), or -1 for none.
int64_t rpc_call_deadline_ns(const rpc_call_t *call);
// Per-call handler state.
void rpc_call_set_user(rpc_call_t *call, void *user);
void *rpc_call_user(const rpc_call_t *call);
// The authenticated peer (the client certificate's CN), or "" if none.
const char *rpc_call_peer(const rpc_call_t *call);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_CALL_H
