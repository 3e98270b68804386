// One board's part in a run: the job's steps, in order, on that board, once
// (an attempt; the runner retries). Plain logic over JobBoards (what a run
// needs of a board: job_boards.h), so it is tested with in-memory boards;
// the runner (job_runner.h) decides which boards, when, how often.
//
// Example (what the runner does for each board):
//
//   BoardAttempt attempt{.board = "b01", .spec = &spec, .files = &files,
//                        .deadline = run_deadline, .stop = &run_stop,
//                        .on_progress = [&](const pb::BoardResult& r) { Publish(r); }};
//   pb::BoardResult result = RunBoardAttempt(boards, attempt);
//
// The result's state: PASSED (every step passed), FAILED (an expect failed;
// a run step's program failed, exited non-zero, did not end in time or did
// not compile; a kill left unkillable threads; the board refused a pin), ERROR (the board could not
// be used: offline, connection lost, a push failed, a script missing, the
// run's deadline passed: "timed out"), CANCELLED (`stop` was signalled: its
// reason is the message). Steps after the first failed one are SKIPPED.
// The result's message names the step: "steps[1] run: program app ended
// FAILED: ValueError: boom (thread 3 worker)".
// Every failed or ERROR step carries Evidence (output tail, failed threads
// with tracebacks, the thread table, the anomalies of the window, the heap).
// Before returning, every program the attempt started that still runs is
// killed (the board's default grace), and every pin a pin step drove and
// no later step released is released, so no attempt leaves threads or wires
// behind — unless the board is unreachable, which the result then says.
// A pin or adc step the board refuses (a pin its profile lacks, an output
// pin) FAILS; an expect.pin asks the board (GetMachine) until the level
// comes or its `within` passes.
#ifndef THREADFLEET_SERVER_FLEETD_JOBS_BOARD_RUN_H_
#define THREADFLEET_SERVER_FLEETD_JOBS_BOARD_RUN_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "server/fleetd/jobs/job_boards.h"
#include "server/fleetd/jobs/job_spec.h"
#include "server/fleetd/jobs/stop_signal.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::jobs {

// A job file's content as applied, shared by every board of a run.
struct JobFileContent {
  std::shared_ptr<const std::string> content;
  std::string sha256_hex;
};

struct BoardAttempt {
  std::string board;
  // REQUIRES: non-null, outlive the call.
  const JobSpec* spec = nullptr;
  // Spec path ("app.py") -> content, for every file spec->files names.
  const std::map<std::string, JobFileContent>* files = nullptr;
  // The run's deadline: no step runs past it; what runs then is stopped and
  // the attempt ends ERROR "timed out".
  absl::Time deadline = absl::InfiniteFuture();
  // Signalled when the run is cancelled, aborted or fleetd stops: the
  // attempt stops at once (killing what it started) and ends CANCELLED with
  // the signal's reason. REQUIRES: non-null, outlives the call.
  const StopSignal* stop = nullptr;
  // Called (on the calling thread) with the result so far each time a step
  // starts or ends; may be empty.
  std::function<void(const threadfleet::fleet::v1::BoardResult&)> on_progress;
};

// Runs the attempt; blocks the calling thread until it ended. Never throws;
// every outcome is in the result (board, state, message, steps, start and
// end time; attempts/flaky are the runner's).
threadfleet::fleet::v1::BoardResult RunBoardAttempt(JobBoards& boards, const BoardAttempt& attempt);

}  // namespace threadfleet::fleetd::jobs

#endif  // THREADFLEET_SERVER_FLEETD_JOBS_BOARD_RUN_H_
