// LabMonitor: the LinkListener that turns what the board links report into
// what fleetd knows and tells. It feeds the HealthAggregator (and the
// HealthHistory, when given one), records fleet Events (board events,
// anomalies, state changes) through the EventHub, publishes every snapshot
// and state change to WatchHealth subscribers, and marks stored programs
// ended when their board reports PROGRAM_ENDED.
//
// Example:
//
//   HealthAggregator health;
//   EventHub hub(store);
//   LabMonitor monitor(store, health, hub);
//   LinkManager links(credentials, options, &monitor);  // monitor outlives links
//   links.Add("b01", "127.0.0.1:7001");
//   ...
//   // links destroyed first: no more callbacks; then the monitor drains.
//
// Callbacks do only in-memory work (the aggregator's rules) and queue the
// rest; one worker thread writes the store and publishes in the order the
// callbacks arrived, so a slow or locked database never stalls a link. The
// queue is bounded (Options::max_queued); when it is full, new work is
// dropped and counted (dropped_total()).
//
// A snapshot queues work only when there is some: a health subscriber to
// publish it to, an anomaly edge to record, or a PROGRAM_ENDED of its board
// waiting to be retried. Otherwise (the common case: a healthy board, no
// dashboard open) it costs only the aggregator's rules.
//
// What becomes a fleet Event (fleet.proto's EventKind has no kind per
// anomaly, so each maps to the closest one):
// - a board event: EVENT_KIND_BOARD_EVENT with board_event set; severity
//   WARNING for THREAD_FAILED and WATCHDOG_RESET, ERROR for DEADLOCK, INFO for
//   others (MACHINE_RESET among them), raised to
//   the anomaly's when the event raises one at once (STALL: WARNING,
//   THREAD_UNKILLABLE: ERROR). That anomaly is not recorded a second time.
// - an anomaly raised or cleared by a snapshot: stack_high → STACK_HIGH,
//   heap_low → HEAP_LOW, thread_failed / deadlock / stall → BOARD_EVENT (with
//   a board_event of the matching board kind, built from the anomaly),
//   thread_unkillable → BOARD_STATE. Raised: WARNING, or ERROR for deadlock
//   and unkillable; cleared: INFO.
// - a board state change: BOARD_STATE; offline ERROR, degraded WARNING,
//   online INFO; a change of the message alone (a new reason to be offline)
//   records nothing. The board_offline anomaly is raised in the aggregator but
//   not recorded apart: the state change is its event, raised and cleared.
//
// Thread-safe: the LinkListener methods may run concurrently for different
// boards.
#ifndef THREADFLEET_SERVER_FLEETD_HEALTH_LAB_MONITOR_H_
#define THREADFLEET_SERVER_FLEETD_HEALTH_LAB_MONITOR_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/fleetd/health/event_hub.h"
#include "server/fleetd/health/health.h"
#include "server/fleetd/health/health_history.h"
#include "server/fleetd/links/board_link.h"
#include "server/fleetd/store/store.h"
#include "threadfleet/board/v1/board.pb.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {

// The fleet event of an anomaly edge (see the file comment for the mapping).
// nullopt for kBoardOffline, whose events are the board's state changes.
std::optional<threadfleet::fleet::v1::Event> EventFromAnomaly(const AnomalyEvent& anomaly);

// The fleet event relaying a board event received at `now`. `raised` are the
// anomalies the aggregator raised for it: the first, if any, lends its
// severity (when higher) and message.
threadfleet::fleet::v1::Event EventFromBoardEvent(absl::string_view board,
                                                  const threadfleet::board::v1::Event& event,
                                                  const std::vector<AnomalyEvent>& raised, absl::Time now);

// The fleet event of a board's link changing state.
threadfleet::fleet::v1::Event EventFromStateChange(absl::string_view board, const LinkStatus& status);

// The fleet API's BoardState for a link's.
threadfleet::fleet::v1::BoardState ToFleetState(BoardState state);

// How a board's PROGRAM_ENDED message ("program 3 (app.py) failed, exit code
// 1") says the program ended: its final state and exit code. nullopt if the
// message does not have that form.
struct ProgramEnd {
  threadfleet::board::v1::ProgramState state = threadfleet::board::v1::PROGRAM_STATE_UNSPECIFIED;
  int32_t exit_code = 0;
};
std::optional<ProgramEnd> ParseProgramEnded(absl::string_view message);

class LabMonitor final : public LinkListener {
 public:
  struct Options {
    // Work items (events to record, updates to publish) waiting for the
    // worker; beyond this, new ones are dropped.
    size_t max_queued = 10000;
    // How many of a board's newest stored programs are searched for the one
    // a PROGRAM_ENDED names.
    int programs_searched = 100;
    // Where every snapshot is also recorded for the charts (on the
    // callback's thread: HealthHistory::Record is O(threads)); none when
    // null. REQUIRES: outlives the monitor.
    HealthHistory* history = nullptr;
  };

  // REQUIRES: store, health and hub outlive the monitor.
  LabMonitor(Store& store, HealthAggregator& health, EventHub& hub, Options options);
  LabMonitor(Store& store, HealthAggregator& health, EventHub& hub)
      : LabMonitor(store, health, hub, Options{}) {}
  // Finishes the queued work, then stops the worker. REQUIRES: no listener
  // call is running or will run (destroy the LinkManager first).
  ~LabMonitor() override;

  LabMonitor(const LabMonitor&) = delete;
  LabMonitor& operator=(const LabMonitor&) = delete;

  // LinkListener
  void OnSnapshot(absl::string_view board, const threadfleet::board::v1::HealthSnapshot& snapshot) override;
  void OnEvent(absl::string_view board, const threadfleet::board::v1::Event& event) override;
  void OnStateChange(absl::string_view board, const LinkStatus& status) override;

  // Waits until the work queued before the call is done. False if that took
  // longer than `timeout`.
  bool Flush(absl::Duration timeout);

  // Snapshots received since start.
  uint64_t snapshots_total() const;
  // Work items queued for the worker since start, dropped ones excluded. A
  // snapshot with nothing to record, publish or retry queues none.
  uint64_t queued_total() const;
  // Work items dropped because the queue was full.
  uint64_t dropped_total() const;
  // Store failures (recording an event, finishing a program) since start;
  // each is also logged to stderr.
  uint64_t store_errors_total() const;

 private:
  using Work = std::function<void()>;

  // Queues `work` for the worker; false (and counted) if the queue is full.
  bool Enqueue(Work work);
  void RunWorker();
  // Worker: stores and delivers one event.
  void Record(threadfleet::fleet::v1::Event event);
  // Worker: marks the stored program a PROGRAM_ENDED names as ended, or
  // keeps the event to retry if no stored program matches yet.
  void FinishProgram(const std::string& board, const threadfleet::board::v1::Event& event, absl::Time now);
  // Worker: true when done with the event (matched, or nothing to retry).
  bool TryFinishProgram(const std::string& board, const threadfleet::board::v1::Event& event, absl::Time now);
  // Worker: retries the board's pending program ends (at each snapshot).
  void RetryProgramEnds(const std::string& board);
  void RecordAnomalies(const std::vector<AnomalyEvent>& anomalies);

  // A PROGRAM_ENDED no stored program matched yet.
  struct PendingEnd {
    std::string board;
    threadfleet::board::v1::Event event;
    absl::Time time;
  };

  Store& store_;
  HealthAggregator& health_;
  EventHub& hub_;
  const Options options_;

  mutable absl::Mutex mu_;
  std::deque<Work> queue_ ABSL_GUARDED_BY(mu_);
  // Items ever queued and ever done: Flush waits for done to catch up.
  uint64_t queued_total_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t done_total_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t snapshots_total_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_total_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t store_errors_total_ ABSL_GUARDED_BY(mu_) = 0;
  // The last state each board was reported in, so a message-only change
  // records nothing (unless the aggregator has forgotten the board since).
  std::map<std::string, BoardState, std::less<>> states_ ABSL_GUARDED_BY(mu_);
  // Boards with entries in pending_ends_ and how many, so a snapshot of a
  // board with none need not reach the worker. Written by the worker.
  std::map<std::string, size_t, std::less<>> pending_end_boards_ ABSL_GUARDED_BY(mu_);
  // Touched by the worker only.
  std::vector<PendingEnd> pending_ends_;
  std::thread worker_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HEALTH_LAB_MONITOR_H_
