// A rate limit for log lines about refusals: a flood of refused connections
// or calls must not fill the log. At most `max_lines` lines pass per window
// of `window_ms`; the rest are counted, and the next line that passes says
// how many were left out before it.
//
// Example (the caller serialises calls, e.g. under its own lock):
//   static rpc_log_limit_t limit = RPC_LOG_LIMIT_INIT(10, 10000);
//   uint64_t left_out;
//   if (rpc_log_limit_admit(&limit, now_ms, &left_out))
//     fprintf(stderr, "event=connection_refused ... suppressed=%llu\n", left_out);
#ifndef THREADFLEET_RPC_TRANSPORT_LOG_LIMIT_H
#define THREADFLEET_RPC_TRANSPORT_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  unsigned max_lines;
  int64_t window_ms;
  int64_t window_start_ms;  // -1 before the first line
  unsigned lines;           // passed in the current window
  uint64_t suppressed;      // left out since the last line that passed
} rpc_log_limit_t;

#define RPC_LOG_LIMIT_INIT(max_lines, window_ms) \
  { (max_lines), (window_ms), -1, 0, 0 }

// Whether a line may be written at now_ms (a monotonic clock). When it may,
// *suppressed is how many lines were left out since the previous one that
// passed (and the count starts again); when not, the line is counted.
bool rpc_log_limit_admit(rpc_log_limit_t *limit, int64_t now_ms, uint64_t *suppressed);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_LOG_LIMIT_H
