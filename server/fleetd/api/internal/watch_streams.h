// The watch streams. WatchEvents: subscribes to the event hub first, replays
// the store after after_id, then sends live events with a larger id than
// the last one sent. WatchHealth: subscribes first, sends each picked board's
// state and latest snapshot, then live updates of those boards (an empty
// selector follows boards added later too). Live messages that arrive while
// the initial part is sent wait in a buffer, so order holds.
//
// Example (FleetService::WatchEvents):
//
//   return StartWatchEvents(state, *request, AuthorizationOf(*context));
#ifndef THREADFLEET_SERVER_FLEETD_API_INTERNAL_WATCH_STREAMS_H_
#define THREADFLEET_SERVER_FLEETD_API_INTERNAL_WATCH_STREAMS_H_

#include <string>

#include "grpcpp/support/server_callback.h"
#include "server/fleetd/api/internal/service_state.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::internal {

// Start the stream (authorization first, on the pool) and return its
// reactor, which owns itself (ends in OnDone).
// REQUIRES: `state` outlives the stream (FleetService ends streams first).
grpc::ServerWriteReactor<threadfleet::fleet::v1::WatchEventsResponse>* StartWatchEvents(
    FleetServiceState* state, const threadfleet::fleet::v1::WatchEventsRequest& request,
    std::string authorization);
grpc::ServerWriteReactor<threadfleet::fleet::v1::WatchHealthResponse>* StartWatchHealth(
    FleetServiceState* state, const threadfleet::fleet::v1::WatchHealthRequest& request,
    std::string authorization);

}  // namespace threadfleet::fleetd::internal

#endif  // THREADFLEET_SERVER_FLEETD_API_INTERNAL_WATCH_STREAMS_H_
