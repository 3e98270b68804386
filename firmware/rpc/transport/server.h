// The board's control channel: a background native thread accepting TCP
// connections on the board's lwIP stack; each connection gets a thread that
// runs the TLS handshake (client certificate required) and then serves
// gRPC over HTTP/2 until the client goes away.
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

#define RPC_SERVER_MAX_CONNECTIONS 16

typedef struct {
  uint16_t port;          // on the board's lwIP stack
  rpc_tls_config_t *tls;  // stays the caller's
  const rpc_service_t *service;
} rpc_server_config_t;

// Starts listening and the accept thread. Returns false with a message.
bool rpc_server_start(const rpc_server_config_t *config, char *err, size_t err_len);
// Stops accepting, ends every connection (GOAWAY) and waits for them.
void rpc_server_stop(void);
// Connections being served now (for health).
int rpc_server_connections(void);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_SERVER_H
