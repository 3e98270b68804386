// What fleetboard's commands share.
#ifndef THREADFLEET_APP_BOARD_COMMON_H
#define THREADFLEET_APP_BOARD_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "firmware/runtime/board_profile.h"

#define EXIT_USAGE 2

// "256k", "2m", "65536" -> bytes. Returns false if malformed.
bool board_parse_size(const char *s, size_t *out);
// A size flag whose default comes from the board's profile, which may be
// named after it on the command line (an explicit flag wins either way).
typedef struct {
  bool set;
  size_t value;
} board_limit_t;
typedef struct {
  board_limit_t heap, max_threads, max_stack;
} board_limits_t;
// Parses `s` (board_parse_size) into `limit`; false if malformed.
bool board_limit_set(board_limit_t *limit, const char *s);
// The flag's value if it was given, else `profile_default`.
size_t board_limit_or(const board_limit_t *limit, size_t profile_default);
// The profile named `name`; NULL after saying on stderr, prefixed with
// `command`, which names exist.
const board_profile_t *board_profile_arg(const char *name, const char *command);
// True if --max-stack's value is in SUP_MAX_STACK_LOWEST..HIGHEST; else
// says so on stderr, prefixed with `command`.
bool board_max_stack_ok(size_t bytes, const char *command);
// sup_config_t.on_vm_start: mounts the flash at "/" (complains on stderr).
void board_mount_flash(void *ctx);
// `fleetboard serve ARGS...`; returns the exit status. process_argv: the
// process's whole argv (NULL-terminated), to restart with on a hard reset.
int board_serve(int argc, char **argv, char **process_argv);

#endif  // THREADFLEET_APP_BOARD_COMMON_H
