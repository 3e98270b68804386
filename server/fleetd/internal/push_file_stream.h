// PushFile's stream: stores the content as a script, then writes it to every
// board the selector picks, in parallel on the worker pool, reporting QUEUED
// for every board, then WRITING and DONE/FAILED per board. A board whose
// written SHA-256 differs from the content's fails with DATA_LOSS. The call
// is audited with a per-board summary.
//
// Example (FleetService::PushFile):
//
//   return StartPushFile(state, *request, AuthorizationOf(*context));
#ifndef THREADFLEET_SERVER_FLEETD_INTERNAL_PUSH_FILE_STREAM_H_
#define THREADFLEET_SERVER_FLEETD_INTERNAL_PUSH_FILE_STREAM_H_

#include <string>

#include "grpcpp/support/server_callback.h"
#include "server/fleetd/internal/service_state.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::internal {

// Starts the stream (authorization first, on the pool) and returns its
// reactor, which owns itself (ends in OnDone).
// REQUIRES: `state` outlives the stream (FleetService ends streams first).
grpc::ServerWriteReactor<threadfleet::fleet::v1::PushFileResponse>* StartPushFile(
    FleetServiceState* state, const threadfleet::fleet::v1::PushFileRequest& request,
    std::string authorization);

}  // namespace threadfleet::fleetd::internal

#endif  // THREADFLEET_SERVER_FLEETD_INTERNAL_PUSH_FILE_STREAM_H_
