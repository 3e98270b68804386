#include "server/fleetd/health/lab_monitor.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/time_util.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;
namespace fv1 = threadfleet::fleet::v1;

// A stored program a PROGRAM_ENDED could not be matched with yet (the API
// stores a program after the board started it, so a short one may end
// first) is retried for this long, at each snapshot of its board.
constexpr absl::Duration kProgramEndRetryFor = absl::Seconds(30);

void SetTime(fv1::Event& event, absl::Time time) {
  *event.mutable_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(time));
}

fv1::Severity RaisedSeverity(AnomalyKind kind) {
  switch (kind) {
    case AnomalyKind::kDeadlock:
    case AnomalyKind::kThreadUnkillable:
    case AnomalyKind::kBoardOffline:
      return fv1::SEVERITY_ERROR;
    case AnomalyKind::kThreadFailed:
    case AnomalyKind::kStackHigh:
    case AnomalyKind::kHeapLow:
    case AnomalyKind::kStall:
    case AnomalyKind::kNativeStuck:
      return fv1::SEVERITY_WARNING;
  }
  return fv1::SEVERITY_WARNING;
}

// The board event kind an anomaly raised by the board itself stands for.
std::optional<pb::EventKind> BoardKindOf(AnomalyKind kind) {
  switch (kind) {
    case AnomalyKind::kThreadFailed:
      return pb::EVENT_KIND_THREAD_FAILED;
    case AnomalyKind::kDeadlock:
      return pb::EVENT_KIND_DEADLOCK;
    case AnomalyKind::kStall:
      return pb::EVENT_KIND_STALL;
    default:
      return std::nullopt;
  }
}

fv1::Severity BoardEventSeverity(pb::EventKind kind) {
  switch (kind) {
    case pb::EVENT_KIND_THREAD_FAILED:
      return fv1::SEVERITY_WARNING;
    case pb::EVENT_KIND_DEADLOCK:
      return fv1::SEVERITY_ERROR;
    // The program stopped feeding its watchdog: a hang a board in the field
    // would reboot from, worth a look.
    case pb::EVENT_KIND_WATCHDOG_RESET:
      return fv1::SEVERITY_WARNING;
    // machine.reset()/soft_reset(): the program asked for it.
    case pb::EVENT_KIND_MACHINE_RESET:
      return fv1::SEVERITY_INFO;
    default:
      return fv1::SEVERITY_INFO;
  }
}

void LogStoreError(absl::string_view what, absl::string_view board, const absl::Status& status) {
  std::fprintf(stderr, "fleetd: store write failed what=%.*s board=%.*s: %s\n", static_cast<int>(what.size()),
               what.data(), static_cast<int>(board.size()), board.data(), status.ToString().c_str());
}

}  // namespace

fv1::BoardState ToFleetState(BoardState state) {
  switch (state) {
    case BoardState::kOnline:
      return fv1::BOARD_STATE_ONLINE;
    case BoardState::kDegraded:
      return fv1::BOARD_STATE_DEGRADED;
    case BoardState::kOffline:
      return fv1::BOARD_STATE_OFFLINE;
  }
  return fv1::BOARD_STATE_UNSPECIFIED;
}

std::optional<fv1::Event> EventFromAnomaly(const AnomalyEvent& anomaly) {
  if (anomaly.kind == AnomalyKind::kBoardOffline) return std::nullopt;
  fv1::Event event;
  event.set_board(anomaly.board);
  event.set_thread_id(anomaly.thread_id);
  event.set_program_id(anomaly.program_id);
  event.set_message(anomaly.message);
  event.set_severity(anomaly.edge == AnomalyEdge::kRaised ? RaisedSeverity(anomaly.kind)
                                                          : fv1::SEVERITY_INFO);
  SetTime(event, anomaly.time);
  switch (anomaly.kind) {
    case AnomalyKind::kStackHigh:
      event.set_kind(fv1::EVENT_KIND_STACK_HIGH);
      break;
    case AnomalyKind::kHeapLow:
      event.set_kind(fv1::EVENT_KIND_HEAP_LOW);
      break;
    case AnomalyKind::kNativeStuck:
      event.set_kind(fv1::EVENT_KIND_NATIVE_STUCK);
      break;
    case AnomalyKind::kThreadUnkillable:
      event.set_kind(fv1::EVENT_KIND_BOARD_STATE);
      break;
    default: {
      // thread_failed, deadlock, stall: what the board reports as events.
      event.set_kind(fv1::EVENT_KIND_BOARD_EVENT);
      pb::Event* board_event = event.mutable_board_event();
      board_event->set_kind(*BoardKindOf(anomaly.kind));
      board_event->set_thread_id(anomaly.kind == AnomalyKind::kDeadlock ? 0 : anomaly.thread_id);
      board_event->set_program_id(anomaly.program_id);
      board_event->set_message(anomaly.message);
      for (uint32_t id : anomaly.cycle_thread_ids) board_event->add_cycle_thread_ids(id);
      break;
    }
  }
  return event;
}

fv1::Event EventFromBoardEvent(absl::string_view board, const pb::Event& board_event,
                               const std::vector<AnomalyEvent>& raised, absl::Time now) {
  fv1::Event event;
  event.set_board(std::string(board));
  event.set_kind(fv1::EVENT_KIND_BOARD_EVENT);
  event.set_thread_id(board_event.thread_id());
  event.set_program_id(board_event.program_id());
  event.set_severity(BoardEventSeverity(board_event.kind()));
  event.set_message(board_event.message().empty()
                        ? absl::StrCat("board ", board, ": ", pb::EventKind_Name(board_event.kind()))
                        : absl::StrCat("board ", board, ": ", board_event.message()));
  if (!raised.empty()) {
    const AnomalyEvent& anomaly = raised.front();
    if (RaisedSeverity(anomaly.kind) > event.severity()) event.set_severity(RaisedSeverity(anomaly.kind));
    event.set_message(anomaly.message);
  }
  *event.mutable_board_event() = board_event;
  SetTime(event, now);
  return event;
}

fv1::Event EventFromStateChange(absl::string_view board, const LinkStatus& status) {
  fv1::Event event;
  event.set_board(std::string(board));
  event.set_kind(fv1::EVENT_KIND_BOARD_STATE);
  std::string message = absl::StrCat("board ", board, " ", BoardStateName(status.state));
  if (!status.message.empty()) absl::StrAppend(&message, ": ", status.message);
  event.set_message(std::move(message));
  switch (status.state) {
    case BoardState::kOffline:
      event.set_severity(fv1::SEVERITY_ERROR);
      break;
    case BoardState::kDegraded:
      event.set_severity(fv1::SEVERITY_WARNING);
      break;
    case BoardState::kOnline:
      event.set_severity(fv1::SEVERITY_INFO);
      break;
  }
  SetTime(event, status.since == absl::InfinitePast() ? absl::Now() : status.since);
  return event;
}

std::optional<ProgramEnd> ParseProgramEnded(absl::string_view message) {
  // "program %u (%s) %s, exit code %d"; the name may hold anything, so parse
  // from the end.
  constexpr absl::string_view kExitCode = ", exit code ";
  const size_t at = message.rfind(kExitCode);
  if (at == absl::string_view::npos) return std::nullopt;
  ProgramEnd end;
  if (!absl::SimpleAtoi(message.substr(at + kExitCode.size()), &end.exit_code)) return std::nullopt;
  absl::string_view head = message.substr(0, at);
  const size_t space = head.rfind(' ');
  if (space == absl::string_view::npos) return std::nullopt;
  absl::string_view word = head.substr(space + 1);
  if (word == "finished") {
    end.state = pb::PROGRAM_STATE_FINISHED;
  } else if (word == "failed") {
    end.state = pb::PROGRAM_STATE_FAILED;
  } else if (word == "killed") {
    end.state = pb::PROGRAM_STATE_KILLED;
  } else {
    return std::nullopt;
  }
  return end;
}

// ---- LabMonitor

LabMonitor::LabMonitor(Store& store, HealthAggregator& health, EventHub& hub, Options options)
    : store_(store), health_(health), hub_(hub), options_(options) {
  worker_ = std::thread([this] { RunWorker(); });
}

LabMonitor::~LabMonitor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  worker_.join();
}

void LabMonitor::OnSnapshot(absl::string_view board, const pb::HealthSnapshot& snapshot) {
  const absl::Time now = absl::Now();
  std::vector<AnomalyEvent> anomalies = health_.OnSnapshot(board, snapshot, now);
  if (options_.history != nullptr) options_.history->Record(board, snapshot, now);
  bool retry = false;
  {
    absl::MutexLock lock(&mu_);
    ++snapshots_total_;
    retry = pending_end_boards_.contains(board);
  }
  // Copying the snapshot into an update is most of a snapshot's cost here:
  // done only for a subscriber.
  std::optional<fv1::WatchHealthResponse> update;
  if (hub_.HasHealthSubscribers()) {
    update.emplace();
    update->set_board(std::string(board));
    *update->mutable_snapshot() = snapshot;
  }
  if (anomalies.empty() && !update.has_value() && !retry) return;
  Enqueue([this, board = std::string(board), anomalies = std::move(anomalies), update = std::move(update),
           retry] {
    // Cleared edges come first (health.h), so a subscriber sees the anomaly
    // end before the snapshot that shows it ended.
    RecordAnomalies(anomalies);
    if (update.has_value()) hub_.PublishHealth(*update);
    if (retry) RetryProgramEnds(board);
  });
}

void LabMonitor::OnEvent(absl::string_view board, const pb::Event& event) {
  const absl::Time now = absl::Now();
  HealthAggregator::EventOutcome outcome = health_.OnEvent(board, event, now);
  std::vector<AnomalyEvent> raised_by_event;
  std::vector<AnomalyEvent> others;
  for (AnomalyEvent& a : outcome.anomalies) {
    const bool same = raised_by_event.empty() && a.edge == AnomalyEdge::kRaised;
    (same ? raised_by_event : others).push_back(std::move(a));
  }
  // A snapshot that showed the failure first has stored it already.
  std::optional<fv1::Event> relayed;
  if (!outcome.repeats_snapshot) relayed = EventFromBoardEvent(board, event, raised_by_event, now);
  const bool ended = event.kind() == pb::EVENT_KIND_PROGRAM_ENDED;
  Enqueue([this, board = std::string(board), event, ended, now, relayed = std::move(relayed),
           others = std::move(others)]() mutable {
    if (relayed) Record(*std::move(relayed));
    RecordAnomalies(others);
    if (ended) FinishProgram(board, event, now);
  });
}

void LabMonitor::OnStateChange(absl::string_view board, const LinkStatus& status) {
  // A board the aggregator forgot (removed from the inventory, maybe added
  // again since) starts over: its next state is news even if it is the one
  // it had.
  const std::vector<std::string> known = health_.Boards();
  const bool forgotten = std::find(known.begin(), known.end(), board) == known.end();
  {
    absl::MutexLock lock(&mu_);
    auto it = states_.find(board);
    if (!forgotten && it != states_.end() && it->second == status.state) return;  // only the message changed
    states_[std::string(board)] = status.state;
  }
  // The aggregator keeps board_offline active until the next snapshot; its
  // event is the state change's (EventFromAnomaly skips it).
  if (status.state == BoardState::kOffline) {
    std::vector<AnomalyEvent> ignored = health_.OnBoardOffline(board, status.message, absl::Now());
    (void)ignored;
  }
  fv1::WatchHealthResponse update;
  update.set_board(std::string(board));
  update.set_state(ToFleetState(status.state));
  fv1::Event event = EventFromStateChange(board, status);
  Enqueue([this, update = std::move(update), event = std::move(event)]() mutable {
    Record(std::move(event));
    hub_.PublishHealth(update);
  });
}

bool LabMonitor::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const uint64_t target = queued_total_;
  auto done = [this, target]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return done_total_ >= target; };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

uint64_t LabMonitor::snapshots_total() const {
  absl::MutexLock lock(&mu_);
  return snapshots_total_;
}

uint64_t LabMonitor::queued_total() const {
  absl::MutexLock lock(&mu_);
  return queued_total_;
}

uint64_t LabMonitor::dropped_total() const {
  absl::MutexLock lock(&mu_);
  return dropped_total_;
}

uint64_t LabMonitor::store_errors_total() const {
  absl::MutexLock lock(&mu_);
  return store_errors_total_;
}

bool LabMonitor::Enqueue(Work work) {
  absl::MutexLock lock(&mu_);
  if (queue_.size() >= options_.max_queued) {
    ++dropped_total_;
    return false;
  }
  queue_.push_back(std::move(work));
  ++queued_total_;
  return true;
}

void LabMonitor::RunWorker() {
  for (;;) {
    Work work;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, and everything is done
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    work();
    absl::MutexLock lock(&mu_);
    ++done_total_;
  }
}

void LabMonitor::Record(fv1::Event event) {
  const std::string board = event.board();
  absl::StatusOr<fv1::Event> stored = hub_.Record(std::move(event));
  if (stored.ok()) return;
  LogStoreError("event", board, stored.status());
  absl::MutexLock lock(&mu_);
  ++store_errors_total_;
}

void LabMonitor::RecordAnomalies(const std::vector<AnomalyEvent>& anomalies) {
  for (const AnomalyEvent& anomaly : anomalies) {
    std::optional<fv1::Event> event = EventFromAnomaly(anomaly);
    if (event.has_value()) Record(*std::move(event));
  }
}

void LabMonitor::FinishProgram(const std::string& board, const pb::Event& event, absl::Time now) {
  if (TryFinishProgram(board, event, now)) return;
  pending_ends_.push_back(PendingEnd{board, event, now});
  absl::MutexLock lock(&mu_);
  ++pending_end_boards_[board];
}

bool LabMonitor::TryFinishProgram(const std::string& board, const pb::Event& event, absl::Time now) {
  std::optional<ProgramEnd> end = ParseProgramEnded(event.message());
  if (!end.has_value()) {
    // Not the board's usual message: its latest snapshot may know.
    std::optional<pb::HealthSnapshot> latest = health_.Latest(board);
    if (latest.has_value()) {
      for (const pb::ProgramInfo& p : latest->programs()) {
        if (p.id() == event.program_id() && p.state() != pb::PROGRAM_STATE_RUNNING) {
          end = ProgramEnd{p.state(), p.exit_code()};
        }
      }
    }
  }
  if (!end.has_value()) {
    std::fprintf(stderr, "fleetd: cannot tell how program %u of board %s ended from \"%s\"\n",
                 event.program_id(), board.c_str(), event.message().c_str());
    return true;  // nothing a retry would learn
  }
  absl::StatusOr<std::vector<ProgramRecord>> programs =
      store_.ListPrograms(board, options_.programs_searched);
  if (!programs.ok()) {
    LogStoreError("program end", board, programs.status());
    absl::MutexLock lock(&mu_);
    ++store_errors_total_;
    return true;
  }
  // Newest first: after a board restart its program ids start over, and the
  // newest running record with that id is the one that ended.
  for (const ProgramRecord& p : *programs) {
    if (p.board_program_id != event.program_id() || p.end_time.has_value()) continue;
    absl::Status s = store_.FinishProgram(p.id, end->state, end->exit_code, now);
    if (!s.ok()) {
      LogStoreError("program end", board, s);
      absl::MutexLock lock(&mu_);
      ++store_errors_total_;
    }
    return true;
  }
  return false;
}

void LabMonitor::RetryProgramEnds(const std::string& board) {
  const absl::Time now = absl::Now();
  for (auto it = pending_ends_.begin(); it != pending_ends_.end();) {
    if (it->board != board) {
      ++it;
    } else if (TryFinishProgram(it->board, it->event, it->time) || now - it->time > kProgramEndRetryFor) {
      it = pending_ends_.erase(it);
      absl::MutexLock lock(&mu_);
      auto pending = pending_end_boards_.find(board);
      if (pending != pending_end_boards_.end() && --pending->second == 0) pending_end_boards_.erase(pending);
    } else {
      ++it;
    }
  }
}

}  // namespace threadfleet::fleetd
