// grpc-timeout parsing; see grpc_timeout.h.
#include "firmware/rpc/transport/grpc_timeout.h"

bool grpc_timeout_parse(const char *value, size_t len, int64_t *out_ns) {
  if (len < 2 || len > 9) return false;
  int64_t n = 0;
  for (size_t i = 0; i + 1 < len; i++) {
    if (value[i] < '0' || value[i] > '9') return false;
    n = n * 10 + (value[i] - '0');
  }
  int64_t unit_ns;
  switch (value[len - 1]) {
    case 'H':
      unit_ns = 3600LL * 1000000000LL;
      break;
    case 'M':
      unit_ns = 60LL * 1000000000LL;
      break;
    case 'S':
      unit_ns = 1000000000LL;
      break;
    case 'm':
      unit_ns = 1000000LL;
      break;
    case 'u':
      unit_ns = 1000LL;
      break;
    case 'n':
      unit_ns = 1;
      break;
    default:
      return false;
  }
  // 8 digits (< 1e8) times an hour in ns (3.6e12) overflows int64: saturate.
  *out_ns = n > INT64_MAX / unit_ns ? INT64_MAX : n * unit_ns;
  return true;
}
