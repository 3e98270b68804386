// gRPC over HTTP/2 (nghttp2), server side; see h2server.h and call.h.
//
// One I/O thread per connection runs rpc_h2_conn_run: timers, then
// nghttp2_session_mem_send -> send until nghttp2 has nothing more, then recv
// (waiting at most until the earliest poll, deadline or limit) and
// nghttp2_session_mem_recv. Every nghttp2 callback and every handler callback
// runs on that thread, so no call state needs a lock; only the stop request
// crosses threads.
//
// No wait is longer than H2_MAX_WAIT_MS, sends included: bytes the peer does
// not take stay pending (nghttp2's buffer is valid until the next
// mem_send) and the loop comes round to its timers before it offers them
// again. While bytes are pending the connection reads nothing (a TLS record
// half sent must be offered again before anything else touches the session)
// and asks nghttp2 for nothing more, so response data waits in the calls'
// queues, which the budget bounds.
//
// A call's response goes out as: HEADERS (:status 200) with the first queued
// message, DATA drawn from the call's send queue by a data provider that
// defers while the queue is empty, then trailers (grpc-status, grpc-message).
// A call finished before it sent anything answers "trailers-only": one
// HEADERS frame with END_STREAM carrying the status.
#include "firmware/rpc/transport/h2server.h"

#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "firmware/rpc/transport/grpc_frame.h"
#include "firmware/rpc/transport/grpc_timeout.h"

#define H2_MAX_CONCURRENT_STREAMS 32
#define H2_WINDOW (1 << 20)        // stream and connection receive windows
#define H2_RECV_CHUNK 16384        // bytes read from the transport at once
#define H2_MAX_WAIT_MS 100         // longest wait in recv or send: how late a stop request is seen
#define H2_STUCK_POLL_MS 10        // longest send wait while the peer takes no bytes
#define H2_STOP_GRACE_MS 1000      // calls in flight at rpc_h2_conn_stop get this long
#define H2_CLOSE_GRACE_MS 1000     // a closing connection waits this long for its last bytes to go
#define H2_PATH_MAX 256            // longer :path values cannot name one of our methods
#define H2_PEER_MAX 128            // longest peer name kept
#define H2_STATUS_MESSAGE_MAX 512  // longest grpc-message kept (before encoding)
#define H2_SEND_QUEUE_MAX (2 * (size_t)RPC_MAX_MESSAGE)

// One queued response message, prefix included.
typedef struct send_chunk {
  struct send_chunk *next;
  size_t len;  // bytes in data
  size_t off;  // bytes already handed to nghttp2
  uint8_t data[];
} send_chunk_t;

// What a chunk of len bytes costs the budget (its allocation).
#define CHUNK_COST(len) (sizeof(send_chunk_t) + (len))

struct rpc_call {
  rpc_h2_conn_t *conn;
  rpc_call_t *next;  // the connection's list of live streams
  int32_t stream_id;
  // Resolved from :path once the request headers are complete; NULL for a
  // stream we rejected (no handler callbacks ever run for it).
  const rpc_method_t *method;

  // Request headers, gathered until the HEADERS frame is complete.
  char path[H2_PATH_MAX];
  bool path_too_long;
  bool is_post;
  bool is_grpc;  // content-type application/grpc[+proto|;...]
  int64_t deadline_ns;

  // Request messages.
  grpc_frame_reader_t reader;
  unsigned messages;  // complete request messages received
  bool half_closed;   // the client sent END_STREAM

  // Response.
  send_chunk_t *queue_head;
  send_chunk_t *queue_tail;
  size_t pending;      // bytes in the queue not yet handed to nghttp2
  bool headers_sent;   // response HEADERS submitted (maybe trailers-only)
  bool finished;       // rpc_call_finish ran (or we ended the call)
  bool trailers_sent;  // status submitted (trailers or trailers-only)
  bool deferred;       // the data provider returned NGHTTP2_ERR_DEFERRED
  bool send_blocked;   // a send failed on a full queue: poll when it drains
  rpc_status_t status;
  char *status_message;  // percent-encoded, owned; NULL for none
  int64_t poll_at_ns;    // -1: no poll asked

  bool done;  // on_done ran; the handler must not be called again
  void *user;
  size_t charged;  // rpc_call_charge's bytes, given back when the call is freed
};

struct rpc_h2_conn {
  const rpc_service_t *service;
  rpc_transport_t io;
  rpc_h2_limits_t limits;
  char peer[H2_PEER_MAX];
  nghttp2_session *session;
  rpc_call_t *calls;
  atomic_bool stop_requested;  // set from any thread by rpc_h2_conn_stop
  bool goaway_sent;            // graceful GOAWAY for a stop request
  bool terminating;            // nghttp2_session_terminate_session called
  bool protocol_error;         // we sent GOAWAY with an error code
  bool unusable;               // rpc_h2_conn_feed: the session failed
  int64_t stop_deadline_ns;
  // Bytes nghttp2 handed over that the transport has not taken yet (valid
  // until the next nghttp2_session_mem_send), and since when it takes none.
  const uint8_t *out;
  size_t out_len;
  int64_t out_stuck_since_ns;  // -1: the last send took bytes
  int64_t idle_since_ns;       // when the last stream closed (or the connection began)
  int64_t close_deadline_ns;   // once closing (stop, idle): give up on pending bytes then; -1 before
  rpc_h2_end_t end;            // why the connection is ending (the first reason wins)
  bool end_known;
  uint8_t recv_buf[H2_RECV_CHUNK];
};

// The only clock the layer reads (a port would swap this one function).
static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t add_saturating(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

static rpc_call_t *stream_call(nghttp2_session *session, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(session, stream_id);
}

#define NV(name, value) \
  { (uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, strlen(value), NGHTTP2_NV_FLAG_NONE }

// ---- Response status (trailers)

// gRPC's percent-encoding of grpc-message: bytes outside 0x20..0x7E and '%'
// itself become %XX. Returns a malloc'd string (the caller frees) or NULL.
static char *percent_encode(const char *message) {
  size_t len = strnlen(message, H2_STATUS_MESSAGE_MAX);
  char *out = malloc(len * 3 + 1);
  if (out == NULL) return NULL;
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t ch = (uint8_t)message[i];
    if (ch >= 0x20 && ch <= 0x7E && ch != '%') {
      out[o++] = (char)ch;
    } else {
      out[o++] = '%';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 15];
    }
  }
  out[o] = '\0';
  return out;
}

// Fills nva with the status fields; status_buf must outlive the submit.
static size_t status_fields(const rpc_call_t *call, nghttp2_nv *nva, char status_buf[12]) {
  snprintf(status_buf, 12, "%d", (int)call->status);
  size_t n = 0;
  nva[n++] = (nghttp2_nv)NV("grpc-status", status_buf);
  if (call->status_message != NULL && call->status_message[0] != '\0') {
    nva[n++] = (nghttp2_nv)NV("grpc-message", call->status_message);
  }
  return n;
}

// Answers a request with a non-200 HTTP status and no gRPC framing (wrong
// method or content-type: the peer is not a gRPC client).
static void respond_http_error(rpc_call_t *call, const char *http_status) {
  nghttp2_nv nva[] = {NV(":status", http_status)};
  call->finished = true;
  call->headers_sent = true;
  call->trailers_sent = true;
  nghttp2_submit_response(call->conn->session, call->stream_id, nva, 1, NULL);
}

// ---- The data provider

// nghttp2_data_source_read_callback: copies up to `length` queued response
// bytes into `buf` (nghttp2's buffer, valid during the call).
// Returns the bytes copied; NGHTTP2_ERR_DEFERRED when the queue is empty and
// the call not finished (rpc_call_send/finish resume it); or
// NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE (nghttp2 resets the stream) if the
// call is gone. Once the queue is drained after finish it sets EOF with
// NO_END_STREAM and submits the trailers, which end the stream.
static ssize_t read_response(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                             uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  rpc_call_t *call = stream_call(session, stream_id);
  if (call == NULL) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t copied = 0;
  while (copied < length && call->queue_head != NULL) {
    send_chunk_t *c = call->queue_head;
    size_t take = c->len - c->off;
    if (take > length - copied) take = length - copied;
    memcpy(buf + copied, c->data + c->off, take);
    c->off += take;
    copied += take;
    if (c->off == c->len) {
      call->queue_head = c->next;
      if (call->queue_head == NULL) call->queue_tail = NULL;
      if (call->conn->limits.budget != NULL)
        rpc_channel_budget_give(call->conn->limits.budget, CHUNK_COST(c->len));
      free(c);
    }
  }
  call->pending -= copied;
  if (call->send_blocked && copied > 0) {
    call->send_blocked = false;
    if (!call->finished) call->poll_at_ns = 0;  // room again: poll as soon as possible
  }
  if (call->pending > 0) return (ssize_t)copied;
  if (!call->finished) {
    if (copied > 0) return (ssize_t)copied;
    call->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
  nghttp2_nv nva[2];
  char status_buf[12];
  size_t n = status_fields(call, nva, status_buf);
  call->trailers_sent = true;
  if (nghttp2_submit_trailer(session, stream_id, nva, n) != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return (ssize_t)copied;
}

// Submits HEADERS :status 200 with the data provider (first message).
static bool submit_response_headers(rpc_call_t *call) {
  nghttp2_nv nva[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
  nghttp2_data_provider provider = {.source.ptr = call, .read_callback = read_response};
  call->headers_sent = true;
  return nghttp2_submit_response(call->conn->session, call->stream_id, nva, 2, &provider) == 0;
}

// Submits a single HEADERS frame with END_STREAM carrying the status.
static void submit_trailers_only(rpc_call_t *call) {
  nghttp2_nv nva[4] = {NV(":status", "200"), NV("content-type", "application/grpc")};
  char status_buf[12];
  size_t n = 2 + status_fields(call, nva + 2, status_buf);
  call->headers_sent = true;
  call->trailers_sent = true;
  nghttp2_submit_response(call->conn->session, call->stream_id, nva, n, NULL);
}

static void resume(rpc_call_t *call) {
  if (!call->deferred) return;
  call->deferred = false;
  nghttp2_session_resume_data(call->conn->session, call->stream_id);
}

// ---- call.h

// Finishes a call the channel's byte budget cannot take `wanted` more bytes
// for, naming the budget.
static void finish_over_budget(rpc_call_t *call, size_t wanted) {
  const rpc_channel_budget_t *b = call->conn->limits.budget;
  char message[192];
  snprintf(message, sizeof message,
           "the board's control channel is out of buffer space: %zu more bytes do not fit its byte budget "
           "of %zu bytes (%zu in use)",
           wanted, rpc_channel_budget_limit(b), rpc_channel_budget_used(b));
  rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, message);
}

bool rpc_call_send(rpc_call_t *call, const uint8_t *msg, size_t len) {
  if (call->finished || call->done || len > RPC_MAX_MESSAGE) return false;
  if (call->pending + GRPC_FRAME_PREFIX + len > H2_SEND_QUEUE_MAX) {
    call->send_blocked = true;
    return false;
  }
  rpc_channel_budget_t *budget = call->conn->limits.budget;
  size_t cost = CHUNK_COST(GRPC_FRAME_PREFIX + len);
  if (budget != NULL && !rpc_channel_budget_take(budget, cost)) {
    finish_over_budget(call, cost);
    return false;
  }
  send_chunk_t *c = malloc(cost);
  if (c == NULL) {
    if (budget != NULL) rpc_channel_budget_give(budget, cost);
    rpc_call_poll_in(call, 10);  // out of memory for now: let the handler retry
    return false;
  }
  c->next = NULL;
  c->len = GRPC_FRAME_PREFIX + len;
  c->off = 0;
  grpc_frame_write_prefix(c->data, (uint32_t)len);
  if (len > 0) memcpy(c->data + GRPC_FRAME_PREFIX, msg, len);
  if (call->queue_tail != NULL) {
    call->queue_tail->next = c;
  } else {
    call->queue_head = c;
  }
  call->queue_tail = c;
  call->pending += c->len;
  if (!call->headers_sent) {
    if (!submit_response_headers(call)) {
      call->finished = true;  // the stream is gone; on_done follows
      return false;
    }
  } else {
    resume(call);
  }
  return true;
}

size_t rpc_call_pending_bytes(const rpc_call_t *call) { return call->pending; }

bool rpc_call_charge(rpc_call_t *call, size_t bytes) {
  if (call->finished || call->done) return false;
  rpc_channel_budget_t *budget = call->conn->limits.budget;
  if (budget == NULL) return true;
  if (!rpc_channel_budget_take(budget, bytes)) {
    finish_over_budget(call, bytes);
    return false;
  }
  call->charged += bytes;
  return true;
}

void rpc_call_release(rpc_call_t *call, size_t bytes) {
  if (bytes > call->charged) bytes = call->charged;
  call->charged -= bytes;
  if (call->conn->limits.budget != NULL) rpc_channel_budget_give(call->conn->limits.budget, bytes);
}

void rpc_call_finish(rpc_call_t *call, rpc_status_t status, const char *message) {
  if (call->finished || call->done) return;
  call->finished = true;
  call->status = status;
  call->poll_at_ns = -1;
  if (message != NULL && message[0] != '\0') call->status_message = percent_encode(message);
  if (!call->headers_sent) {
    submit_trailers_only(call);
  } else {
    resume(call);
  }
}

void rpc_call_poll_in(rpc_call_t *call, int ms) {
  if (call->finished || call->done) return;
  call->poll_at_ns = add_saturating(now_ns(), (int64_t)(ms > 0 ? ms : 0) * 1000000LL);
}

int64_t rpc_call_deadline_ns(const rpc_call_t *call) { return call->deadline_ns; }
void rpc_call_set_user(rpc_call_t *call, void *user) { call->user = user; }
void *rpc_call_user(const rpc_call_t *call) { return call->user; }
const char *rpc_call_peer(const rpc_call_t *call) { return call->conn->peer; }

// ---- Call lifecycle

// Runs on_done once; afterwards the handler hears nothing more.
static void call_done(rpc_call_t *call) {
  if (call->done) return;
  call->finished = true;
  call->done = true;
  if (call->method != NULL && call->method->on_done != NULL) call->method->on_done(call);
}

static void call_free(rpc_call_t *call) {
  rpc_channel_budget_t *budget = call->conn->limits.budget;
  send_chunk_t *c = call->queue_head;
  while (c != NULL) {
    send_chunk_t *next = c->next;
    if (budget != NULL) rpc_channel_budget_give(budget, CHUNK_COST(c->len));
    free(c);
    c = next;
  }
  if (budget != NULL) rpc_channel_budget_give(budget, call->charged);
  grpc_frame_reader_reset(&call->reader);
  free(call->status_message);
  free(call);
}

static void unlink_call(rpc_h2_conn_t *conn, rpc_call_t *call) {
  for (rpc_call_t **p = &conn->calls; *p != NULL; p = &(*p)->next) {
    if (*p == call) {
      *p = call->next;
      return;
    }
  }
}

static bool equals(const uint8_t *s, size_t len, const char *lit) {
  return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

// "application/grpc" alone or followed by "+codec" or ";params".
static bool is_grpc_content_type(const uint8_t *v, size_t len) {
  static const char base[] = "application/grpc";
  size_t n = sizeof base - 1;
  if (len < n || memcmp(v, base, n) != 0) return false;
  return len == n || v[n] == '+' || v[n] == ';';
}

// Request headers complete: pick the method or reject the stream.
static void start_call(rpc_call_t *call) {
  if (!call->is_post) {
    respond_http_error(call, "405");
    return;
  }
  if (!call->is_grpc) {
    respond_http_error(call, "415");
    return;
  }
  const rpc_service_t *service = call->conn->service;
  char message[H2_PATH_MAX + 64];
  const char *slash = call->path[0] == '/' ? strchr(call->path + 1, '/') : NULL;
  if (call->path_too_long || slash == NULL) {
    rpc_call_finish(call, RPC_STATUS_UNIMPLEMENTED, "malformed method name");
    return;
  }
  size_t service_len = (size_t)(slash - (call->path + 1));
  if (service_len != strlen(service->name) || memcmp(call->path + 1, service->name, service_len) != 0) {
    snprintf(message, sizeof message, "unknown service %.*s", (int)service_len, call->path + 1);
    rpc_call_finish(call, RPC_STATUS_UNIMPLEMENTED, message);
    return;
  }
  for (size_t i = 0; i < service->method_count; i++) {
    if (strcmp(service->methods[i].name, slash + 1) == 0) {
      call->method = &service->methods[i];
      return;
    }
  }
  snprintf(message, sizeof message, "unknown method %s for service %s", slash + 1, service->name);
  rpc_call_finish(call, RPC_STATUS_UNIMPLEMENTED, message);
}

// The client sent END_STREAM.
static void half_close(rpc_call_t *call) {
  if (call->half_closed) return;
  call->half_closed = true;
  if (call->method == NULL || call->finished) return;
  if (grpc_frame_reader_partial(&call->reader)) {
    rpc_call_finish(call, RPC_STATUS_INTERNAL, "incomplete request message");
    return;
  }
  // Same wording as grpc-java's ServerCalls.
  if (!call->method->client_streaming && call->messages == 0) {
    rpc_call_finish(call, RPC_STATUS_INTERNAL, "Half-closed without a request");
    return;
  }
  if (call->method->on_half_close != NULL) call->method->on_half_close(call);
}

static void deliver(rpc_call_t *call, const uint8_t *data, size_t len) {
  while (len > 0 && !call->finished) {
    grpc_frame_msg_t m;
    size_t used = grpc_frame_read(&call->reader, data, len, &m);
    data += used;
    len -= used;
    char message[96];
    switch (m.result) {
      case GRPC_FRAME_NEED_MORE:
        break;
      case GRPC_FRAME_MESSAGE:
        if (++call->messages > 1 && !call->method->client_streaming) {
          rpc_call_finish(call, RPC_STATUS_INTERNAL, "Too many requests");
        } else if (call->method->on_message != NULL) {
          call->method->on_message(call, m.data, m.len);
        }
        break;
      case GRPC_FRAME_COMPRESSED:
        rpc_call_finish(call, RPC_STATUS_UNIMPLEMENTED, "compression not supported");
        break;
      case GRPC_FRAME_TOO_LARGE:
        snprintf(message, sizeof message, "Received message larger than max (%lu vs. %d)",
                 (unsigned long)m.announced, RPC_MAX_MESSAGE);
        rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, message);
        break;
      case GRPC_FRAME_NO_MEMORY:
        rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the request message");
        break;
      case GRPC_FRAME_OVER_BUDGET:
        finish_over_budget(call, m.announced);
        break;
    }
  }
}

// ---- nghttp2 callbacks (user_data is the rpc_h2_conn_t)

// nghttp2_on_begin_headers_callback: a client opens a stream. Returns 0, or
// NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE (nghttp2 resets just this stream)
// when no call can be allocated.
static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  rpc_h2_conn_t *conn = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  rpc_call_t *call = calloc(1, sizeof *call);
  if (call == NULL) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  call->conn = conn;
  call->stream_id = frame->hd.stream_id;
  call->deadline_ns = -1;
  call->poll_at_ns = -1;
  grpc_frame_reader_init(&call->reader, RPC_MAX_MESSAGE, conn->limits.budget);
  if (nghttp2_session_set_stream_user_data(session, call->stream_id, call) != 0) {
    free(call);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  call->next = conn->calls;
  conn->calls = call;
  return 0;
}

// nghttp2_on_header_callback: one request header field (name and value are
// nghttp2's, valid during the call; we copy what we keep). Returns 0 always;
// nghttp2 has already validated the field against HTTP/2's rules.
static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  rpc_call_t *call = stream_call(session, frame->hd.stream_id);
  if (call == NULL) return 0;
  if (equals(name, namelen, ":method")) {
    call->is_post = equals(value, valuelen, "POST");
  } else if (equals(name, namelen, ":path")) {
    call->path_too_long = valuelen >= sizeof call->path;
    if (!call->path_too_long) {
      memcpy(call->path, value, valuelen);
      call->path[valuelen] = '\0';
    }
  } else if (equals(name, namelen, "content-type")) {
    call->is_grpc = is_grpc_content_type(value, valuelen);
  } else if (equals(name, namelen, "grpc-timeout")) {
    // Like grpc-core, a malformed timeout is ignored (no deadline).
    int64_t timeout_ns;
    if (grpc_timeout_parse((const char *)value, valuelen, &timeout_ns)) {
      call->deadline_ns = add_saturating(now_ns(), timeout_ns);
    }
  }
  return 0;
}

// nghttp2_on_frame_recv_callback: a whole frame arrived (DATA payload was
// already passed to on_data_chunk). Returns 0 always.
static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  rpc_call_t *call = stream_call(session, frame->hd.stream_id);
  if (call == NULL) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) start_call(call);
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) half_close(call);
  return 0;
}

// nghttp2_on_data_chunk_recv_callback: request body bytes (nghttp2's buffer,
// valid during the call). Returns 0 always: bytes for a finished or rejected
// call are dropped, never buffered.
static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *user_data) {
  rpc_call_t *call = stream_call(session, stream_id);
  if (call == NULL || call->method == NULL || call->finished) return 0;
  deliver(call, data, len);
  return 0;
}

// nghttp2_on_frame_send_callback: after a frame went out. Returns 0 always.
// Once our side ended a stream the client still sends on (an early error),
// RST_STREAM(NO_ERROR) tells it to stop, as gRPC servers do.
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  rpc_h2_conn_t *conn = user_data;
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    conn->protocol_error = true;
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
      nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  }
  return 0;
}

// nghttp2_on_stream_close_callback: the stream is gone (both sides ended,
// RST_STREAM either way, or the session closing). Runs on_done and frees the
// call. Returns 0 always.
static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data) {
  rpc_h2_conn_t *conn = user_data;
  rpc_call_t *call = stream_call(session, stream_id);
  if (call == NULL) return 0;
  nghttp2_session_set_stream_user_data(session, stream_id, NULL);
  unlink_call(conn, call);
  call_done(call);
  call_free(call);
  if (conn->calls == NULL) conn->idle_since_ns = now_ns();
  return 0;
}

// ---- Connection

rpc_h2_conn_t *rpc_h2_conn_new(const rpc_service_t *service, rpc_transport_t io, const char *peer,
                               const rpc_h2_limits_t *limits) {
  rpc_h2_conn_t *conn = calloc(1, sizeof *conn);
  if (conn == NULL) return NULL;
  conn->service = service;
  conn->io = io;
  if (limits != NULL) conn->limits = *limits;
  conn->out_stuck_since_ns = -1;
  conn->idle_since_ns = now_ns();
  conn->close_deadline_ns = -1;
  conn->end = RPC_H2_END_PEER_CLOSED;
  snprintf(conn->peer, sizeof conn->peer, "%s", peer != NULL ? peer : "");
  atomic_init(&conn->stop_requested, false);

  nghttp2_session_callbacks *cb = NULL;
  nghttp2_option *opt = NULL;
  if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0) goto er;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  // Closed streams are not kept for the priority tree: stream user data never
  // outlives its call.
  nghttp2_option_set_no_closed_streams(opt, 1);
  if (nghttp2_session_server_new2(&conn->session, cb, conn, opt) != 0) goto er;
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_CONCURRENT_STREAMS},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW},
  };
  if (nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, 2) != 0) goto er;
  if (nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0, H2_WINDOW) != 0) goto er;
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(opt);
  return conn;

er:
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(opt);
  nghttp2_session_del(conn->session);
  free(conn);
  return NULL;
}

// Ends every call that is still open (connection lost or closing).
static void close_all_calls(rpc_h2_conn_t *conn) {
  for (rpc_call_t *c = conn->calls; c != NULL; c = c->next) call_done(c);
}

void rpc_h2_conn_free(rpc_h2_conn_t *conn) {
  if (conn == NULL) return;
  close_all_calls(conn);
  nghttp2_session_del(conn->session);  // runs no callbacks
  while (conn->calls != NULL) {
    rpc_call_t *next = conn->calls->next;
    call_free(conn->calls);
    conn->calls = next;
  }
  free(conn);
}

void rpc_h2_conn_stop(rpc_h2_conn_t *conn) { atomic_store(&conn->stop_requested, true); }

// Deadlines and asked-for polls that are due.
static void run_timers(rpc_h2_conn_t *conn, int64_t now) {
  for (rpc_call_t *c = conn->calls; c != NULL; c = c->next) {
    if (c->method == NULL || c->finished) continue;
    if (c->deadline_ns >= 0 && now >= c->deadline_ns) {
      rpc_call_finish(c, RPC_STATUS_DEADLINE_EXCEEDED, "Deadline Exceeded");
      // The handler is done with it now, even while the status waits behind
      // bytes a slow peer has not taken: what it holds (a snippet running,
      // a partial file) is released at the deadline.
      call_done(c);
      continue;
    }
    if (c->poll_at_ns >= 0 && now >= c->poll_at_ns) {
      c->poll_at_ns = -1;
      if (c->method->poll != NULL) c->method->poll(c);
    }
  }
}

// When a connection without a stream (and not closing yet) reaches its idle
// timeout (monotonic ns), or -1 for none.
static int64_t idle_deadline(const rpc_h2_conn_t *conn) {
  int64_t idle_ns = (int64_t)conn->limits.idle_timeout_ms * 1000000LL;
  if (idle_ns <= 0 || conn->calls != NULL || conn->terminating || conn->goaway_sent) return -1;
  return conn->idle_since_ns + idle_ns;
}

// How long recv or send may wait: until the next timer or limit, at most
// H2_MAX_WAIT_MS.
static int next_wait_ms(const rpc_h2_conn_t *conn, int64_t now) {
  int64_t until = now + (int64_t)H2_MAX_WAIT_MS * 1000000LL;
  for (const rpc_call_t *c = conn->calls; c != NULL; c = c->next) {
    if (c->method == NULL || c->finished) continue;
    if (c->poll_at_ns >= 0 && c->poll_at_ns < until) until = c->poll_at_ns;
    if (c->deadline_ns >= 0 && c->deadline_ns < until) until = c->deadline_ns;
  }
  if (conn->goaway_sent && conn->stop_deadline_ns < until) until = conn->stop_deadline_ns;
  if (conn->close_deadline_ns >= 0 && conn->close_deadline_ns < until) until = conn->close_deadline_ns;
  int64_t idle = idle_deadline(conn);
  if (idle >= 0 && idle < until) until = idle;
  int64_t send_ns = (int64_t)conn->limits.send_timeout_ms * 1000000LL;
  if (send_ns > 0 && conn->out_stuck_since_ns >= 0 && conn->out_stuck_since_ns + send_ns < until) {
    until = conn->out_stuck_since_ns + send_ns;
  }
  if (until <= now) return 0;
  return (int)((until - now + 999999) / 1000000);
}

// Records why the connection ends, unless a reason came first.
static void end_because(rpc_h2_conn_t *conn, rpc_h2_end_t end) {
  if (conn->end_known) return;
  conn->end = end;
  conn->end_known = true;
}

// Ends the session: GOAWAY with `error`, and the connection closes once
// that is sent or, with a peer that takes nothing, after H2_CLOSE_GRACE_MS.
static void terminate(rpc_h2_conn_t *conn, int64_t now, uint32_t error) {
  if (conn->terminating) return;
  conn->terminating = true;
  conn->close_deadline_ns = now + (int64_t)H2_CLOSE_GRACE_MS * 1000000LL;
  nghttp2_session_terminate_session(conn->session, error);
}

// A stop request sends GOAWAY (calls in flight may finish), and after
// H2_STOP_GRACE_MS ends the session outright.
static void handle_stop(rpc_h2_conn_t *conn, int64_t now) {
  if (!atomic_load(&conn->stop_requested) || conn->terminating) return;
  end_because(conn, RPC_H2_END_STOPPED);
  if (!conn->goaway_sent) {
    conn->goaway_sent = true;
    conn->stop_deadline_ns = now + (int64_t)H2_STOP_GRACE_MS * 1000000LL;
    nghttp2_submit_goaway(conn->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(conn->session), NGHTTP2_NO_ERROR, NULL, 0);
  } else if (now >= conn->stop_deadline_ns) {
    terminate(conn, now, NGHTTP2_NO_ERROR);
  }
}

// A connection without a stream for idle_timeout_ms ends with GOAWAY
// (NO_ERROR), as gRPC servers' max connection idle does: clients reconnect
// at their next call.
static void handle_idle(rpc_h2_conn_t *conn, int64_t now) {
  int64_t deadline = idle_deadline(conn);
  if (deadline < 0 || now < deadline) return;
  end_because(conn, RPC_H2_END_IDLE);
  terminate(conn, now, NGHTTP2_NO_ERROR);
}

// True when the connection must go now with bytes still unsent: the peer
// took none for send_timeout_ms, or a closing connection's grace is over.
static bool give_up_sending(rpc_h2_conn_t *conn, int64_t now) {
  if (conn->out_len == 0) return false;
  int64_t send_ns = (int64_t)conn->limits.send_timeout_ms * 1000000LL;
  if (send_ns > 0 && conn->out_stuck_since_ns >= 0 && now - conn->out_stuck_since_ns >= send_ns) {
    end_because(conn, RPC_H2_END_SEND_TIMEOUT);
    return true;
  }
  return conn->close_deadline_ns >= 0 && now >= conn->close_deadline_ns;
}

static rpc_h2_end_t end_of_io(int io_result) {
  if (io_result == RPC_IO_CLOSED) return RPC_H2_END_PEER_CLOSED;
  return io_result == RPC_IO_PEER_GONE ? RPC_H2_END_PEER_GONE : RPC_H2_END_IO_ERROR;
}

// Hands what nghttp2 wants to send to the transport, waiting at most wait_ms
// in all for it to take the bytes. Bytes it does not take stay pending in
// conn->out. Returns 0, or -1 if the session or the transport failed
// (conn->end says how).
static int flush(rpc_h2_conn_t *conn, int wait_ms) {
  int64_t give_up = now_ns() + (int64_t)wait_ms * 1000000LL;
  for (;;) {
    if (conn->out_len == 0) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(conn->session, &data);
      if (n < 0) {
        end_because(conn, RPC_H2_END_PROTOCOL_ERROR);
        return -1;
      }
      if (n == 0) return 0;
      conn->out = data;
      conn->out_len = (size_t)n;
    }
    int64_t now = now_ns();
    int left_ms = now >= give_up ? 0 : (int)((give_up - now + 999999) / 1000000);
    int sent = conn->io.send(conn->io.ctx, conn->out, conn->out_len, left_ms);
    if (sent > 0) {
      conn->out += sent;
      conn->out_len -= (size_t)sent;
      conn->out_stuck_since_ns = -1;
    } else if (sent == RPC_IO_WOULD_BLOCK) {
      if (conn->out_stuck_since_ns < 0) conn->out_stuck_since_ns = now;
      return 0;
    } else {
      end_because(conn, end_of_io(sent));
      return -1;
    }
  }
}

// Drops everything nghttp2 wants to send (rpc_h2_conn_feed). Returns 0, or -1
// if the session failed.
static int flush_discard(rpc_h2_conn_t *conn) {
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(conn->session, &data);
    if (n < 0) return -1;
    if (n == 0) return 0;
  }
}

static bool session_over(const rpc_h2_conn_t *conn) {
  return !nghttp2_session_want_read(conn->session) && !nghttp2_session_want_write(conn->session);
}

rpc_h2_end_t rpc_h2_conn_run(rpc_h2_conn_t *conn) {
  for (;;) {
    int64_t now = now_ns();
    handle_stop(conn, now);
    run_timers(conn, now);
    handle_idle(conn, now);
    if (give_up_sending(conn, now)) break;
    int wait_ms = next_wait_ms(conn, now);
    if (conn->out_stuck_since_ns >= 0 && wait_ms > H2_STUCK_POLL_MS) wait_ms = H2_STUCK_POLL_MS;
    if (flush(conn, wait_ms) != 0) break;
    // A peer slow to take our bytes: still read what it sends (new calls,
    // RST_STREAM, WINDOW_UPDATE) without waiting, so one stalled stream does
    // not hide the connection's other streams and their deadlines; then the
    // timers, and the bytes are offered again.
    bool stuck = conn->out_len > 0;
    if (!stuck && session_over(conn)) break;
    int n = conn->io.recv(conn->io.ctx, conn->recv_buf, sizeof conn->recv_buf,
                          stuck ? 0 : next_wait_ms(conn, now_ns()));
    if (n == RPC_IO_WOULD_BLOCK) continue;
    if (n < 0) {
      end_because(conn, end_of_io(n));
      break;
    }
    if (nghttp2_session_mem_recv(conn->session, conn->recv_buf, (size_t)n) < 0) {
      // A fatal error on input: try to tell the peer, then give up.
      terminate(conn, now_ns(), NGHTTP2_PROTOCOL_ERROR);
      end_because(conn, RPC_H2_END_PROTOCOL_ERROR);
      flush(conn, 0);
      break;
    }
  }
  if (conn->protocol_error) conn->end = RPC_H2_END_PROTOCOL_ERROR;
  end_because(conn, RPC_H2_END_PEER_CLOSED);
  close_all_calls(conn);
  return conn->end;
}

bool rpc_h2_conn_feed(rpc_h2_conn_t *conn, const uint8_t *data, size_t len) {
  if (conn->unusable) return false;
  if (nghttp2_session_mem_recv(conn->session, data, len) < 0) {
    terminate(conn, now_ns(), NGHTTP2_PROTOCOL_ERROR);
    flush_discard(conn);
    conn->unusable = true;
    return false;
  }
  run_timers(conn, now_ns());
  if (flush_discard(conn) != 0 || session_over(conn)) {
    conn->unusable = true;
    return false;
  }
  return true;
}

const char *rpc_h2_end_name(rpc_h2_end_t end) {
  switch (end) {
    case RPC_H2_END_PEER_CLOSED:
      return "peer_closed";
    case RPC_H2_END_STOPPED:
      return "stopped";
    case RPC_H2_END_IDLE:
      return "idle";
    case RPC_H2_END_SEND_TIMEOUT:
      return "send_timeout";
    case RPC_H2_END_PEER_GONE:
      return "peer_gone";
    case RPC_H2_END_PROTOCOL_ERROR:
      return "protocol_error";
    case RPC_H2_END_IO_ERROR:
      return "io_error";
  }
  return "unknown";
}
