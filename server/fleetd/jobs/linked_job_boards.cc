#include "server/fleetd/jobs/linked_job_boards.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace threadfleet::fleetd::jobs {
namespace {

namespace pb = threadfleet::board::v1;
namespace fv1 = threadfleet::fleet::v1;

// A call's wait is bounded by its deadline plus this: the link ends every
// call by its deadline (and a little slack) itself, so this only guards
// against a link that broke its promise.
constexpr absl::Duration kWaitSlack = absl::Seconds(5);

absl::Time EventTime(const fv1::Event& event) {
  return absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(event.time()));
}

absl::Status Unlinked(absl::string_view board) {
  return absl::UnavailableError(absl::StrCat("board ", board, ": fleetd has no link to it"));
}

// One call's outcome, handed from the links thread to the waiting worker.
// Shared: a worker that stops waiting (the run was stopped) leaves it to the
// call's `done`.
template <typename T>
struct PendingCall {
  absl::Mutex mu;
  std::optional<T> result ABSL_GUARDED_BY(mu);
  bool stopped ABSL_GUARDED_BY(mu) = false;

  void Fulfil(T value) {
    absl::MutexLock lock(&mu);
    if (!result.has_value()) result.emplace(std::move(value));
  }
};

// Starts a call with `start(done)` and waits for its outcome, for `stop`
// (CANCELLED with its reason; `on_stop` runs first, e.g. to cancel a stream),
// or past the deadline's slack (DEADLINE_EXCEEDED).
template <typename T, typename StartFn>
T CallAndWait(absl::string_view what, absl::Time deadline, const StopSignal* stop, StartFn start,
              std::function<void()> on_stop = {}) {
  auto pending = std::make_shared<PendingCall<T>>();
  start([pending](T value) { pending->Fulfil(std::move(value)); });
  uint64_t stop_id = 0;
  if (stop != nullptr) {
    stop_id = stop->OnStop([pending, on_stop = std::move(on_stop)] {
      if (on_stop) on_stop();
      absl::MutexLock lock(&pending->mu);
      pending->stopped = true;
    });
  }
  std::optional<T> outcome;
  bool stopped = false;
  {
    absl::MutexLock lock(&pending->mu);
    auto ready = [&pending]() ABSL_SHARED_LOCKS_REQUIRED(pending->mu) {
      return pending->result.has_value() || pending->stopped;
    };
    pending->mu.AwaitWithDeadline(absl::Condition(&ready), deadline + kWaitSlack);
    if (pending->result.has_value()) outcome = std::move(pending->result);
    stopped = pending->stopped;
  }
  if (stop == nullptr) {
    if (outcome.has_value()) return *std::move(outcome);
  } else {
    stop->RemoveOnStop(stop_id);
    if (outcome.has_value()) return *std::move(outcome);
    if (stopped) return absl::CancelledError(absl::StrCat(what, ": ", stop->reason()));
  }
  return absl::DeadlineExceededError(absl::StrCat(what, ": no answer by the deadline"));
}

}  // namespace

std::optional<std::string> RaisedAnomalyKind(const fv1::Event& event) {
  // Cleared anomalies and plain news are INFO (lab_monitor.h).
  if (event.severity() < fv1::SEVERITY_WARNING) return std::nullopt;
  switch (event.kind()) {
    case fv1::EVENT_KIND_STACK_HIGH:
      return std::string(AnomalyKindName(AnomalyKind::kStackHigh));
    case fv1::EVENT_KIND_HEAP_LOW:
      return std::string(AnomalyKindName(AnomalyKind::kHeapLow));
    case fv1::EVENT_KIND_NATIVE_STUCK:
      return std::string(AnomalyKindName(AnomalyKind::kNativeStuck));
    case fv1::EVENT_KIND_BOARD_EVENT:
      switch (event.board_event().kind()) {
        case pb::EVENT_KIND_THREAD_FAILED:
          return std::string(AnomalyKindName(AnomalyKind::kThreadFailed));
        case pb::EVENT_KIND_DEADLOCK:
          return std::string(AnomalyKindName(AnomalyKind::kDeadlock));
        case pb::EVENT_KIND_STALL:
          return std::string(AnomalyKindName(AnomalyKind::kStall));
        case pb::EVENT_KIND_THREAD_UNKILLABLE:
          return std::string(AnomalyKindName(AnomalyKind::kThreadUnkillable));
        default:
          return std::nullopt;
      }
    case fv1::EVENT_KIND_BOARD_STATE:
      // An unkillable thread a snapshot showed names its thread; the board's
      // own state changes name none: offline is ERROR, degraded WARNING
      // (whose reasons have events of their own).
      if (event.thread_id() != 0) return std::string(AnomalyKindName(AnomalyKind::kThreadUnkillable));
      if (event.severity() == fv1::SEVERITY_ERROR)
        return std::string(AnomalyKindName(AnomalyKind::kBoardOffline));
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

LinkedJobBoards::LinkedJobBoards(BoardDirectory& links, HealthAggregator& health, EventHub& hub,
                                 Options options)
    : links_(links), health_(health), hub_(hub), options_(options) {
  events_subscription_ = hub_.SubscribeEvents([this](const fv1::Event& event) { OnEvent(event); });
}

LinkedJobBoards::~LinkedJobBoards() {
  hub_.Unsubscribe(events_subscription_);
  absl::MutexLock lock(&health_subscription_mu_);
  if (health_subscription_.has_value()) hub_.Unsubscribe(*health_subscription_);
}

bool LinkedJobBoards::Reachable(absl::string_view board) const {
  std::optional<LinkStatus> status = links_.Status(board);
  return status.has_value() && status->state != BoardState::kOffline;
}

bool LinkedJobBoards::AwaitFirstConnection(absl::string_view board, absl::Time until,
                                           const StopSignal& stop) {
  // The links report their first connection only through Status(); a short
  // poll is enough for a wait that happens once per board and fleetd start.
  constexpr absl::Duration kPoll = absl::Milliseconds(50);
  for (;;) {
    std::optional<LinkStatus> status = links_.Status(board);
    if (!status.has_value()) return false;
    if (status->state != BoardState::kOffline) return true;
    if (status->connections > 0 || absl::Now() >= until) return false;
    if (stop.SleepFor(std::min(kPoll, until - absl::Now()))) return false;
  }
}

absl::StatusOr<pb::WriteFileResponse> LinkedJobBoards::WriteFile(
    absl::string_view board, absl::string_view path, std::shared_ptr<const std::string> content,
    absl::string_view sha256_hex, absl::Time deadline, const StopSignal& stop) {
  std::shared_ptr<BoardClient> client = links_.Client(board);
  if (client == nullptr) return Unlinked(board);
  pb::WriteFileHeader header;
  header.set_path(std::string(path));
  header.set_expected_size_bytes(content->size());
  header.set_skip_if_sha256_hex(std::string(sha256_hex));
  using Result = absl::StatusOr<pb::WriteFileResponse>;
  return CallAndWait<Result>(absl::StrCat("board ", board, ": WriteFile"), deadline, &stop, [&](auto done) {
    client->WriteFile(header, std::move(content), {.deadline = deadline}, std::move(done));
  });
}

absl::StatusOr<pb::StartProgramResponse> LinkedJobBoards::StartProgram(absl::string_view board,
                                                                       const pb::StartProgramRequest& request,
                                                                       absl::Time deadline,
                                                                       const StopSignal& stop) {
  std::shared_ptr<BoardClient> client = links_.Client(board);
  if (client == nullptr) return Unlinked(board);
  // Not cut short once sent: a program started after its caller stopped
  // waiting would run with nobody to kill it.
  if (stop.stopped())
    return absl::CancelledError(absl::StrCat("board ", board, ": StartProgram: ", stop.reason()));
  using Result = absl::StatusOr<pb::StartProgramResponse>;
  return CallAndWait<Result>(
      absl::StrCat("board ", board, ": StartProgram"), deadline, nullptr,
      [&](auto done) { client->StartProgram(request, {.deadline = deadline}, std::move(done)); });
}

absl::Status LinkedJobBoards::FollowOutput(absl::string_view board, uint32_t program_id, uint64_t from_offset,
                                           absl::Time deadline, const StopSignal& stop, OutputFn on_output) {
  return StreamOutput(board, program_id, from_offset, /*follow=*/true, deadline, stop, std::move(on_output));
}

absl::Status LinkedJobBoards::ReadOutput(absl::string_view board, uint32_t program_id, uint64_t from_offset,
                                         absl::Time deadline, const StopSignal& stop, OutputFn on_output) {
  return StreamOutput(board, program_id, from_offset, /*follow=*/false, deadline, stop, std::move(on_output));
}

absl::Status LinkedJobBoards::StreamOutput(absl::string_view board, uint32_t program_id, uint64_t from_offset,
                                           bool follow, absl::Time deadline, const StopSignal& stop,
                                           OutputFn on_output) {
  std::shared_ptr<BoardClient> client = links_.Client(board);
  if (client == nullptr) return Unlinked(board);
  pb::StreamOutputRequest request;
  request.set_program_id(program_id);
  request.set_from_offset(from_offset);
  request.set_follow(follow);
  // The stream's handle, for the stop callback; set once the call started.
  auto stream = std::make_shared<std::shared_ptr<OutputStream>>();
  auto stream_mu = std::make_shared<absl::Mutex>();
  return CallAndWait<absl::Status>(
      absl::StrCat("board ", board, ": StreamOutput"), deadline, &stop,
      [&](auto done) {
        std::shared_ptr<OutputStream> started = client->StreamOutput(
            request, {.deadline = deadline},
            [on_output](const pb::OutputChunk& chunk) { on_output(chunk.offset(), chunk.data()); },
            std::move(done));
        absl::MutexLock lock(stream_mu.get());
        *stream = std::move(started);
      },
      [stream, stream_mu] {
        absl::MutexLock lock(stream_mu.get());
        if (*stream != nullptr) (*stream)->Cancel();
      });
}

absl::StatusOr<pb::MachineState> LinkedJobBoards::GetMachine(absl::string_view board, absl::Time deadline,
                                                             const StopSignal& stop) {
  std::shared_ptr<BoardClient> client = links_.Client(board);
  if (client == nullptr) return Unlinked(board);
  using Result = absl::StatusOr<pb::MachineState>;
  return CallAndWait<Result>(absl::StrCat("board ", board, ": GetMachine"), deadline, &stop,
                             [&](auto done) { client->GetMachine({.deadline = deadline}, std::move(done)); });
}

absl::StatusOr<pb::PinState> LinkedJobBoards::SetPin(absl::string_view board,
                                                     const pb::SetPinRequest& request, absl::Time deadline,
                                                     const StopSignal& stop) {
  std::shared_ptr<BoardClient> client = links_.Client(board);
  if (client == nullptr) return Unlinked(board);
  using Result = absl::StatusOr<pb::PinState>;
  return CallAndWait<Result>(absl::StrCat("board ", board, ": SetPin"), deadline, &stop, [&](auto done) {
    client->SetPin(request, {.deadline = deadline}, std::move(done));
  });
}

absl::StatusOr<pb::AdcState> LinkedJobBoards::SetAdc(absl::string_view board,
                                                     const pb::SetAdcRequest& request, absl::Time deadline,
                                                     const StopSignal& stop) {
  std::shared_ptr<BoardClient> client = links_.Client(board);
  if (client == nullptr) return Unlinked(board);
  using Result = absl::StatusOr<pb::AdcState>;
  return CallAndWait<Result>(absl::StrCat("board ", board, ": SetAdc"), deadline, &stop, [&](auto done) {
    client->SetAdc(request, {.deadline = deadline}, std::move(done));
  });
}

absl::StatusOr<pb::ListThreadsResponse> LinkedJobBoards::ListThreads(absl::string_view board,
                                                                     absl::Time deadline) {
  std::shared_ptr<BoardClient> client = links_.Client(board);
  if (client == nullptr) return Unlinked(board);
  pb::ListThreadsRequest request;
  request.set_include_finished(true);
  using Result = absl::StatusOr<pb::ListThreadsResponse>;
  return CallAndWait<Result>(
      absl::StrCat("board ", board, ": ListThreads"), deadline, nullptr,
      [&](auto done) { client->ListThreads(request, {.deadline = deadline}, std::move(done)); });
}

absl::StatusOr<pb::KillProgramResponse> LinkedJobBoards::KillProgram(absl::string_view board,
                                                                     uint32_t program_id,
                                                                     absl::Duration grace,
                                                                     absl::Time deadline) {
  std::shared_ptr<BoardClient> client = links_.Client(board);
  if (client == nullptr) return Unlinked(board);
  using Result = absl::StatusOr<pb::KillProgramResponse>;
  Result killed = CallAndWait<Result>(
      absl::StrCat("board ", board, ": KillProgram"), deadline, nullptr,
      [&](auto done) { client->KillProgram(program_id, grace, {.deadline = deadline}, std::move(done)); });
  if (!killed.ok()) return killed;
  // Readers of the fleet's health (the API, the dashboard, a test waiting
  // for the threads to end) see the program and its threads end now, not at
  // the board's next snapshot — as after a kill through the API. A failed
  // listing only delays the threads' records until that snapshot.
  health_.UpdateProgram(board, killed->program());
  pb::ListThreadsRequest request;
  request.set_program_id(program_id);
  request.set_include_finished(true);
  using Listed = absl::StatusOr<pb::ListThreadsResponse>;
  Listed listed = CallAndWait<Listed>(
      absl::StrCat("board ", board, ": ListThreads"), deadline, nullptr,
      [&](auto done) { client->ListThreads(request, {.deadline = deadline}, std::move(done)); });
  if (listed.ok()) {
    for (const pb::ThreadInfo& t : listed->threads()) {
      if (t.program_id() == program_id) health_.UpdateThread(board, t);
    }
  }
  return killed;
}

std::optional<pb::HealthSnapshot> LinkedJobBoards::LatestSnapshot(absl::string_view board) const {
  return health_.Latest(board);
}

uint64_t LinkedJobBoards::WatchSnapshots(absl::string_view board, SnapshotFn on_snapshot) {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&watches_mu_);
    id = next_watch_id_++;
    watches_.emplace(id, Watch{std::string(board), std::move(on_snapshot)});
  }
  absl::MutexLock lock(&health_subscription_mu_);
  if (!health_subscription_.has_value()) {
    health_subscription_ =
        hub_.SubscribeHealth([this](const fv1::WatchHealthResponse& update) { OnHealth(update); });
  }
  return id;
}

void LinkedJobBoards::RemoveSnapshotWatch(uint64_t id) {
  absl::MutexLock subscription_lock(&health_subscription_mu_);
  bool none_left = false;
  {
    absl::MutexLock lock(&watches_mu_);
    watches_.erase(id);
    none_left = watches_.empty();
  }
  if (none_left && health_subscription_.has_value()) {
    hub_.Unsubscribe(*health_subscription_);
    health_subscription_.reset();
  }
}

void LinkedJobBoards::OnHealth(const fv1::WatchHealthResponse& update) {
  if (!update.has_snapshot()) return;
  absl::MutexLock lock(&watches_mu_);
  for (const auto& [id, watch] : watches_) {
    if (watch.board == update.board()) watch.fn(update.snapshot());
  }
}

void LinkedJobBoards::OnEvent(const fv1::Event& event) {
  if (event.board().empty()) return;
  std::optional<std::string> kind = RaisedAnomalyKind(event);
  if (!kind.has_value()) return;
  absl::MutexLock lock(&anomalies_mu_);
  std::deque<Anomaly>& kept = anomalies_[event.board()];
  kept.push_back(Anomaly{*std::move(kind), event});
  while (kept.size() > options_.anomalies_kept) kept.pop_front();
}

std::vector<JobBoards::Anomaly> LinkedJobBoards::AnomaliesSince(absl::string_view board, absl::Time since,
                                                                size_t limit) const {
  std::vector<Anomaly> found;
  absl::MutexLock lock(&anomalies_mu_);
  auto it = anomalies_.find(board);
  if (it == anomalies_.end()) return found;
  for (const Anomaly& a : it->second) {
    if (EventTime(a.event) >= since) found.push_back(a);
  }
  if (found.size() > limit) found.erase(found.begin(), found.end() - static_cast<ptrdiff_t>(limit));
  return found;
}

}  // namespace threadfleet::fleetd::jobs
