// BoardControl's file RPCs: ListFiles, WriteFile, ReadFile, DeleteFile. They
// adapt protobuf to board_flash.h; the flash work happens there.
#include <errno.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/rpc/control/board_flash.h"
#include "firmware/rpc/control/board_internal.h"

#define READ_CHUNKS_PER_POLL 8
// WriteFile collects this many bytes before it appends them to the flash:
// each append opens, writes, closes and syncs the file (littlefs commits its
// metadata), so 4 KB messages appended one by one cost a 64 KB push 19
// syncs and ~3700 block reads; in 16 KB batches it is 7 syncs and ~60 reads.
#define WRITE_BATCH_BYTES (16 * 1024)

static bool path_checked(rpc_call_t *call, const char *path, bool allow_root) {
  if (board_flash_path_ok(path, allow_root)) return true;
  board_finish(call, RPC_STATUS_INVALID_ARGUMENT,
               "bad path '%s': paths are absolute ('/app/main.py') without '.' or '..' parts or a "
               "trailing '/', at most %d bytes",
               path, BOARD_FLASH_PATH_MAX);
  return false;
}

// Finishes a call that failed on the flash with the status and message its
// errno calls for; `what` names the thing ("file /a.py").
static void flash_failed(rpc_call_t *call, int rc, const char *what) {
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

// ---- ListFiles -------------------------------------------------------------------------

void board_list_files(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(ListFilesRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(ListFilesRequest_fields), &req)) return;
  const char *dir = req.path[0] ? req.path : "/";
  if (!path_checked(call, dir, true)) return;

  board_scratch_t *s = board_scratch_take();
  size_t count = 0;
  bool truncated = false;
  int rc = board_flash_list(dir, s->entries, BOARD_FILES_MAX, &count, &truncated);
  bool sent = false;
  if (rc == 0) {
    BOARD_PB(ListFilesResponse) *resp = &s->msg.list_files;
    memset(resp, 0, sizeof(*resp));
    for (size_t i = 0; i < count; i++) {
      BOARD_PB(FileEntry) *e = &resp->entries[i];
      snprintf(e->name, sizeof(e->name), "%s", s->entries[i].name);
      e->is_dir = s->entries[i].is_dir;
      e->size_bytes = s->entries[i].size_bytes;
    }
    resp->entries_count = (pb_size_t)count;
    resp->truncated = truncated;
    sent = board_send(call, s, BOARD_PB(ListFilesResponse_fields), resp);
  }
  board_scratch_give(s);
  if (rc == -ENOTDIR) {
    board_finish(call, RPC_STATUS_FAILED_PRECONDITION, "%s is a file, not a directory", dir);
  } else if (rc != 0) {
    char what[BOARD_FLASH_PATH_MAX + 16];
    snprintf(what, sizeof(what), "directory %s", dir);
    flash_failed(call, rc, what);
  } else if (sent) {
    rpc_call_finish(call, RPC_STATUS_OK, NULL);
  }
}

// ---- WriteFile ---------------------------------------------------------------------------

typedef struct {
  bool header_seen;
  bool tmp_exists;  // the temporary file is on flash and must go on failure
  bool ended;       // finished (with success or an error): ignore the rest
  char path[BOARD_FLASH_PATH_MAX + 1];
  char tmp[BOARD_FLASH_PATH_MAX + sizeof(BOARD_FLASH_TMP_SUFFIX)];
  bool has_expected;
  uint64_t expected, size;
  mbedtls_sha256_context sha;
  uint8_t *batch;  // WRITE_BATCH_BYTES, allocated with the first data
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
  if (w->tmp_exists) board_flash_remove(w->tmp);
  w->tmp_exists = false;
  w->ended = true;
  board_finish(call, status, fmt, arg);
}

static void write_flash_fail(rpc_call_t *call, write_state_t *w, int rc) {
  if (w->tmp_exists) board_flash_remove(w->tmp);
  w->tmp_exists = false;
  w->ended = true;
  char what[sizeof(w->path) + 8];
  snprintf(what, sizeof(what), "file %s", w->path);
  flash_failed(call, rc, what);
}

static void write_header(rpc_call_t *call, write_state_t *w, const BOARD_PB(WriteFileHeader) * h) {
  if (w->header_seen) {
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT, "%s",
               "only the first WriteFile message may be a header");
    return;
  }
  w->header_seen = true;
  if (!board_flash_path_ok(h->path, false)) {
    w->ended = true;
    path_checked(call, h->path, false);
    return;
  }
  snprintf(w->path, sizeof(w->path), "%s", h->path);
  snprintf(w->tmp, sizeof(w->tmp), "%s%s", h->path, BOARD_FLASH_TMP_SUFFIX);
  w->has_expected = h->has_expected_size_bytes;
  w->expected = h->expected_size_bytes;
  int rc = board_flash_create(w->tmp);
  if (rc != 0) {
    write_flash_fail(call, w, rc);
    return;
  }
  w->tmp_exists = true;
  mbedtls_sha256_starts_ret(&w->sha, 0);
}

// Appends the collected bytes to the temporary file. False (the call ended
// with the flash's error) when that failed.
static bool write_flush(rpc_call_t *call, write_state_t *w) {
  if (w->batch_len == 0) return true;
  int rc = board_flash_append(w->tmp, w->batch, w->batch_len);
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
  if (!w->batch) w->batch = malloc(WRITE_BATCH_BYTES);
  if (!w->batch) {
    write_fail(call, w, RPC_STATUS_RESOURCE_EXHAUSTED, "%s", "out of memory for the write");
    return;
  }
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
  pb_istream_t in = pb_istream_from_buffer(msg, len);
  bool decoded = pb_decode(&in, BOARD_PB(WriteFileRequest_fields), req);
  if (!decoded) {
    char reason[96];
    snprintf(reason, sizeof(reason), "malformed request: %s", PB_GET_ERROR(&in));
    write_fail(call, w, RPC_STATUS_INVALID_ARGUMENT, "%s", reason);
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
  int rc = board_flash_rename(w->tmp, w->path);
  if (rc != 0) {
    write_flash_fail(call, w, rc);
    return;
  }
  w->tmp_exists = false;
  w->ended = true;
  uint8_t digest[32];
  mbedtls_sha256_finish_ret(&w->sha, digest);
  BOARD_PB(WriteFileResponse) resp = {.size_bytes = w->size};
  for (size_t i = 0; i < sizeof(digest); i++) snprintf(resp.sha256_hex + 2 * i, 3, "%02x", digest[i]);
  board_scratch_t *s = board_scratch_take();
  bool sent = board_send(call, s, BOARD_PB(WriteFileResponse_fields), &resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

void board_write_file_done(rpc_call_t *call) {
  write_state_t *w = rpc_call_user(call);
  if (!w) return;
  // Cancelled, or the connection went: the old file stays, the partial goes.
  if (w->tmp_exists) board_flash_remove(w->tmp);
  mbedtls_sha256_free(&w->sha);
  free(w->batch);
  free(w);
  rpc_call_set_user(call, NULL);
}

// ---- ReadFile ------------------------------------------------------------------------------

typedef struct {
  char path[BOARD_FLASH_PATH_MAX + 1];
  uint64_t offset;  // of the next chunk to send
} read_state_t;

void board_read_file_message(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(ReadFileRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(ReadFileRequest_fields), &req)) return;
  if (!path_checked(call, req.path, false)) return;
  bool is_dir = false;
  uint64_t size = 0;
  int rc = board_flash_stat(req.path, &is_dir, &size);
  if (rc == 0 && is_dir) rc = -EISDIR;
  if (rc != 0) {
    char what[BOARD_FLASH_PATH_MAX + 8];
    snprintf(what, sizeof(what), "file %s", req.path);
    flash_failed(call, rc, what);
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
    rc = board_flash_read(r->path, r->offset, resp->data.bytes, sizeof(resp->data.bytes), &got);
    eof = rc == 0 && got == 0;
    if (rc != 0 || eof) break;
    resp->data.size = (pb_size_t)got;
    // Not sent yet (flow control): the same chunk is read again next poll.
    blocked = !board_send(call, s, BOARD_PB(ReadFileResponse_fields), resp);
    if (!blocked) r->offset += got;
  }
  board_scratch_give(s);
  if (rc != 0) {
    char what[BOARD_FLASH_PATH_MAX + 8];
    snprintf(what, sizeof(what), "file %s", r->path);
    flash_failed(call, rc, what);
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
  int rc = board_flash_remove(req.path);
  if (rc != 0) {
    char what[BOARD_FLASH_PATH_MAX + 8];
    snprintf(what, sizeof(what), "%s", req.path);
    flash_failed(call, rc, what);
    return;
  }
  BOARD_PB(DeleteFileResponse) resp = {0};
  board_scratch_t *s = board_scratch_take();
  bool sent = board_send(call, s, BOARD_PB(DeleteFileResponse_fields), &resp);
  board_scratch_give(s);
  if (sent) rpc_call_finish(call, RPC_STATUS_OK, NULL);
}
