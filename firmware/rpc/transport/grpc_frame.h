// gRPC's length-prefixed message framing (internal to h2server.c): every
// message on a stream is a 5-byte prefix (1-byte compressed flag, 4-byte
// big-endian length) followed by that many bytes. Messages may span HTTP/2
// DATA frames and one frame may carry several.
//
// Example:
//   grpc_frame_reader_t r; grpc_frame_reader_init(&r, RPC_MAX_MESSAGE, budget);
//   while (len > 0) {
//     grpc_frame_msg_t m;
//     size_t used = grpc_frame_read(&r, data, len, &m);
//     data += used; len -= used;
//     if (m.result == GRPC_FRAME_MESSAGE) handle(m.data, m.len);
//     else if (m.result != GRPC_FRAME_NEED_MORE) fail(m.result);
//   }
//   grpc_frame_reader_reset(&r);
#ifndef THREADFLEET_RPC_TRANSPORT_GRPC_FRAME_H
#define THREADFLEET_RPC_TRANSPORT_GRPC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "firmware/rpc/transport/channel_budget.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GRPC_FRAME_PREFIX 5

typedef enum {
  GRPC_FRAME_NEED_MORE,    // all input consumed, no complete message yet
  GRPC_FRAME_MESSAGE,      // one complete message in data/len
  GRPC_FRAME_COMPRESSED,   // the compressed flag is set (we support none)
  GRPC_FRAME_TOO_LARGE,    // the prefix announces more than the reader's max
  GRPC_FRAME_NO_MEMORY,    // the message buffer could not be allocated
  GRPC_FRAME_OVER_BUDGET,  // the message buffer does not fit the channel's byte budget
} grpc_frame_result_t;

typedef struct {
  grpc_frame_result_t result;
  // GRPC_FRAME_MESSAGE only: the message, valid until the next
  // grpc_frame_read or grpc_frame_reader_reset (it points either into the
  // caller's input or into the reader's buffer).
  const uint8_t *data;
  size_t len;
  // GRPC_FRAME_TOO_LARGE and GRPC_FRAME_OVER_BUDGET: the announced length.
  uint32_t announced;
} grpc_frame_msg_t;

typedef struct {
  uint32_t max;  // largest accepted message
  uint8_t prefix[GRPC_FRAME_PREFIX];
  uint8_t prefix_len;            // prefix bytes seen of the current message
  uint32_t len;                  // the current message's length (prefix complete)
  uint32_t got;                  // bytes of it in buf
  uint8_t *buf;                  // owned; allocated only when a message spans reads
  bool failed;                   // an error was reported; later reads consume nothing
  rpc_channel_budget_t *budget;  // buf's bytes are taken from it; may be NULL
} grpc_frame_reader_t;

// budget (may be NULL, not owned): where the bytes of a message that spans
// reads come from while it is reassembled.
void grpc_frame_reader_init(grpc_frame_reader_t *r, uint32_t max, rpc_channel_budget_t *budget);
// Frees the reader's buffer and forgets any partial message.
void grpc_frame_reader_reset(grpc_frame_reader_t *r);
// Consumes input up to and including the end of the next complete message
// (or all of it) and reports what it found in *out. Returns the bytes
// consumed. After an error result the reader consumes nothing more.
size_t grpc_frame_read(grpc_frame_reader_t *r, const uint8_t *data, size_t len, grpc_frame_msg_t *out);
// True while a message is partly received (half-close here is an error).
bool grpc_frame_reader_partial(const grpc_frame_reader_t *r);
// Writes the 5-byte prefix of an uncompressed message of len bytes.
void grpc_frame_write_prefix(uint8_t out[GRPC_FRAME_PREFIX], uint32_t len);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_GRPC_FRAME_H
