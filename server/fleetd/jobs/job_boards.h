// JobBoards: what a run needs of the boards, as blocking calls with a
// deadline, each ending early when the run's StopSignal fires. Jobs depend
// only on this (labgrid's strategy layer over its drivers):
// LinkedJobBoards implements it over fleetd's board links and health
// aggregator; tests fake it with in-memory boards.
//
// Every call is made from a run's own worker thread (never from the links
// thread or the API's pool), so blocking here costs no shared thread.
// Errors are the board client's (board_client.h): UNAVAILABLE for an offline
// or lost board, DEADLINE_EXCEEDED at the deadline, CANCELLED when `stop`
// fired, the board's own codes otherwise.
#ifndef THREADFLEET_SERVER_FLEETD_JOBS_JOB_BOARDS_H_
#define THREADFLEET_SERVER_FLEETD_JOBS_JOB_BOARDS_H_

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
#include "server/fleetd/jobs/stop_signal.h"
#include "threadfleet/board/v1/board.pb.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::jobs {

class JobBoards {
 public:
  virtual ~JobBoards() = default;

  // Linked and online or degraded (calls can reach it).
  virtual bool Reachable(absl::string_view board) const = 0;

  // Waits, until `until` or `stop`, for a board fleetd has not reached yet
  // since it started (its link is still making its first connection: a run
  // that starts with fleetd, e.g. a schedule's catch-up, must not fail its
  // boards for that). Returns Reachable(board); returns at once for a board
  // whose link connected before (a board that went offline is offline).
  virtual bool AwaitFirstConnection(absl::string_view board, absl::Time until, const StopSignal& stop) {
    (void)until;
    (void)stop;
    return Reachable(board);
  }

  // Writes a file atomically unless the board's file already has
  // `sha256_hex` (then response.unchanged()).
  virtual absl::StatusOr<threadfleet::board::v1::WriteFileResponse> WriteFile(
      absl::string_view board, absl::string_view path, std::shared_ptr<const std::string> content,
      absl::string_view sha256_hex, absl::Time deadline, const StopSignal& stop) = 0;

  // `stop` keeps the program from starting, but does not cut short a start
  // in flight: its caller learns the program's id, to kill it.
  virtual absl::StatusOr<threadfleet::board::v1::StartProgramResponse> StartProgram(
      absl::string_view board, const threadfleet::board::v1::StartProgramRequest& request,
      absl::Time deadline, const StopSignal& stop) = 0;

  // Receives output: `offset` is data[0]'s offset in the program's output
  // (past the one asked for when the board dropped those bytes already).
  // Runs on any thread, in order; must not block. `data` is valid during the
  // call only.
  using OutputFn = std::function<void(uint64_t offset, absl::string_view data)>;

  // Follows a program's output from `from_offset` until the program ended
  // and all of it arrived (OK), the deadline (DEADLINE_EXCEEDED) or `stop`
  // (CANCELLED).
  virtual absl::Status FollowOutput(absl::string_view board, uint32_t program_id, uint64_t from_offset,
                                    absl::Time deadline, const StopSignal& stop, OutputFn on_output) = 0;

  // The output the board holds from `from_offset` on, without waiting for
  // more: how a program left running (run with wait: false) is read.
  virtual absl::Status ReadOutput(absl::string_view board, uint32_t program_id, uint64_t from_offset,
                                  absl::Time deadline, const StopSignal& stop, OutputFn on_output) = 0;

  // Threads and programs the board knows of, ended ones included.
  virtual absl::StatusOr<threadfleet::board::v1::ListThreadsResponse> ListThreads(absl::string_view board,
                                                                                  absl::Time deadline) = 0;

  // Kills a program's live threads; `grace` zero: the board's default.
  // Not cut short by a StopSignal: it is how a stopped run cleans up.
  virtual absl::StatusOr<threadfleet::board::v1::KillProgramResponse> KillProgram(absl::string_view board,
                                                                                  uint32_t program_id,
                                                                                  absl::Duration grace,
                                                                                  absl::Time deadline) = 0;

  // The board's simulated hardware now (a round trip, not the latest
  // snapshot: a check right after a pin step must see what the program did
  // since).
  virtual absl::StatusOr<threadfleet::board::v1::MachineState> GetMachine(absl::string_view board,
                                                                          absl::Time deadline,
                                                                          const StopSignal& stop) = 0;

  // Drives or releases one of the board's pins from the lab; the pin as it
  // is then. The board refuses a pin its profile lacks (INVALID_ARGUMENT) or
  // one the program drives (FAILED_PRECONDITION).
  virtual absl::StatusOr<threadfleet::board::v1::PinState> SetPin(
      absl::string_view board, const threadfleet::board::v1::SetPinRequest& request, absl::Time deadline,
      const StopSignal& stop) = 0;

  // Sets what one of the board's ADC channels reads; the channel then.
  virtual absl::StatusOr<threadfleet::board::v1::AdcState> SetAdc(
      absl::string_view board, const threadfleet::board::v1::SetAdcRequest& request, absl::Time deadline,
      const StopSignal& stop) = 0;

  // The board's latest health snapshot as fleetd holds it (no round trip);
  // nullopt before the first.
  virtual std::optional<threadfleet::board::v1::HealthSnapshot> LatestSnapshot(
      absl::string_view board) const = 0;

  // Calls `on_snapshot` with each health snapshot of `board` fleetd
  // receives from now until RemoveSnapshotWatch(id): how a run sees the
  // fleet.report() values of threads that end before it checks them. Runs on
  // any thread; must not block nor call into JobBoards. Returns the watch's
  // id.
  using SnapshotFn = std::function<void(const threadfleet::board::v1::HealthSnapshot& snapshot)>;
  virtual uint64_t WatchSnapshots(absl::string_view board, SnapshotFn on_snapshot) = 0;
  // When it returns, the watch's callback is not running and will not run.
  virtual void RemoveSnapshotWatch(uint64_t id) = 0;

  // An anomaly fleetd recorded for a board: the stored event, and the
  // anomaly's kind (health.h AnomalyKindName: "deadlock", "stall",
  // "thread_unkillable", ...), which the stored event's kind does not always
  // say (lab_monitor.h: several anomalies share an EventKind).
  struct Anomaly {
    std::string kind;
    threadfleet::fleet::v1::Event event;
  };

  // The anomalies raised (severity WARNING or more: thread failed, deadlock,
  // stall, unkillable, stack high, heap low, native stuck, board offline)
  // for the board at or after `since`, oldest first, at most `limit` (the
  // newest ones).
  virtual std::vector<Anomaly> AnomaliesSince(absl::string_view board, absl::Time since,
                                              size_t limit) const = 0;
};

}  // namespace threadfleet::fleetd::jobs

#endif  // THREADFLEET_SERVER_FLEETD_JOBS_JOB_BOARDS_H_
