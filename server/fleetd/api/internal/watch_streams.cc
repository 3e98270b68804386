#include "server/fleetd/api/internal/watch_streams.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/fleetd/api/internal/api_values.h"
#include "server/fleetd/api/internal/service_call.h"

namespace threadfleet::fleetd::internal {

namespace {

// Events a WatchEvents replay reads from the store per query.
constexpr int kReplayPage = 500;

// Live messages that arrive while a watch sends its initial part wait here;
// then they go straight to the stream.
template <typename Message>
class LiveBuffer {
 public:
  // Ends buffering: sends what was buffered, in order, under the buffer's
  // lock so that later live messages follow these.
  template <typename Send>
  void Flush(Send send) {
    absl::MutexLock lock(&mu_);
    for (Message& m : pending_) send(std::move(m));
    pending_.clear();
    buffering_ = false;
  }
  // Sends a live message now unless it must wait; under the lock, so that
  // order holds against Flush.
  template <typename Send>
  void OfferOrSend(Message m, Send send) {
    absl::MutexLock lock(&mu_);
    if (buffering_) {
      pending_.push_back(std::move(m));
    } else {
      send(std::move(m));
    }
  }

 private:
  absl::Mutex mu_;
  bool buffering_ ABSL_GUARDED_BY(mu_) = true;
  std::vector<Message> pending_ ABSL_GUARDED_BY(mu_);
};

// WatchEvents: subscribe first, replay the store after after_id, then live
// events with a larger id than the last one sent.
class WatchEventsStream : public ServiceStream<fleet::WatchEventsResponse> {
 public:
  WatchEventsStream(FleetServiceState* state, const fleet::WatchEventsRequest& request,
                    std::string authorization)
      : ServiceStream(state, kWatchEvents, SelectorTarget(request.selector()), std::move(authorization)),
        request_(request) {}

 private:
  void Run() override {
    absl::StatusOr<std::optional<std::set<std::string>>> boards = state_->EventBoards(request_.selector());
    if (!boards.ok()) {
      End(ToGrpc(boards.status()));
      return;
    }
    boards_ = *std::move(boards);
    subscription_ = state_->deps.hub->SubscribeEvents([this](const fleet::Event& e) {
      if (!Wanted(e)) return;
      live_.OfferOrSend(e, [this](fleet::Event m) { Send(std::move(m)); });
    });
    subscribed_ = true;
    if (request_.after_id() > 0 && !Replay()) return;
    live_.Flush([this](fleet::Event m) { Send(std::move(m)); });
  }

  // Sends the stored events after after_id; false if the stream ended.
  bool Replay() {
    if (boards_.has_value() && boards_->empty()) return true;
    EventQuery query{.after_id = static_cast<int64_t>(request_.after_id()),
                     .min_severity = request_.min_severity(),
                     .limit = kReplayPage};
    if (boards_.has_value()) query.boards.assign(boards_->begin(), boards_->end());
    for (;;) {
      absl::StatusOr<std::vector<fleet::Event>> page = state_->deps.store->ListEvents(query);
      if (!page.ok()) {
        End(ToGrpc(page.status()));
        return false;
      }
      for (fleet::Event& e : *page) {
        query.after_id = static_cast<int64_t>(e.id());
        if (!Send(std::move(e))) return false;
      }
      if (static_cast<int>(page->size()) < kReplayPage) return true;
    }
  }

  bool Wanted(const fleet::Event& e) const {
    if (request_.min_severity() != fleet::SEVERITY_UNSPECIFIED && e.severity() < request_.min_severity())
      return false;
    return !boards_.has_value() || boards_->count(e.board()) > 0;
  }

  // Sends an event unless one with this id or a later one was sent already.
  bool Send(fleet::Event e) {
    if (e.id() <= last_id_.load()) return true;
    last_id_.store(e.id());
    fleet::WatchEventsResponse m;
    *m.mutable_event() = std::move(e);
    return Push(std::move(m));
  }

  void Cleanup() override {
    if (subscribed_) state_->deps.hub->Unsubscribe(subscription_);
  }

  const fleet::WatchEventsRequest request_;
  std::optional<std::set<std::string>> boards_;
  LiveBuffer<fleet::Event> live_;
  // Sends are serialized: the replay runs before Flush, live sends under the
  // buffer's lock after it.
  std::atomic<uint64_t> last_id_{0};
  uint64_t subscription_ = 0;
  bool subscribed_ = false;
};

// WatchHealth: subscribe first, send each picked board's state and latest
// snapshot, then live updates of those boards. With min_period_ms, a board's
// snapshot that comes sooner than that after the last one sent is held (a
// newer one replaces it) and sent when the period ends; events and state
// changes are never held. With summary_only, snapshots go without their
// threads, programs and metrics.
class WatchHealthStream : public ServiceStream<fleet::WatchHealthResponse> {
 public:
  WatchHealthStream(FleetServiceState* state, const fleet::WatchHealthRequest& request,
                    std::string authorization)
      : ServiceStream(state, kWatchHealth, SelectorTarget(request.selector()), std::move(authorization)),
        request_(request),
        period_(absl::Milliseconds(request.min_period_ms())) {}

 private:
  // One board's snapshots under min_period_ms.
  struct Throttle {
    absl::Time last_sent = absl::InfinitePast();
    std::optional<fleet::WatchHealthResponse> held;
    // A timer will send `held`.
    bool timer_armed = false;
  };
  // What the timers share with the stream: a timer may fire after the
  // stream has ended (its period is up to a minute), so it holds this, not
  // the stream, and finds `stream` null once the stream is cleaned up.
  struct ThrottleState {
    absl::Mutex mu;
    WatchHealthStream* stream ABSL_GUARDED_BY(mu);
    std::map<std::string, Throttle> boards ABSL_GUARDED_BY(mu);
  };

  static std::shared_ptr<ThrottleState> MakeThrottleState(WatchHealthStream* stream) {
    auto state = std::make_shared<ThrottleState>();
    absl::MutexLock lock(&state->mu);
    state->stream = stream;
    return state;
  }

  void Run() override {
    if (request_.min_period_ms() > kMaxWatchPeriodMs) {
      End(ToGrpc(absl::InvalidArgumentError(absl::StrCat("min_period_ms is ", request_.min_period_ms(),
                                                         ", over the limit of ", kMaxWatchPeriodMs))));
      return;
    }
    absl::StatusOr<std::vector<BoardRecord>> boards = state_->deps.inventory->Select(request_.selector());
    if (!boards.ok()) {
      End(ToGrpc(boards.status()));
      return;
    }
    for (const BoardRecord& b : *boards) names_.insert(b.name);
    // An empty selector follows boards added later too.
    all_ = request_.selector().labels().empty() && request_.selector().boards().empty();
    subscription_ = state_->deps.hub->SubscribeHealth([this](const fleet::WatchHealthResponse& u) {
      if (!all_ && names_.count(u.board()) == 0) return;
      live_.OfferOrSend(u, [this](fleet::WatchHealthResponse m) { Send(std::move(m)); });
    });
    subscribed_ = true;
    for (const BoardRecord& b : *boards) {
      fleet::WatchHealthResponse state;
      state.set_board(b.name);
      state.set_state(state_->View(b.name).state);
      if (!Push(std::move(state))) return;
      std::optional<pb::HealthSnapshot> latest = state_->deps.health->Latest(b.name);
      if (!latest.has_value()) continue;
      fleet::WatchHealthResponse snapshot;
      snapshot.set_board(b.name);
      *snapshot.mutable_snapshot() = *std::move(latest);
      if (!Send(std::move(snapshot))) return;
    }
    live_.Flush([this](fleet::WatchHealthResponse m) { Send(std::move(m)); });
  }

  // Sends an update as the request asks: snapshots summarized and held back
  // to one per period, the rest at once. False once the stream has ended.
  bool Send(fleet::WatchHealthResponse m) {
    if (!m.has_snapshot()) return Push(std::move(m));
    if (request_.summary_only()) {
      pb::HealthSnapshot* s = m.mutable_snapshot();
      s->clear_threads();
      s->clear_programs();
      s->clear_metrics();
    }
    if (period_ == absl::ZeroDuration()) return Push(std::move(m));
    const absl::Time now = absl::Now();
    absl::MutexLock lock(&throttle_->mu);
    Throttle& t = throttle_->boards[m.board()];
    if (!t.held.has_value() && now - t.last_sent >= period_) {
      t.last_sent = now;
      return Push(std::move(m));
    }
    const std::string board = m.board();
    t.held = std::move(m);
    if (!t.timer_armed) {
      t.timer_armed = true;
      state_->timers->After(t.last_sent + period_ - now,
                            [throttle = throttle_, board] { SendHeld(*throttle, board); });
    }
    return !ending();
  }

  // The period of `board` ended: its held snapshot goes now.
  static void SendHeld(ThrottleState& throttle, const std::string& board) {
    absl::MutexLock lock(&throttle.mu);
    if (throttle.stream == nullptr) return;
    Throttle& t = throttle.boards[board];
    t.timer_armed = false;
    if (!t.held.has_value()) return;
    t.last_sent = absl::Now();
    fleet::WatchHealthResponse m = *std::move(t.held);
    t.held.reset();
    throttle.stream->Push(std::move(m));
  }

  void Cleanup() override {
    if (subscribed_) state_->deps.hub->Unsubscribe(subscription_);
    absl::MutexLock lock(&throttle_->mu);
    throttle_->stream = nullptr;
    throttle_->boards.clear();  // a timer still waiting finds nothing
  }

  const fleet::WatchHealthRequest request_;
  const absl::Duration period_;
  std::set<std::string> names_;
  bool all_ = false;
  LiveBuffer<fleet::WatchHealthResponse> live_;
  uint64_t subscription_ = 0;
  bool subscribed_ = false;
  const std::shared_ptr<ThrottleState> throttle_ = MakeThrottleState(this);
};

}  // namespace

grpc::ServerWriteReactor<fleet::WatchEventsResponse>* StartWatchEvents(
    FleetServiceState* state, const fleet::WatchEventsRequest& request, std::string authorization) {
  return (new WatchEventsStream(state, request, std::move(authorization)))->Start(request);
}

grpc::ServerWriteReactor<fleet::WatchHealthResponse>* StartWatchHealth(
    FleetServiceState* state, const fleet::WatchHealthRequest& request, std::string authorization) {
  return (new WatchHealthStream(state, request, std::move(authorization)))->Start(request);
}

}  // namespace threadfleet::fleetd::internal
