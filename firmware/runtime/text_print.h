// A MicroPython printer into a fixed buffer: for exception texts kept in
// records and error messages. Output past the buffer is dropped; the text is
// always NUL-terminated.
#ifndef THREADFLEET_RUNTIME_TEXT_PRINT_H
#define THREADFLEET_RUNTIME_TEXT_PRINT_H

#include <stddef.h>

#include "py/mpprint.h"

typedef struct {
  char *buf;
  size_t len, cap;
} rt_text_t;

// Empties buf (cap > 0) and returns a printer appending to it via `text`,
// which must outlive the printer's use.
mp_print_t rt_text_printer(rt_text_t *text, char *buf, size_t cap);

#endif  // THREADFLEET_RUNTIME_TEXT_PRINT_H
