// TLS 1.2 server side of the control channel (mbedTLS): the board's
// certificate, client certificate required and verified against the lab CA,
// ALPN "h2" only. A handshake that fails (no cert, wrong CA, expired, not TLS)
// closes the connection.
#ifndef THREADFLEET_RPC_TRANSPORT_TLS_H
#define THREADFLEET_RPC_TRANSPORT_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "firmware/rpc/transport/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rpc_tls_config rpc_tls_config_t;
typedef struct rpc_tls_conn rpc_tls_conn_t;

// Loads PEM files. Returns NULL with a message in err (which file, why).
rpc_tls_config_t *rpc_tls_config_new(const char *cert_pem_path, const char *key_pem_path,
                                     const char *ca_pem_path, char *err, size_t err_len);
void rpc_tls_config_free(rpc_tls_config_t *config);

// Asked by a handshake while it waits for its peer, at least every
// RPC_TLS_CANCEL_POLL_MS; returns true to abandon the handshake (e.g. the
// server is stopping). Runs on the handshaking thread; `ctx` is the one given
// to rpc_tls_accept.
typedef bool (*rpc_tls_cancelled_fn)(void *ctx);
#define RPC_TLS_CANCEL_POLL_MS 100

// Runs the handshake over `lower` (blocking, at most timeout_ms, sends and
// receives together), or until `cancelled` (may be NULL) returns true.
// Returns NULL with a reason in err on failure. One config serves many
// connections, each on its own thread. `lower` stays the caller's (close it
// after a failed accept or after rpc_tls_close).
rpc_tls_conn_t *rpc_tls_accept(rpc_tls_config_t *config, rpc_transport_t lower, int timeout_ms,
                               rpc_tls_cancelled_fn cancelled, void *cancel_ctx, char *err, size_t err_len);
// The decrypted stream (valid until rpc_tls_close); one thread at a time.
// recv: RPC_IO_WOULD_BLOCK when nothing came within timeout_ms, RPC_IO_CLOSED
// on close_notify or EOF. send: RPC_IO_WOULD_BLOCK when the lower transport
// took nothing within timeout_ms; then call again with the same bytes
// (mbedTLS has already encrypted them), and do not recv in between (mbedTLS
// may flush that record while reading and would then send it twice).
// RPC_IO_PEER_GONE passes through from the lower transport.
rpc_transport_t rpc_tls_transport(rpc_tls_conn_t *conn);
// The client certificate's subject CN.
const char *rpc_tls_peer_cn(const rpc_tls_conn_t *conn);
// Sends close_notify and frees (does not close `lower`).
void rpc_tls_close(rpc_tls_conn_t *conn);

// Live TLS sessions (for health).
int rpc_tls_sessions(void);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_TLS_H
