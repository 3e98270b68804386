// PushFile's stream: stores the content as a script, then writes it to every
// board the selector picks, all at once (board calls hold no thread),
// reporting QUEUED for every board, then WRITING and DONE/UNCHANGED/FAILED
// per board. A board whose file already has the content's SHA-256 writes
// nothing and reports UNCHANGED, unless the request says `force`. The call's
// deadline goes to each board's write. A board that is offline (or drops the
// connection mid-write) is tried again every kPushRetryInterval until the
// call's deadline, or for kPushOfflineWait when the call has none; the
// first miss is reported as QUEUED with the reason in `error`. A board whose
// SHA-256 differs from the content's fails with DATA_LOSS. A path over the
// boards' limit (board.options) is refused before any board call. The call
// is audited with a per-board summary.
//
// Example (FleetService::PushFile):
//
//   return StartPushFile(state, *request, AuthorizationOf(*context), DeadlineOf(*context));
#ifndef THREADFLEET_SERVER_FLEETD_API_INTERNAL_PUSH_FILE_STREAM_H_
#define THREADFLEET_SERVER_FLEETD_API_INTERNAL_PUSH_FILE_STREAM_H_

#include <string>

#include "absl/time/time.h"
#include "grpcpp/support/server_callback.h"
#include "server/fleetd/api/internal/service_state.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::internal {

// How often an unreachable board is tried again.
inline constexpr absl::Duration kPushRetryInterval = absl::Milliseconds(250);
// How long an unreachable board is waited for when the call has no deadline:
// long enough for a board that is connecting or restarting (the links'
// backoff tops out at 5 s), short enough that a dead board does not hold a
// push for long.
inline constexpr absl::Duration kPushOfflineWait = absl::Seconds(10);

// Starts the stream (authorization first, on the pool) and returns its
// reactor, which owns itself (ends in OnDone). `deadline`: the call's
// (InfiniteFuture: none).
// REQUIRES: `state` outlives the stream (FleetService ends streams first).
grpc::ServerWriteReactor<threadfleet::fleet::v1::PushFileResponse>* StartPushFile(
    FleetServiceState* state, const threadfleet::fleet::v1::PushFileRequest& request,
    std::string authorization, absl::Time deadline);

}  // namespace threadfleet::fleetd::internal

#endif  // THREADFLEET_SERVER_FLEETD_API_INTERNAL_PUSH_FILE_STREAM_H_
