// Requests as the BoardControl handlers get them: nanopb's decoding plus the
// checks nanopb does not make, with messages that name the field and the
// board's limit (see board_internal.h).
//
// nanopb decodes strings into fixed char arrays (board.options sets their
// sizes): a string over its size fails with only "string overflow", and an
// embedded NUL silently ends the C string ("/app.py\0.bak" decodes as
// "/app.py"). So the encoded request is walked once more, field by field,
// against the same descriptors: after a failed decode to say which field is
// over which limit, after a successful one to refuse strings with a NUL.
#include <stdio.h>
#include <string.h>

#include "firmware/rpc/control/board_internal.h"
#include "firmware/supervisor/files.h"
#include "pb_common.h"

_Static_assert(BOARD_PATH_MAX + SUP_FILE_PARTIAL_SUFFIX_LEN <= SUP_FILE_PATH_MAX,
               "a request path and its partial suffix fit the supervisor's file API");

// The request fields a message may name, by message and field number (the
// descriptors carry no names). Every string, bytes and repeated field of a
// request is here; board_service_test checks that none is missing.
typedef struct {
  const pb_msgdesc_t *message;
  uint32_t tag;
  const char *name;
} field_name_t;

#define FIELD(msg, field) \
  { &threadfleet_board_v1_##msg##_msg, threadfleet_board_v1_##msg##_##field##_tag, #field }

static const field_name_t kFieldNames[] = {
    FIELD(ListFilesRequest, path),
    FIELD(WriteFileHeader, path),
    FIELD(WriteFileHeader, skip_if_sha256_hex),
    FIELD(WriteFileRequest, data),
    FIELD(ReadFileRequest, path),
    FIELD(DeleteFileRequest, path),
    FIELD(StartProgramRequest, path),
    FIELD(StartProgramRequest, source),
    FIELD(StartProgramRequest, name),
    FIELD(StartProgramRequest, args),
    FIELD(StartThreadRequest, module),
    FIELD(StartThreadRequest, function),
    FIELD(StartThreadRequest, args),
    FIELD(ExecRequest, source),
};

const char *board_field_name(const pb_msgdesc_t *message, uint32_t tag) {
  for (size_t i = 0; i < sizeof(kFieldNames) / sizeof(kFieldNames[0]); i++) {
    if (kFieldNames[i].message == message && kFieldNames[i].tag == tag) return kFieldNames[i].name;
  }
  return NULL;
}

// ---- Quoting input in messages ---------------------------------------------------------

size_t board_quote(const char *in, size_t len, char *out, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  if (cap < 8) {
    if (cap > 0) out[0] = '\0';
    return 0;
  }
  out[o++] = '"';
  // Room kept for the longest escape, "...", the quote and the NUL.
  for (size_t i = 0; i < len; i++) {
    uint8_t ch = (uint8_t)in[i];
    bool plain = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
    if (o + (plain ? 1 : 4) + 5 > cap) {
      memcpy(out + o, "...", 3);
      o += 3;
      break;
    }
    if (plain) {
      out[o++] = (char)ch;
    } else if (ch == '"' || ch == '\\') {
      out[o++] = '\\';
      out[o++] = (char)ch;
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 15];
    }
  }
  out[o++] = '"';
  out[o] = '\0';
  return o;
}

// ---- Walking an encoded request --------------------------------------------------------

// What a walk found: the first field over its limit, or the first string
// with a NUL byte (with the start of its value, for the message).
typedef struct {
  bool over_limit;
  bool has_nul;
  char text[BOARD_WHY_MAX];
} finding_t;

#define WALK_MAX_DEPTH 4      // requests nest at most twice
#define WALK_MAX_REPEATED 8   // repeated fields per message counted
#define WALK_QUOTE_BYTES 128  // bytes of a value kept to quote it

static void name_of(const pb_msgdesc_t *message, uint32_t tag, char *out, size_t cap) {
  const char *name = board_field_name(message, tag);
  if (name)
    snprintf(out, cap, "%s", name);
  else
    snprintf(out, cap, "field %u", (unsigned)tag);
}

// How many of each repeated field the walk has seen in one message.
typedef struct {
  uint32_t tag[WALK_MAX_REPEATED];
  unsigned count[WALK_MAX_REPEATED];
  size_t n;
} repeat_counts_t;

// Counts one more element of repeated field `tag`; returns its 0-based index.
static unsigned count_element(repeat_counts_t *r, uint32_t tag) {
  for (size_t i = 0; i < r->n; i++) {
    if (r->tag[i] == tag) return r->count[i]++;
  }
  if (r->n == WALK_MAX_REPEATED) return 0;
  r->tag[r->n] = tag;
  r->count[r->n++] = 1;
  return 0;
}

// Reads a string's bytes: keeps the first WALK_QUOTE_BYTES in keep and tells
// whether any byte is NUL. False if the stream ends early.
static bool scan_string(pb_istream_t *s, char *keep, size_t *kept, bool *nul) {
  uint8_t buf[64];
  *kept = 0;
  *nul = false;
  while (s->bytes_left > 0) {
    size_t n = s->bytes_left < sizeof(buf) ? s->bytes_left : sizeof(buf);
    if (!pb_read(s, buf, n)) return false;
    if (memchr(buf, 0, n)) *nul = true;
    size_t room = WALK_QUOTE_BYTES - *kept;
    size_t take = n < room ? n : room;
    memcpy(keep + *kept, buf, take);
    *kept += take;
  }
  return true;
}

static bool walk(pb_istream_t *in, const pb_msgdesc_t *message, void *fields_at, int depth, finding_t *f);

// One length-delimited field the descriptor knows. False when the encoding is
// broken (the walk stops; nanopb's own error then stands).
static bool walk_field(pb_istream_t *in, pb_field_iter_t *iter, repeat_counts_t *counts, int depth,
                       finding_t *f) {
  pb_istream_t sub;
  if (!pb_make_string_substream(in, &sub)) return false;
  const pb_msgdesc_t *message = iter->descriptor;
  char name[48];
  name_of(message, iter->tag, name, sizeof(name));
  size_t len = sub.bytes_left;
  bool repeated = PB_HTYPE(iter->type) == PB_HTYPE_REPEATED;
  unsigned index = repeated ? count_element(counts, iter->tag) : 0;
  char element[64];
  if (repeated)
    snprintf(element, sizeof(element), "%s[%u]", name, index);
  else
    snprintf(element, sizeof(element), "%s", name);
  bool ok = true;
  if (repeated && index >= iter->array_size) {
    f->over_limit = true;
    snprintf(f->text, sizeof(f->text), "%s has more than %u entries", name, (unsigned)iter->array_size);
  } else if (PB_LTYPE(iter->type) == PB_LTYPE_STRING && len + 1 > iter->data_size) {
    f->over_limit = true;
    snprintf(f->text, sizeof(f->text), "%s is longer than %u bytes", element, (unsigned)iter->data_size - 1);
  } else if (PB_LTYPE(iter->type) == PB_LTYPE_BYTES &&
             len > iter->data_size - offsetof(pb_bytes_array_t, bytes)) {
    f->over_limit = true;
    snprintf(f->text, sizeof(f->text), "%s is larger than %u bytes", element,
             (unsigned)(iter->data_size - offsetof(pb_bytes_array_t, bytes)));
  } else if (PB_LTYPE(iter->type) == PB_LTYPE_STRING) {
    char keep[WALK_QUOTE_BYTES];
    size_t kept = 0;
    bool nul = false;
    ok = scan_string(&sub, keep, &kept, &nul);
    if (ok && nul && !f->has_nul) {
      f->has_nul = true;
      char quoted[96];
      board_quote(keep, kept, quoted, sizeof(quoted));
      snprintf(f->text, sizeof(f->text), "%s %s contains a NUL byte", element, quoted);
    }
  } else if (PB_LTYPE_IS_SUBMSG(iter->type) && depth + 1 < WALK_MAX_DEPTH) {
    ok = walk(&sub, iter->submsg_desc, iter->pData, depth + 1, f);
  }
  // Whatever the checks above left unread.
  while (ok && sub.bytes_left > 0) {
    uint8_t skip[64];
    size_t n = sub.bytes_left < sizeof(skip) ? sub.bytes_left : sizeof(skip);
    ok = pb_read(&sub, skip, n);
  }
  return pb_close_string_substream(in, &sub) && ok;
}

// Walks one message; stops at the first field over its limit (a NUL finding
// does not stop it: a later field may still be over its limit).
static bool walk(pb_istream_t *in, const pb_msgdesc_t *message, void *fields_at, int depth, finding_t *f) {
  pb_field_iter_t iter;
  if (!pb_field_iter_begin(&iter, message, fields_at)) return true;  // no fields
  repeat_counts_t counts = {0};
  while (!f->over_limit) {
    pb_wire_type_t wire_type;
    uint32_t tag;
    bool eof = false;
    if (!pb_decode_tag(in, &wire_type, &tag, &eof)) return eof;
    if (wire_type != PB_WT_STRING || !pb_field_iter_find(&iter, tag)) {
      if (!pb_skip_field(in, wire_type)) return false;
      continue;
    }
    if (!walk_field(in, &iter, &counts, depth, f)) return false;
  }
  return true;
}

// ---- Decoding --------------------------------------------------------------------------

bool board_decode_why(const uint8_t *msg, size_t len, const pb_msgdesc_t *fields, void *dst, char *why,
                      size_t why_len) {
  pb_istream_t in = pb_istream_from_buffer(msg, len);
  bool decoded = pb_decode(&in, fields, dst);
  finding_t f = {0};
  pb_istream_t again = pb_istream_from_buffer(msg, len);
  walk(&again, fields, dst, 0, &f);
  if (f.over_limit) {
    snprintf(why, why_len, "%s", f.text);
    return false;
  }
  if (!decoded) {
    snprintf(why, why_len, "malformed request: %s", PB_GET_ERROR(&in));
    return false;
  }
  if (f.has_nul) {
    snprintf(why, why_len, "%s", f.text);
    return false;
  }
  return true;
}

bool board_decode(rpc_call_t *call, const uint8_t *msg, size_t len, const pb_msgdesc_t *fields, void *dst) {
  char why[BOARD_WHY_MAX];
  if (board_decode_why(msg, len, fields, dst, why, sizeof(why))) return true;
  board_finish(call, RPC_STATUS_INVALID_ARGUMENT, "%s", why);
  return false;
}

// ---- Paths -----------------------------------------------------------------------------

bool board_path_ok(const char *path, bool allow_root, char *why, size_t why_len) {
  size_t len = strlen(path);
  char quoted[96];  // the start of the path is enough to recognise it
  board_quote(path, len, quoted, sizeof(quoted));
  for (size_t i = 0; i < len; i++) {
    uint8_t ch = (uint8_t)path[i];
    if (ch < 0x20 || ch == 0x7f) {
      snprintf(why, why_len, "bad path %s: paths may not contain control characters", quoted);
      return false;
    }
  }
  bool ok = len > 0 && path[0] == '/' && len <= BOARD_PATH_MAX && (len > 1 || allow_root) &&
            (len == 1 || path[len - 1] != '/');
  for (const char *c = path + 1; ok && *c;) {
    const char *end = strchr(c, '/');
    size_t n = end ? (size_t)(end - c) : strlen(c);
    if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) ok = false;
    c += n + (end ? 1 : 0);
  }
  if (!ok) {
    snprintf(why, why_len,
             "bad path %s: paths are absolute ('/app/main.py') without '.' or '..' parts or a trailing '/', "
             "at most %d bytes",
             quoted, (int)BOARD_PATH_MAX);
  }
  return ok;
}
