// StartThread's program: `from M import F`, then F(*args) with arguments given
// as Python literal text. The text goes into generated source, so it is
// checked first: only a literal may pass, never an expression that runs code.
//
// Example:
//   const char *args[] = {"3", "'led'"};
//   if (board_module_name_ok("app.blink") && board_identifier_ok("run") &&
//       board_literal_ok(args[0]) && board_literal_ok(args[1]))
//     board_thread_source(src, sizeof src, "app.blink", "run", args, 2);
#ifndef THREADFLEET_RPC_CONTROL_BOARD_LITERAL_H
#define THREADFLEET_RPC_CONTROL_BOARD_LITERAL_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// A Python identifier (ASCII): [A-Za-z_][A-Za-z0-9_]*.
bool board_identifier_ok(const char *s);
// Identifiers joined by dots, e.g. "app.sensors".
bool board_module_name_ok(const char *s);

// One Python literal: a number (int, float, complex; optional sign), a
// single-line string or bytes ('..' or "..", prefixes b/r), True, False,
// None, or a tuple, list or dict of those (nested at most 8 deep). Spaces
// around tokens are allowed; anything else is not.
bool board_literal_ok(const char *s);

// The thread's name while it imports its module; once the import succeeded
// it takes the function's name.
#define BOARD_THREAD_IMPORTING "<importing>"

// Writes the program source that imports module.function, names the thread
// after the function and calls it with args (each already board_literal_ok).
// Returns the length, or -1 if it does not fit in cap.
int board_thread_source(char *out, size_t cap, const char *module, const char *function,
                        const char *const *args, size_t argc);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_CONTROL_BOARD_LITERAL_H
