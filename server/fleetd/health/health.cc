#include "server/fleetd/health/health.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;

bool IsLive(pb::ThreadState state) {
  return state == pb::THREAD_STATE_RUNNING || state == pb::THREAD_STATE_SLEEPING ||
         state == pb::THREAD_STATE_WAITING_LOCK;
}

// Adds `delta` (+1 or -1) to the counters of `thread` in `counts`, never
// below zero.
void CountThread(const pb::ThreadInfo& thread, int delta, pb::ThreadCounts& counts) {
  auto add = [delta](uint32_t value) {
    return delta < 0 && value == 0 ? 0u : static_cast<uint32_t>(static_cast<int64_t>(value) + delta);
  };
  switch (thread.state()) {
    case pb::THREAD_STATE_RUNNING:
      counts.set_running(add(counts.running()));
      break;
    case pb::THREAD_STATE_SLEEPING:
      counts.set_sleeping(add(counts.sleeping()));
      break;
    case pb::THREAD_STATE_WAITING_LOCK:
      counts.set_waiting_lock(add(counts.waiting_lock()));
      break;
    case pb::THREAD_STATE_FINISHED:
      counts.set_finished(add(counts.finished()));
      break;
    case pb::THREAD_STATE_FAILED:
      counts.set_failed(add(counts.failed()));
      break;
    case pb::THREAD_STATE_KILLED:
      counts.set_killed(add(counts.killed()));
      break;
    default:
      break;
  }
  if (thread.unkillable() && IsLive(thread.state())) counts.set_unkillable(add(counts.unkillable()));
}

bool HeapBelow(const pb::HeapStats& heap, double fraction) {
  return heap.total_bytes() > 0 && heap.free_bytes() < fraction * heap.total_bytes();
}

std::string HeapText(const pb::HeapStats& heap) {
  return absl::StrFormat("heap free %.1f%% (%u of %u bytes)", 100.0 * heap.free_bytes() / heap.total_bytes(),
                         heap.free_bytes(), heap.total_bytes());
}

// "thread 7 (worker)", or "thread 7" when the name is not known.
std::string ThreadLabel(uint32_t id, absl::string_view name) {
  if (name.empty()) return absl::StrCat("thread ", id);
  return absl::StrCat("thread ", id, " (", name, ")");
}

// The label from the latest record fleetd has of the thread.
std::string ThreadLabel(const std::map<uint32_t, pb::ThreadInfo>& threads, uint32_t id) {
  auto it = threads.find(id);
  return ThreadLabel(id, it == threads.end() ? absl::string_view() : absl::string_view(it->second.name()));
}

std::string FailureText(const pb::ExceptionInfo& e) {
  if (e.type().empty()) return "uncaught exception";
  if (e.message().empty()) return e.type();
  return absl::StrCat(e.type(), ": ", e.message());
}

bool IsThreadAnomaly(AnomalyKind kind) {
  return kind != AnomalyKind::kHeapLow && kind != AnomalyKind::kBoardOffline;
}

}  // namespace

absl::string_view AnomalyKindName(AnomalyKind kind) {
  switch (kind) {
    case AnomalyKind::kThreadFailed:
      return "thread_failed";
    case AnomalyKind::kStackHigh:
      return "stack_high";
    case AnomalyKind::kHeapLow:
      return "heap_low";
    case AnomalyKind::kDeadlock:
      return "deadlock";
    case AnomalyKind::kStall:
      return "stall";
    case AnomalyKind::kBoardOffline:
      return "board_offline";
    case AnomalyKind::kThreadUnkillable:
      return "thread_unkillable";
    case AnomalyKind::kNativeStuck:
      return "native_stuck";
  }
  return "unknown";
}

std::optional<std::string> DegradedReason(const pb::HealthSnapshot& snapshot) {
  std::vector<std::string> reasons;
  const uint32_t unkillable = snapshot.thread_counts().unkillable();
  if (unkillable > 0) {
    reasons.push_back(
        absl::StrCat(unkillable, unkillable == 1 ? " unkillable thread" : " unkillable threads"));
  }
  if (HeapBelow(snapshot.heap(), kHeapLowFreeFraction)) reasons.push_back(HeapText(snapshot.heap()));
  if (reasons.empty()) return std::nullopt;
  return absl::StrJoin(reasons, "; ");
}

HealthAggregator::HealthAggregator(Options options) : options_(std::move(options)) {}

HealthAggregator::BoardHealth& HealthAggregator::BoardLocked(absl::string_view board) {
  auto it = boards_.find(board);
  if (it == boards_.end()) it = boards_.emplace(std::string(board), BoardHealth{}).first;
  return it->second;
}

void HealthAggregator::Raise(BoardHealth& b, absl::string_view board, AnomalyKind kind, uint32_t thread_id,
                             uint32_t program_id, std::string message, absl::Time now,
                             std::vector<AnomalyEvent>& out) {
  const AnomalyKey key{kind, thread_id};
  if (b.active.contains(key)) return;
  AnomalyEvent e;
  e.edge = AnomalyEdge::kRaised;
  e.kind = kind;
  e.board = std::string(board);
  e.thread_id = thread_id;
  e.program_id = program_id;
  e.message = absl::StrCat("board ", board, ": ", message);
  e.time = now;
  b.active.emplace(key, e);
  out.push_back(std::move(e));
}

void HealthAggregator::Clear(BoardHealth& b, const AnomalyKey& key, absl::string_view why, absl::Time now,
                             std::vector<AnomalyEvent>& out) {
  auto it = b.active.find(key);
  if (it == b.active.end()) return;
  AnomalyEvent e = std::move(it->second);
  b.active.erase(it);
  e.edge = AnomalyEdge::kCleared;
  e.message =
      absl::StrCat("board ", e.board, ": ", AnomalyKindName(e.kind), " cleared",
                   e.thread_id ? absl::StrCat(" for ", ThreadLabel(b.threads, e.thread_id)) : "", ": ", why);
  e.time = now;
  if (e.kind == AnomalyKind::kStall) b.stalled_waits.erase(e.thread_id);
  out.push_back(std::move(e));
}

void HealthAggregator::ClearThreadAnomalies(BoardHealth& b, absl::string_view why, absl::Time now,
                                            std::vector<AnomalyEvent>& out) {
  std::vector<AnomalyKey> keys;
  for (const auto& [key, e] : b.active) {
    if (IsThreadAnomaly(key.first)) keys.push_back(key);
  }
  for (const AnomalyKey& key : keys) Clear(b, key, why, now, out);
}

std::vector<AnomalyEvent> HealthAggregator::OnSnapshot(absl::string_view board,
                                                       const pb::HealthSnapshot& snapshot, absl::Time now) {
  absl::MutexLock lock(&mu_);
  BoardHealth& b = BoardLocked(board);
  std::vector<AnomalyEvent> cleared, raised;
  Clear(b, {AnomalyKind::kBoardOffline, 0}, "health snapshots arrive again", now, cleared);
  // Thread ids start over when the board process restarts: nothing known of
  // the old ids applies to the new threads.
  if (b.latest && snapshot.uptime_us() < b.latest->uptime_us()) {
    ClearThreadAnomalies(b, "board restarted", now, cleared);
    b.threads.clear();
    b.failures_reported.clear();
    b.stalled_waits.clear();
  }
  RememberThreads(b, snapshot);
  ApplySnapshotRules(b, board, snapshot, now, cleared, raised);
  b.latest = snapshot;
  cleared.insert(cleared.end(), std::make_move_iterator(raised.begin()),
                 std::make_move_iterator(raised.end()));
  return cleared;
}

void HealthAggregator::ApplySnapshotRules(BoardHealth& b, absl::string_view board,
                                          const pb::HealthSnapshot& snapshot, absl::Time now,
                                          std::vector<AnomalyEvent>& cleared,
                                          std::vector<AnomalyEvent>& raised) {
  std::map<uint32_t, const pb::ThreadInfo*> listed;
  for (const pb::ThreadInfo& t : snapshot.threads()) listed[t.id()] = &t;
  auto find = [&](uint32_t id) -> const pb::ThreadInfo* {
    auto it = listed.find(id);
    return it == listed.end() ? nullptr : it->second;
  };
  std::map<uint32_t, pb::ProgramState> programs;
  for (const pb::ProgramInfo& p : snapshot.programs()) programs[p.id()] = p.state();
  // A failed thread stays a current problem while its program runs; once the
  // program has ended (or the board forgot it), only the stored event is left.
  auto program_ended = [&](uint32_t program_id) {
    auto it = programs.find(program_id);
    return it == programs.end() || it->second != pb::PROGRAM_STATE_RUNNING;
  };

  // Clear what has ended. Keys are collected first: Clear() erases entries.
  std::vector<std::pair<AnomalyKey, std::string>> to_clear;
  for (const auto& [key, e] : b.active) {
    const auto [kind, id] = key;
    const pb::ThreadInfo* t = find(id);
    switch (kind) {
      case AnomalyKind::kThreadFailed:
        if (!t) {
          to_clear.emplace_back(key, "the board no longer lists the thread");
        } else if (program_ended(t->program_id())) {
          to_clear.emplace_back(key, t->program_id() == 0
                                         ? std::string("the thread belongs to no program")
                                         : absl::StrCat("program ", t->program_id(), " ended"));
        }
        break;
      case AnomalyKind::kNativeStuck:
        if (!t || !IsLive(t->state()) ||
            absl::Microseconds(t->native_time_us()) < options_.native_stuck_after)
          to_clear.emplace_back(key, "the thread left native code");
        break;
      case AnomalyKind::kStackHigh:
      case AnomalyKind::kThreadUnkillable:
        if (!t || !IsLive(t->state())) to_clear.emplace_back(key, "the thread ended");
        break;
      case AnomalyKind::kStall: {
        if (!t || t->state() != pb::THREAD_STATE_WAITING_LOCK) {
          to_clear.emplace_back(key, "the thread no longer waits on the lock");
          break;
        }
        auto& [lock_id, last_wait_us] = b.stalled_waits[id];
        // A shorter wait, or another lock, is a new wait: the old stall ended.
        if ((lock_id != 0 && t->waiting_lock_id() != lock_id) || t->wait_time_us() < last_wait_us) {
          to_clear.emplace_back(key, "the thread's wait on the lock ended");
          break;
        }
        lock_id = t->waiting_lock_id();
        last_wait_us = t->wait_time_us();
        break;
      }
      case AnomalyKind::kDeadlock:
        for (uint32_t cycle_id : e.cycle_thread_ids) {
          const pb::ThreadInfo* c = find(cycle_id);
          if (!c || c->state() != pb::THREAD_STATE_WAITING_LOCK) {
            to_clear.emplace_back(key, absl::StrCat(ThreadLabel(b.threads, cycle_id), " no longer waits"));
            break;
          }
        }
        break;
      case AnomalyKind::kHeapLow:
        if (!HeapBelow(snapshot.heap(), kHeapLowClearFraction))
          to_clear.emplace_back(key, HeapText(snapshot.heap()));
        break;
      case AnomalyKind::kBoardOffline:
        break;
    }
  }
  for (const auto& [key, why] : to_clear) Clear(b, key, why, now, cleared);

  // Raise what has started.
  for (const pb::ThreadInfo& t : snapshot.threads()) {
    const std::string label = ThreadLabel(t.id(), t.name());
    if (t.state() == pb::THREAD_STATE_FAILED && b.failures_reported.insert(t.id()).second) {
      Raise(b, board, AnomalyKind::kThreadFailed, t.id(), t.program_id(),
            absl::StrCat(label, " failed: ", FailureText(t.exception())), now, raised);
    }
    if (!IsLive(t.state())) continue;
    if (t.stack_size_bytes() > 0 && t.stack_peak_bytes() > kStackHighFraction * t.stack_size_bytes()) {
      Raise(b, board, AnomalyKind::kStackHigh, t.id(), t.program_id(),
            absl::StrFormat("%s stack high-water %u of %u bytes (%.0f%%) exceeds %.0f%%", label,
                            t.stack_peak_bytes(), t.stack_size_bytes(),
                            100.0 * t.stack_peak_bytes() / t.stack_size_bytes(), 100 * kStackHighFraction),
            now, raised);
    }
    if (t.unkillable()) {
      Raise(b, board, AnomalyKind::kThreadUnkillable, t.id(), t.program_id(),
            absl::StrCat(label, " is unkillable: still alive after a kill's grace period"), now, raised);
    }
    if (absl::Microseconds(t.native_time_us()) >= options_.native_stuck_after) {
      Raise(b, board, AnomalyKind::kNativeStuck, t.id(), t.program_id(),
            absl::StrFormat("%s in native code for %.0f s: a kill reaches it only when it returns; "
                            "reset the board to end it now",
                            label, absl::ToDoubleSeconds(absl::Microseconds(t.native_time_us()))),
            now, raised);
    }
    if (t.state() == pb::THREAD_STATE_WAITING_LOCK &&
        absl::Microseconds(t.wait_time_us()) >= options_.stall_after &&
        !b.active.contains({AnomalyKind::kStall, t.id()})) {
      b.stalled_waits[t.id()] = {t.waiting_lock_id(), t.wait_time_us()};
      Raise(b, board, AnomalyKind::kStall, t.id(), t.program_id(),
            absl::StrFormat("%s stalled: waiting on lock %u for %.1f s", label, t.waiting_lock_id(),
                            t.wait_time_us() / 1e6),
            now, raised);
    }
  }
  if (HeapBelow(snapshot.heap(), kHeapLowFreeFraction)) {
    Raise(b, board, AnomalyKind::kHeapLow, 0, 0,
          absl::StrFormat("%s is below %.0f%%", HeapText(snapshot.heap()), 100 * kHeapLowFreeFraction), now,
          raised);
  }
}

HealthAggregator::EventOutcome HealthAggregator::OnEvent(absl::string_view board, const pb::Event& event,
                                                         absl::Time now) {
  absl::MutexLock lock(&mu_);
  BoardHealth& b = BoardLocked(board);
  EventOutcome outcome;
  std::vector<AnomalyEvent>& out = outcome.anomalies;
  const uint32_t id = event.thread_id();
  const std::string label = ThreadLabel(b.threads, id);
  switch (event.kind()) {
    case pb::EVENT_KIND_THREAD_FAILED:
      if (b.failures_reported.insert(id).second) {
        Raise(b, board, AnomalyKind::kThreadFailed, id, event.program_id(),
              absl::StrCat(label,
                           " failed: ", event.message().empty() ? "uncaught exception" : event.message()),
              now, out);
      } else {
        outcome.repeats_snapshot = true;
      }
      break;
    case pb::EVENT_KIND_THREAD_UNKILLABLE:
      outcome.repeats_snapshot = b.active.contains({AnomalyKind::kThreadUnkillable, id});
      Raise(b, board, AnomalyKind::kThreadUnkillable, id, event.program_id(),
            absl::StrCat(label, " is unkillable: still alive after a kill's grace period"), now, out);
      break;
    case pb::EVENT_KIND_STALL:
      if (!b.active.contains({AnomalyKind::kStall, id})) {
        b.stalled_waits[id] = {0, 0};  // the next snapshot fills in the wait
        Raise(b, board, AnomalyKind::kStall, id, event.program_id(),
              absl::StrCat(label, " stalled: ", event.message()), now, out);
      } else {
        outcome.repeats_snapshot = true;
      }
      break;
    case pb::EVENT_KIND_DEADLOCK: {
      std::vector<uint32_t> cycle(event.cycle_thread_ids().begin(), event.cycle_thread_ids().end());
      if (cycle.empty() && id != 0) cycle.push_back(id);
      if (cycle.empty()) break;
      std::vector<std::string> labels;
      for (uint32_t c : cycle) labels.push_back(ThreadLabel(b.threads, c));
      const uint32_t lowest = *std::min_element(cycle.begin(), cycle.end());
      const size_t before = out.size();
      Raise(b, board, AnomalyKind::kDeadlock, lowest, event.program_id(),
            absl::StrCat("deadlock: ", absl::StrJoin(labels, ", "), " wait on each other's locks"), now, out);
      if (out.size() > before) {
        out.back().cycle_thread_ids = cycle;
        b.active[{AnomalyKind::kDeadlock, lowest}].cycle_thread_ids = cycle;
      }
      break;
    }
    default:
      break;
  }
  return outcome;
}

std::vector<AnomalyEvent> HealthAggregator::OnBoardOffline(absl::string_view board, absl::string_view reason,
                                                           absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<AnomalyEvent> out;
  Raise(BoardLocked(board), board, AnomalyKind::kBoardOffline, 0, 0, absl::StrCat("offline: ", reason), now,
        out);
  return out;
}

void HealthAggregator::RemoveBoard(absl::string_view board) {
  absl::MutexLock lock(&mu_);
  auto it = boards_.find(board);
  if (it != boards_.end()) boards_.erase(it);
}

void HealthAggregator::RememberThreads(BoardHealth& b, const pb::HealthSnapshot& snapshot) {
  std::set<uint32_t> listed;
  for (const pb::ThreadInfo& t : snapshot.threads()) {
    b.threads[t.id()] = t;
    listed.insert(t.id());
  }
  size_t unlisted = b.threads.size() - listed.size();
  for (auto it = b.threads.begin(); it != b.threads.end() && unlisted > options_.ended_threads_kept;) {
    if (listed.contains(it->first)) {
      ++it;
      continue;
    }
    it = b.threads.erase(it);
    --unlisted;
  }
}

void HealthAggregator::UpdateThread(absl::string_view board, const pb::ThreadInfo& thread) {
  absl::MutexLock lock(&mu_);
  auto it = boards_.find(board);
  if (it == boards_.end() || !it->second.latest.has_value()) return;
  BoardHealth& b = it->second;
  pb::HealthSnapshot& latest = *b.latest;
  pb::ThreadInfo* listed = nullptr;
  for (pb::ThreadInfo& t : *latest.mutable_threads()) {
    if (t.id() == thread.id()) listed = &t;
  }
  if (listed == nullptr) {
    listed = latest.add_threads();
  } else {
    CountThread(*listed, -1, *latest.mutable_thread_counts());
  }
  *listed = thread;
  CountThread(thread, +1, *latest.mutable_thread_counts());
  b.threads[thread.id()] = thread;
}

void HealthAggregator::UpdateProgram(absl::string_view board, const pb::ProgramInfo& program) {
  absl::MutexLock lock(&mu_);
  auto it = boards_.find(board);
  if (it == boards_.end() || !it->second.latest.has_value()) return;
  pb::HealthSnapshot& latest = *it->second.latest;
  for (pb::ProgramInfo& p : *latest.mutable_programs()) {
    if (p.id() == program.id()) {
      p = program;
      return;
    }
  }
  *latest.add_programs() = program;
}

std::optional<pb::HealthSnapshot> HealthAggregator::Latest(absl::string_view board) const {
  absl::MutexLock lock(&mu_);
  auto it = boards_.find(board);
  if (it == boards_.end()) return std::nullopt;
  return it->second.latest;
}

std::optional<pb::ThreadInfo> HealthAggregator::Thread(absl::string_view board, uint32_t thread_id) const {
  absl::MutexLock lock(&mu_);
  auto it = boards_.find(board);
  if (it == boards_.end()) return std::nullopt;
  auto t = it->second.threads.find(thread_id);
  if (t == it->second.threads.end()) return std::nullopt;
  return t->second;
}

std::vector<AnomalyEvent> HealthAggregator::ActiveAnomalies(absl::string_view board) const {
  absl::MutexLock lock(&mu_);
  std::vector<AnomalyEvent> out;
  for (const auto& [name, b] : boards_) {
    if (!board.empty() && name != board) continue;
    for (const auto& [key, e] : b.active) out.push_back(e);
  }
  return out;
}

std::vector<std::string> HealthAggregator::Boards() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [name, b] : boards_) out.push_back(name);
  return out;
}

}  // namespace threadfleet::fleetd
