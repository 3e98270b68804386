// HealthAggregator: what fleetd knows about the health of every board — the
// latest snapshot per board and per thread, and the anomaly rules that turn
// snapshots and board events into fleet events. (The charts' history is
// HealthHistory's, health_history.h.)
//
// A plain class: no sockets, no threads, no clock of its own (every call takes
// `now`). The board links feed it (see board_link.h); the API, the store and
// the jobs read from it.
//
// Example:
//
//   HealthAggregator health;
//   for (const AnomalyEvent& e : health.OnSnapshot("b01", snapshot, absl::Now())) {
//     store.AddEvent(e);  // e.g. kRaised kStackHigh "board b01: thread 7 (worker) ..."
//   }
//
// Anomalies are edge-triggered: each is raised once when its condition starts
// and cleared once when it ends; a condition that persists across many
// snapshots raises nothing more. One occurrence is identified by (board, kind,
// thread id) — board-wide anomalies use thread id 0, a deadlock the lowest id
// of its cycle.
//
// Thread-safe: every method may be called from any thread.
#ifndef THREADFLEET_SERVER_FLEETD_HEALTH_HEALTH_H_
#define THREADFLEET_SERVER_FLEETD_HEALTH_HEALTH_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "threadfleet/board/v1/board.pb.h"

namespace threadfleet::fleetd {

// Thresholds of the anomaly rules; the one place they live.
// A thread whose stack high-water mark exceeds this fraction of its stack.
inline constexpr double kStackHighFraction = 0.80;
// A board whose free heap is below this fraction of the heap.
inline constexpr double kHeapLowFreeFraction = 0.10;
// ... and is cleared only once free heap is back above this one, so a heap
// hovering around the threshold does not raise an event on every GC.
inline constexpr double kHeapLowClearFraction = 0.12;
// A lock wait longer than this is a stall (the board's own threshold).
inline constexpr absl::Duration kStallAfter = absl::Seconds(5);
// A thread inside one native (C) operation for longer than this cannot be
// killed until it returns: shown as an anomaly.
inline constexpr absl::Duration kNativeStuckAfter = absl::Seconds(5);

enum class AnomalyKind {
  kThreadFailed,      // a thread died of an uncaught exception
  kStackHigh,         // stack high-water > kStackHighFraction of its size
  kHeapLow,           // free heap < kHeapLowFreeFraction (board-wide)
  kDeadlock,          // a cycle in the lock wait-for graph
  kStall,             // a lock wait longer than kStallAfter
  kBoardOffline,      // fleetd lost the board's health stream (board-wide)
  kThreadUnkillable,  // a thread survived a kill's grace period
  kNativeStuck,       // a thread inside one native operation > kNativeStuckAfter
};

// "thread_failed", "stack_high", "heap_low", "deadlock", "stall",
// "board_offline", "thread_unkillable", "native_stuck": stable names for
// logs, the store and the API.
absl::string_view AnomalyKindName(AnomalyKind kind);

enum class AnomalyEdge { kRaised, kCleared };

// One edge of one anomaly: what the rules report to the caller.
struct AnomalyEvent {
  AnomalyEdge edge = AnomalyEdge::kRaised;
  AnomalyKind kind = AnomalyKind::kThreadFailed;
  std::string board;
  // The thread concerned; 0 for board-wide anomalies. For a deadlock, the
  // lowest id of the cycle.
  uint32_t thread_id = 0;
  // The program concerned; 0 if unknown or none.
  uint32_t program_id = 0;
  // Deadlock only: every thread of the cycle.
  std::vector<uint32_t> cycle_thread_ids;
  // One line naming the board and the thread, e.g.
  // "board b01: thread 7 (worker) failed: ValueError: boom". A kCleared event
  // says why it cleared.
  std::string message;
  absl::Time time;
};

// Why a board that is reachable should be shown DEGRADED: it has unkillable
// threads, or its free heap is below kHeapLowFreeFraction. nullopt when the
// snapshot shows neither. The message is one line without the board name,
// e.g. "2 unkillable threads; heap free 3.1% (2048 of 65536 bytes)".
std::optional<std::string> DegradedReason(const threadfleet::board::v1::HealthSnapshot& snapshot);

class HealthAggregator {
 public:
  struct Options {
    absl::Duration stall_after = kStallAfter;
    absl::Duration native_stuck_after = kNativeStuckAfter;
    // Ended threads remembered per board for Thread(), beyond the latest
    // snapshot's; the oldest (lowest id) are forgotten first.
    size_t ended_threads_kept = 256;
  };

  HealthAggregator() : HealthAggregator(Options{}) {}
  explicit HealthAggregator(Options options);

  HealthAggregator(const HealthAggregator&) = delete;
  HealthAggregator& operator=(const HealthAggregator&) = delete;

  // Records a snapshot of `board` received at `now` and applies every rule.
  // Returns the anomalies it raised and cleared, raised ones after cleared
  // ones. A snapshot also clears kBoardOffline. A snapshot whose uptime is
  // lower than the previous one means the board restarted: its thread ids
  // start over, so every thread anomaly of the board is cleared first.
  [[nodiscard]] std::vector<AnomalyEvent> OnSnapshot(absl::string_view board,
                                                     const threadfleet::board::v1::HealthSnapshot& snapshot,
                                                     absl::Time now);

  // Records an event of the board's health stream. THREAD_FAILED,
  // THREAD_UNKILLABLE, DEADLOCK and STALL raise their anomaly at once (unless
  // already raised); the next snapshots clear it when its condition ends.
  // Other kinds raise nothing.
  // `repeats_snapshot` is set when the event reports an anomaly a snapshot
  // already raised (the snapshot arrived first): its record exists, so
  // relaying the event as well would report the anomaly twice.
  struct EventOutcome {
    std::vector<AnomalyEvent> anomalies;
    bool repeats_snapshot = false;
  };
  [[nodiscard]] EventOutcome OnEvent(absl::string_view board, const threadfleet::board::v1::Event& event,
                                     absl::Time now);

  // The board's link lost it; `reason` says why (one line). Raises
  // kBoardOffline once until the next snapshot. The board's latest snapshot
  // stays.
  [[nodiscard]] std::vector<AnomalyEvent> OnBoardOffline(absl::string_view board, absl::string_view reason,
                                                         absl::Time now);

  // Forgets everything about the board (it left the inventory). Raises
  // nothing.
  void RemoveBoard(absl::string_view board);

  // Replaces the record of `thread` (by id) in the board's latest snapshot
  // with this newer one, e.g. what a KillThread returned, so that readers see
  // it before the board's next snapshot. A thread the snapshot does not list
  // yet is appended. The snapshot's thread counts follow the thread's new
  // state; Thread() returns the new record. Anomalies are left
  // alone (the next snapshot applies the rules). Does nothing when no
  // snapshot of the board arrived yet. The board's next snapshot replaces
  // the whole record again.
  void UpdateThread(absl::string_view board, const threadfleet::board::v1::ThreadInfo& thread);

  // As UpdateThread, for a program's record (e.g. what a KillProgram
  // returned) in the board's latest snapshot.
  void UpdateProgram(absl::string_view board, const threadfleet::board::v1::ProgramInfo& program);

  // The latest snapshot of the board; nullopt if none arrived yet.
  std::optional<threadfleet::board::v1::HealthSnapshot> Latest(absl::string_view board) const;

  // The latest record of one thread: from the latest snapshot, else from an
  // earlier one if the board no longer lists it. nullopt if never seen.
  std::optional<threadfleet::board::v1::ThreadInfo> Thread(absl::string_view board, uint32_t thread_id) const;

  // Anomalies raised and not yet cleared, of one board (or of every board
  // when `board` is empty), ordered by board, kind, thread.
  std::vector<AnomalyEvent> ActiveAnomalies(absl::string_view board = {}) const;

  // Boards with any data, sorted.
  std::vector<std::string> Boards() const;

 private:
  // (kind, thread id): one occurrence on one board.
  using AnomalyKey = std::pair<AnomalyKind, uint32_t>;

  struct BoardHealth {
    std::optional<threadfleet::board::v1::HealthSnapshot> latest;
    std::map<uint32_t, threadfleet::board::v1::ThreadInfo> threads;
    std::map<AnomalyKey, AnomalyEvent> active;
    // Threads whose failure was reported since the board started: a failed
    // record may drop out of a snapshot and come back, but fails only once.
    std::set<uint32_t> failures_reported;
    // The wait (lock id, wait start) a stall was reported for, per thread,
    // so a new wait of the same thread can stall again.
    std::map<uint32_t, std::pair<uint32_t, uint64_t>> stalled_waits;
  };

  BoardHealth& BoardLocked(absl::string_view board) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Raise(BoardHealth& b, absl::string_view board, AnomalyKind kind, uint32_t thread_id,
             uint32_t program_id, std::string message, absl::Time now, std::vector<AnomalyEvent>& out);
  void Clear(BoardHealth& b, const AnomalyKey& key, absl::string_view why, absl::Time now,
             std::vector<AnomalyEvent>& out);
  void ClearThreadAnomalies(BoardHealth& b, absl::string_view why, absl::Time now,
                            std::vector<AnomalyEvent>& out);
  void ApplySnapshotRules(BoardHealth& b, absl::string_view board,
                          const threadfleet::board::v1::HealthSnapshot& snapshot, absl::Time now,
                          std::vector<AnomalyEvent>& cleared, std::vector<AnomalyEvent>& raised);
  void RememberThreads(BoardHealth& b, const threadfleet::board::v1::HealthSnapshot& snapshot);

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, BoardHealth, std::less<>> boards_ ABSL_GUARDED_BY(mu_);
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HEALTH_HEALTH_H_
