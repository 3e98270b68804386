// rpc_transport_t over an lwIP TCP socket: the bottom of the board's control
// channel. lwIP socket numbers are not OS descriptors.
#ifndef THREADFLEET_RPC_TRANSPORT_LWIP_TRANSPORT_H
#define THREADFLEET_RPC_TRANSPORT_LWIP_TRANSPORT_H

#include "firmware/rpc/transport/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

// The transport reads/writes lwIP socket `sock` (which stays the caller's).
rpc_transport_t rpc_lwip_transport(int *sock);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_LWIP_TRANSPORT_H
