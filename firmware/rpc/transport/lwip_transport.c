// rpc_transport_t over an lwIP socket (see lwip_transport.h).
#include "firmware/rpc/transport/lwip_transport.h"

#include <errno.h>
#include <lwip/sockets.h>

static int lwip_send_some(void *ctx, const uint8_t *data, size_t len) {
  int sock = *(int *)ctx;
  int n = lwip_send(sock, data, len, 0);
  if (n > 0) return n;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return RPC_IO_WOULD_BLOCK;
  return RPC_IO_ERROR;
}

static int lwip_recv_some(void *ctx, uint8_t *buf, size_t cap, int timeout_ms) {
  int sock = *(int *)ctx;
  struct pollfd pfd = {.fd = sock, .events = POLLIN};
  int ready = lwip_poll(&pfd, 1, timeout_ms);
  if (ready == 0) return RPC_IO_WOULD_BLOCK;
  if (ready < 0) return errno == EINTR ? RPC_IO_WOULD_BLOCK : RPC_IO_ERROR;
  int n = lwip_recv(sock, buf, cap, 0);
  if (n > 0) return n;
  if (n == 0) return RPC_IO_CLOSED;
  return errno == EAGAIN || errno == EWOULDBLOCK ? RPC_IO_WOULD_BLOCK : RPC_IO_ERROR;
}

rpc_transport_t rpc_lwip_transport(int *sock) {
  return (rpc_transport_t){.ctx = sock, .send = lwip_send_some, .recv = lwip_recv_some};
}
