// gRPC over HTTP/2 (nghttp2), server side, on any rpc_transport_t: framing of
// length-prefixed messages, grpc-status/grpc-message trailers, grpc-timeout
// deadlines, cancellation (RST_STREAM), flow control, keepalive PINGs (nghttp2
// answers them), many concurrent streams. A malformed frame or message gets an
// HTTP/2 or gRPC error, never a crash.
#ifndef THREADFLEET_RPC_TRANSPORT_H2SERVER_H
#define THREADFLEET_RPC_TRANSPORT_H2SERVER_H

#include "firmware/rpc/transport/call.h"
#include "firmware/rpc/transport/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rpc_h2_conn rpc_h2_conn_t;

// Creates a connection serving `service` on `io`. `peer` (copied) names the
// authenticated client for rpc_call_peer. Returns NULL on out of memory.
// `io` may be all zero for a connection only driven by rpc_h2_conn_feed.
rpc_h2_conn_t *rpc_h2_conn_new(const rpc_service_t *service, rpc_transport_t io, const char *peer);
// Runs the connection until the peer goes away, an unrecoverable protocol
// error, or rpc_h2_conn_stop. Blocks the calling thread (the connection's I/O
// thread). Returns 0 on a clean close, -1 on error.
int rpc_h2_conn_run(rpc_h2_conn_t *conn);
// Asks a running connection to end (GOAWAY) soon; callable from any thread.
void rpc_h2_conn_stop(rpc_h2_conn_t *conn);
void rpc_h2_conn_free(rpc_h2_conn_t *conn);

// Feeds raw bytes as if received and processes them without a transport
// (for fuzzing): returns false once the connection is unusable.
bool rpc_h2_conn_feed(rpc_h2_conn_t *conn, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_H2SERVER_H
