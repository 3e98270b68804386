// The `socket` module (see modsocket.h).
//
// Every lwIP socket here is non-blocking: a call holds the GIL only while
// lwIP does what it can at once, and a blocking socket call that must wait
// does so in socket_wait, without the GIL, in lwip_poll steps between which
// it checks for a kill. So no thread ever sleeps inside lwIP where a kill
// cannot reach it.
//
// The table of open sockets (net_sockets) is guarded by the GIL.
#include "firmware/net/modsocket.h"

#include <errno.h>
#include <lwip/inet.h>
#include <lwip/ip4_addr.h>
#include <lwip/sockets.h>
#include <stdio.h>
#include <string.h>

#include "firmware/net/netstack.h"
#include "firmware/supervisor/supervisor.h"
#include "py/gc.h"
#include "py/mperrno.h"
#include "py/mpstate.h"
#include "py/objstr.h"
#include "py/parsenum.h"
#include "py/runtime.h"
#include "py/stream.h"

// listen()'s backlog when the program gives none.
#define NET_SOCKET_DEFAULT_BACKLOG 2

typedef struct {
  mp_obj_base_t base;
  int fd;              // lwIP socket number (not an OS descriptor); -1 once closed
  int type;            // SOCK_STREAM or SOCK_DGRAM
  int32_t timeout_ms;  // -1: blocking, no limit; 0: non-blocking; else each call's limit
  uint32_t program_id;
} net_socket_obj_t;

// Open sockets, whichever program owns them; NULL slots are free. A slot is
// freed when its socket closes (close, the finaliser, the program's end).
static net_socket_obj_t *net_sockets[NET_SOCKETS_MAX];

static const mp_obj_type_t net_socket_type;

// ---- Errors

static NORETURN void net_raise(int err) { mp_raise_OSError(err); }

// OSError(err, message): e.errno is err, and the text says what to do.
static NORETURN void net_raise_msg(int err, const char *msg) {
  mp_obj_t args[2] = {MP_OBJ_NEW_SMALL_INT(err), mp_obj_new_str(msg, strlen(msg))};
  nlr_raise(mp_obj_new_exception_args(&mp_type_OSError, 2, args));
}

// ---- The table of open sockets

// A free slot, or -1 when all are taken. Sockets a program dropped without
// closing may still hold slots until the GC finalises them, so a full table
// is collected once before the answer is -1.
static int net_socket_find_slot(void) {
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < NET_SOCKETS_MAX; i++) {
      if (net_sockets[i] == NULL) return i;
    }
    if (pass == 0) gc_collect();
  }
  return -1;
}

static NORETURN void net_raise_too_many(void) {
  char msg[96];
  snprintf(msg, sizeof msg, "too many open sockets: a board has at most %d (close some first)",
           NET_SOCKETS_MAX);
  net_raise_msg(MP_EMFILE, msg);
}

// A free slot, or raises OSError(EMFILE).
static size_t net_socket_free_slot(void) {
  int slot = net_socket_find_slot();
  if (slot < 0) net_raise_too_many();
  return (size_t)slot;
}

static void net_socket_close(net_socket_obj_t *s) {
  if (s->fd < 0) return;
  for (size_t i = 0; i < NET_SOCKETS_MAX; i++) {
    if (net_sockets[i] == s) net_sockets[i] = NULL;
  }
  lwip_close(s->fd);
  s->fd = -1;
}

void net_socket_program_ended(uint32_t program_id) {
  for (size_t i = 0; i < NET_SOCKETS_MAX; i++) {
    if (net_sockets[i] != NULL && net_sockets[i]->program_id == program_id) net_socket_close(net_sockets[i]);
  }
}

// Takes slot `slot` for a new socket object around lwIP socket `fd`, made
// non-blocking. Closes fd and raises if the object cannot be allocated.
static net_socket_obj_t *net_socket_adopt(size_t slot, int fd, int type) {
  lwip_fcntl(fd, F_SETFL, O_NONBLOCK);
  nlr_buf_t nlr;
  if (nlr_push(&nlr) != 0) {
    lwip_close(fd);
    nlr_jump(nlr.ret_val);
  }
  net_socket_obj_t *s = mp_obj_malloc_with_finaliser(net_socket_obj_t, &net_socket_type);
  nlr_pop();
  s->fd = fd;
  s->type = type;
  s->timeout_ms = -1;
  s->program_id = sup_current_program();
  net_sockets[slot] = s;
  return s;
}

// ---- Addresses

// Resolves what a board without DNS can: numeric IPv4, "localhost" (the
// board itself), "" (any address). Raises OSError for any other name.
static void net_resolve(const char *host, ip4_addr_t *out) {
  if (host[0] == '\0') {
    ip4_addr_set_any(out);
    return;
  }
  if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (ip4addr_aton(host, out)) return;
  char msg[128];
  snprintf(msg, sizeof msg,
           "cannot resolve '%.40s': the board has no DNS (use a numeric IPv4 address or localhost)", host);
  net_raise_msg(-2, msg);  // EAI_NONAME, as CPython's getaddrinfo says it
}

// (host, port) -> sockaddr_in. Raises TypeError/ValueError naming the field.
static void net_addr_parse(mp_obj_t addr, struct sockaddr_in *out) {
  mp_obj_t *items;
  mp_obj_get_array_fixed_n(addr, 2, &items);
  mp_int_t port = mp_obj_get_int(items[1]);
  if (port < 0 || port > 65535) mp_raise_ValueError(MP_ERROR_TEXT("port must be 0-65535"));
  ip4_addr_t ip;
  net_resolve(mp_obj_str_get_str(items[0]), &ip);
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = lwip_htons((uint16_t)port);
  out->sin_addr.s_addr = ip4_addr_get_u32(&ip);
}

static mp_obj_t net_addr_tuple(const struct sockaddr_in *sa) {
  char text[IP4ADDR_STRLEN_MAX];
  ip4_addr_t ip;
  ip4_addr_set_u32(&ip, sa->sin_addr.s_addr);
  ip4addr_ntoa_r(&ip, text, sizeof text);
  mp_obj_t items[2] = {mp_obj_new_str(text, strlen(text)), MP_OBJ_NEW_SMALL_INT(lwip_ntohs(sa->sin_port))};
  return mp_obj_new_tuple(2, items);
}

// ---- Waiting

// True when a kill was requested for `self` and its exception is pending
// (the same test rt_block makes). REQUIRES: sched lock.
static bool net_kill_pending(const rt_thread_t *self) {
  return self->kill_hard || (self->kill_soft && self->ts && self->ts->mp_pending_exception != MP_OBJ_NULL);
}

// Waits without the GIL until lwIP socket `fd` has one of `events` (or an
// error), the monotonic deadline passes (<0: none) or a kill comes. Returns
// true when the socket is ready, false at the deadline; a kill raises its
// exception here once the GIL is back. The thread shows as sleeping
// meanwhile, as in select.poll. REQUIRES: GIL held.
static bool socket_wait(int fd, short events, int64_t deadline_ns) {
  rt_thread_t *self = rt_self();
  rt_gil_release();
  rt_sched_lock();
  rt_block_announce(RT_BLOCK_SLEEP, NULL);
  rt_sched_unlock();
  bool ready = false;
  for (;;) {
    int step_ms = NET_SOCKET_WAIT_STEP_MS;
    if (deadline_ns >= 0) {
      int64_t left_ms = (deadline_ns - rt_now_ns() + 999999) / 1000000;
      if (left_ms <= 0) break;
      if (left_ms < step_ms) step_ms = (int)left_ms;
    }
    struct pollfd pfd = {.fd = fd, .events = events};
    if (lwip_poll(&pfd, 1, step_ms) != 0) {  // ready, or an error the caller's retry reports
      ready = true;
      break;
    }
    rt_sched_lock();
    bool killed = net_kill_pending(self);
    rt_sched_unlock();
    if (killed) break;
  }
  rt_sched_lock();
  self->block_kind = RT_BLOCK_NONE;
  self->block_obj = NULL;
  rt_sched_unlock();
  rt_gil_acquire();
  rt_check_hard_kill();
  mp_handle_pending(true);
  return ready;
}

static int64_t socket_deadline(const net_socket_obj_t *s) {
  return s->timeout_ms < 0 ? -1 : rt_now_ns() + (int64_t)s->timeout_ms * 1000000;
}

static net_socket_obj_t *socket_open(mp_obj_t self_in) {
  net_socket_obj_t *s = MP_OBJ_TO_PTR(self_in);
  if (s->fd < 0) net_raise(MP_EBADF);
  return s;
}

// ---- Data transfer with the socket's timeout

typedef enum { NET_OP_RECV, NET_OP_SEND, NET_OP_ACCEPT } net_op_t;

typedef struct {
  void *buf;
  size_t len;
  bool with_addr;  // recvfrom/sendto/accept: addr is the peer
  struct sockaddr_in addr;
  socklen_t addr_len;
} net_io_t;

// One non-blocking attempt; lwIP's result (errno set when < 0).
static int socket_try(int fd, net_op_t op, net_io_t *io) {
  struct sockaddr *sa = (struct sockaddr *)&io->addr;
  switch (op) {
    case NET_OP_RECV:
      io->addr_len = sizeof io->addr;
      return io->with_addr ? lwip_recvfrom(fd, io->buf, io->len, 0, sa, &io->addr_len)
                           : lwip_recv(fd, io->buf, io->len, 0);
    case NET_OP_SEND:
      return io->with_addr ? lwip_sendto(fd, io->buf, io->len, 0, sa, sizeof io->addr)
                           : lwip_send(fd, io->buf, io->len, 0);
    case NET_OP_ACCEPT:
      io->addr_len = sizeof io->addr;
      return lwip_accept(fd, sa, &io->addr_len);
  }
  return -1;
}

// A stream socket that is neither connected nor listening can never receive.
static bool socket_unconnected(const net_socket_obj_t *s) {
  if (s->type != SOCK_STREAM) return false;
  struct sockaddr_in peer;
  socklen_t len = sizeof peer;
  return lwip_getpeername(s->fd, (struct sockaddr *)&peer, &len) != 0;
}

// Runs `op` until it succeeds or fails for good, waiting as the socket's
// timeout allows. Returns lwIP's non-negative result, or -1 with *err:
// EAGAIN (non-blocking, nothing to do now), ETIMEDOUT (the timeout passed),
// EBADF (closed meanwhile by another thread), ENOTCONN, or lwIP's errno.
static int socket_io(net_socket_obj_t *s, net_op_t op, net_io_t *io, int *err) {
  int64_t deadline_ns = socket_deadline(s);
  for (;;) {
    if (s->fd < 0) {
      *err = MP_EBADF;
      return -1;
    }
    int r = socket_try(s->fd, op, io);
    if (r >= 0) return r;
    int e = errno;
    if (e != EAGAIN && e != EWOULDBLOCK) {
      *err = e;
      return -1;
    }
    if (op == NET_OP_RECV && socket_unconnected(s)) {
      *err = MP_ENOTCONN;
      return -1;
    }
    if (s->timeout_ms == 0) {
      *err = MP_EAGAIN;
      return -1;
    }
    if (!socket_wait(s->fd, op == NET_OP_SEND ? POLLOUT : POLLIN, deadline_ns)) {
      *err = MP_ETIMEDOUT;
      return -1;
    }
  }
}

// ---- socket.socket

static mp_obj_t socket_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
  mp_arg_check_num(n_args, n_kw, 0, 3, false);
  mp_int_t af = n_args > 0 ? mp_obj_get_int(args[0]) : AF_INET;
  mp_int_t kind = n_args > 1 ? mp_obj_get_int(args[1]) : SOCK_STREAM;
  mp_int_t proto = n_args > 2 ? mp_obj_get_int(args[2]) : 0;
  if (af != AF_INET) net_raise_msg(MP_EAFNOSUPPORT, "socket family: the board has AF_INET only");
  if (kind != SOCK_STREAM && kind != SOCK_DGRAM) {
    net_raise_msg(MP_EINVAL, "socket type: SOCK_STREAM or SOCK_DGRAM");
  }
  size_t slot = net_socket_free_slot();
  char err[128];
  if (!net_lwip_start(err, sizeof err)) net_raise_msg(MP_ENODEV, err);
  int fd = lwip_socket(AF_INET, (int)kind, (int)proto);
  if (fd < 0) net_raise(errno);
  return MP_OBJ_FROM_PTR(net_socket_adopt(slot, fd, (int)kind));
}

static mp_obj_t socket_close(mp_obj_t self_in) {
  net_socket_close(MP_OBJ_TO_PTR(self_in));
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(socket_close_obj, socket_close);

static mp_obj_t socket_bind(mp_obj_t self_in, mp_obj_t addr_in) {
  net_socket_obj_t *s = socket_open(self_in);
  struct sockaddr_in addr;
  net_addr_parse(addr_in, &addr);
  if (lwip_bind(s->fd, (struct sockaddr *)&addr, sizeof addr) != 0) net_raise(errno);
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(socket_bind_obj, socket_bind);

static mp_obj_t socket_listen(size_t n_args, const mp_obj_t *args) {
  net_socket_obj_t *s = socket_open(args[0]);
  mp_int_t backlog = n_args > 1 ? mp_obj_get_int(args[1]) : NET_SOCKET_DEFAULT_BACKLOG;
  if (backlog < 0) backlog = 0;
  if (lwip_listen(s->fd, (int)backlog) != 0) net_raise(errno);
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(socket_listen_obj, 1, 2, socket_listen);

static mp_obj_t socket_accept(mp_obj_t self_in) {
  net_socket_obj_t *s = socket_open(self_in);
  net_socket_free_slot();  // refuse before taking a peer off the queue
  net_io_t io = {.with_addr = true};
  int err;
  int fd = socket_io(s, NET_OP_ACCEPT, &io, &err);
  if (fd < 0) net_raise(err);
  // Looked up again: other threads ran while accept waited without the GIL.
  int slot = net_socket_find_slot();
  if (slot < 0) {
    lwip_close(fd);
    net_raise_too_many();
  }
  net_socket_obj_t *conn = net_socket_adopt((size_t)slot, fd, SOCK_STREAM);
  mp_obj_t items[2] = {MP_OBJ_FROM_PTR(conn), net_addr_tuple(&io.addr)};
  return mp_obj_new_tuple(2, items);
}
static MP_DEFINE_CONST_FUN_OBJ_1(socket_accept_obj, socket_accept);

// lwIP reports a connection the peer reset before it was established as
// ECONNRESET (or ECONNABORTED); to a program that is a refused connection.
static int connect_errno(int err) { return err == ECONNRESET || err == ECONNABORTED ? MP_ECONNREFUSED : err; }

// Whether a connect under way has finished: 1 connected, 0 not yet, or
// raises how it failed.
static int connect_done(net_socket_obj_t *s, const struct sockaddr_in *addr) {
  int so_error = 0;
  socklen_t len = sizeof so_error;
  lwip_getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) net_raise(connect_errno(so_error));
  if (lwip_connect(s->fd, (const struct sockaddr *)addr, sizeof *addr) == 0) return 1;
  int e = errno;
  if (e == EISCONN) return 1;
  if (e == EALREADY || e == EINPROGRESS) return 0;
  net_raise(connect_errno(e));
}

static mp_obj_t socket_connect(mp_obj_t self_in, mp_obj_t addr_in) {
  net_socket_obj_t *s = socket_open(self_in);
  struct sockaddr_in addr;
  net_addr_parse(addr_in, &addr);
  if (lwip_connect(s->fd, (struct sockaddr *)&addr, sizeof addr) == 0) return mp_const_none;
  int e = errno;
  if (e != EINPROGRESS) net_raise(connect_errno(e));
  if (s->timeout_ms == 0) net_raise(MP_EINPROGRESS);
  int64_t deadline_ns = socket_deadline(s);
  for (;;) {
    if (!socket_wait(s->fd, POLLOUT, deadline_ns)) net_raise(MP_ETIMEDOUT);
    if (s->fd < 0) net_raise(MP_EBADF);
    if (connect_done(s, &addr)) return mp_const_none;
  }
}
static MP_DEFINE_CONST_FUN_OBJ_2(socket_connect_obj, socket_connect);

static mp_obj_t socket_send_common(net_socket_obj_t *s, mp_obj_t data, net_io_t *io) {
  mp_buffer_info_t buf;
  mp_get_buffer_raise(data, &buf, MP_BUFFER_READ);
  io->buf = buf.buf;
  io->len = buf.len;
  int err;
  int n = socket_io(s, NET_OP_SEND, io, &err);
  if (n < 0) net_raise(err);
  return MP_OBJ_NEW_SMALL_INT(n);
}

static mp_obj_t socket_send(mp_obj_t self_in, mp_obj_t data) {
  net_io_t io = {.with_addr = false};
  return socket_send_common(socket_open(self_in), data, &io);
}
static MP_DEFINE_CONST_FUN_OBJ_2(socket_send_obj, socket_send);

static mp_obj_t socket_sendto(mp_obj_t self_in, mp_obj_t data, mp_obj_t addr_in) {
  net_socket_obj_t *s = socket_open(self_in);
  net_io_t io = {.with_addr = true};
  net_addr_parse(addr_in, &io.addr);
  return socket_send_common(s, data, &io);
}
static MP_DEFINE_CONST_FUN_OBJ_3(socket_sendto_obj, socket_sendto);

static mp_obj_t socket_sendall(mp_obj_t self_in, mp_obj_t data) {
  net_socket_obj_t *s = socket_open(self_in);
  mp_buffer_info_t buf;
  mp_get_buffer_raise(data, &buf, MP_BUFFER_READ);
  for (size_t sent = 0; sent < buf.len;) {
    net_io_t io = {.buf = (uint8_t *)buf.buf + sent, .len = buf.len - sent};
    int err;
    int n = socket_io(s, NET_OP_SEND, &io, &err);
    if (n < 0) net_raise(err);
    sent += (size_t)n;
  }
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(socket_sendall_obj, socket_sendall);

static mp_obj_t socket_recv_common(net_socket_obj_t *s, mp_obj_t len_in, net_io_t *io) {
  mp_int_t len = mp_obj_get_int(len_in);
  if (len < 0) mp_raise_ValueError(MP_ERROR_TEXT("recv size must be >= 0"));
  vstr_t vstr;
  vstr_init_len(&vstr, (size_t)len);
  io->buf = vstr.buf;
  io->len = (size_t)len;
  int err;
  int n = socket_io(s, NET_OP_RECV, io, &err);
  if (n < 0) net_raise(err);
  vstr.len = (size_t)n;
  return mp_obj_new_bytes_from_vstr(&vstr);
}

static mp_obj_t socket_recv(mp_obj_t self_in, mp_obj_t len_in) {
  net_io_t io = {.with_addr = false};
  return socket_recv_common(socket_open(self_in), len_in, &io);
}
static MP_DEFINE_CONST_FUN_OBJ_2(socket_recv_obj, socket_recv);

static mp_obj_t socket_recvfrom(mp_obj_t self_in, mp_obj_t len_in) {
  net_io_t io = {.with_addr = true};
  mp_obj_t items[2];
  items[0] = socket_recv_common(socket_open(self_in), len_in, &io);
  items[1] = net_addr_tuple(&io.addr);
  return mp_obj_new_tuple(2, items);
}
static MP_DEFINE_CONST_FUN_OBJ_2(socket_recvfrom_obj, socket_recvfrom);

static mp_obj_t socket_setsockopt(size_t n_args, const mp_obj_t *args) {
  net_socket_obj_t *s = socket_open(args[0]);
  int level = (int)mp_obj_get_int(args[1]);
  int opt = (int)mp_obj_get_int(args[2]);
  int value;
  const void *optval = &value;
  socklen_t optlen = sizeof value;
  if (mp_obj_is_int(args[3])) {
    value = (int)mp_obj_get_int(args[3]);
  } else {
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[3], &buf, MP_BUFFER_READ);
    optval = buf.buf;
    optlen = (socklen_t)buf.len;
  }
  if (lwip_setsockopt(s->fd, level, opt, optval, optlen) != 0) net_raise(errno);
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(socket_setsockopt_obj, 4, 4, socket_setsockopt);

static mp_obj_t socket_settimeout(mp_obj_t self_in, mp_obj_t timeout_in) {
  net_socket_obj_t *s = socket_open(self_in);
  if (timeout_in == mp_const_none) {
    s->timeout_ms = -1;
    return mp_const_none;
  }
  mp_float_t seconds = mp_obj_get_float(timeout_in);
  // At most a day: beyond that a board program means "block".
  if (seconds < 0 || seconds > 86400) mp_raise_ValueError(MP_ERROR_TEXT("timeout must be None or 0-86400 s"));
  s->timeout_ms = (int32_t)(seconds * 1000 + (mp_float_t)0.999);
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(socket_settimeout_obj, socket_settimeout);

static mp_obj_t socket_setblocking(mp_obj_t self_in, mp_obj_t flag) {
  socket_open(self_in)->timeout_ms = mp_obj_is_true(flag) ? -1 : 0;
  return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(socket_setblocking_obj, socket_setblocking);

// makefile(): the socket is its own stream, as on esp32 and rp2.
static mp_obj_t socket_makefile(size_t n_args, const mp_obj_t *args) { return args[0]; }
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(socket_makefile_obj, 1, 3, socket_makefile);

// ---- The stream protocol (read/readinto/readline/write, select, asyncio)

static mp_uint_t socket_stream_read(mp_obj_t self_in, void *buf, mp_uint_t size, int *errcode) {
  net_socket_obj_t *s = MP_OBJ_TO_PTR(self_in);
  net_io_t io = {.buf = buf, .len = size};
  int n = socket_io(s, NET_OP_RECV, &io, errcode);
  return n < 0 ? MP_STREAM_ERROR : (mp_uint_t)n;
}

static mp_uint_t socket_stream_write(mp_obj_t self_in, const void *buf, mp_uint_t size, int *errcode) {
  net_socket_obj_t *s = MP_OBJ_TO_PTR(self_in);
  net_io_t io = {.buf = (void *)buf, .len = size};
  int n = socket_io(s, NET_OP_SEND, &io, errcode);
  return n < 0 ? MP_STREAM_ERROR : (mp_uint_t)n;
}

static mp_uint_t socket_stream_ioctl(mp_obj_t self_in, mp_uint_t request, uintptr_t arg, int *errcode) {
  net_socket_obj_t *s = MP_OBJ_TO_PTR(self_in);
  if (request == MP_STREAM_CLOSE) {
    net_socket_close(s);
    return 0;
  }
  if (request != MP_STREAM_POLL) {
    *errcode = MP_EINVAL;
    return MP_STREAM_ERROR;
  }
  if (s->fd < 0) return MP_STREAM_POLL_NVAL;
  struct pollfd pfd = {.fd = s->fd};
  if (arg & MP_STREAM_POLL_RD) pfd.events |= POLLIN;
  if (arg & MP_STREAM_POLL_WR) pfd.events |= POLLOUT;
  if (lwip_poll(&pfd, 1, 0) < 0) {
    *errcode = errno;
    return MP_STREAM_ERROR;
  }
  mp_uint_t ret = 0;
  if (pfd.revents & POLLIN) ret |= MP_STREAM_POLL_RD;
  if (pfd.revents & POLLOUT) ret |= MP_STREAM_POLL_WR;
  if (pfd.revents & POLLERR) ret |= MP_STREAM_POLL_ERR;
  if (pfd.revents & POLLHUP) ret |= MP_STREAM_POLL_HUP;
  if (pfd.revents & POLLNVAL) ret |= MP_STREAM_POLL_NVAL;
  return ret;
}

static const mp_stream_p_t socket_stream_p = {
    .read = socket_stream_read,
    .write = socket_stream_write,
    .ioctl = socket_stream_ioctl,
};

static const mp_rom_map_elem_t socket_locals_table[] = {
    {MP_ROM_QSTR(MP_QSTR___del__), MP_ROM_PTR(&socket_close_obj)},
    {MP_ROM_QSTR(MP_QSTR_close), MP_ROM_PTR(&socket_close_obj)},
    {MP_ROM_QSTR(MP_QSTR_bind), MP_ROM_PTR(&socket_bind_obj)},
    {MP_ROM_QSTR(MP_QSTR_listen), MP_ROM_PTR(&socket_listen_obj)},
    {MP_ROM_QSTR(MP_QSTR_accept), MP_ROM_PTR(&socket_accept_obj)},
    {MP_ROM_QSTR(MP_QSTR_connect), MP_ROM_PTR(&socket_connect_obj)},
    {MP_ROM_QSTR(MP_QSTR_send), MP_ROM_PTR(&socket_send_obj)},
    {MP_ROM_QSTR(MP_QSTR_sendall), MP_ROM_PTR(&socket_sendall_obj)},
    {MP_ROM_QSTR(MP_QSTR_sendto), MP_ROM_PTR(&socket_sendto_obj)},
    {MP_ROM_QSTR(MP_QSTR_recv), MP_ROM_PTR(&socket_recv_obj)},
    {MP_ROM_QSTR(MP_QSTR_recvfrom), MP_ROM_PTR(&socket_recvfrom_obj)},
    {MP_ROM_QSTR(MP_QSTR_setsockopt), MP_ROM_PTR(&socket_setsockopt_obj)},
    {MP_ROM_QSTR(MP_QSTR_settimeout), MP_ROM_PTR(&socket_settimeout_obj)},
    {MP_ROM_QSTR(MP_QSTR_setblocking), MP_ROM_PTR(&socket_setblocking_obj)},
    {MP_ROM_QSTR(MP_QSTR_makefile), MP_ROM_PTR(&socket_makefile_obj)},
    {MP_ROM_QSTR(MP_QSTR_read), MP_ROM_PTR(&mp_stream_read_obj)},
    {MP_ROM_QSTR(MP_QSTR_readinto), MP_ROM_PTR(&mp_stream_readinto_obj)},
    {MP_ROM_QSTR(MP_QSTR_readline), MP_ROM_PTR(&mp_stream_unbuffered_readline_obj)},
    {MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&mp_stream_write_obj)},
};
static MP_DEFINE_CONST_DICT(socket_locals_dict, socket_locals_table);

static MP_DEFINE_CONST_OBJ_TYPE(net_socket_type, MP_QSTR_socket, MP_TYPE_FLAG_NONE, make_new, socket_make_new,
                                protocol, &socket_stream_p, locals_dict, &socket_locals_dict);

// ---- The module

// getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
// [(AF_INET, type or SOCK_STREAM, proto, '', (ip, port))].
static mp_obj_t socket_getaddrinfo(size_t n_args, const mp_obj_t *args) {
  mp_obj_t port = args[1];
  if (mp_obj_is_str(port)) {
    size_t len;
    const char *text = mp_obj_str_get_data(port, &len);
    port = mp_parse_num_integer(text, len, 10, NULL);
  }
  mp_obj_t addr_items[2] = {args[0], port};
  struct sockaddr_in addr;
  net_addr_parse(mp_obj_new_tuple(2, addr_items), &addr);
  mp_int_t kind = n_args > 3 ? mp_obj_get_int(args[3]) : 0;
  mp_int_t proto = n_args > 4 ? mp_obj_get_int(args[4]) : 0;
  mp_obj_t info[5] = {
      MP_OBJ_NEW_SMALL_INT(AF_INET), MP_OBJ_NEW_SMALL_INT(kind != 0 ? kind : SOCK_STREAM),
      MP_OBJ_NEW_SMALL_INT(proto),   MP_OBJ_NEW_QSTR(MP_QSTR_),
      net_addr_tuple(&addr),
  };
  mp_obj_t entry = mp_obj_new_tuple(5, info);
  return mp_obj_new_list(1, &entry);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(socket_getaddrinfo_obj, 2, 6, socket_getaddrinfo);

static const mp_rom_map_elem_t socket_module_globals_table[] = {
    {MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_socket)},
    {MP_ROM_QSTR(MP_QSTR_socket), MP_ROM_PTR(&net_socket_type)},
    {MP_ROM_QSTR(MP_QSTR_getaddrinfo), MP_ROM_PTR(&socket_getaddrinfo_obj)},
    {MP_ROM_QSTR(MP_QSTR_AF_INET), MP_ROM_INT(AF_INET)},
    {MP_ROM_QSTR(MP_QSTR_AF_INET6), MP_ROM_INT(AF_INET6)},
    {MP_ROM_QSTR(MP_QSTR_SOCK_STREAM), MP_ROM_INT(SOCK_STREAM)},
    {MP_ROM_QSTR(MP_QSTR_SOCK_DGRAM), MP_ROM_INT(SOCK_DGRAM)},
    {MP_ROM_QSTR(MP_QSTR_IPPROTO_IP), MP_ROM_INT(IPPROTO_IP)},
    {MP_ROM_QSTR(MP_QSTR_IPPROTO_TCP), MP_ROM_INT(IPPROTO_TCP)},
    {MP_ROM_QSTR(MP_QSTR_IPPROTO_UDP), MP_ROM_INT(IPPROTO_UDP)},
    {MP_ROM_QSTR(MP_QSTR_SOL_SOCKET), MP_ROM_INT(SOL_SOCKET)},
    {MP_ROM_QSTR(MP_QSTR_SO_REUSEADDR), MP_ROM_INT(SO_REUSEADDR)},
    {MP_ROM_QSTR(MP_QSTR_SO_BROADCAST), MP_ROM_INT(SO_BROADCAST)},
    {MP_ROM_QSTR(MP_QSTR_SO_KEEPALIVE), MP_ROM_INT(SO_KEEPALIVE)},
    {MP_ROM_QSTR(MP_QSTR_TCP_NODELAY), MP_ROM_INT(TCP_NODELAY)},
    {MP_ROM_QSTR(MP_QSTR_IP_ADD_MEMBERSHIP), MP_ROM_INT(IP_ADD_MEMBERSHIP)},
};
static MP_DEFINE_CONST_DICT(socket_module_globals, socket_module_globals_table);

const mp_obj_module_t net_module_socket = {
    .base = {&mp_type_module},
    .globals = (mp_obj_dict_t *)&socket_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_socket, net_module_socket);
