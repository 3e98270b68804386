// grpc-timeout header values (internal to h2server.c), e.g. "50m" = 50 ms.
#ifndef THREADFLEET_RPC_TRANSPORT_GRPC_TIMEOUT_H
#define THREADFLEET_RPC_TRANSPORT_GRPC_TIMEOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Parses a grpc-timeout header value (1-8 ASCII digits then one unit of
// H M S m u n) into nanoseconds, saturating at INT64_MAX. Returns false for
// a malformed value.
bool grpc_timeout_parse(const char *value, size_t len, int64_t *out_ns);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_RPC_TRANSPORT_GRPC_TIMEOUT_H
