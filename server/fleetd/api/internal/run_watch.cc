#include "server/fleetd/api/internal/run_watch.h"

#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/fleetd/api/internal/api_values.h"

namespace threadfleet::fleetd::internal {

namespace {

// The answer of a job RPC in a fleetd without jobs.
absl::Status JobsNotEnabled() { return absl::UnimplementedError("jobs are not enabled in this fleetd"); }

// WatchRun: the run now, then after each change (the newest state only, for
// a slow client), ending after the final state.
class WatchRunStream : public ServiceStream<fleet::WatchRunResponse> {
 public:
  WatchRunStream(FleetServiceState* state, const fleet::WatchRunRequest& request, std::string authorization)
      : ServiceStream(state, kWatchRun, absl::StrCat("run ", request.id()), std::move(authorization)),
        run_id_(request.id()) {}

 private:
  void Run() override {
    if (state_->deps.jobs == nullptr) {
      End(ToGrpc(JobsNotEnabled()));
      return;
    }
    // Runs on the runner's threads: only queues (PushLatest never blocks).
    absl::StatusOr<uint64_t> watch =
        state_->deps.jobs->WatchRun(run_id_, [this](const fleet::Run& run, bool ended) {
          fleet::WatchRunResponse message;
          *message.mutable_run() = run;
          PushLatest(std::move(message));
          if (ended) End(grpc::Status::OK);
        });
    if (!watch.ok()) {
      End(ToGrpc(watch.status()));
      return;
    }
    // Read by Cleanup, which runs only after Run's hold is released.
    watch_id_ = *watch;
    watching_ = true;
  }

  void Cleanup() override {
    if (watching_) state_->deps.jobs->Unwatch(watch_id_);
  }

  const uint64_t run_id_;
  uint64_t watch_id_ = 0;
  bool watching_ = false;
};

// RunJob(wait): finishes its call once, whichever comes first — the run's
// end, the call's deadline, or the watch failing.
class RunWaiter : public std::enable_shared_from_this<RunWaiter> {
 public:
  RunWaiter(FleetServiceState* state, std::shared_ptr<UnaryCall> call, uint64_t run_id,
            std::function<void(const fleet::Run&)> set_response)
      : state_(state), call_(std::move(call)), run_id_(run_id), set_response_(std::move(set_response)) {}

  void Start(absl::Time deadline) {
    std::shared_ptr<RunWaiter> self = shared_from_this();
    absl::StatusOr<uint64_t> watch =
        state_->deps.jobs->WatchRun(run_id_, [self](const fleet::Run& run, bool ended) {
          if (!ended) return;
          // On the runner's thread: finishing writes the audit log, so on the pool.
          self->state_->pool->Submit([self, run] { self->Complete(absl::OkStatus(), &run); });
        });
    if (!watch.ok()) {
      Complete(watch.status(), nullptr);
      return;
    }
    bool ended_already;
    {
      absl::MutexLock lock(&mu_);
      watch_id_ = *watch;
      ended_already = done_;
    }
    // Complete ran before the id was known, so it could not unwatch.
    if (ended_already) state_->deps.jobs->Unwatch(*watch);
    if (deadline != absl::InfiniteFuture()) {
      state_->timers->After(deadline - absl::Now(), [self] {
        self->Complete(
            absl::DeadlineExceededError(absl::StrCat(
                "run ", self->run_id_,
                " has not ended by the call's deadline; it goes on (fleetctl job show ", self->run_id_, ")")),
            nullptr);
      });
    }
  }

 private:
  void Complete(const absl::Status& status, const fleet::Run* ended) {
    uint64_t watch_id;
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      done_ = true;
      watch_id = watch_id_;
    }
    if (watch_id != 0) state_->deps.jobs->Unwatch(watch_id);
    if (ended != nullptr) set_response_(*ended);
    call_->Finish(status);
  }

  FleetServiceState* const state_;
  const std::shared_ptr<UnaryCall> call_;
  const uint64_t run_id_;
  const std::function<void(const fleet::Run&)> set_response_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  // 0 until WatchRun returned.
  uint64_t watch_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

grpc::ServerWriteReactor<fleet::WatchRunResponse>* StartWatchRun(FleetServiceState* state,
                                                                 const fleet::WatchRunRequest& request,
                                                                 std::string authorization) {
  return (new WatchRunStream(state, request, std::move(authorization)))->Start(request);
}

void FinishWhenRunEnds(FleetServiceState* state, std::shared_ptr<UnaryCall> call, uint64_t run_id,
                       absl::Time deadline, std::function<void(const fleet::Run& ended)> set_response) {
  std::make_shared<RunWaiter>(state, std::move(call), run_id, std::move(set_response))->Start(deadline);
}

}  // namespace threadfleet::fleetd::internal
