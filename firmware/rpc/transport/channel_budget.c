// The control channel's byte budget; see channel_budget.h.
#include "firmware/rpc/transport/channel_budget.h"

#include <stdatomic.h>
#include <stdlib.h>

struct rpc_channel_budget {
  size_t limit;
  atomic_size_t used;
  atomic_uint_fast64_t refusals;
  rpc_channel_budget_refused_fn on_refused;
  void *ctx;
};

rpc_channel_budget_t *rpc_channel_budget_new(size_t limit, rpc_channel_budget_refused_fn on_refused,
                                             void *ctx) {
  rpc_channel_budget_t *b = calloc(1, sizeof(*b));
  if (b == NULL) return NULL;
  b->limit = limit;
  atomic_init(&b->used, 0);
  atomic_init(&b->refusals, 0);
  b->on_refused = on_refused;
  b->ctx = ctx;
  return b;
}

void rpc_channel_budget_free(rpc_channel_budget_t *budget) { free(budget); }

bool rpc_channel_budget_take(rpc_channel_budget_t *budget, size_t bytes) {
  size_t used = atomic_load(&budget->used);
  do {
    if (bytes > budget->limit - used) {
      atomic_fetch_add(&budget->refusals, 1);
      if (budget->on_refused != NULL) budget->on_refused(budget->ctx, bytes, used, budget->limit);
      return false;
    }
  } while (!atomic_compare_exchange_weak(&budget->used, &used, used + bytes));
  return true;
}

void rpc_channel_budget_give(rpc_channel_budget_t *budget, size_t bytes) {
  atomic_fetch_sub(&budget->used, bytes);
}

size_t rpc_channel_budget_limit(const rpc_channel_budget_t *budget) { return budget->limit; }

size_t rpc_channel_budget_used(const rpc_channel_budget_t *budget) {
  return atomic_load(&((rpc_channel_budget_t *)budget)->used);
}

uint64_t rpc_channel_budget_refusals(const rpc_channel_budget_t *budget) {
  return atomic_load(&((rpc_channel_budget_t *)budget)->refusals);
}
