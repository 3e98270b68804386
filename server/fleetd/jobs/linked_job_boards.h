// LinkedJobBoards: JobBoards over fleetd's own board links, health and event
// hub — the one place jobs meet the links. Each call is the asynchronous
// BoardClient call (board_client.h) made blocking for the run's worker
// thread: the call's `done` (on the links thread) only hands its result
// over, so no board's health waits behind a run.
//
// Example (fleetd's main):
//
//   LinkedJobBoards job_boards(links, health, hub);  // links, health, hub outlive it
//   JobRunner runner({..., .boards = &job_boards, ...}, options);
//
// Anomalies: from construction on, the anomaly events the hub delivers
// (severity WARNING or more, kind names mapped from the stored event as
// lab_monitor.h records them) are kept per board, the newest
// Options::anomalies_kept of each; AnomaliesSince reads them there, without
// the store.
//
// Snapshots: WatchSnapshots subscribes to the hub's health updates only while
// a watch exists (a health subscriber makes the LabMonitor copy every
// snapshot of every board), one subscription for all watches.
//
// A StopSignal that fires ends a waiting call at once with CANCELLED: an
// output stream is cancelled on the board, a unary call is left to end on
// its own (its result is dropped).
//
// Thread-safe.
#ifndef THREADFLEET_SERVER_FLEETD_JOBS_LINKED_JOB_BOARDS_H_
#define THREADFLEET_SERVER_FLEETD_JOBS_LINKED_JOB_BOARDS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/fleetd/health/event_hub.h"
#include "server/fleetd/health/health.h"
#include "server/fleetd/jobs/job_boards.h"
#include "server/fleetd/links/board_directory.h"

namespace threadfleet::fleetd::jobs {

// The anomaly kind (AnomalyKindName) a stored fleet event raises, as the
// LabMonitor maps anomalies to events; nullopt for events that raise none
// (cleared anomalies, INFO board events, a board coming online or degraded,
// run ends).
std::optional<std::string> RaisedAnomalyKind(const threadfleet::fleet::v1::Event& event);

class LinkedJobBoards final : public JobBoards {
 public:
  struct Options {
    // Anomaly events kept per board for AnomaliesSince.
    size_t anomalies_kept = 256;
  };

  // REQUIRES: links, health and hub outlive this object.
  LinkedJobBoards(BoardDirectory& links, HealthAggregator& health, EventHub& hub, Options options);
  LinkedJobBoards(BoardDirectory& links, HealthAggregator& health, EventHub& hub)
      : LinkedJobBoards(links, health, hub, Options{}) {}
  // Ends the hub subscriptions. REQUIRES: no call is running.
  ~LinkedJobBoards() override;

  LinkedJobBoards(const LinkedJobBoards&) = delete;
  LinkedJobBoards& operator=(const LinkedJobBoards&) = delete;

  // JobBoards
  bool Reachable(absl::string_view board) const override;
  bool AwaitFirstConnection(absl::string_view board, absl::Time until, const StopSignal& stop) override;
  absl::StatusOr<threadfleet::board::v1::WriteFileResponse> WriteFile(
      absl::string_view board, absl::string_view path, std::shared_ptr<const std::string> content,
      absl::string_view sha256_hex, absl::Time deadline, const StopSignal& stop) override;
  absl::StatusOr<threadfleet::board::v1::StartProgramResponse> StartProgram(
      absl::string_view board, const threadfleet::board::v1::StartProgramRequest& request,
      absl::Time deadline, const StopSignal& stop) override;
  absl::Status FollowOutput(absl::string_view board, uint32_t program_id, uint64_t from_offset,
                            absl::Time deadline, const StopSignal& stop, OutputFn on_output) override;
  absl::Status ReadOutput(absl::string_view board, uint32_t program_id, uint64_t from_offset,
                          absl::Time deadline, const StopSignal& stop, OutputFn on_output) override;
  absl::StatusOr<threadfleet::board::v1::MachineState> GetMachine(absl::string_view board,
                                                                  absl::Time deadline,
                                                                  const StopSignal& stop) override;
  absl::StatusOr<threadfleet::board::v1::PinState> SetPin(
      absl::string_view board, const threadfleet::board::v1::SetPinRequest& request, absl::Time deadline,
      const StopSignal& stop) override;
  absl::StatusOr<threadfleet::board::v1::AdcState> SetAdc(
      absl::string_view board, const threadfleet::board::v1::SetAdcRequest& request, absl::Time deadline,
      const StopSignal& stop) override;
  absl::StatusOr<threadfleet::board::v1::ListThreadsResponse> ListThreads(absl::string_view board,
                                                                          absl::Time deadline) override;
  absl::StatusOr<threadfleet::board::v1::KillProgramResponse> KillProgram(absl::string_view board,
                                                                          uint32_t program_id,
                                                                          absl::Duration grace,
                                                                          absl::Time deadline) override;
  std::optional<threadfleet::board::v1::HealthSnapshot> LatestSnapshot(
      absl::string_view board) const override;
  uint64_t WatchSnapshots(absl::string_view board, SnapshotFn on_snapshot) override;
  void RemoveSnapshotWatch(uint64_t id) override;
  std::vector<Anomaly> AnomaliesSince(absl::string_view board, absl::Time since, size_t limit) const override;

 private:
  absl::Status StreamOutput(absl::string_view board, uint32_t program_id, uint64_t from_offset, bool follow,
                            absl::Time deadline, const StopSignal& stop, OutputFn on_output);
  void OnEvent(const threadfleet::fleet::v1::Event& event);
  void OnHealth(const threadfleet::fleet::v1::WatchHealthResponse& update);

  BoardDirectory& links_;
  HealthAggregator& health_;
  EventHub& hub_;
  const Options options_;
  uint64_t events_subscription_ = 0;

  mutable absl::Mutex anomalies_mu_;
  std::map<std::string, std::deque<Anomaly>, std::less<>> anomalies_ ABSL_GUARDED_BY(anomalies_mu_);

  // Serializes subscribing and unsubscribing the hub's health updates;
  // never held by a hub callback (Unsubscribe waits for those).
  absl::Mutex health_subscription_mu_;
  std::optional<uint64_t> health_subscription_ ABSL_GUARDED_BY(health_subscription_mu_);
  // Held while a watch's callback runs, so RemoveSnapshotWatch can promise
  // none runs after it returns.
  absl::Mutex watches_mu_;
  uint64_t next_watch_id_ ABSL_GUARDED_BY(watches_mu_) = 1;
  struct Watch {
    std::string board;
    SnapshotFn fn;
  };
  std::map<uint64_t, Watch> watches_ ABSL_GUARDED_BY(watches_mu_);
};

}  // namespace threadfleet::fleetd::jobs

#endif  // THREADFLEET_SERVER_FLEETD_JOBS_LINKED_JOB_BOARDS_H_
