// What fleetboard's commands share.
#ifndef THREADFLEET_APP_BOARD_COMMON_H
#define THREADFLEET_APP_BOARD_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#define EXIT_USAGE 2

// "256k", "2m", "65536" -> bytes. Returns false if malformed.
bool board_parse_size(const char *s, size_t *out);
// True if --max-stack's value is in SUP_MAX_STACK_LOWEST..HIGHEST; else
// says so on stderr, prefixed with `command`.
bool board_max_stack_ok(size_t bytes, const char *command);
// sup_config_t.on_vm_start: mounts the flash at "/" (complains on stderr).
void board_mount_flash(void *ctx);
// `fleetboard serve ARGS...`; returns the exit status. process_argv: the
// process's whole argv (NULL-terminated), to restart with on a hard reset.
int board_serve(int argc, char **argv, char **process_argv);

#endif  // THREADFLEET_APP_BOARD_COMMON_H
