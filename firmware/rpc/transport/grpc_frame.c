// gRPC message framing; see grpc_frame.h.
#include "firmware/rpc/transport/grpc_frame.h"

#include <stdlib.h>
#include <string.h>

void grpc_frame_reader_init(grpc_frame_reader_t *r, uint32_t max, rpc_channel_budget_t *budget) {
  memset(r, 0, sizeof *r);
  r->max = max;
  r->budget = budget;
}

// Frees the reassembly buffer and gives its bytes back.
static void release_buf(grpc_frame_reader_t *r) {
  if (r->buf != NULL && r->budget != NULL) rpc_channel_budget_give(r->budget, r->len);
  free(r->buf);
  r->buf = NULL;
}

void grpc_frame_reader_reset(grpc_frame_reader_t *r) {
  release_buf(r);
  grpc_frame_reader_init(r, r->max, r->budget);
}

bool grpc_frame_reader_partial(const grpc_frame_reader_t *r) {
  // A delivered message (prefix complete, body complete) is not partial.
  return r->prefix_len > 0 && !(r->prefix_len == GRPC_FRAME_PREFIX && r->got == r->len && !r->failed);
}

void grpc_frame_write_prefix(uint8_t out[GRPC_FRAME_PREFIX], uint32_t len) {
  out[0] = 0;
  out[1] = (uint8_t)(len >> 24);
  out[2] = (uint8_t)(len >> 16);
  out[3] = (uint8_t)(len >> 8);
  out[4] = (uint8_t)len;
}

static void start_next(grpc_frame_reader_t *r) {
  release_buf(r);
  r->prefix_len = 0;
  r->len = 0;
  r->got = 0;
}

// Validates a complete prefix. Returns GRPC_FRAME_NEED_MORE when the body
// may follow.
static grpc_frame_result_t check_prefix(grpc_frame_reader_t *r, grpc_frame_msg_t *out) {
  const uint8_t *p = r->prefix;
  r->len = ((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8) | p[4];
  if (p[0] != 0) return GRPC_FRAME_COMPRESSED;
  if (r->len > r->max) {
    out->announced = r->len;
    return GRPC_FRAME_TOO_LARGE;
  }
  return GRPC_FRAME_NEED_MORE;
}

size_t grpc_frame_read(grpc_frame_reader_t *r, const uint8_t *data, size_t len, grpc_frame_msg_t *out) {
  memset(out, 0, sizeof *out);
  out->result = GRPC_FRAME_NEED_MORE;
  if (r->failed) return 0;
  // A message delivered by the previous read is released now.
  if (r->prefix_len == GRPC_FRAME_PREFIX && r->got == r->len) start_next(r);

  size_t used = 0;
  while (r->prefix_len < GRPC_FRAME_PREFIX && used < len) r->prefix[r->prefix_len++] = data[used++];
  if (r->prefix_len < GRPC_FRAME_PREFIX) return used;
  if (r->got == 0 && r->buf == NULL) {
    grpc_frame_result_t res = check_prefix(r, out);
    if (res != GRPC_FRAME_NEED_MORE) {
      r->failed = true;
      out->result = res;
      return used;
    }
  }

  size_t avail = len - used;
  size_t want = r->len - r->got;
  // Fast path: the whole body is in this input, deliver it in place.
  if (r->buf == NULL && avail >= want) {
    out->result = GRPC_FRAME_MESSAGE;
    out->data = data + used;
    out->len = want;
    r->got = r->len;
    return used + want;
  }
  if (r->buf == NULL) {
    if (r->budget != NULL && !rpc_channel_budget_take(r->budget, r->len)) {
      r->failed = true;
      out->result = GRPC_FRAME_OVER_BUDGET;
      out->announced = r->len;
      return used;
    }
    r->buf = malloc(r->len);
    if (r->buf == NULL) {
      if (r->budget != NULL) rpc_channel_budget_give(r->budget, r->len);
      r->failed = true;
      out->result = GRPC_FRAME_NO_MEMORY;
      return used;
    }
  }
  size_t take = avail < want ? avail : want;
  memcpy(r->buf + r->got, data + used, take);
  r->got += (uint32_t)take;
  used += take;
  if (r->got == r->len) {
    out->result = GRPC_FRAME_MESSAGE;
    out->data = r->buf;
    out->len = r->len;
  }
  return used;
}
