// BoardControl's StreamOutput: a program's captured output from an offset,
// one message per chunk (a run of bytes from one thread and stream). Without
// follow it ends once what is buffered is sent; with follow, once the
// program has ended and all its output is sent. A send the transport refuses
// (flow control) is retried at the next poll from the same offset.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/rpc/control/board_internal.h"

#define OUTPUT_MESSAGES_PER_POLL 16
// How often a followed program is looked at for new output.
#define OUTPUT_FOLLOW_POLL_MS 20

typedef struct {
  uint32_t program_id;
  uint64_t offset;  // of the next byte to send
  bool follow;
} output_state_t;

void board_stream_output_message(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(StreamOutputRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(StreamOutputRequest_fields), &req)) return;
  sup_program_info_t program;
  if (!sup_program_get(req.program_id, &program)) {
    board_finish(call, RPC_STATUS_NOT_FOUND, "program %u not found", (unsigned)req.program_id);
    return;
  }
  output_state_t *o = calloc(1, sizeof(*o));
  if (!o) {
    board_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the stream");
    return;
  }
  *o = (output_state_t){.program_id = req.program_id, .offset = req.from_offset, .follow = req.follow};
  rpc_call_set_user(call, o);
  board_stream_output_poll(call);
}

typedef enum { OUTPUT_MORE, OUTPUT_IDLE, OUTPUT_BLOCKED, OUTPUT_END, OUTPUT_GONE } output_step_t;

// Sends the next chunk, if any.
static output_step_t send_next_chunk(rpc_call_t *call, board_scratch_t *s, output_state_t *o) {
  // Looked at before reading: output written before the end is all there.
  sup_program_info_t program;
  bool ended = !sup_program_get(o->program_id, &program) || program.state != SUP_PROGRAM_RUNNING;
  BOARD_PB(StreamOutputResponse) *resp = &s->msg.stream_output;
  char buf[sizeof(resp->chunk.data.bytes)];
  sup_output_chunk_t chunk;
  uint64_t first_kept = 0;
  int n = sup_output_read(o->program_id, o->offset, &chunk, 1, buf, sizeof(buf), &first_kept);
  if (n < 0) return OUTPUT_GONE;
  if (n == 0) return !o->follow || ended ? OUTPUT_END : OUTPUT_IDLE;
  resp->has_chunk = true;
  board_pb_chunk(&chunk, &resp->chunk);
  if (!board_send(call, s, BOARD_PB(StreamOutputResponse_fields), resp)) return OUTPUT_BLOCKED;
  o->offset = chunk.offset + chunk.len;
  return OUTPUT_MORE;
}

void board_stream_output_poll(rpc_call_t *call) {
  output_state_t *o = rpc_call_user(call);
  if (!o) return;
  board_scratch_t *s = board_scratch_take();
  output_step_t step = OUTPUT_MORE;
  for (int i = 0; i < OUTPUT_MESSAGES_PER_POLL && step == OUTPUT_MORE; i++)
    step = send_next_chunk(call, s, o);
  board_scratch_give(s);
  switch (step) {
    case OUTPUT_GONE:
      board_finish(call, RPC_STATUS_NOT_FOUND, "program %u is no longer remembered", (unsigned)o->program_id);
      return;
    case OUTPUT_END:
      rpc_call_finish(call, RPC_STATUS_OK, NULL);
      return;
    case OUTPUT_MORE:
      rpc_call_poll_in(call, 0);
      return;
    case OUTPUT_BLOCKED:
      rpc_call_poll_in(call, BOARD_POLL_MS);
      return;
    case OUTPUT_IDLE:
      rpc_call_poll_in(call, OUTPUT_FOLLOW_POLL_MS);
      return;
  }
}
