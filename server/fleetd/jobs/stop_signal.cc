#include "server/fleetd/jobs/stop_signal.h"

#include <utility>
#include <vector>

namespace threadfleet::fleetd::jobs {

void StopSignal::Stop(std::string reason) {
  std::map<uint64_t, std::function<void()>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    reason_ = std::move(reason);
    callbacks.swap(callbacks_);
    running_callbacks_ = true;
  }
  // Outside the lock: a callback may take locks of its own (a board call's
  // state) that a thread holding them may want to pair with this signal.
  for (auto& [id, fn] : callbacks) fn();
  absl::MutexLock lock(&mu_);
  running_callbacks_ = false;
}

bool StopSignal::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

std::string StopSignal::reason() const {
  absl::MutexLock lock(&mu_);
  return reason_;
}

bool StopSignal::SleepFor(absl::Duration d) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&stopped_), d);
}

uint64_t StopSignal::OnStop(std::function<void()> fn) const {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    if (!stopped_) {
      callbacks_.emplace(id, std::move(fn));
      return id;
    }
  }
  fn();
  return id;
}

void StopSignal::RemoveOnStop(uint64_t id) const {
  absl::MutexLock lock(&mu_);
  callbacks_.erase(id);
  // Stop() took every callback out of the map before running them: one of
  // them may be this one, so wait until they are all done.
  mu_.Await(absl::Condition(
      +[](bool* running) { return !*running; }, &running_callbacks_));
}

}  // namespace threadfleet::fleetd::jobs
