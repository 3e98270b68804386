// rpc_transport_t over an lwIP socket (see lwip_transport.h).
#include "firmware/rpc/transport/lwip_transport.h"

#include <errno.h>
#include <lwip/sockets.h>

static int io_error(int err) {
  if (err == ECONNRESET || err == ENOTCONN) return RPC_IO_CLOSED;
  return err == ECONNABORTED ? RPC_IO_PEER_GONE : RPC_IO_ERROR;
}

// Waits until sock is ready for `events` (or has an error to report).
// Returns 1 when ready, 0 on timeout, or an RPC_IO_* error.
static int wait_ready(int sock, short events, int timeout_ms) {
  struct pollfd pfd = {.fd = sock, .events = events};
  int ready = lwip_poll(&pfd, 1, timeout_ms);
  if (ready < 0) return errno == EINTR ? 0 : RPC_IO_ERROR;
  return ready;
}

static int lwip_send_some(void *ctx, const uint8_t *data, size_t len, int timeout_ms) {
  int sock = *(int *)ctx;
  if (len == 0) return 0;
  int ready = wait_ready(sock, POLLOUT, timeout_ms);
  if (ready < 0) return ready;
  if (ready == 0) return RPC_IO_WOULD_BLOCK;
  int n = lwip_send(sock, data, len, MSG_DONTWAIT);
  if (n > 0) return n;
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? RPC_IO_WOULD_BLOCK : io_error(errno);
}

static int lwip_recv_some(void *ctx, uint8_t *buf, size_t cap, int timeout_ms) {
  int sock = *(int *)ctx;
  int ready = wait_ready(sock, POLLIN, timeout_ms);
  if (ready < 0) return ready;
  if (ready == 0) return RPC_IO_WOULD_BLOCK;
  int n = lwip_recv(sock, buf, cap, MSG_DONTWAIT);
  if (n > 0) return n;
  if (n == 0) return RPC_IO_CLOSED;
  return errno == EAGAIN || errno == EWOULDBLOCK ? RPC_IO_WOULD_BLOCK : io_error(errno);
}

rpc_transport_t rpc_lwip_transport(int *sock) {
  return (rpc_transport_t){.ctx = sock, .send = lwip_send_some, .recv = lwip_recv_some};
}

static int whole_seconds(int ms) { return ms <= 1000 ? 1 : (ms + 999) / 1000; }

bool rpc_lwip_keepalive(int sock, int idle_ms, int interval_ms, int probes) {
  int on = 1, idle = whole_seconds(idle_ms), interval = whole_seconds(interval_ms);
  return lwip_setsockopt(sock, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == 0 &&
         lwip_setsockopt(sock, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) == 0 &&
         lwip_setsockopt(sock, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval)) == 0 &&
         lwip_setsockopt(sock, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes)) == 0;
}
