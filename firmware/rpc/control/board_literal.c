// Checks Python literal text and writes StartThread's program (see
// board_literal.h). A small recursive-descent recogniser: it accepts a subset
// of Python's literal grammar and never evaluates anything.
#include "firmware/rpc/control/board_literal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LITERAL_MAX_DEPTH 8

static bool ident_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool ident_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

// Length of the identifier at s (0 if none).
static size_t ident_len(const char *s) {
  if (!ident_start(*s)) return 0;
  size_t n = 1;
  while (ident_char(s[n])) n++;
  return n;
}

bool board_identifier_ok(const char *s) {
  size_t n = ident_len(s);
  return n > 0 && s[n] == '\0';
}

bool board_module_name_ok(const char *s) {
  for (;;) {
    size_t n = ident_len(s);
    if (n == 0) return false;
    s += n;
    if (*s == '\0') return true;
    if (*s++ != '.') return false;
  }
}

// ---- The recogniser -------------------------------------------------------------------

typedef struct {
  const char *p;
} cursor_t;

static bool value(cursor_t *c, int depth);

static void skip_space(cursor_t *c) {
  while (*c->p == ' ' || *c->p == '\t') c->p++;
}

static bool take(cursor_t *c, char ch) {
  skip_space(c);
  if (*c->p != ch) return false;
  c->p++;
  return true;
}

static size_t digits(cursor_t *c, int (*is_digit)(int)) {
  size_t n = 0;
  while (is_digit((unsigned char)*c->p) || (*c->p == '_' && n > 0)) c->p++, n++;
  return n;
}

static int is_bin(int ch) { return ch == '0' || ch == '1'; }
static int is_oct(int ch) { return ch >= '0' && ch <= '7'; }

static bool number(cursor_t *c) {
  if (*c->p == '+' || *c->p == '-') c->p++;
  if (c->p[0] == '0' && strchr("xXoObB", c->p[1]) && c->p[1]) {
    char base = (char)tolower((unsigned char)c->p[1]);
    c->p += 2;
    return digits(c, base == 'x' ? isxdigit : base == 'o' ? is_oct : is_bin) > 0;
  }
  size_t whole = digits(c, isdigit), frac = 0;
  if (*c->p == '.') c->p++, frac = digits(c, isdigit);
  if (whole + frac == 0) return false;
  if (*c->p == 'e' || *c->p == 'E') {
    c->p++;
    if (*c->p == '+' || *c->p == '-') c->p++;
    if (digits(c, isdigit) == 0) return false;
  }
  if (*c->p == 'j' || *c->p == 'J') c->p++;
  return !ident_char(*c->p);
}

static bool string(cursor_t *c) {
  const char *p = c->p;
  for (int prefixes = 0; prefixes < 2 && strchr("bBrR", *p) && *p; prefixes++) p++;
  char quote = *p;
  if (quote != '\'' && quote != '"') return false;
  // A triple-quoted string would span lines; we accept single-line ones.
  if (p[1] == quote && p[2] == quote) return false;
  for (p++; *p != quote; p++) {
    if (*p == '\0' || *p == '\n' || *p == '\r') return false;
    if (*p == '\\' && (p[1] == '\0' || p[1] == '\n')) return false;
    if (*p == '\\') p++;
  }
  c->p = p + 1;
  return true;
}

static bool keyword(cursor_t *c) {
  static const char *const words[] = {"True", "False", "None"};
  size_t n = ident_len(c->p);
  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
    if (n == strlen(words[i]) && strncmp(c->p, words[i], n) == 0) {
      c->p += n;
      return true;
    }
  }
  return false;
}

// Elements up to `close`, comma separated, a trailing comma allowed; dict
// elements are key: value pairs. *count gets how many there were and
// *trailing_comma whether the last was followed by a comma.
static bool elements(cursor_t *c, char close, bool dict, int depth, size_t *count, bool *trailing_comma) {
  *count = 0;
  *trailing_comma = false;
  for (;;) {
    if (take(c, close)) return true;
    if (*count > 0 && !*trailing_comma) return false;
    if (!value(c, depth + 1)) return false;
    if (dict && (!take(c, ':') || !value(c, depth + 1))) return false;
    (*count)++;
    *trailing_comma = take(c, ',');
  }
}

static bool value(cursor_t *c, int depth) {
  if (depth > LITERAL_MAX_DEPTH) return false;
  skip_space(c);
  size_t count;
  bool comma;
  switch (*c->p) {
    case '(':
      c->p++;
      return elements(c, ')', false, depth, &count, &comma);
    case '[':
      c->p++;
      return elements(c, ']', false, depth, &count, &comma);
    case '{':
      c->p++;
      return elements(c, '}', true, depth, &count, &comma);
    default:
      break;
  }
  const char *start = c->p;
  if (string(c) || keyword(c)) return true;
  c->p = start;
  return number(c);
}

bool board_literal_ok(const char *s) {
  cursor_t c = {s};
  if (!value(&c, 0)) return false;
  skip_space(&c);
  return *c.p == '\0';
}

// ---- The program ---------------------------------------------------------------------------

typedef struct {
  char *out;
  size_t cap, len;
  bool overflow;
} text_t;

static void put(text_t *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(t->out + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= t->cap - t->len) {
    t->overflow = true;
    return;
  }
  t->len += (size_t)n;
}

int board_thread_source(char *out, size_t cap, const char *module, const char *function,
                        const char *const *args, size_t argc) {
  if (cap == 0) return -1;
  text_t t = {out, cap, 0, false};
  put(&t, "import fleet\nfleet.thread_name('%s')\n", BOARD_THREAD_IMPORTING);
  put(&t, "from %s import %s as _f\nfleet.thread_name('%s')\ndel fleet\n_f(", module, function, function);
  for (size_t i = 0; i < argc; i++) put(&t, "%s%s", i ? ", " : "", args[i]);
  put(&t, ")\n");
  return t.overflow ? -1 : (int)t.len;
}
