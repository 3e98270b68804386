// rpc_transport_t over an lwIP TCP socket: the bottom of the board's control
// channel. lwIP socket numbers are not OS descriptors.
#ifndef THREADFLEET_RPC_TRANSPORT_LWIP_TRANSPORT_H
#define THREADFLEET_RPC_TRANSPORT_LWIP_TRANSPORT_H

#include <stdbool.h>

#include "firmware/rpc/transport/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

// The transport reads/writes lwIP socket `sock` (which stays the caller's).
// Both directions wait in lwip_poll and then move data without blocking, so
// neither waits longer than its timeout_ms. Errors: ECONNRESET/ENOTCONN are
// RPC_IO_CLOSED; ECONNABORTED (lwIP aborted the connection: keepalive probes
// or retransmissions went unanswered) is RPC_IO_PEER_GONE.
rpc_transport_t rpc_lwip_transport(int *sock);

// Turns on TCP keepalive for `sock`: after idle_ms without a segment from the
// peer, `probes` probes interval_ms apart; no answer to any and lwIP aborts
// the connection (RPC_IO_PEER_GONE). lwIP takes whole seconds: each time is
// rounded up to one. Returns false if lwIP refused an option.
bool rpc_lwip_keepalive(int sock, int idle_ms, int interval_ms, int probes);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_LWIP_TRANSPORT_H
