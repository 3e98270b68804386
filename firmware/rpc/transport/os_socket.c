// rpc_transport_t over a POSIX socket; see os_socket.h.
#include "firmware/rpc/transport/os_socket.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

// The descriptor travels in ctx itself, so a transport needs no allocation.
static int fd_of(void *ctx) { return (int)(intptr_t)ctx; }

static int io_error(int err) {
  if (err == EPIPE || err == ECONNRESET) return RPC_IO_CLOSED;
  return err == ETIMEDOUT ? RPC_IO_PEER_GONE : RPC_IO_ERROR;
}

// Waits until fd is ready for `events`. Returns 1 when ready, 0 on timeout,
// or RPC_IO_ERROR.
static int wait_ready(int fd, short events, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = events};
  for (;;) {
    int n = poll(&p, 1, timeout_ms);
    if (n >= 0) return n;
    if (errno != EINTR) return RPC_IO_ERROR;
  }
}

static int os_socket_send(void *ctx, const uint8_t *data, size_t len, int timeout_ms) {
  int fd = fd_of(ctx);
  if (len == 0) return 0;
  if (len > INT_MAX) len = INT_MAX;
  bool waited = false;
  for (;;) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) return (int)n;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return io_error(errno);
    // Full send buffer: wait for room once, without requiring the caller's
    // fd to be in blocking mode.
    if (waited || timeout_ms == 0) return RPC_IO_WOULD_BLOCK;
    int ready = wait_ready(fd, POLLOUT, timeout_ms < 0 ? -1 : timeout_ms);
    if (ready < 0) return RPC_IO_ERROR;
    if (ready == 0) return RPC_IO_WOULD_BLOCK;
    waited = timeout_ms >= 0;
  }
}

static int os_socket_recv(void *ctx, uint8_t *buf, size_t cap, int timeout_ms) {
  int fd = fd_of(ctx);
  if (cap > INT_MAX) cap = INT_MAX;
  int ready = wait_ready(fd, POLLIN, timeout_ms < 0 ? -1 : timeout_ms);
  if (ready < 0) return RPC_IO_ERROR;
  if (ready == 0) return RPC_IO_WOULD_BLOCK;
  for (;;) {
    ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
    if (n > 0) return (int)n;
    if (n == 0) return RPC_IO_CLOSED;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return RPC_IO_WOULD_BLOCK;
    return io_error(errno);
  }
}

rpc_transport_t rpc_os_socket_transport(int fd) {
  rpc_transport_t t = {.ctx = (void *)(intptr_t)fd, .send = os_socket_send, .recv = os_socket_recv};
  return t;
}
