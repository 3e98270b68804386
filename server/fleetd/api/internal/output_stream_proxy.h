// StreamOutput's stream: proxies the board's output stream of one program.
// A client cancel (or a slow client) cancels the board stream; the board's
// end ends the call with the board's status. The call's deadline, if any,
// goes to the board; a follow without one lasts as long as the program.
//
// Example (FleetService::StreamOutput):
//
//   return StartOutputStream(state, *request, AuthorizationOf(*context), DeadlineOf(*context));
#ifndef THREADFLEET_SERVER_FLEETD_API_INTERNAL_OUTPUT_STREAM_PROXY_H_
#define THREADFLEET_SERVER_FLEETD_API_INTERNAL_OUTPUT_STREAM_PROXY_H_

#include <string>

#include "absl/time/time.h"
#include "grpcpp/support/server_callback.h"
#include "server/fleetd/api/internal/service_state.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::internal {

// Starts the stream (authorization first, on the pool) and returns its
// reactor, which owns itself (ends in OnDone). `deadline`: the call's
// (InfiniteFuture: none).
// REQUIRES: `state` outlives the stream (FleetService ends streams first).
grpc::ServerWriteReactor<threadfleet::fleet::v1::StreamOutputResponse>* StartOutputStream(
    FleetServiceState* state, const threadfleet::fleet::v1::StreamOutputRequest& request,
    std::string authorization, absl::Time deadline);

}  // namespace threadfleet::fleetd::internal

#endif  // THREADFLEET_SERVER_FLEETD_API_INTERNAL_OUTPUT_STREAM_PROXY_H_
