// gRPC over HTTP/2 (nghttp2), server side, on any rpc_transport_t: framing of
// length-prefixed messages, grpc-status/grpc-message trailers, grpc-timeout
// deadlines, cancellation (RST_STREAM), flow control, keepalive PINGs (nghttp2
// answers them), many concurrent streams. A malformed frame or message gets an
// HTTP/2 or gRPC error, never a crash.
//
// Bounded: a connection never waits on its peer for longer than its limits
// say (rpc_h2_limits_t): a peer that stops reading is dropped after the send
// timeout, one that keeps no stream open after the idle timeout, and while
// either waits, deadlines fire, polls run and a stop request is seen.
#ifndef THREADFLEET_RPC_TRANSPORT_H2SERVER_H
#define THREADFLEET_RPC_TRANSPORT_H2SERVER_H

#include "firmware/rpc/transport/call.h"
#include "firmware/rpc/transport/channel_budget.h"
#include "firmware/rpc/transport/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rpc_h2_conn rpc_h2_conn_t;

typedef struct {
  // With no stream open for this long, the connection ends with GOAWAY
  // (NO_ERROR: gRPC clients reconnect at their next call). 0: never.
  int idle_timeout_ms;
  // With bytes to send and the peer taking none for this long, the
  // connection is dropped. 0: never (a stop request still ends it).
  int send_timeout_ms;
  // The byte budget request reassembly, response queues and handler charges
  // (rpc_call_charge) of every call draw from; shared by connections. NULL:
  // only the per-call limits of call.h.
  rpc_channel_budget_t *budget;
} rpc_h2_limits_t;

// Why rpc_h2_conn_run returned.
typedef enum {
  RPC_H2_END_PEER_CLOSED,     // the peer closed the connection, or ended the session cleanly
  RPC_H2_END_STOPPED,         // rpc_h2_conn_stop
  RPC_H2_END_IDLE,            // no stream for idle_timeout_ms
  RPC_H2_END_SEND_TIMEOUT,    // the peer took no bytes for send_timeout_ms
  RPC_H2_END_PEER_GONE,       // the transport says the peer stopped answering (keepalive)
  RPC_H2_END_PROTOCOL_ERROR,  // a protocol violation: we sent GOAWAY with an error
  RPC_H2_END_IO_ERROR,        // the transport failed
} rpc_h2_end_t;

// Creates a connection serving `service` on `io`. `peer` (copied) names the
// authenticated client for rpc_call_peer. `limits` is copied; NULL: no idle
// or send timeout and no budget. Returns NULL on out of memory. `io` may be
// all zero for a connection only driven by rpc_h2_conn_feed.
rpc_h2_conn_t *rpc_h2_conn_new(const rpc_service_t *service, rpc_transport_t io, const char *peer,
                               const rpc_h2_limits_t *limits);
// Runs the connection until the peer goes away, a protocol error, a limit
// (idle, send timeout) or rpc_h2_conn_stop. Blocks the calling thread (the
// connection's I/O thread); every call has had on_done when it returns.
rpc_h2_end_t rpc_h2_conn_run(rpc_h2_conn_t *conn);
// Asks a running connection to end soon; callable from any thread. Calls in
// flight get GOAWAY and a grace period (1 s); the connection is gone within
// about that, whatever the peer does.
void rpc_h2_conn_stop(rpc_h2_conn_t *conn);
void rpc_h2_conn_free(rpc_h2_conn_t *conn);

// Feeds raw bytes as if received and processes them without a transport
// (for fuzzing): returns false once the connection is unusable.
bool rpc_h2_conn_feed(rpc_h2_conn_t *conn, const uint8_t *data, size_t len);

// A short lower-case name for an end reason ("idle", "send_timeout"), for logs.
const char *rpc_h2_end_name(rpc_h2_end_t end);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_H2SERVER_H
