// fleetboard: one process is one simulated board.
//
//   fleetboard serve --name b01 --listen 127.0.0.1:PORT ...   (serve.c)
//   fleetboard run SCRIPT.py [--profile esp32|rp2|generic] [--heap N]
//                  [--flash FILE] [--max-threads N] [--max-stack N]
//                  [--timeout SECONDS] [--name NAME] [-X OPTION] [ARGS...]
//
// `run` boots a fresh board, runs one program on it and exits when the
// program has ended (all of its threads), printing its output like
// `micropython SCRIPT.py` does. sys.path[0] is the script's directory (its
// real path), as on the unix port; the board's own entries ('', '.frozen',
// '/lib') follow. Imports read the board's flash, never the host's files, so
// modules beside the script import only if that directory is on the flash. Exit status: the program's (0,
// SystemExit's code, 1 after an uncaught exception), 124 when --timeout killed it, 2 for bad usage.
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "firmware/app/board_common.h"
#include "firmware/net/netstack.h"
#include "firmware/runtime/board_profile.h"
#include "firmware/runtime/vm.h"
#include "firmware/storage/lfsdev.h"
#include "firmware/supervisor/supervisor.h"

#define EXIT_TIMEOUT 124

typedef struct {
  const char *script;
  const char *flash;
  size_t heap_bytes;
  size_t max_threads;
  size_t max_stack_bytes;
  double timeout_s;  // <= 0: none
  const char *name;
  bool emit_native;  // -X emit=native
  int argc;          // script arguments (sys.argv[1:])
  char **argv;
} run_options_t;

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: fleetboard serve --name NAME --listen 127.0.0.1:PORT --flash FILE --cert C --key K --ca CA\n"
      "                        [--heap N[k|m]] [--max-threads N] [--max-stack N[k|m]]\n"
      "                        [--profile esp32|rp2|generic]\n"
      "       fleetboard run SCRIPT.py [--profile esp32|rp2|generic] [--heap N[k|m]]\n"
      "                      [--flash FILE] [--max-threads N] [--max-stack N[k|m]]\n"
      "                      [--timeout SECONDS] [--name NAME] [-X OPTION] [ARGS...]\n"
      "\n"
      "Runs SCRIPT.py as a program on a fresh simulated board and exits when all of\n"
      "its threads have ended. --flash keeps the board's files in FILE (littlefs).\n"
      "--profile is the real board simulated (default generic): its sys.platform and\n"
      "identity, and the defaults of --heap, --max-threads and --max-stack.\n"
      "-X emit=native compiles every function to machine code; -X heapsize=N is --heap.\n"
      "--max-stack caps a thread's stack (_thread.stack_size; default 256k, 64k..16m):\n"
      "a board commits at most max-threads x max-stack bytes of stack.\n");
}

// -X options are MicroPython's unix port's (run-tests passes them):
// heapsize= sets the heap, emit= the code emitter.
static bool apply_x_option(const char *opt, run_options_t *o, board_limits_t *limits) {
  if (strncmp(opt, "heapsize=", 9) == 0) return board_limit_set(&limits->heap, opt + 9);
  if (strcmp(opt, "emit=bytecode") == 0 || strcmp(opt, "emit=native") == 0) {
    o->emit_native = strcmp(opt, "emit=native") == 0;
    return true;
  }
  if (strncmp(opt, "emit=", 5) == 0) {
    fprintf(stderr, "fleetboard run: -X emit= must be bytecode or native (got %s)\n", opt + 5);
    return false;
  }
  return strcmp(opt, "realtime") == 0;
}

static int parse_run(int argc, char **argv, run_options_t *o) {
  *o = (run_options_t){.name = "board"};
  board_limits_t limits = {0};
  const board_profile_t *profile = board_profile_current();
  int i = 0;
  // Every option takes one value.
  for (; i < argc && argv[i][0] == '-'; i += 2) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    bool ok = v != NULL;
    if (strcmp(a, "--profile") == 0) {
      if (ok && !(profile = board_profile_arg(v, "fleetboard run"))) return -1;
    } else if (strcmp(a, "--heap") == 0)
      ok = ok && board_limit_set(&limits.heap, v);
    else if (strcmp(a, "--flash") == 0)
      o->flash = v;
    else if (strcmp(a, "--max-threads") == 0)
      ok = ok && board_limit_set(&limits.max_threads, v);
    else if (strcmp(a, "--max-stack") == 0)
      ok = ok && board_limit_set(&limits.max_stack, v);
    else if (strcmp(a, "--timeout") == 0)
      ok = ok && (o->timeout_s = atof(v)) > 0;
    else if (strcmp(a, "--name") == 0)
      o->name = v;
    else if (strcmp(a, "-X") == 0)
      ok = ok && apply_x_option(v, o, &limits);
    else {
      fprintf(stderr, "fleetboard run: unknown option %s\n", a);
      return -1;
    }
    if (!ok) {
      fprintf(stderr, "fleetboard run: bad or missing value for %s\n", a);
      return -1;
    }
  }
  if (i >= argc) {
    usage(stderr);
    return -1;
  }
  board_profile_use(profile);
  o->heap_bytes = board_limit_or(&limits.heap, profile->heap_bytes);
  o->max_threads = board_limit_or(&limits.max_threads, profile->max_threads);
  o->max_stack_bytes = board_limit_or(&limits.max_stack, profile->max_stack_bytes);
  if (o->heap_bytes < 16 * 1024) {
    fprintf(stderr, "fleetboard run: --heap must be at least 16k\n");
    return -1;
  }
  if (o->max_threads < 1 || o->max_threads > 32) {
    fprintf(stderr, "fleetboard run: --max-threads must be between 1 and 32\n");
    return -1;
  }
  if (!board_max_stack_ok(o->max_stack_bytes, "fleetboard run")) return -1;
  o->script = argv[i];
  o->argc = argc - i;
  o->argv = argv + i;
  return 0;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 4096;
      char *grown = realloc(buf, cap);
      if (!grown) break;
      buf = grown;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  bool ok = !ferror(f);
  fclose(f);
  if (!ok) {
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

// Program output goes straight to our stdout/stderr, unbuffered, so the two
// interleave as the program wrote them.
static void echo_output(uint32_t program_id, uint32_t thread_id, int stream, const char *data, size_t len,
                        void *ctx) {
  (void)program_id, (void)thread_id, (void)ctx;
  int fd = stream == 2 ? STDERR_FILENO : STDOUT_FILENO;
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n <= 0) return;
    data += n;
    len -= (size_t)n;
  }
}

static void prepend_script_dir(void *dir) { rt_vm_path_prepend(dir); }

static int run_program(const run_options_t *o) {
  size_t source_len = 0;
  char *source = read_file(o->script, &source_len);
  if (!source) {
    fprintf(stderr, "fleetboard run: can't open file '%s': %s\n", o->script, strerror(errno));
    return EXIT_USAGE;
  }
  char err[160];
  if (!lfsdev_open(o->flash, LFSDEV_DEFAULT_BYTES, err, sizeof(err))) {
    fprintf(stderr, "fleetboard run: %s\n", err);
    free(source);
    return EXIT_USAGE;
  }
  // The board's network as `serve` has it, less the port forward: the
  // program's sockets reach the host's loopback services through 10.0.2.2.
  if (!net_start(&(net_config_t){.host_ip = "127.0.0.1", .port = 0}, err, sizeof(err))) {
    fprintf(stderr, "fleetboard run: network: %s\n", err);
    lfsdev_close();
    free(source);
    return EXIT_FAILURE;
  }
  sup_config_t config = sup_default_config();
  config.board_name = o->name;
  config.heap_bytes = o->heap_bytes;
  config.max_threads = o->max_threads;
  config.max_stack_bytes = o->max_stack_bytes;
  config.emit_native = o->emit_native;
  config.on_vm_start = board_mount_flash;
  int stack_marker;
  if (!sup_init(&config, &stack_marker)) {
    net_stop();
    free(source);
    return EXIT_FAILURE;
  }
  sup_set_output_observer(echo_output, NULL);
  char script_path[PATH_MAX];
  if (realpath(o->script, script_path) &&
      !sup_vm_run(prepend_script_dir, dirname(script_path), err, sizeof(err)))
    fprintf(stderr, "fleetboard run: sys.path[0] is not the script's directory: %s\n", err);

  uint32_t program_id = 0, main_tid = 0;
  sup_program_spec_t spec = {.name = o->script,
                             .source = source,
                             .source_len = source_len,
                             .argv = (const char *const *)o->argv,
                             .argc = (size_t)o->argc};
  int status = EXIT_FAILURE;
  if (sup_program_start(&spec, &program_id, &main_tid, err, sizeof(err)) != 0) {
    fprintf(stderr, "fleetboard run: %s\n", err);
  } else {
    int64_t timeout_ms = o->timeout_s > 0 ? (int64_t)(o->timeout_s * 1000) : -1;
    bool timed_out = sup_program_wait(program_id, timeout_ms) == -ETIMEDOUT;
    if (timed_out) {
      fprintf(stderr, "fleetboard run: %s still running after %gs; killing it\n", o->script, o->timeout_s);
      sup_program_kill(program_id, -1);
      sup_program_wait(program_id, 5000);
    }
    sup_program_info_t info;
    sup_program_get(program_id, &info);
    status = timed_out ? EXIT_TIMEOUT : info.exit_code;
  }
  sup_set_output_observer(NULL, NULL);
  sup_deinit();
  net_stop();
  lfsdev_close();
  free(source);
  return status;
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : 0;
  }
  if (strcmp(argv[1], "run") == 0) {
    run_options_t options;
    if (parse_run(argc - 2, argv + 2, &options) != 0) return EXIT_USAGE;
    return run_program(&options);
  }
  if (strcmp(argv[1], "serve") == 0) return board_serve(argc - 2, argv + 2, argv);
  fprintf(stderr,
          "fleetboard: unknown command '%s' (try: fleetboard run SCRIPT.py | fleetboard serve --help)\n",
          argv[1]);
  return EXIT_USAGE;
}
