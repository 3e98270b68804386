// Rate limit for refusal log lines; see log_limit.h.
#include "firmware/rpc/transport/log_limit.h"

bool rpc_log_limit_admit(rpc_log_limit_t *limit, int64_t now_ms, uint64_t *suppressed) {
  if (limit->window_start_ms < 0 || now_ms - limit->window_start_ms >= limit->window_ms) {
    limit->window_start_ms = now_ms;
    limit->lines = 0;
  }
  if (limit->lines >= limit->max_lines) {
    limit->suppressed++;
    return false;
  }
  limit->lines++;
  *suppressed = limit->suppressed;
  limit->suppressed = 0;
  return true;
}
