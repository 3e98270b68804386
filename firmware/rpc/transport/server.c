// The control channel's accept loop and connection threads (see server.h).
#include "firmware/rpc/transport/server.h"

#include <lwip/def.h>
#include <lwip/sockets.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "firmware/rpc/transport/h2server.h"
#include "firmware/rpc/transport/lwip_transport.h"
#include "firmware/supervisor/supervisor.h"

#define HANDSHAKE_TIMEOUT_MS 5000
#define ACCEPT_POLL_MS 100

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

int rpc_server_connections(void) {
  pthread_mutex_lock(&mutex);
  int n = live;
  pthread_mutex_unlock(&mutex);
  return n;
}

static void *serve_connection(void *arg) {
  connection_t *c = arg;
  char err[256];
  rpc_transport_t lower = rpc_lwip_transport(&c->sock);
  rpc_tls_conn_t *tls = rpc_tls_accept(config.tls, lower, HANDSHAKE_TIMEOUT_MS, err, sizeof(err));
  if (!tls) {
    fprintf(stderr, "fleetboard: event=tls_refused reason=\"%s\"\n", err);
  } else {
    rpc_h2_conn_t *h2 = rpc_h2_conn_new(config.service, rpc_tls_transport(tls), rpc_tls_peer_cn(tls), NULL);
    pthread_mutex_lock(&mutex);
    c->h2 = h2;
    bool stop_now = stopping;
    pthread_mutex_unlock(&mutex);
    if (h2 && stop_now) rpc_h2_conn_stop(h2);
    if (h2) rpc_h2_conn_run(h2);
    pthread_mutex_lock(&mutex);
    c->h2 = NULL;
    pthread_mutex_unlock(&mutex);
    rpc_h2_conn_free(h2);
    rpc_tls_close(tls);
  }
  lwip_close(c->sock);
  sup_vm_detach();
  pthread_mutex_lock(&mutex);
  c->in_use = false;
  live--;
  pthread_cond_broadcast(&gone);
  pthread_mutex_unlock(&mutex);
  return NULL;
}

static connection_t *connection_alloc(int sock) {
  for (size_t i = 0; i < RPC_SERVER_MAX_CONNECTIONS; i++) {
    if (!connections[i].in_use) {
      connections[i] = (connection_t){.in_use = true, .sock = sock};
      live++;
      return &connections[i];
    }
  }
  return NULL;
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
    int one = 1;
    lwip_setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    connection_t *c = connection_alloc(sock);
    pthread_mutex_unlock(&mutex);
    if (!c) {  // at the limit: refuse rather than queue
      lwip_close(sock);
      continue;
    }
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
    }
    pthread_attr_destroy(&attr);
  }
}

bool rpc_server_start(const rpc_server_config_t *cfg, char *err, size_t err_len) {
  config = *cfg;
  stopping = false;
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
    return false;
  }
  if (pthread_create(&accept_thread, NULL, accept_loop, NULL) != 0) {
    snprintf(err, err_len, "cannot start the accept thread");
    lwip_close(listen_sock);
    listen_sock = -1;
    return false;
  }
  return true;
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
  pthread_mutex_unlock(&mutex);
}
