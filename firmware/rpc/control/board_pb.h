// Field mapping from the supervisor's records (supervisor.h) to
// BoardControl's messages, and the choice of which records fit a message
// whose repeated fields have a fixed capacity (board.options).
#ifndef THREADFLEET_RPC_CONTROL_BOARD_PB_H
#define THREADFLEET_RPC_CONTROL_BOARD_PB_H

#include <stddef.h>
#include <stdint.h>

#include "firmware/supervisor/supervisor.h"
#include "threadfleet/board/v1/board.pb.h"

#ifdef __cplusplus
extern "C" {
#endif

// The generated names, shortened: BOARD_PB(ThreadInfo) is
// threadfleet_board_v1_ThreadInfo.
#define BOARD_PB(name) threadfleet_board_v1_##name

// "Type: message" (the supervisor's form) into type and message, and the
// traceback, each cut to its field.
void board_pb_exception(const char *exception, const char *traceback, BOARD_PB(ExceptionInfo) * out);
void board_pb_thread(const sup_thread_info_t *in, BOARD_PB(ThreadInfo) * out);
// thread_ids: the program's threads in start order (see board_pick_program_threads).
void board_pb_program(const sup_program_info_t *in, const uint32_t *thread_ids, size_t thread_count,
                      BOARD_PB(ProgramInfo) * out);
void board_pb_event(const sup_event_t *in, BOARD_PB(Event) * out);
void board_pb_chunk(const sup_output_chunk_t *in, BOARD_PB(OutputChunk) * out);

// ---- Choosing what fits ----------------------------------------------------------

// Reorders threads[0..n) (sorted by id, as sup_threads_list gives them) so
// that the first `max` are the ones to send: live threads first, then the most
// recently ended; those first ones are left sorted by id again. Returns how
// many to send (min(n, max)).
size_t board_pick_threads(sup_thread_info_t *threads, size_t n, size_t max);
// Drops the ended threads from threads[0..n), keeping the order of the rest.
// Returns how many are left.
size_t board_keep_live_threads(sup_thread_info_t *threads, size_t n);

// Like board_pick_threads for programs (running first, then the most recently
// ended); the result is sorted by id.
size_t board_pick_programs(sup_program_info_t *programs, size_t n, size_t max);

// A program's thread ids, main first and then in start order, from the
// thread records (sorted by id): its main thread, its live threads and the
// most recently ended ones, up to max. Returns how many.
size_t board_pick_program_threads(const sup_thread_info_t *threads, size_t n,
                                  const sup_program_info_t *program, uint32_t *out, size_t max);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_CONTROL_BOARD_PB_H
