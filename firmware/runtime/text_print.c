// A MicroPython printer into a fixed buffer (see text_print.h).
#include "firmware/runtime/text_print.h"

#include <string.h>

static void text_strn(void *env, const char *str, size_t len) {
  rt_text_t *t = env;
  size_t room = t->cap - 1 - t->len;
  if (len > room) len = room;
  memcpy(t->buf + t->len, str, len);
  t->len += len;
  t->buf[t->len] = '\0';
}

mp_print_t rt_text_printer(rt_text_t *text, char *buf, size_t cap) {
  *text = (rt_text_t){.buf = buf, .len = 0, .cap = cap};
  buf[0] = '\0';
  return (mp_print_t){text, text_strn};
}
