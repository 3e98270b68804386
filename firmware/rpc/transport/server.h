// The board's control channel: a background native thread accepting TCP
// connections on the board's lwIP stack; each connection gets a thread that
// runs the TLS handshake (client certificate required) and then serves
// gRPC over HTTP/2 until the client goes away or a limit ends it.
//
// Every resource a client can hold is bounded (rpc_server_config_t): the
// number of connections, the time a handshake may take, the time a
// connection may stay without a stream, the time a peer may take nothing of
// what the board sends, TCP keepalive for peers that vanished, and one byte
// budget for what all connections buffer. Each refusal or close for a limit
// is counted (rpc_server_stats) and logged as one key=value line on stderr,
// at most RPC_SERVER_LOG_LINES per RPC_SERVER_LOG_WINDOW_MS (a flood is
// counted, not logged line by line).
//
// Example:
//   rpc_server_config_t config = rpc_server_default_config();
//   config.port = 7001; config.tls = tls; config.service = &board_service;
//   config.on_thread_exit = detach_from_vm;
//   if (!rpc_server_start(&config, err, sizeof err)) ...
//   ...
//   rpc_server_stop();
#ifndef THREADFLEET_RPC_TRANSPORT_SERVER_H
#define THREADFLEET_RPC_TRANSPORT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "firmware/rpc/transport/call.h"
#include "firmware/rpc/transport/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

// The most connections any configuration may allow (the slot table's size).
#define RPC_SERVER_MAX_CONNECTIONS 16
// The default handshake timeout. A gRPC core client (C++, Python, ...) whose
// channel failed to connect reconnects with nothing but its backup poller
// driving the connection while its calls fail fast: one pass every 5 s. The
// board then sees the ClientHello up to 5 s after accepting and the client's
// certificate 5 s after its own reply, so such a handshake needs up to 10 s;
// 15 s leaves one more pass for a busy client. With 5 s every such reconnect
// timed out and the channel never answered again (docs/architecture.md).
#define RPC_SERVER_HANDSHAKE_TIMEOUT_MS 15000
// Refusal log lines: at most this many per window.
#define RPC_SERVER_LOG_LINES 10
#define RPC_SERVER_LOG_WINDOW_MS 10000

typedef struct {
  uint16_t port;          // on the board's lwIP stack
  rpc_tls_config_t *tls;  // stays the caller's
  const rpc_service_t *service;

  // Connections served at once, 1..RPC_SERVER_MAX_CONNECTIONS; one more is
  // closed at once (refused).
  int max_connections;
  // A TLS handshake not done by then fails (> 0).
  int handshake_timeout_ms;
  // A connection without a stream for this long ends (GOAWAY); 0: never.
  int idle_timeout_ms;
  // TCP keepalive: a peer silent for this long is probed, 3 probes a third
  // of it apart; one that answers none is dropped (after about twice this
  // time). lwIP counts whole seconds. 0: no keepalive.
  int keepalive_ms;
  // A connection whose peer takes none of the bytes the board has for it
  // for this long is dropped; 0: never (stop still ends it).
  int send_timeout_ms;
  // What all connections together may buffer for their calls (request
  // reassembly, response queues, handler buffers), in bytes (> 0).
  size_t budget_bytes;

  // Runs on each connection's thread just before it exits (the board
  // detaches the thread from the VM its handlers entered). May be NULL.
  void (*on_thread_exit)(void *ctx);
  void *on_thread_exit_ctx;
} rpc_server_config_t;

// port 0, no TLS and no service; the limits at their defaults: 16
// connections, 15 s handshakes, 5 min idle, 30 s keepalive, 10 s send
// timeout, a 1 MiB budget.
rpc_server_config_t rpc_server_default_config(void);

// Checks the limits of a configuration. Returns false with a message naming
// the limit and its range.
bool rpc_server_config_ok(const rpc_server_config_t *config, char *err, size_t err_len);

// Starts listening and the accept thread. Returns false with a message.
// REQUIRES: the network is up (net_start); not started already.
bool rpc_server_start(const rpc_server_config_t *config, char *err, size_t err_len);
// Stops accepting, ends every connection (GOAWAY; a handshake in progress is
// abandoned, neither counted nor logged as failed) and waits for them: about
// 2 s at most.
void rpc_server_stop(void);

// What the channel holds now and what it refused, since rpc_server_start.
typedef struct {
  uint32_t connections, max_connections;
  uint64_t refused_connections;  // closed at once: every slot was taken
  uint64_t failed_handshakes;    // TLS handshakes that failed or timed out
  uint64_t idle_closed;          // ended by the idle timeout or by keepalive (peer gone)
  uint64_t send_timeouts;        // ended because the peer took nothing for the send timeout
  uint64_t refused_calls;        // calls ended because the byte budget was spent
  uint32_t buffered_bytes, budget_bytes;
} rpc_server_stats_t;

// Safe from any thread; all zero before the first start.
void rpc_server_stats(rpc_server_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_SERVER_H
