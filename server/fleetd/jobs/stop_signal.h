// StopSignal: tells a run's workers to stop (cancel, timeout, abort, fleetd
// shutting down), wakes those that sleep and lets a blocking board call end
// early through a callback.
//
// Example:
//
//   StopSignal stop;
//   // worker:
//   if (stop.SleepFor(absl::Seconds(1))) return Cancelled(stop.reason());
//   // canceller:
//   stop.Stop("cancelled by alice");
#ifndef THREADFLEET_SERVER_FLEETD_JOBS_STOP_SIGNAL_H_
#define THREADFLEET_SERVER_FLEETD_JOBS_STOP_SIGNAL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace threadfleet::fleetd::jobs {

class StopSignal {
 public:
  StopSignal() = default;
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  // The first call wins: its reason stays, later calls change nothing. Runs
  // every registered callback (outside the lock) once.
  void Stop(std::string reason);

  bool stopped() const;
  // Empty until stopped.
  std::string reason() const;

  // Sleeps `d`, or until stopped; true when stopped.
  bool SleepFor(absl::Duration d) const;

  // Runs `fn` once when stopped: at once (on this thread) if already
  // stopped. Returns an id for RemoveOnStop. `fn` must not call into this
  // signal.
  uint64_t OnStop(std::function<void()> fn) const;
  // When it returns, the callback is not running and will not run.
  void RemoveOnStop(uint64_t id) const;

 private:
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::string reason_ ABSL_GUARDED_BY(mu_);
  mutable uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  mutable std::map<uint64_t, std::function<void()>> callbacks_ ABSL_GUARDED_BY(mu_);
  // Set while Stop() runs callbacks, so RemoveOnStop can wait for them.
  mutable bool running_callbacks_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace threadfleet::fleetd::jobs

#endif  // THREADFLEET_SERVER_FLEETD_JOBS_STOP_SIGNAL_H_
