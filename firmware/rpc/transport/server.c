// The control channel's accept loop and connection threads (see server.h).
#include "firmware/rpc/transport/server.h"

#include <lwip/def.h>
#include <lwip/sockets.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "firmware/rpc/transport/channel_budget.h"
#include "firmware/rpc/transport/h2server.h"
#include "firmware/rpc/transport/log_limit.h"
#include "firmware/rpc/transport/lwip_transport.h"

#define ACCEPT_POLL_MS 100
#define KEEPALIVE_PROBES 3

typedef struct {
  bool in_use;
  int sock;
  rpc_h2_conn_t *h2;  // set while serving HTTP/2 (mutex)
} connection_t;

static rpc_server_config_t config;
static int listen_sock = -1;
static pthread_t accept_thread;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gone = PTHREAD_COND_INITIALIZER;  // a connection ended
static connection_t connections[RPC_SERVER_MAX_CONNECTIONS];
static int live;       // mutex
static bool stopping;  // mutex
static rpc_channel_budget_t *budget;

// Counters (rpc_server_stats); atomics, so counting never waits for `mutex`.
static atomic_uint_fast64_t refused_connections, failed_handshakes, idle_closed, send_timeouts;

// Refusal log lines share one limit (log_limit.h), under its own lock.
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static rpc_log_limit_t log_limit = RPC_LOG_LIMIT_INIT(RPC_SERVER_LOG_LINES, RPC_SERVER_LOG_WINDOW_MS);

rpc_server_config_t rpc_server_default_config(void) {
  return (rpc_server_config_t){
      .max_connections = RPC_SERVER_MAX_CONNECTIONS,
      .handshake_timeout_ms = RPC_SERVER_HANDSHAKE_TIMEOUT_MS,
      .idle_timeout_ms = 5 * 60 * 1000,
      .keepalive_ms = 30 * 1000,
      .send_timeout_ms = 10 * 1000,
      .budget_bytes = 1024 * 1024,
  };
}

bool rpc_server_config_ok(const rpc_server_config_t *c, char *err, size_t err_len) {
  if (c->max_connections < 1 || c->max_connections > RPC_SERVER_MAX_CONNECTIONS) {
    snprintf(err, err_len, "max connections must be 1..%d (got %d)", RPC_SERVER_MAX_CONNECTIONS,
             c->max_connections);
  } else if (c->handshake_timeout_ms < 1) {
    snprintf(err, err_len, "handshake timeout must be at least 1 ms (got %d)", c->handshake_timeout_ms);
  } else if (c->idle_timeout_ms < 0 || c->keepalive_ms < 0 || c->send_timeout_ms < 0) {
    snprintf(err, err_len, "idle timeout, keepalive and send timeout must be 0 (off) or more");
  } else if (c->budget_bytes < RPC_MAX_MESSAGE || c->budget_bytes > UINT32_MAX) {
    snprintf(err, err_len, "the channel's byte budget must be %d..%u bytes (got %zu): one message must fit",
             RPC_MAX_MESSAGE, UINT32_MAX, c->budget_bytes);
  } else {
    return true;
  }
  return false;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Writes one refusal line "fleetboard: event=<fields>" to stderr, unless the
// rate limit holds it back; a line after some were held back says how many.
static void log_refusal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_refusal(const char *fmt, ...) {
  pthread_mutex_lock(&log_mutex);
  uint64_t suppressed = 0;
  if (rpc_log_limit_admit(&log_limit, now_ms(), &suppressed)) {
    char line[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (suppressed > 0) {
      fprintf(stderr, "fleetboard: event=%s suppressed=%llu\n", line, (unsigned long long)suppressed);
    } else {
      fprintf(stderr, "fleetboard: event=%s\n", line);
    }
  }
  pthread_mutex_unlock(&log_mutex);
}

// rpc_channel_budget_refused_fn: a call the budget could not take.
static void budget_refused(void *ctx, size_t wanted, size_t used, size_t limit) {
  (void)ctx;
  log_refusal("call_refused reason=budget wanted_bytes=%zu buffered_bytes=%zu budget_bytes=%zu", wanted, used,
              limit);
}

// Counts and logs how a served connection ended, when a limit ended it.
static void count_end(rpc_h2_end_t end) {
  switch (end) {
    case RPC_H2_END_IDLE:
    case RPC_H2_END_PEER_GONE:
      atomic_fetch_add(&idle_closed, 1);
      break;
    case RPC_H2_END_SEND_TIMEOUT:
      atomic_fetch_add(&send_timeouts, 1);
      break;
    default:
      return;
  }
  log_refusal("connection_closed reason=%s", rpc_h2_end_name(end));
}

static bool server_stopping(void) {
  pthread_mutex_lock(&mutex);
  bool stop = stopping;
  pthread_mutex_unlock(&mutex);
  return stop;
}

// rpc_tls_cancelled_fn: a stop abandons the handshakes in progress instead
// of waiting them out (each could hold rpc_server_stop, and with it a board's
// restart, for the whole handshake timeout).
static bool handshake_cancelled(void *ctx) {
  (void)ctx;
  return server_stopping();
}

static void *serve_connection(void *arg) {
  connection_t *c = arg;
  char err[256];
  rpc_transport_t lower = rpc_lwip_transport(&c->sock);
  rpc_tls_conn_t *tls = rpc_tls_accept(config.tls, lower, config.handshake_timeout_ms, handshake_cancelled,
                                       NULL, err, sizeof(err));
  if (!tls) {
    if (!server_stopping()) {  // a handshake cut short by a stop was refused by nobody
      atomic_fetch_add(&failed_handshakes, 1);
      log_refusal("tls_refused reason=\"%s\"", err);
    }
  } else {
    rpc_h2_limits_t limits = {.idle_timeout_ms = config.idle_timeout_ms,
                              .send_timeout_ms = config.send_timeout_ms,
                              .budget = budget};
    rpc_h2_conn_t *h2 =
        rpc_h2_conn_new(config.service, rpc_tls_transport(tls), rpc_tls_peer_cn(tls), &limits);
    pthread_mutex_lock(&mutex);
    c->h2 = h2;
    bool stop_now = stopping;
    pthread_mutex_unlock(&mutex);
    if (h2 && stop_now) rpc_h2_conn_stop(h2);
    if (h2) count_end(rpc_h2_conn_run(h2));
    pthread_mutex_lock(&mutex);
    c->h2 = NULL;
    pthread_mutex_unlock(&mutex);
    rpc_h2_conn_free(h2);
    rpc_tls_close(tls);
  }
  lwip_close(c->sock);
  if (config.on_thread_exit) config.on_thread_exit(config.on_thread_exit_ctx);
  pthread_mutex_lock(&mutex);
  c->in_use = false;
  live--;
  pthread_cond_broadcast(&gone);
  pthread_mutex_unlock(&mutex);
  return NULL;
}

// REQUIRES: mutex held.
static connection_t *connection_alloc(int sock) {
  if (live >= config.max_connections) return NULL;
  for (size_t i = 0; i < RPC_SERVER_MAX_CONNECTIONS; i++) {
    if (!connections[i].in_use) {
      connections[i] = (connection_t){.in_use = true, .sock = sock};
      live++;
      return &connections[i];
    }
  }
  return NULL;
}

// Options of an accepted socket: no Nagle delay (small gRPC frames go out at
// once) and keepalive, which drops peers that vanished without a FIN or RST
// (a cut cable, a host that died) even while no stream sends anything.
static void tune_socket(int sock) {
  int one = 1;
  lwip_setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (config.keepalive_ms > 0) {
    rpc_lwip_keepalive(sock, config.keepalive_ms, config.keepalive_ms / KEEPALIVE_PROBES, KEEPALIVE_PROBES);
  }
}

static void *accept_loop(void *arg) {
  (void)arg;
  for (;;) {
    // lwIP cannot close a socket another thread is blocked in accept() on
    // (it frees the mailbox under the waiter): wait in poll, then accept.
    struct pollfd pfd = {.fd = listen_sock, .events = POLLIN};
    int ready = lwip_poll(&pfd, 1, ACCEPT_POLL_MS);
    int sock = ready > 0 ? lwip_accept(listen_sock, NULL, NULL) : -1;
    pthread_mutex_lock(&mutex);
    if (stopping) {
      pthread_mutex_unlock(&mutex);
      if (sock >= 0) lwip_close(sock);
      return NULL;
    }
    if (sock < 0) {
      pthread_mutex_unlock(&mutex);
      continue;
    }
    connection_t *c = connection_alloc(sock);
    int now_live = live;
    pthread_mutex_unlock(&mutex);
    if (!c) {  // at the limit: refuse rather than queue
      lwip_close(sock);
      atomic_fetch_add(&refused_connections, 1);
      log_refusal("connection_refused reason=limit connections=%d max_connections=%d", now_live,
                  config.max_connections);
      continue;
    }
    tune_socket(sock);
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, serve_connection, c) != 0) {
      lwip_close(sock);
      pthread_mutex_lock(&mutex);
      c->in_use = false;
      live--;
      pthread_mutex_unlock(&mutex);
      atomic_fetch_add(&refused_connections, 1);
      log_refusal("connection_refused reason=no_thread");
    }
    pthread_attr_destroy(&attr);
  }
}

bool rpc_server_start(const rpc_server_config_t *cfg, char *err, size_t err_len) {
  if (!rpc_server_config_ok(cfg, err, err_len)) return false;
  config = *cfg;
  stopping = false;
  atomic_store(&refused_connections, 0);
  atomic_store(&failed_handshakes, 0);
  atomic_store(&idle_closed, 0);
  atomic_store(&send_timeouts, 0);
  budget = rpc_channel_budget_new(cfg->budget_bytes, budget_refused, NULL);
  if (budget == NULL) {
    snprintf(err, err_len, "out of memory for the channel's budget");
    return false;
  }
  listen_sock = lwip_socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = PP_HTONS(cfg->port);
  addr.sin_addr.s_addr = PP_HTONL(INADDR_ANY);
  if (listen_sock < 0 || lwip_bind(listen_sock, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
      lwip_listen(listen_sock, 8) != 0) {
    snprintf(err, err_len, "cannot listen on board port %u", cfg->port);
    if (listen_sock >= 0) lwip_close(listen_sock);
    listen_sock = -1;
  } else if (pthread_create(&accept_thread, NULL, accept_loop, NULL) != 0) {
    snprintf(err, err_len, "cannot start the accept thread");
    lwip_close(listen_sock);
    listen_sock = -1;
  } else {
    return true;
  }
  rpc_channel_budget_free(budget);
  budget = NULL;
  return false;
}

void rpc_server_stop(void) {
  if (listen_sock < 0) return;
  pthread_mutex_lock(&mutex);
  stopping = true;
  for (size_t i = 0; i < RPC_SERVER_MAX_CONNECTIONS; i++) {
    if (connections[i].in_use && connections[i].h2) rpc_h2_conn_stop(connections[i].h2);
  }
  pthread_mutex_unlock(&mutex);
  pthread_join(accept_thread, NULL);  // sees `stopping` within ACCEPT_POLL_MS
  lwip_close(listen_sock);
  listen_sock = -1;
  pthread_mutex_lock(&mutex);
  while (live > 0) pthread_cond_wait(&gone, &mutex);
  rpc_channel_budget_t *spent = budget;
  budget = NULL;
  pthread_mutex_unlock(&mutex);
  rpc_channel_budget_free(spent);
}

void rpc_server_stats(rpc_server_stats_t *out) {
  pthread_mutex_lock(&mutex);
  *out = (rpc_server_stats_t){
      .connections = (uint32_t)live,
      .max_connections = (uint32_t)config.max_connections,
      .refused_connections = atomic_load(&refused_connections),
      .failed_handshakes = atomic_load(&failed_handshakes),
      .idle_closed = atomic_load(&idle_closed),
      .send_timeouts = atomic_load(&send_timeouts),
  };
  if (budget != NULL) {
    out->refused_calls = rpc_channel_budget_refusals(budget);
    out->buffered_bytes = (uint32_t)rpc_channel_budget_used(budget);
    out->budget_bytes = (uint32_t)rpc_channel_budget_limit(budget);
  }
  pthread_mutex_unlock(&mutex);
}
