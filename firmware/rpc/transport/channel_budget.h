// The control channel's byte budget: one count, shared by every connection,
// of the bytes the channel holds on behalf of its calls (request messages
// being reassembled, response messages queued, what handlers charge for
// their own buffers). Whatever clients do, that memory stays under `limit`:
// a call that would go over is refused (RESOURCE_EXHAUSTED) and counted.
//
// Example:
//   rpc_channel_budget_t *budget = rpc_channel_budget_new(1 << 20, NULL, NULL);
//   if (rpc_channel_budget_take(budget, n)) { ...use n bytes...; rpc_channel_budget_give(budget, n); }
//   rpc_channel_budget_free(budget);
//
// Threading: every function may be called from any thread (lock-free).
#ifndef THREADFLEET_RPC_TRANSPORT_CHANNEL_BUDGET_H
#define THREADFLEET_RPC_TRANSPORT_CHANNEL_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rpc_channel_budget rpc_channel_budget_t;

// Told about each refusal (for a log line), on the refusing thread, with the
// bytes asked for and the budget's state then. Must not block.
typedef void (*rpc_channel_budget_refused_fn)(void *ctx, size_t wanted, size_t used, size_t limit);

// A budget of `limit` bytes, none in use. on_refused may be NULL. Returns
// NULL on out of memory (allocated once, at start-up).
rpc_channel_budget_t *rpc_channel_budget_new(size_t limit, rpc_channel_budget_refused_fn on_refused,
                                             void *ctx);
// REQUIRES: nothing taken is still in use.
void rpc_channel_budget_free(rpc_channel_budget_t *budget);

// Takes `bytes` if they fit under the limit with what is in use; otherwise
// takes nothing, counts a refusal and tells on_refused. Returns whether it took.
bool rpc_channel_budget_take(rpc_channel_budget_t *budget, size_t bytes);
// Gives back bytes taken earlier.
void rpc_channel_budget_give(rpc_channel_budget_t *budget, size_t bytes);

size_t rpc_channel_budget_limit(const rpc_channel_budget_t *budget);
size_t rpc_channel_budget_used(const rpc_channel_budget_t *budget);
// Refusals since the budget was made.
uint64_t rpc_channel_budget_refusals(const rpc_channel_budget_t *budget);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_CHANNEL_BUDGET_H
