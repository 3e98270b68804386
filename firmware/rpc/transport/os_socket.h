// rpc_transport_t over a connected OS (POSIX) socket: what the RPC layers run
// on in host tests and tools, in place of the board's lwIP socket. Host-only.
//
//   int fd = accept(listener, NULL, NULL);
//   rpc_transport_t lower = rpc_os_socket_transport(fd);
//   ... rpc_tls_accept(config, lower, 5000, NULL, NULL, err, sizeof err) ...
//   close(fd);
#ifndef THREADFLEET_RPC_TRANSPORT_OS_SOCKET_H
#define THREADFLEET_RPC_TRANSPORT_OS_SOCKET_H

#include "firmware/rpc/transport/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

// A transport reading and writing `fd` (a connected stream socket, blocking or
// not). It holds no state beyond the descriptor: the fd stays the caller's to
// close, and the transport is valid until then.
//   send: waits up to timeout_ms with poll() until the socket takes at least
//         one byte; returns the count, RPC_IO_WOULD_BLOCK when it took none in
//         time, RPC_IO_CLOSED if the peer is gone (EPIPE/ECONNRESET; never
//         SIGPIPE), RPC_IO_PEER_GONE on ETIMEDOUT, RPC_IO_ERROR otherwise.
//   recv: waits up to timeout_ms with poll(); RPC_IO_WOULD_BLOCK when nothing
//         arrived in time, RPC_IO_CLOSED on EOF or reset, RPC_IO_ERROR otherwise.
rpc_transport_t rpc_os_socket_transport(int fd);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_OS_SOCKET_H
