// `fleetboard serve`: a board that runs until SIGTERM, serving BoardControl
// over gRPC + mutual TLS from its own lwIP stack.
//
//   fleetboard serve --name b01 --listen 127.0.0.1:7001 --flash b01.lfs
//                    --cert b01.pem --key b01.key --ca ca.pem
//                    [--profile esp32|rp2|generic]
//                    [--heap 256k] [--max-threads 16] [--max-stack 256k]
//                    [--flash-size 1m] [--no-boot]
//                    [control channel limits: see serve_usage]
//
// At start and after every reset the board runs /boot.py, then /main.py
// (supervisor.h, "Boot"), unless --no-boot.
// On SIGTERM/SIGINT: stop accepting, end connections, kill every thread,
// sync and close the flash, exit 0.
//
// A Reset that cannot end a thread stuck in native code restarts the board
// as a watchdog would: the Reset call is answered (hard = true), connections
// are closed, the flash is synced, and the process executes itself again with
// the same arguments (same pid; uptime, thread and program ids start again),
// carrying the boot state (boot-loop guard, a safe boot asked for) in
// BOOT_MEMORY_ENV as a board's RTC memory survives its reset.
#define _GNU_SOURCE  // close_range
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "firmware/app/board_common.h"
#include "firmware/net/netstack.h"
#include "firmware/rpc/control/board_service.h"
#include "firmware/rpc/transport/server.h"
#include "firmware/rpc/transport/tls.h"
#include "firmware/storage/lfsdev.h"
#include "firmware/supervisor/files.h"
#include "firmware/supervisor/supervisor.h"

typedef struct {
  const char *name, *listen, *flash, *cert, *key, *ca;
  size_t heap_bytes, max_threads, max_stack_bytes, flash_bytes;
  bool no_boot;  // never run /boot.py and /main.py
  char host_ip[64];
  uint16_t port;
  rpc_server_config_t channel;  // the control channel's limits
} serve_options_t;

// What a hard reset hands to the restarted board (sup_boot_memory_save).
#define BOOT_MEMORY_ENV "FLEETBOARD_BOOT_MEMORY"

static volatile int stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

// Health's network figures: the lwIP/slirp counters and live TLS sessions.
static void board_net_stats(board_net_stats_t *out, void *ctx) {
  (void)ctx;
  net_stats_t net;
  net_stats(&net);
  *out = (board_net_stats_t){.tcp_connections = net.tcp_active,
                             .tx_bytes = net.tx_bytes,
                             .rx_bytes = net.rx_bytes,
                             .tls_sessions = (uint32_t)rpc_tls_sessions()};
}

// A write that a crash or kill cut short leaves its partial file on flash
// (see files.h); before anything writes, the board removes them all, so they
// never fill the flash.
static void remove_partial_files(void) {
  size_t removed = 0;
  uint64_t bytes = 0;
  int rc = sup_file_remove_partials(&removed, &bytes);
  if (rc != 0) {
    fprintf(stderr, "fleetboard: event=partial_files_not_removed errno=%d removed=%zu\n", -rc, removed);
  } else if (removed > 0) {
    fprintf(stderr, "fleetboard: event=partial_files_removed count=%zu bytes=%llu\n", removed,
            (unsigned long long)bytes);
  }
}

// The listener's figures for health snapshots.
static void board_channel_stats(board_channel_stats_t *out, void *ctx) {
  (void)ctx;
  rpc_server_stats_t s;
  rpc_server_stats(&s);
  *out = (board_channel_stats_t){.connections = s.connections,
                                 .max_connections = s.max_connections,
                                 .refused_connections = s.refused_connections,
                                 .failed_handshakes = s.failed_handshakes,
                                 .idle_closed = s.idle_closed,
                                 .send_timeouts = s.send_timeouts,
                                 .refused_calls = s.refused_calls,
                                 .buffered_bytes = s.buffered_bytes,
                                 .budget_bytes = s.budget_bytes};
}

// rpc_server_config_t.on_thread_exit: the control channel's handlers entered
// the VM from this connection thread.
static void detach_from_vm(void *ctx) {
  (void)ctx;
  sup_vm_detach();
}

// A non-negative count of milliseconds (or connections) that fits an int.
static bool parse_int(const char *s, int *out) {
  size_t v;
  if (!board_parse_size(s, &v) || v > INT_MAX) return false;
  *out = (int)v;
  return true;
}

static bool parse_listen(serve_options_t *o) {
  const char *colon = o->listen ? strrchr(o->listen, ':') : NULL;
  if (!colon || colon == o->listen || (size_t)(colon - o->listen) >= sizeof(o->host_ip)) return false;
  memcpy(o->host_ip, o->listen, (size_t)(colon - o->listen));
  o->host_ip[colon - o->listen] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 1 || port > 65535) return false;
  o->port = (uint16_t)port;
  return true;
}

static void serve_usage(FILE *out) {
  fprintf(out,
          "usage: fleetboard serve --name NAME --listen 127.0.0.1:PORT --flash FILE\n"
          "                        --cert BOARD.pem --key BOARD.key --ca CA.pem\n"
          "                        [--profile esp32|rp2|generic]\n"
          "                        [--heap N[k|m]] [--max-threads N] [--max-stack N[k|m]]\n"
          "                        [--flash-size N[k|m]] [--no-boot]\n"
          "                        [--max-connections N] [--handshake-timeout-ms MS]\n"
          "                        [--idle-timeout-ms MS] [--keepalive-ms MS]\n"
          "                        [--send-timeout-ms MS] [--channel-budget N[k|m]]\n"
          "\n"
          "Runs a board until SIGTERM, serving BoardControl (gRPC, mutual TLS) from its\n"
          "own lwIP stack, forwarded from HOST:PORT. Make certificates with deploy/pki.\n"
          "--profile is the real board simulated (default generic): its sys.platform and\n"
          "identity, and the defaults of --heap, --max-threads and --max-stack.\n"
          "--max-stack caps a thread's stack (_thread.stack_size; default 256k, 64k..16m):\n"
          "the board commits at most max-threads x max-stack bytes of stack.\n"
          "At each start and reset the board boots as a real one does: it runs /boot.py,\n"
          "then /main.py, as programs (a boot loop stops after 5 boots in 10 s until the\n"
          "lab resets the board); --no-boot runs neither.\n"
          "A Reset that cannot end a thread stuck in native code restarts the board: the\n"
          "process executes itself again with the same arguments (same pid; flash kept).\n"
          "\n"
          "Control channel limits (0 turns a timeout off):\n"
          "  --max-connections N      connections served at once, more are refused (16, at most 16)\n"
          "  --handshake-timeout-ms   a TLS handshake must be done within this (15000)\n"
          "  --idle-timeout-ms        a connection without a call ends after this (300000)\n"
          "  --keepalive-ms           a silent peer is probed after this, dropped after ~2x (30000)\n"
          "  --send-timeout-ms        a peer that reads nothing for this long is dropped (10000)\n"
          "  --channel-budget         bytes all connections may buffer for their calls (1m)\n");
}

static int parse_serve(int argc, char **argv, serve_options_t *o) {
  if (argc == 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    serve_usage(stdout);
    return 1;
  }
  *o = (serve_options_t){.flash_bytes = LFSDEV_DEFAULT_BYTES, .channel = rpc_server_default_config()};
  board_limits_t limits = {0};
  const board_profile_t *profile = board_profile_current();
  for (int i = 0; i < argc;) {
    const char *a = argv[i];
    if (strcmp(a, "--no-boot") == 0) {  // the one option without a value
      o->no_boot = true;
      i += 1;
      continue;
    }
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    i += 2;
    bool ok = v != NULL;
    if (strcmp(a, "--name") == 0)
      o->name = v;
    else if (strcmp(a, "--listen") == 0)
      o->listen = v;
    else if (strcmp(a, "--flash") == 0)
      o->flash = v;
    else if (strcmp(a, "--cert") == 0)
      o->cert = v;
    else if (strcmp(a, "--key") == 0)
      o->key = v;
    else if (strcmp(a, "--ca") == 0)
      o->ca = v;
    else if (strcmp(a, "--profile") == 0) {
      if (ok && !(profile = board_profile_arg(v, "fleetboard serve"))) return -1;
    } else if (strcmp(a, "--heap") == 0)
      ok = ok && board_limit_set(&limits.heap, v);
    else if (strcmp(a, "--max-threads") == 0)
      ok = ok && board_limit_set(&limits.max_threads, v);
    else if (strcmp(a, "--max-stack") == 0)
      ok = ok && board_limit_set(&limits.max_stack, v);
    else if (strcmp(a, "--flash-size") == 0)
      ok = ok && board_parse_size(v, &o->flash_bytes);
    else if (strcmp(a, "--max-connections") == 0)
      ok = ok && parse_int(v, &o->channel.max_connections);
    else if (strcmp(a, "--handshake-timeout-ms") == 0)
      ok = ok && parse_int(v, &o->channel.handshake_timeout_ms);
    else if (strcmp(a, "--idle-timeout-ms") == 0)
      ok = ok && parse_int(v, &o->channel.idle_timeout_ms);
    else if (strcmp(a, "--keepalive-ms") == 0)
      ok = ok && parse_int(v, &o->channel.keepalive_ms);
    else if (strcmp(a, "--send-timeout-ms") == 0)
      ok = ok && parse_int(v, &o->channel.send_timeout_ms);
    else if (strcmp(a, "--channel-budget") == 0)
      ok = ok && board_parse_size(v, &o->channel.budget_bytes);
    else {
      fprintf(stderr, "fleetboard serve: unknown option %s\n", a);
      return -1;
    }
    if (!ok) {
      fprintf(stderr, "fleetboard serve: bad or missing value for %s\n", a);
      return -1;
    }
  }
  board_profile_use(profile);
  o->heap_bytes = board_limit_or(&limits.heap, profile->heap_bytes);
  o->max_threads = board_limit_or(&limits.max_threads, profile->max_threads);
  o->max_stack_bytes = board_limit_or(&limits.max_stack, profile->max_stack_bytes);
  const char *missing = !o->name     ? "--name"
                        : !o->listen ? "--listen"
                        : !o->flash  ? "--flash"
                        : !o->cert   ? "--cert"
                        : !o->key    ? "--key"
                        : !o->ca     ? "--ca"
                                     : NULL;
  if (missing) {
    fprintf(stderr, "fleetboard serve: %s is required (see fleetboard --help)\n", missing);
    return -1;
  }
  if (!parse_listen(o)) {
    fprintf(stderr, "fleetboard serve: --listen wants HOST:PORT, e.g. 127.0.0.1:7001 (got %s)\n", o->listen);
    return -1;
  }
  if (o->max_threads < 1 || o->max_threads > 32 || o->heap_bytes < 16 * 1024) {
    fprintf(stderr, "fleetboard serve: --max-threads must be 1..32 and --heap at least 16k\n");
    return -1;
  }
  if (!board_max_stack_ok(o->max_stack_bytes, "fleetboard serve")) return -1;
  char err[160];
  if (!rpc_server_config_ok(&o->channel, err, sizeof(err))) {
    fprintf(stderr, "fleetboard serve: control channel limits: %s (see fleetboard serve --help)\n", err);
    return -1;
  }
  return 0;
}

// The hard reset's last step: the board starts again from its first
// instruction, with its flash as synced. On an MCU this is the watchdog
// reset. Returns only if the restart failed.
static void restart_board(char **process_argv) {
  char memory[SUP_BOOT_MEMORY_MAX];
  if (sup_boot_memory_save(memory, sizeof(memory))) setenv(BOOT_MEMORY_ENV, memory, 1);
  lfsdev_close();
  fflush(stdout);
  // Nothing but stdio survives into the new board: libslirp opens its host
  // sockets without O_CLOEXEC, and a connection or listener inherited that
  // way is served by nobody (new clients hung in their TLS handshake).
  if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
    fprintf(stderr, "fleetboard: event=restart_fds reason=\"%s\"\n", strerror(errno));
  execv("/proc/self/exe", process_argv);
  fprintf(stderr, "fleetboard: event=restart_failed reason=\"%s\"\n", strerror(errno));
}

int board_serve(int argc, char **argv, char **process_argv) {
  serve_options_t o;
  int parsed = parse_serve(argc, argv, &o);
  if (parsed != 0) return parsed > 0 ? EXIT_SUCCESS : EXIT_USAGE;
  char err[200];
  rpc_tls_config_t *tls = rpc_tls_config_new(o.cert, o.key, o.ca, err, sizeof(err));
  if (!tls) {
    fprintf(stderr, "fleetboard serve: %s\n", err);
    return EXIT_USAGE;
  }
  if (!lfsdev_open(o.flash, o.flash_bytes, err, sizeof(err))) {
    fprintf(stderr, "fleetboard serve: %s\n", err);
    rpc_tls_config_free(tls);
    return EXIT_USAGE;
  }
  sup_config_t config = sup_default_config();
  config.board_name = o.name;
  config.heap_bytes = o.heap_bytes;
  config.max_threads = o.max_threads;
  config.max_stack_bytes = o.max_stack_bytes;
  config.on_vm_start = board_mount_flash;
  config.boot_scripts = !o.no_boot;
  int stack_marker;
  if (!sup_init(&config, &stack_marker)) {
    lfsdev_close();
    rpc_tls_config_free(tls);
    return EXIT_FAILURE;
  }
  remove_partial_files();
  board_service_configure(&(board_service_config_t){
      .board = &config, .net_stats = board_net_stats, .channel_stats = board_channel_stats});
  int status = EXIT_FAILURE;
  net_config_t net = {.host_ip = o.host_ip, .port = o.port};
  rpc_server_config_t server = o.channel;
  server.port = o.port;
  server.tls = tls;
  server.service = &board_service;
  server.on_thread_exit = detach_from_vm;
  if (!net_start(&net, err, sizeof(err))) {
    fprintf(stderr, "fleetboard serve: %s\n", err);
  } else if (!rpc_server_start(&server, err, sizeof(err))) {
    fprintf(stderr, "fleetboard serve: %s\n", err);
    net_stop();
  } else {
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "fleetboard: serving %s on %s:%u\n", o.name, o.host_ip, o.port);
    // Only the board this one restarted from leaves its boot memory.
    sup_boot_memory_restore(getenv(BOOT_MEMORY_ENV));
    unsetenv(BOOT_MEMORY_ENV);
    bool hard_reset = sup_host_serve(&stop_requested) == SUP_HOST_HARD_RESET;  // until SIGTERM
    if (hard_reset) {
      char why[160];
      if (!sup_vm_busy(why, sizeof(why))) snprintf(why, sizeof(why), "threads could not be killed");
      fprintf(stderr, "fleetboard: event=hard_reset board=%s reason=\"%s\"\n", o.name, why);
    } else {
      fprintf(stderr, "fleetboard: stopping %s\n", o.name);
    }
    rpc_server_stop();
    net_stop();
    if (hard_reset) {
      restart_board(process_argv);
      return EXIT_FAILURE;  // a supervisor (systemd, deploy/lab up) may start it again
    }
    status = EXIT_SUCCESS;
  }
  int stuck = sup_deinit();
  if (stuck > 0)
    fprintf(stderr, "fleetboard: %d thread(s) stuck in native code end with the process\n", stuck);
  lfsdev_close();
  rpc_tls_config_free(tls);
  return status;
}
