// A byte stream the RPC layers stack on: lwIP socket -> TLS -> HTTP/2.
// Each layer consumes one transport and (for TLS) offers another, so every
// layer can be tested over a plain OS socket and fuzzed over a buffer.
#ifndef THREADFLEET_RPC_TRANSPORT_TRANSPORT_H
#define THREADFLEET_RPC_TRANSPORT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Return values of send/recv.
#define RPC_IO_WOULD_BLOCK (-1)  // nothing within the time given; try again
#define RPC_IO_CLOSED (-2)       // the peer closed the stream (recv: EOF) or reset it
#define RPC_IO_ERROR (-3)        // the stream is broken
#define RPC_IO_PEER_GONE (-4)    // the peer stopped answering (TCP keepalive or retransmissions gave up)

typedef struct rpc_transport {
  void *ctx;
  // Writes up to len bytes, waiting at most timeout_ms (0: do not wait,
  // < 0: forever) for the stream to take some. Returns bytes written (> 0)
  // or RPC_IO_*. After RPC_IO_WOULD_BLOCK the caller offers the same bytes
  // again (TLS has already encrypted them). The buffer stays the caller's.
  int (*send)(void *ctx, const uint8_t *data, size_t len, int timeout_ms);
  // Reads up to cap bytes, waiting at most timeout_ms (0: do not wait,
  // < 0: forever). Returns bytes read (> 0) or RPC_IO_*.
  int (*recv)(void *ctx, uint8_t *buf, size_t cap, int timeout_ms);
} rpc_transport_t;

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_TRANSPORT_H
