// JobRunner: fleet test jobs in fleetd — applied specs and their files, runs
// (reservation of boards, rollout, abort rule, retries, timeout, cancel),
// board quarantine, the cron scheduler, and what the Fleet API's job calls
// answer. The Fleet API (api/) only adapts protobuf to these methods; the
// steps on one board are board_run.h's, the boards are reached through
// JobBoards only.
//
// Example (fleetd's main):
//
//   JobRunner runner({.store = store, .inventory = inventory, .boards = &job_boards,
//                     .hub = &hub, .clock = &RealClock()}, JobRunnerOptions{});
//   absl::Status started = runner.Start();  // runs left by a dead fleetd end ERROR
//                                           // "interrupted"; missed schedules catch up
//   ...
//   runner.Shutdown();                     // stops runs (killing their programs)
//
// Reservations: a board is in at most one run. A run takes all its boards at
// once (so two runs never deadlock on each other's boards): it waits QUEUED
// until they are free (bounded by its timeout), or fails at once with
// on_busy: fail. Reservations live in this process only: a fleetd that dies
// frees them with it, and its runs are marked ERROR "interrupted" at the next
// Start().
//
// Quarantine: a board whose result ended ERROR in
// JobRunnerOptions::quarantine_after runs in a row is quarantined (stored,
// an event recorded); jobs skip it until ReleaseBoard.
//
// Thread-safe. Callbacks (WatchRun, OnRunEnded) run on the runner's threads
// and must not block.
#ifndef THREADFLEET_SERVER_FLEETD_JOBS_JOB_RUNNER_H_
#define THREADFLEET_SERVER_FLEETD_JOBS_JOB_RUNNER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/fleetd/health/event_hub.h"
#include "server/fleetd/inventory/inventory.h"
#include "server/fleetd/jobs/board_run.h"
#include "server/fleetd/jobs/clock.h"
#include "server/fleetd/jobs/job_boards.h"
#include "server/fleetd/jobs/job_spec.h"
#include "server/fleetd/store/store.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::jobs {

namespace internal {
class JobRunnerState;
}  // namespace internal

// fleetd.yaml's `jobs:` section.
struct JobRunnerOptions {
  JobSpecLimits spec_limits;
  // Runs queued or running at once; RunJob beyond it is RESOURCE_EXHAUSTED.
  int max_active_runs = 32;
  // Worker threads of one run (boards in parallel), whatever its rollout.
  // A board's steps hold its thread while they run, so a run on more boards
  // than this goes in waves: bench/jobs measured 200 boards in 4 waves of 64
  // at 3x the time of the same steps by hand, and in one wave at about 1x.
  int max_threads_per_run = 256;
  // A board that ended ERROR in this many runs in a row is quarantined.
  int quarantine_after = 3;
  // Runs kept per job (older ones are pruned with their results).
  int runs_kept_per_job = 200;
};

struct JobRunnerDeps {
  Store* store = nullptr;
  Inventory* inventory = nullptr;
  JobBoards* boards = nullptr;
  EventHub* hub = nullptr;
  const Clock* clock = nullptr;
  // Runs one board's attempt; default RunBoardAttempt. Tests replace it.
  std::function<threadfleet::fleet::v1::BoardResult(JobBoards&, const BoardAttempt&)> attempt = {};
  // Called once at each run's end whose spec has `notify` and whose end
  // state is one of its `on` (every end state when `on` is empty); must not
  // block (RunNotifier::Enqueue). Empty: no notifications.
  std::function<void(const NotifySpec&, const threadfleet::fleet::v1::Run&)> notify = {};
};

class JobRunner {
 public:
  // REQUIRES: the deps' pointers non-null and outliving the runner.
  JobRunner(JobRunnerDeps deps, JobRunnerOptions options);
  // Shutdown(), if not called yet.
  ~JobRunner();

  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Marks runs a dead fleetd left QUEUED or RUNNING as ERROR "interrupted:
  // fleetd stopped during the run" (their boards are free), then starts the
  // scheduler; a schedule missed while fleetd was down fires once now when
  // the job has catch_up. Call once.
  [[nodiscard]] absl::Status Start();

  // Stops the scheduler, stops every run (their programs killed, state ERROR
  // "interrupted: fleetd is shutting down") and waits for them. Idempotent.
  void Shutdown();

  // ---- Jobs

  struct Applied {
    threadfleet::fleet::v1::Job job;
    bool changed = false;
  };
  // Validates the spec (ParseJobSpec; every file it names present in
  // `files` and no other; the selector picking at least one board of the
  // inventory) and stores it with its files. INVALID_ARGUMENT
  // "FILE:LINE:COL: message" otherwise.
  [[nodiscard]] absl::StatusOr<Applied> ApplyJob(const threadfleet::fleet::v1::ApplyJobRequest& request);

  // NOT_FOUND; FAILED_PRECONDITION while a run of it is queued or running.
  [[nodiscard]] absl::Status DeleteJob(absl::string_view name);

  // Every job with its latest run, next fire time and files, by name.
  [[nodiscard]] absl::StatusOr<std::vector<threadfleet::fleet::v1::Job>> ListJobs();

  // ---- Runs

  // Starts a run now; returns it QUEUED or RUNNING. `trigger` e.g.
  // "manual:alice". NOT_FOUND, FAILED_PRECONDITION (too few boards; busy
  // with on_busy: fail), RESOURCE_EXHAUSTED (max_active_runs).
  [[nodiscard]] absl::StatusOr<threadfleet::fleet::v1::Run> StartRun(absl::string_view job_name,
                                                                     absl::string_view trigger);

  // A run with its results (see GetRunRequest). NOT_FOUND.
  [[nodiscard]] absl::StatusOr<threadfleet::fleet::v1::Run> GetRun(uint64_t id, bool with_output,
                                                                   absl::string_view board);

  // Runs newest first (see ListRunsRequest).
  [[nodiscard]] absl::StatusOr<threadfleet::fleet::v1::ListRunsResponse> ListRuns(
      const threadfleet::fleet::v1::ListRunsRequest& request);

  // Cancels a run; `done` gets the ended run (at once for an ended one).
  // NOT_FOUND through `done`. `actor` goes into the run's message.
  void CancelRun(uint64_t id, absl::string_view actor,
                 std::function<void(absl::StatusOr<threadfleet::fleet::v1::Run>)> done);

  // Calls `fn` with the run now (results without output) and after each
  // change until it ended (the last call has ended == true); returns an id
  // for Unwatch. NOT_FOUND for an unknown run. `fn` may run before Watch
  // returns.
  using RunFn = std::function<void(const threadfleet::fleet::v1::Run& run, bool ended)>;
  [[nodiscard]] absl::StatusOr<uint64_t> WatchRun(uint64_t id, RunFn fn);
  // When it returns, `fn` is not running and will not run again.
  void Unwatch(uint64_t watch_id);

  // ---- Boards

  // The board's quarantine; nullopt when in service.
  std::optional<threadfleet::fleet::v1::Quarantine> QuarantineOf(absl::string_view board) const;
  // The run holding the board; 0 when free.
  uint64_t ReservedBy(absl::string_view board) const;
  // Takes a board out of quarantine (records an event). NOT_FOUND for a
  // board not in the inventory.
  [[nodiscard]] absl::Status ReleaseBoard(absl::string_view board, absl::string_view actor);

  // ---- Scheduler

  // Fires every schedule due at `now` (the scheduler thread calls it with
  // the clock's time; tests call it with theirs). A job fires at most once
  // per fire time, even across restarts.
  void SchedulerTick(absl::Time now);

 private:
  std::unique_ptr<internal::JobRunnerState> state_;
};

}  // namespace threadfleet::fleetd::jobs

#endif  // THREADFLEET_SERVER_FLEETD_JOBS_JOB_RUNNER_H_
