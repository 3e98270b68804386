// The board's TCP/IP stack: lwIP on its tcpip thread, the slirp NIC and the
// thread that owns slirp (see netstack.h).
//
// Threads:
//   lwIP's tcpip thread: started once per process by tcpip_init, never stopped.
//   the slirp thread (netstack_loop): the only thread that calls into slirp.
//     It blocks in poll() on slirp's host sockets, the NIC's wake-up eventfd
//     and the stop eventfd, with slirp's own timeout, so an idle board costs
//     no CPU. Frames from slirp are processed by lwIP on this thread, under
//     the core lock (netstack_input).
//   application threads: lwip_* calls take the core lock; their output goes
//     through slirpif's queue to the slirp thread.
#define _GNU_SOURCE  // pthread_setname_np
#include "firmware/net/netstack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libslirp.h>
#include <lwip/ip4_addr.h>
#include <lwip/netif.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/tcpip.h>
#include <netif/ethernet.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "firmware/net/slirpif.h"

// Host sockets slirp may watch at once (the port forward's listener plus one
// per connection), plus our two eventfds. A socket beyond the limit is not
// polled until others close.
#define NETSTACK_MAX_POLLFDS 256
// Host connections the port forward's listener queues before slirp accepts.
#define NETSTACK_LISTEN_BACKLOG 64
// slirp 4.7 creates one timer (IPv6 router advertisements); room to spare.
#define NETSTACK_MAX_TIMERS 4

typedef struct {
  bool used, armed;
  int64_t expire_ms;  // on slirp's clock (netstack_clock_get_ns / 1e6)
  SlirpTimerId id;
  void *cb_opaque;  // slirp's, handed back to slirp_handle_timer
} netstack_timer_t;

static struct {
  pthread_mutex_t lock;  // serialises net_start / net_stop / net_stats
  pthread_once_t lwip_once;
  bool lwip_up;       // tcpip thread running and netif added (set once)
  char lwip_err[96];  // why bring-up failed, if it did
  struct netif netif;
  bool running;  // a slirp instance and its thread exist

  // Owned by the slirp thread while it runs; by net_start/net_stop otherwise.
  Slirp *slirp;
  pthread_t thread;
  int stop_fd;  // eventfd written by net_stop
  atomic_bool stop;
  struct pollfd pollfds[NETSTACK_MAX_POLLFDS];
  nfds_t npollfds;
  netstack_timer_t timers[NETSTACK_MAX_TIMERS];
} netstack = {.lock = PTHREAD_MUTEX_INITIALIZER, .lwip_once = PTHREAD_ONCE_INIT, .stop_fd = -1};

// ---- lwIP bring-up (once per process)

static void netstack_tcpip_ready(void *arg) {
  sem_t *ready = arg;
  sem_post(ready);
}

// netif->input, called by slirpif_input on the slirp thread: processes the
// frame at once under the core lock. This is tcpip_input with
// LWIP_TCPIP_CORE_LOCKING_INPUT (Debian's library is built without it).
// Posting to the tcpip thread instead (tcpip_input) overflowed its 128-slot
// mailbox whenever slirp read several busy host sockets in one round: frames
// were dropped, or, when the slirp thread waited for room, it stopped
// draining lwIP's output and TCP stalled. Processing here costs no thread
// hop and gives natural backpressure: slirp reads the host sockets only as
// fast as lwIP takes the data.
// Takes ownership of p (ethernet_input frees it on every path); returns ERR_OK.
static err_t netstack_input(struct pbuf *p, struct netif *netif) {
  LOCK_TCPIP_CORE();
  err_t err = ethernet_input(p, netif);
  UNLOCK_TCPIP_CORE();
  return err;
}

static void netstack_lwip_init(void) {
  sem_t ready;
  sem_init(&ready, 0, 0);
  tcpip_init(netstack_tcpip_ready, &ready);
  while (sem_wait(&ready) != 0 && errno == EINTR) {
  }
  sem_destroy(&ready);

  // No gateway and no default route: lwIP routes only to the interface's
  // own subnet (where slirp answers for its host address alone) and to
  // 127.0.0.1, and refuses any other destination at once (EHOSTUNREACH),
  // instead of sending SYNs the reach filter would drop until the connect
  // timed out. lwIP's default netif would take every destination.
  ip4_addr_t ip, mask;
  ip4addr_aton(NET_GUEST_IP, &ip);
  ip4addr_aton(NET_NETMASK, &mask);
  LOCK_TCPIP_CORE();
  struct netif *nif =
      netif_add(&netstack.netif, &ip, &mask, IP4_ADDR_ANY4, NULL, slirpif_init, netstack_input);
  // Up without a link: 127.0.0.1 (lwIP's loopback through any netif that is
  // up) works before net_start, as on a board whose Wi-Fi is not connected.
  if (nif != NULL) netif_set_up(nif);
  UNLOCK_TCPIP_CORE();
  if (nif == NULL) {
    snprintf(netstack.lwip_err, sizeof netstack.lwip_err, "cannot add the slirp netif (eventfd: %s)",
             strerror(errno));
    return;
  }
  netstack.lwip_up = true;
}

// ---- slirp callbacks (SlirpCb). All run on the thread calling into slirp:
// net_start (slirp_new, slirp_add_hostfwd), the slirp thread, net_stop
// (slirp_cleanup) — never two at once. `opaque` is unused (the state is static).

// send_packet: one Ethernet frame for the guest. slirp keeps ownership of
// `buf`. Returns len even when the frame was dropped (counted by slirpif):
// a negative value would only make slirp log an error, and TCP recovers.
static ssize_t netstack_send_packet(const void *buf, size_t len, void *opaque) {
  slirpif_input(&netstack.netif, buf, len);
  return (ssize_t)len;
}

static void netstack_guest_error(const char *msg, void *opaque) {
  fprintf(stderr, "net: event=slirp_guest_error msg=\"%s\"\n", msg);
}

// clock_get_ns: slirp's clock for its timers and TCP timeouts.
static int64_t netstack_clock_get_ns(void *opaque) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t netstack_now_ms(void) { return netstack_clock_get_ns(NULL) / 1000000; }

// timer_new_opaque: returns a timer slot (owned by this module, released by
// timer_free) or NULL when all are used; the other timer callbacks accept NULL.
static void *netstack_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque) {
  for (int i = 0; i < NETSTACK_MAX_TIMERS; i++) {
    netstack_timer_t *t = &netstack.timers[i];
    if (!t->used) {
      *t = (netstack_timer_t){.used = true, .id = id, .cb_opaque = cb_opaque};
      return t;
    }
  }
  fprintf(stderr, "net: event=slirp_timer_exhausted limit=%d\n", NETSTACK_MAX_TIMERS);
  return NULL;
}

static void netstack_timer_free(void *timer, void *opaque) {
  netstack_timer_t *t = timer;
  if (t != NULL) *t = (netstack_timer_t){0};
}

// timer_mod: expire_time is in ms on the clock_get_ns clock.
static void netstack_timer_mod(void *timer, int64_t expire_time, void *opaque) {
  netstack_timer_t *t = timer;
  if (t == NULL) return;
  t->expire_ms = expire_time;
  t->armed = true;
}

// register_poll_fd / unregister_poll_fd / notify: nothing to do, the loop
// asks slirp for its sockets (slirp_pollfds_fill) before every poll, and
// notify only ever comes from the slirp thread itself.
static void netstack_register_poll_fd(int fd, void *opaque) {}
static void netstack_unregister_poll_fd(int fd, void *opaque) {}
static void netstack_notify(void *opaque) {}

static const SlirpCb netstack_slirp_cb = {
    .send_packet = netstack_send_packet,
    .guest_error = netstack_guest_error,
    .clock_get_ns = netstack_clock_get_ns,
    .timer_free = netstack_timer_free,
    .timer_mod = netstack_timer_mod,
    .register_poll_fd = netstack_register_poll_fd,
    .unregister_poll_fd = netstack_unregister_poll_fd,
    .notify = netstack_notify,
    .timer_new_opaque = netstack_timer_new_opaque,
};

// ---- The slirp thread

// add_poll (slirp_pollfds_fill): returns the index get_revents will be given,
// or -1 when the table is full (slirp then skips that socket this round).
static int netstack_add_poll(int fd, int events, void *opaque) {
  if (netstack.npollfds == NETSTACK_MAX_POLLFDS) return -1;
  short ev = 0;
  if (events & SLIRP_POLL_IN) ev |= POLLIN;
  if (events & SLIRP_POLL_OUT) ev |= POLLOUT;
  if (events & SLIRP_POLL_PRI) ev |= POLLPRI;
  netstack.pollfds[netstack.npollfds] = (struct pollfd){.fd = fd, .events = ev};
  return (int)netstack.npollfds++;
}

// get_revents (slirp_pollfds_poll): the SLIRP_POLL_* events of index idx.
static int netstack_get_revents(int idx, void *opaque) {
  short rev = netstack.pollfds[idx].revents;
  int events = 0;
  if (rev & POLLIN) events |= SLIRP_POLL_IN;
  if (rev & POLLOUT) events |= SLIRP_POLL_OUT;
  if (rev & POLLPRI) events |= SLIRP_POLL_PRI;
  if (rev & (POLLERR | POLLNVAL)) events |= SLIRP_POLL_ERR;
  if (rev & POLLHUP) events |= SLIRP_POLL_HUP;
  return events;
}

// Shortens *timeout_ms to the first armed timer.
static void netstack_timers_timeout(uint32_t *timeout_ms) {
  int64_t now = netstack_now_ms();
  for (int i = 0; i < NETSTACK_MAX_TIMERS; i++) {
    const netstack_timer_t *t = &netstack.timers[i];
    if (!t->used || !t->armed) continue;
    int64_t left = t->expire_ms > now ? t->expire_ms - now : 0;
    if (left < *timeout_ms) *timeout_ms = (uint32_t)left;
  }
}

static void netstack_timers_run(void) {
  int64_t now = netstack_now_ms();
  for (int i = 0; i < NETSTACK_MAX_TIMERS; i++) {
    netstack_timer_t *t = &netstack.timers[i];
    if (!t->used || !t->armed || t->expire_ms > now) continue;
    t->armed = false;  // slirp re-arms it from the handler if it wants
    slirp_handle_timer(netstack.slirp, t->id, t->cb_opaque);
  }
}

enum { NETSTACK_POLL_STOP, NETSTACK_POLL_NIC, NETSTACK_POLL_SLIRP };

static void *netstack_loop(void *arg) {
  while (!atomic_load(&netstack.stop)) {
    netstack.pollfds[NETSTACK_POLL_STOP] = (struct pollfd){.fd = netstack.stop_fd, .events = POLLIN};
    netstack.pollfds[NETSTACK_POLL_NIC] =
        (struct pollfd){.fd = slirpif_wake_fd(&netstack.netif), .events = POLLIN};
    netstack.npollfds = NETSTACK_POLL_SLIRP;
    uint32_t timeout_ms = UINT32_MAX;
    slirp_pollfds_fill(netstack.slirp, &timeout_ms, netstack_add_poll, NULL);
    netstack_timers_timeout(&timeout_ms);

    int n = poll(netstack.pollfds, netstack.npollfds, timeout_ms == UINT32_MAX ? -1 : (int)timeout_ms);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "net: event=poll_failed error=\"%s\"\n", strerror(errno));
    }
    slirp_pollfds_poll(netstack.slirp, n < 0, netstack_get_revents, NULL);
    slirpif_poll(&netstack.netif);
    netstack_timers_run();
  }
  return NULL;
}

// ---- Public API

// Formats the error for the caller of net_start; returns false.
__attribute__((format(printf, 3, 4))) static bool netstack_fail(char *err, size_t err_len, const char *fmt,
                                                                ...) {
  if (err == NULL || err_len == 0) return false;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
  return false;
}

// Creates the slirp instance and its port forward; false with a message.
static bool netstack_slirp_new(struct in_addr host, const net_config_t *config, char *err, size_t err_len) {
  SlirpConfig cfg = {
      .version = 4,
      // Unrestricted, so the board's connections to slirp's host address reach
      // the host's loopback services; slirpif's reach filter keeps every
      // other destination out (slirp itself would forward anywhere).
      .restricted = 0,
      .in_enabled = true,
      .in6_enabled = false,
      .disable_host_loopback = false,  // NET_GATEWAY_IP -> 127.0.0.1
      .disable_dns = true,
      .disable_dhcp = true,  // the netif has a static address
  };
  inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
  inet_pton(AF_INET, NET_NETMASK, &cfg.vnetmask);
  inet_pton(AF_INET, NET_GATEWAY_IP, &cfg.vhost);
  inet_pton(AF_INET, NET_GUEST_IP, &cfg.vdhcp_start);
  inet_pton(AF_INET, "10.0.2.3", &cfg.vnameserver);

  memset(netstack.timers, 0, sizeof netstack.timers);
  netstack.slirp = slirp_new(&cfg, &netstack_slirp_cb, NULL);
  if (netstack.slirp == NULL) {
    return netstack_fail(err, err_len, "cannot create the slirp network");
  }
  if (config->port == 0) return true;  // no forward: the board serves nothing
  struct in_addr guest;
  inet_pton(AF_INET, NET_GUEST_IP, &guest);
  errno = 0;
  if (slirp_add_hostfwd(netstack.slirp, 0, host, config->port, guest, config->port) != 0) {
    int saved = errno;
    slirp_cleanup(netstack.slirp);
    netstack.slirp = NULL;
    return netstack_fail(err, err_len, "cannot listen on %s:%u: %s (is another board or program using it?)",
                         config->host_ip, config->port,
                         saved != 0 ? strerror(saved) : "port forward refused");
  }
  return true;
}

// slirp 4.7 listens on a port forward with a backlog of 1: when a few host
// clients connect at once, the kernel drops the SYNs beyond the second and
// the clients retry only after 1 s. Linux lets listen() be called again on a
// listening socket to change its backlog, so find the forward's listener
// among slirp's sockets (right after slirp_add_hostfwd it is the only one)
// and widen it. Failure is harmless: connects are only slower.
static void netstack_widen_listen_backlog(uint16_t port) {
  uint32_t timeout_ms = UINT32_MAX;
  netstack.npollfds = 0;
  slirp_pollfds_fill(netstack.slirp, &timeout_ms, netstack_add_poll, NULL);
  for (nfds_t i = 0; i < netstack.npollfds; i++) {
    int fd = netstack.pollfds[i].fd, listening = 0;
    socklen_t len = sizeof listening;
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof addr;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening &&
        getsockname(fd, (struct sockaddr *)&addr, &addr_len) == 0 && addr.sin_family == AF_INET &&
        addr.sin_port == htons(port)) {
      listen(fd, NETSTACK_LISTEN_BACKLOG);
    }
  }
}

// Brings lwIP up once per process; false with a message when it failed.
// REQUIRES: netstack.lock held.
static bool netstack_lwip_up(char *err, size_t err_len) {
  pthread_once(&netstack.lwip_once, netstack_lwip_init);
  if (netstack.lwip_up) return true;
  return netstack_fail(err, err_len, "lwIP: %s", netstack.lwip_err);
}

bool net_lwip_start(char *err, size_t err_len) {
  pthread_mutex_lock(&netstack.lock);
  bool ok = netstack_lwip_up(err, err_len);
  pthread_mutex_unlock(&netstack.lock);
  return ok;
}

bool net_start(const net_config_t *config, char *err, size_t err_len) {
  struct in_addr host;
  if (config == NULL || config->host_ip == NULL || inet_pton(AF_INET, config->host_ip, &host) != 1) {
    return netstack_fail(err, err_len, "invalid host address \"%s\" (expected IPv4, e.g. 127.0.0.1)",
                         config && config->host_ip ? config->host_ip : "(none)");
  }

  pthread_mutex_lock(&netstack.lock);
  bool ok = false;
  if (!netstack_lwip_up(err, err_len)) goto out;
  if (netstack.running) {
    netstack_fail(err, err_len, "the network is already started; call net_stop first");
    goto out;
  }
  if (!netstack_slirp_new(host, config, err, err_len)) goto out;
  if (config->port != 0) netstack_widen_listen_backlog(config->port);
  netstack.stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (netstack.stop_fd < 0) {
    netstack_fail(err, err_len, "cannot create an eventfd: %s", strerror(errno));
    goto slirp_err;
  }

  ip4_addr_t reach;
  ip4addr_aton(NET_GATEWAY_IP, &reach);
  slirpif_attach(&netstack.netif, netstack.slirp, &reach);
  atomic_store(&netstack.stop, false);
  int rc = pthread_create(&netstack.thread, NULL, netstack_loop, NULL);
  if (rc != 0) {
    netstack_fail(err, err_len, "cannot start the slirp thread: %s", strerror(rc));
    slirpif_attach(&netstack.netif, NULL, NULL);
    close(netstack.stop_fd);
    netstack.stop_fd = -1;
    goto slirp_err;
  }
  pthread_setname_np(netstack.thread, "slirp");

  // Link up announces us (gratuitous ARP) to the new slirp instance.
  LOCK_TCPIP_CORE();
  netif_set_up(&netstack.netif);
  netif_set_link_up(&netstack.netif);
  UNLOCK_TCPIP_CORE();
  netstack.running = true;
  ok = true;
  goto out;

slirp_err:
  slirp_cleanup(netstack.slirp);
  netstack.slirp = NULL;
out:
  pthread_mutex_unlock(&netstack.lock);
  return ok;
}

void net_stop(void) {
  pthread_mutex_lock(&netstack.lock);
  if (!netstack.running) {
    pthread_mutex_unlock(&netstack.lock);
    return;
  }
  // Link down first: lwIP stops routing to the netif, so nothing new is queued.
  LOCK_TCPIP_CORE();
  netif_set_link_down(&netstack.netif);
  UNLOCK_TCPIP_CORE();

  atomic_store(&netstack.stop, true);
  uint64_t one = 1;
  while (write(netstack.stop_fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
  pthread_join(netstack.thread, NULL);

  slirpif_attach(&netstack.netif, NULL, NULL);
  slirp_cleanup(netstack.slirp);  // closes the port forward's listener
  netstack.slirp = NULL;
  close(netstack.stop_fd);
  netstack.stop_fd = -1;
  netstack.running = false;
  pthread_mutex_unlock(&netstack.lock);
}

void net_stats(net_stats_t *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&netstack.lock);
  bool up = netstack.lwip_up;
  pthread_mutex_unlock(&netstack.lock);
  if (!up) return;

  slirpif_stats_t s;
  slirpif_stats(&netstack.netif, &s);
  out->rx_frames = s.rx_frames;
  out->rx_bytes = s.rx_bytes;
  out->tx_frames = s.tx_frames;
  out->tx_bytes = s.tx_bytes;
  out->dropped_frames = s.dropped_frames;
  out->filtered_frames = s.filtered_frames;

  LOCK_TCPIP_CORE();
  for (const struct tcp_pcb *pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next) out->tcp_active++;
  UNLOCK_TCPIP_CORE();
}
