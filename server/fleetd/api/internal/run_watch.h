// Following a job run for the Fleet API: the WatchRun stream, and the wait
// of RunJob(wait) — both over JobRunner::WatchRun, whose callbacks run on
// the runner's threads and must not block, so what they do (a write to the
// stream's bounded queue, finishing a call) is handed on without waiting.
//
// Example (FleetService::RunJob with wait, on the pool):
//
//   FinishWhenRunEnds(state, call, run.id(), deadline,
//                     [response](const fleet::Run& ended) { *response->mutable_run() = ended; });
#ifndef THREADFLEET_SERVER_FLEETD_API_INTERNAL_RUN_WATCH_H_
#define THREADFLEET_SERVER_FLEETD_API_INTERNAL_RUN_WATCH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "grpcpp/support/server_callback.h"
#include "server/fleetd/api/internal/service_call.h"
#include "server/fleetd/api/internal/service_state.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::internal {

// Starts WatchRun (authorization first, on the pool) and returns its
// reactor, which owns itself. It sends the run now, then after each change
// — only the newest state when the client reads slower than the run
// changes — and ends OK after the message with the run's final state;
// NOT_FOUND for an unknown run, UNIMPLEMENTED without a JobRunner.
// REQUIRES: `state` outlives the stream (FleetService ends streams first).
grpc::ServerWriteReactor<threadfleet::fleet::v1::WatchRunResponse>* StartWatchRun(
    FleetServiceState* state, const threadfleet::fleet::v1::WatchRunRequest& request,
    std::string authorization);

// Finishes `call` once run `run_id` has ended: first `set_response` with the
// ended run, then OK — or DEADLINE_EXCEEDED ("run N goes on") at
// `deadline`, or NOT_FOUND when the run is unknown. Returns at once; the
// call is finished on the pool. REQUIRES: state->deps.jobs non-null; the
// runner ends every run before the service goes (JobRunner::Shutdown).
void FinishWhenRunEnds(FleetServiceState* state, std::shared_ptr<UnaryCall> call, uint64_t run_id,
                       absl::Time deadline,
                       std::function<void(const threadfleet::fleet::v1::Run& ended)> set_response);

}  // namespace threadfleet::fleetd::internal

#endif  // THREADFLEET_SERVER_FLEETD_API_INTERNAL_RUN_WATCH_H_
