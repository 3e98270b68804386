// RunNotifier: tells an outside system that a run ended, as a job's
// `notify:` asks (docs/jobs.md): an HTTP POST of the run as protobuf JSON
// (Content-Type application/json) to the spec's http:// URL, with the spec's
// timeout and retries. URLs come only from specs an operator applied
// (ParseJobSpec refuses anything but http://).
//
// Example (the runner, when a run ends):
//
//   RunNotifier notifier({});
//   if (spec.notify) notifier.Notify(*spec.notify, run);  // returns at once
//   ...
//   notifier.Shutdown();
//
// One worker thread delivers, oldest first; a slow or dead receiver never
// holds up a run. A notification is retried after 1 s, 2 s, 4 s, ... (up to
// the spec's retries) when the POST fails or answers other than 2xx. The
// queue is bounded: a full queue drops its oldest notification (counted,
// logged). Each outcome is logged as one line:
//
//   fleetd: notify job=smoke run=42 state=failed url=http://ci:8080/hook outcome=delivered status=200
//   attempts=2
//
// Thread-safe.
#ifndef THREADFLEET_SERVER_FLEETD_JOBS_RUN_NOTIFIER_H_
#define THREADFLEET_SERVER_FLEETD_JOBS_RUN_NOTIFIER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/fleetd/jobs/job_spec.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::jobs {

namespace internal {
class RunNotifierState;
}  // namespace internal

struct RunNotifierOptions {
  // Notifications waiting for the worker; beyond it the oldest is dropped.
  size_t max_queued = 256;
  // Wait before the first retry; doubled before each next one.
  absl::Duration first_backoff = absl::Seconds(1);
  // Gets each log line (without a newline); default: stderr.
  std::function<void(absl::string_view line)> log;
};

class RunNotifier {
 public:
  struct Stats {
    uint64_t delivered = 0;
    // Every attempt failed.
    uint64_t failed = 0;
    // Dropped from a full queue, or still queued at Shutdown.
    uint64_t dropped = 0;
  };

  explicit RunNotifier(RunNotifierOptions options);
  // Shutdown(), if not called yet.
  ~RunNotifier();

  RunNotifier(const RunNotifier&) = delete;
  RunNotifier& operator=(const RunNotifier&) = delete;

  // Queues a POST of `run` to spec.url when the run's state is one of
  // spec.on ("passed", "failed", "error", "cancelled"); does nothing for
  // other states, and after Shutdown. Returns at once.
  void Notify(const NotifySpec& spec, const threadfleet::fleet::v1::Run& run);

  // Stops the worker: a POST under way is abandoned (its connection
  // closed; at worst it runs out its timeout), a retry's wait is cut short,
  // queued notifications are dropped and logged. Idempotent.
  void Shutdown();

  Stats stats() const;

 private:
  std::unique_ptr<internal::RunNotifierState> state_;
};

// The spec word for a run's end state ("passed", "failed", "error",
// "cancelled"); "" for a state that is not an end.
absl::string_view RunEndStateName(threadfleet::fleet::v1::RunState state);

}  // namespace threadfleet::fleetd::jobs

#endif  // THREADFLEET_SERVER_FLEETD_JOBS_RUN_NOTIFIER_H_
