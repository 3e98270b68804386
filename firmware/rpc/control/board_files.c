// BoardControl's file RPCs: ListFiles, WriteFile, ReadFile, DeleteFile. They
// adapt protobuf to the supervisor's file API (firmware/supervisor/files.h);
// the flash work happens there.
#include <errno.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/rpc/control/board_internal.h"

#define READ_CHUNKS_PER_POLL 8
// WriteFile collects this many bytes before it appends them to the flash:
// each append opens, writes, closes and syncs the file (littlefs commits its
// metadata), so 4 KB messages appended one by one cost a 64 KB push 19
// syncs and ~3700 block reads; in 16 KB batches it is 7 syncs and ~60 reads.
#define WRITE_BATCH_BYTES (16 * 1024)

static bool path_checked(rpc_call_t *call, const char *path, bool allow_root) {
  char why[BOARD_WHY_MAX];
  if (board_path_ok(path, allow_root, why, sizeof(why))) return true;
  board_finish(call, RPC_STATUS_INVALID_ARGUMENT, "%s", why);
  return false;
}

void board_flash_failed(rpc_call_t *call, int rc, const char *what) {
  switch (-rc) {
    case ENOENT:
      board_finish(call, RPC_STATUS_NOT_FOUND, "%s not found", what);
      return;
    case ENOSPC:
      board_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "flash is full (writing %s)", what);
      return;
    case ENOMEM:
      board_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "the board's heap is full (at %s)", what);
      return;
    case ENOTEMPTY:
      board_finish(call, RPC_STATUS_FAILED_PRECONDITION, "%s is a directory that is not empty", what);
      return;
    case ENOTDIR:
    case EEXIST:
      board_finish(call, RPC_STATUS_FAILED_PRECONDITION, "%s: a parent is a file, not a directory", what);
      return;
    case EISDIR:
      board_finish(call, RPC_STATUS_FAILED_PRECONDITION, "%s is a directory", what);
      return;
    case EBUSY:
      board_finish_vm_busy(call, what);
      return;
    default:
      board_finish(call, board_status_of(rc), "%s: flash error %d", what, -rc);
  }
}

// ---- SHA-256 of a file ---------------------------------------------------------------

#define SHA256_HEX_LEN 64

static void hex_of(const uint8_t digest[32], char hex[SHA256_HEX_LEN + 1]) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < 32; i++) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 15];
  }
  hex[SHA256_HEX_LEN] = '\0';
}

// The SHA-256 of the file at path as 64 lowercase hex digits, read through
// buf (cap bytes at a time: one VM entry each, so programs run in between).
static int file_sha256(const char *path, uint8_t *buf, size_t cap, char hex[SHA256_HEX_LEN + 1]) {
  mbedtls_sha256_context sha;
  mbedtls_sha256_init(&sha);
  mbedtls_sha256_starts_ret(&sha, 0);
  uint64_t offset = 0;
  int rc = 0;
  for (;;) {  // ends at the end of the file: the flash is finite
    size_t got = 0;
    rc = sup_file_read(path, offset, buf, cap, &got);
    if (rc != 0 || got == 0) break;
    mbedtls_sha256_update_ret(&sha, buf, got);
    offset += got;
  }
  uint8_t digest[32];
  mbedtls_sha256_finish_ret(&sha, digest);
  mbedtls_sha256_free(&sha);
  if (rc == 0) hex_of(digest, hex);
  return rc;
}

static bool is_sha256_hex(const char *s) {
  if (strlen(s) != SHA256_HEX_LEN) return false;
  for (; *s; s++) {
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return false;
  }
  return true;
}

// ---- ListFiles -------------------------------------------------------------------------

// The SHA-256 of file `name` in directory `dir`. A name cut to fit the entry
// (longer than any path the control channel writes) gets none.
static int entry_sha256(const char *dir, const char *name, uint8_t *buf, size_t cap,
                        char hex[SHA256_HEX_LEN + 1]) {
  char path[SUP_FILE_PATH_MAX + 1];
  int n = snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, name);
  if (n < 0 || (size_t)n >= sizeof(path) || strlen(name) >= SUP_FILE_NAME_MAX) return 0;
  int rc = file_sha256(path, buf, cap, hex);
  return rc == -ENOENT ? 0 : rc;  // removed since it was listed: no digest
}

void board_list_files(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(ListFilesRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(ListFilesRequest_fields), &req)) return;
  const char *dir = req.path[0] ? req.path : "/";
  if (!path_checked(call, dir, true)) return;

  board_scratch_t *s = board_scratch_take();
  size_t count = 0;
  bool truncated = false;
  int rc = sup_file_list(dir, s->entries, BOARD_FILES_MAX, &count, &truncated);
  bool sent = false;
  if (rc == 0) {
    BOARD_PB(ListFilesResponse) *resp = &s->msg.list_files;
    memset(resp, 0, sizeof(*resp));
    for (size_t i = 0; i < count && rc == 0; i++) {
      BOARD_PB(FileEntry) *e = &resp->entries[i];
      snprintf(e->name, sizeof(e->name), "%s", s->entries[i].name);
      e->is_dir = s->entries[i].is_dir;
      e->size_bytes = s->entries[i].size_bytes;
      // s->out is free until the response is encoded: it is the read buffer.
      if (req.with_sha256 && !e->is_dir)
        rc = entry_sha256(dir, e->name, s->out, sizeof(s->out), e->sha256_hex);
    }
    resp->entries_count = (pb_size_t)count;
    resp->truncated = truncated;
    if (rc == 0) sent = board_send(call, s, BOARD_PB(ListFilesResponse_fields), resp);
  }
  board_scratch_give(s);
  if (rc == -ENOTDIR) {
    board_finish(call, RPC_STATUS_FAILED_PRECONDITION, "%s is a file, not a directory", dir);
  } else if (rc != 0) {
    char what[BOARD_PATH_MAX + 16];
    snprintf(what, sizeof(what), "directory %s", dir);
    board_flash_failed(call, rc, what);
  } else if (sent) {
    rpc_call_finish(call, RPC_STATUS_OK, NULL);
  }
}

// ---- WriteFile ---------------------------------------------------------------------------

typedef struct {
  bool header_seen;
  bool partial_exists;  // the partial file is on flash and must go on failure
  bool ended;           // finished (with success or an error): ignore the rest
  char path[BOARD_PATH_MAX + 1];
  char partial[SUP_FILE_PATH_MAX + 1];  // the file being written, renamed to path when complete
  bool has_expected;
  uint64_t expected, size;
  mbedtls_sha256_context sha;
  uint8_t *batch;  // WRITE_BATCH_BYTES, allocated with the first data (or to hash the old file)
  size_t batch_len;
} write_state_t;

static write_state_t *write_state(rpc_call_t *call) {
  write_state_t *w = rpc_call_user(call);
  if (w) return w;
  w = calloc(1, sizeof(*w));
  if (!w) return NULL;
  mbedtls_sha256_init(&w->sha);
  rpc_call_set_user(call, w);
  return w;
}

// Ends the write with an error, leaving the old file unchanged.
static void write_fail(rpc_call_t *call, write_state_t *w, rpc_status_t status, const char *fmt,
                       const char *arg) {
  if (w->partial_exists) sup_file_remove(w->partial);
  w->partial_exists = false;
  w->ended = true;
  board_finish(call, status, fmt, arg);
}

static void write_flash_fail(rpc_call_t *call, write_state_t *w, int rc) {
  if (w->partial_exists) sup_file_remove(w->partial);
  w->partial_exists = false;
  w->ended = true;
  char what[sizeof(w->path) + 8];
  snprintf(what, sizeof(what), "file %s", w->path);
  board_flash_failed(call, rc, what);
}

// The write's batch buffer, allocated once and charged to the control
// channel's byte budget. NULL when the budget or the heap refused it: the
// call is then finished (RESOURCE_EXHAUSTED) and the partial file gone.
static uint8_t *write_batch(rpc_call_t *call, write_state_t *w) {
  if (w->batch) return w->batch;
  if (!rpc_call_charge(call, WRITE_BATCH_BYTES) || !(w->batch = malloc(WRITE_BATCH_BYTES))) {
    write_fail(call, w, RPC_STATUS_RESOURCE_EXHAUSTED, "%s", "out of memory for the write");
    return NULL;
  }
  return w->batch;
}

// Frees the batch buffer (no more data to collect), before the response:
// the budget it was charged to may be what the response needs.
static void write_batch_free(rpc_call_t *call, write_state_t *w) {
  if (!w->batch) return;
  free(w->batch);
  w->batch = NULL;
  rpc_call_release(call, WRITE_BATCH_BYTES);
}

// Queues the response (small: encoded on the stack, so no scratch is
// needed). False when the transport refused it (it finished the call).
static bool send_write_response(rpc_call_t *call, const BOARD_PB(WriteFileResponse) * resp) {
  uint8_t out[BOARD_PB(WriteFileResponse_size)];
  pb_ostream_t stream = pb_ostream_from_buffer(out, sizeof(out));
  if (!pb_encode(&stream, BOARD_PB(WriteFileResponse_fields), resp)) {
    board_finish(call, RPC_STATUS_INTERNAL, "cannot encode the response: %s", PB_GET_ERROR(&stream));
    return false;
  }
  return rpc_call_send(call, out, stream.bytes_written);
}

// skip_if_sha256_hex: when the file at w->path already has that digest, the
// call ends at once, OK with unchanged = true, and the client's data (it may
// still be sending) is ignored. Returns true when it ended the call (or
// refused a malformed digest); false when the write goes ahead.
static bool write_unchanged(rpc_call_t *call, write_state_t *w, const char *expected_hex) {
  if (!is_sha256_hex(expected_hex)) {
    char quoted[96];
    board_quote(expected_hex, strlen(expected_hex), quoted, sizeof(quoted));
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT,
               "skip_if_sha256_hex must be 64 lowercase hex digits, not %s", quoted);
    return true;
  }
  bool is_dir = false;
  uint64_t size = 0;
  if (sup_file_stat(w->path, &is_dir, &size) != 0 || is_dir) return false;
  char hex[SHA256_HEX_LEN + 1];
  if (!write_batch(call, w)) return true;
  if (file_sha256(w->path, w->batch, WRITE_BATCH_BYTES, hex) != 0) return false;
  if (strcmp(hex, expected_hex) != 0) return false;
  w->ended = true;
  write_batch_free(call, w);
  BOARD_PB(WriteFileResponse) resp = {.size_bytes = size, .unchanged = true};
  snprintf(resp.sha256_hex, sizeof(resp.sha256_hex), "%s", hex);
  if (send_write_response(call, &resp)) rpc_call_finish(call, RPC_STATUS_OK, NULL);
  return true;
}

static void write_header(rpc_call_t *call, write_state_t *w, const BOARD_PB(WriteFileHeader) * h) {
  if (w->header_seen) {
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT, "%s",
               "only the first WriteFile message may be a header");
    return;
  }
  w->header_seen = true;
  if (!path_checked(call, h->path, false)) {
    w->ended = true;
    return;
  }
  if (sup_file_is_partial(h->path)) {
    char quoted[96];
    board_quote(h->path, strlen(h->path), quoted, sizeof(quoted));
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT,
               "bad path %s: names ending in " SUP_FILE_PARTIAL_MARK
               "<8 hex digits> are the board's writes in "
               "progress (removed at boot)",
               quoted);
    return;
  }
  snprintf(w->path, sizeof(w->path), "%s", h->path);
  if (h->skip_if_sha256_hex[0] && write_unchanged(call, w, h->skip_if_sha256_hex)) return;
  sup_file_partial_name(h->path, w->partial, sizeof(w->partial));
  w->has_expected = h->has_expected_size_bytes;
  w->expected = h->expected_size_bytes;
  int rc = sup_file_create(w->partial);
  if (rc != 0) {
    write_flash_fail(call, w, rc);
    return;
  }
  w->partial_exists = true;
  mbedtls_sha256_starts_ret(&w->sha, 0);
}

// Appends the collected bytes to the partial file. False (the call ended
// with the flash's error) when that failed.
static bool write_flush(rpc_call_t *call, write_state_t *w) {
  if (w->batch_len == 0) return true;
  int rc = sup_file_append(w->partial, w->batch, w->batch_len);
  w->batch_len = 0;
  if (rc != 0) {
    write_flash_fail(call, w, rc);
    return false;
  }
  return true;
}

static void write_data(rpc_call_t *call, write_state_t *w, const uint8_t *data, size_t len) {
  if (!w->header_seen) {
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT, "%s",
               "the first WriteFile message must be a header with the path");
    return;
  }
  if (w->has_expected && w->size + len > w->expected) {
    char detail[96];
    snprintf(detail, sizeof(detail), "more than the expected %llu bytes arrived",
             (unsigned long long)w->expected);
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT, "%s", detail);
    return;
  }
  if (!write_batch(call, w)) return;
  mbedtls_sha256_update_ret(&w->sha, data, len);
  w->size += len;
  while (len > 0) {
    size_t n = len < WRITE_BATCH_BYTES - w->batch_len ? len : WRITE_BATCH_BYTES - w->batch_len;
    memcpy(w->batch + w->batch_len, data, n);
    w->batch_len += n;
    data += n;
    len -= n;
    if (w->batch_len == WRITE_BATCH_BYTES && !write_flush(call, w)) return;
  }
}

void board_write_file_message(rpc_call_t *call, const uint8_t *msg, size_t len) {
  write_state_t *w = write_state(call);
  if (!w) {
    board_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the write");
    return;
  }
  if (w->ended) return;
  board_scratch_t *s = board_scratch_take();
  BOARD_PB(WriteFileRequest) *req = &s->msg.write_file;
  char why[BOARD_WHY_MAX];
  if (!board_decode_why(msg, len, BOARD_PB(WriteFileRequest_fields), req, why, sizeof(why))) {
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT, "%s", why);
  } else if (req->which_part == BOARD_PB(WriteFileRequest_header_tag)) {
    write_header(call, w, &req->part.header);
  } else if (req->which_part == BOARD_PB(WriteFileRequest_data_tag)) {
    write_data(call, w, req->part.data.bytes, req->part.data.size);
  } else if (!w->header_seen) {
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT, "%s",
               "the first WriteFile message must be a header with the path");
  }
  board_scratch_give(s);
}

void board_write_file_half_close(rpc_call_t *call) {
  write_state_t *w = write_state(call);
  if (!w || w->ended) return;
  if (!w->header_seen) {
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT, "%s", "WriteFile got no header");
    return;
  }
  if (w->has_expected && w->size != w->expected) {
    char detail[96];
    snprintf(detail, sizeof(detail), "expected %llu bytes, got %llu", (unsigned long long)w->expected,
             (unsigned long long)w->size);
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT, "%s", detail);
    return;
  }
  if (!write_flush(call, w)) return;
  write_batch_free(call, w);
  int rc = sup_file_rename(w->partial, w->path);
  if (rc != 0) {
    write_flash_fail(call, w, rc);
    return;
  }
  w->partial_exists = false;
  w->ended = true;
  uint8_t digest[32];
  mbedtls_sha256_finish_ret(&w->sha, digest);
  BOARD_PB(WriteFileResponse) resp = {.size_bytes = w->size};
  hex_of(digest, resp.sha256_hex);
  if (send_write_response(call, &resp)) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

void board_write_file_done(rpc_call_t *call) {
  write_state_t *w = rpc_call_user(call);
  if (!w) return;
  // Cancelled, or the connection went: the old file stays, the partial goes.
  if (w->partial_exists) sup_file_remove(w->partial);
  mbedtls_sha256_free(&w->sha);
  free(w->batch);
  free(w);
  rpc_call_set_user(call, NULL);
}

// ---- ReadFile ------------------------------------------------------------------------------

typedef struct {
  char path[BOARD_PATH_MAX + 1];
  uint64_t offset;  // of the next chunk to send
} read_state_t;

void board_read_file_message(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(ReadFileRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(ReadFileRequest_fields), &req)) return;
  if (!path_checked(call, req.path, false)) return;
  bool is_dir = false;
  uint64_t size = 0;
  int rc = sup_file_stat(req.path, &is_dir, &size);
  if (rc == 0 && is_dir) rc = -EISDIR;
  if (rc != 0) {
    char what[BOARD_PATH_MAX + 8];
    snprintf(what, sizeof(what), "file %s", req.path);
    board_flash_failed(call, rc, what);
    return;
  }
  read_state_t *r = calloc(1, sizeof(*r));
  if (!r) {
    board_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the read");
    return;
  }
  snprintf(r->path, sizeof(r->path), "%s", req.path);
  rpc_call_set_user(call, r);
  board_read_file_poll(call);
}

void board_read_file_poll(rpc_call_t *call) {
  read_state_t *r = rpc_call_user(call);
  if (!r) return;
  board_scratch_t *s = board_scratch_take();
  BOARD_PB(ReadFileResponse) *resp = &s->msg.read_file;
  int rc = 0;
  bool eof = false, blocked = false;
  for (int i = 0; i < READ_CHUNKS_PER_POLL && !eof && !blocked && rc == 0; i++) {
    size_t got = 0;
    rc = sup_file_read(r->path, r->offset, resp->data.bytes, sizeof(resp->data.bytes), &got);
    eof = rc == 0 && got == 0;
    if (rc != 0 || eof) break;
    resp->data.size = (pb_size_t)got;
    // Not sent yet (flow control): the same chunk is read again next poll.
    blocked = !board_send(call, s, BOARD_PB(ReadFileResponse_fields), resp);
    if (!blocked) r->offset += got;
  }
  board_scratch_give(s);
  if (rc != 0) {
    char what[BOARD_PATH_MAX + 8];
    snprintf(what, sizeof(what), "file %s", r->path);
    board_flash_failed(call, rc, what);
  } else if (eof) {
    rpc_call_finish(call, RPC_STATUS_OK, NULL);
  } else {
    rpc_call_poll_in(call, blocked ? BOARD_POLL_MS : 0);
  }
}

// ---- DeleteFile ----------------------------------------------------------------------------

void board_delete_file(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(DeleteFileRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(DeleteFileRequest_fields), &req)) return;
  if (!path_checked(call, req.path, false)) return;
  int rc = sup_file_remove(req.path);
  if (rc != 0) {
    char what[BOARD_PATH_MAX + 8];
    snprintf(what, sizeof(what), "%s", req.path);
    board_flash_failed(call, rc, what);
    return;
  }
  BOARD_PB(DeleteFileResponse) resp = {0};
  board_scratch_t *s = board_scratch_take();
  bool sent = board_send(call, s, BOARD_PB(DeleteFileResponse_fields), &resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}
