// FleetServiceState: what every call of the Fleet API shares — the
// service's dependencies, the call authorizer, the open streams, the worker
// pool that runs store work and what follows a board call (and its timers),
// and the SHA-256 of pushed files.
//
// Example (a handler on the pool):
//
//   absl::StatusOr<std::shared_ptr<BoardClient>> board = state->Reachable("b01");
//   if (!board.ok()) return call->Finish(board.status());  // NOT_FOUND or UNAVAILABLE
//   (*board)->KillThread(7, absl::Seconds(1), {.deadline = deadline},
//                        state->OnPool<pb::ThreadInfo>([call](absl::StatusOr<pb::ThreadInfo> t) {
//                          call->Finish(t.status());  // on the pool: may write the audit log
//                        }));
//
// Board calls are asynchronous (board_client.h): no pool thread waits for a
// board; their callbacks come on the links thread, where nothing may block,
// so OnPool() hands what follows back to the pool.
//
// Thread-safe: its caches are guarded by `mu`; the dependencies are.
#ifndef THREADFLEET_SERVER_FLEETD_API_INTERNAL_SERVICE_STATE_H_
#define THREADFLEET_SERVER_FLEETD_API_INTERNAL_SERVICE_STATE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/fleetd/api/fan_out.h"
#include "server/fleetd/api/fleet_service.h"
#include "server/fleetd/api/internal/api_values.h"
#include "server/fleetd/api/stream_reactor.h"
#include "server/fleetd/api/timer_queue.h"
#include "server/fleetd/auth/call_auth.h"
#include "server/fleetd/auth/request_limits.h"

namespace threadfleet::fleetd::internal {

namespace fleet = threadfleet::fleet::v1;
namespace pb = threadfleet::board::v1;

// Store work and what follows board calls run here. Board calls never hold
// a thread, so this bounds only how much store work runs at once.
inline constexpr size_t kWorkerThreads = 32;

// Where a board's link stands, as the API shows it.
struct BoardView {
  fleet::BoardState state = fleet::BOARD_STATE_OFFLINE;
  // Empty when online.
  std::string reason;
  absl::Time since = absl::InfinitePast();
  absl::Time last_snapshot = absl::InfinitePast();
  uint64_t connections = 0;
};

class FleetServiceState {
 public:
  explicit FleetServiceState(FleetServiceDeps d)
      : deps(d),
        limits(d.request_limits),
        auth(*d.store, *d.tokens),
        pool(std::make_unique<WorkerPool>(kWorkerThreads)),
        timers(std::make_unique<TimerQueue>(*pool)) {}

  // Where the board's link stands; OFFLINE "fleetd has no link to this
  // board" when there is none.
  BoardView View(const std::string& board) const {
    std::optional<LinkStatus> status = deps.links->Status(board);
    if (!status.has_value()) {
      return BoardView{.reason = "fleetd has no link to this board"};
    }
    BoardView view{.state = ToFleetState(status->state),
                   .reason = status->message,
                   .since = status->since,
                   .last_snapshot = status->last_snapshot,
                   .connections = status->connections};
    if (view.state == fleet::BOARD_STATE_ONLINE) view.reason.clear();
    if (view.state == fleet::BOARD_STATE_OFFLINE && view.reason.empty()) view.reason = "not connected";
    return view;
  }

  // The client of a board that is in the inventory and reachable. NOT_FOUND
  // for an unknown board, UNAVAILABLE when it is offline.
  absl::StatusOr<std::shared_ptr<BoardClient>> Reachable(absl::string_view board) {
    absl::StatusOr<BoardRecord> record = deps.inventory->Get(board);
    if (!record.ok()) return record.status();
    return ReachableClient(record->name);
  }
  absl::StatusOr<std::shared_ptr<BoardClient>> ReachableClient(const std::string& board) {
    std::shared_ptr<BoardClient> client = deps.links->Client(board);
    if (client == nullptr) {
      return absl::UnavailableError(absl::StrCat("board ", board, ": fleetd has no link to it"));
    }
    const BoardView view = View(board);
    if (view.state == fleet::BOARD_STATE_OFFLINE) {
      return absl::UnavailableError(absl::StrCat("board ", board, " is offline: ", view.reason));
    }
    return client;
  }

  // The board as the API shows it: record, link state, the board's info from
  // its current (or last) connection, what jobs hold of it (quarantine, the
  // run that reserved it). Never calls the board.
  fleet::Board ToProto(const BoardRecord& record) const {
    fleet::Board board;
    board.set_name(record.name);
    board.set_address(record.address);
    for (const auto& [k, v] : record.labels) (*board.mutable_labels())[k] = v;
    board.set_origin(record.origin);
    std::optional<LinkStatus> status = deps.links->Status(record.name);
    const BoardView view = View(record.name);
    board.set_state(view.state);
    if (view.since != absl::InfinitePast()) *board.mutable_state_since() = ToTimestamp(view.since);
    board.set_state_reason(view.reason);
    if (status.has_value() && status->info != nullptr) *board.mutable_info() = *status->info;
    if (deps.jobs != nullptr) {
      if (std::optional<fleet::Quarantine> q = deps.jobs->QuarantineOf(record.name); q.has_value()) {
        *board.mutable_quarantine() = *std::move(q);
      }
      board.set_reserved_by_run(deps.jobs->ReservedBy(record.name));
    }
    return board;
  }

  // INVALID_ARGUMENT naming the cap when a kill's grace_ms is over it.
  absl::Status CheckGrace(uint32_t grace_ms) const {
    const absl::Duration cap = deps.board_calls.max_kill_grace;
    if (absl::Milliseconds(grace_ms) <= cap) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("grace_ms is ", grace_ms, ", over fleetd's limit of ",
                                                   absl::ToInt64Milliseconds(cap),
                                                   " (a kill waits at most that long for a thread to end)"));
  }

  // `next` as a board call's callback: it runs on the pool, not on the
  // links thread the call ends on. Counted until it has run, so the service
  // is not torn down under it.
  template <typename Result>
  std::function<void(Result)> OnPool(std::function<void(Result)> next) {
    {
      absl::MutexLock lock(&board_calls_mu);
      ++board_calls;
    }
    return [this, next = std::move(next)](Result result) {
      pool->Submit([this, next, result = std::move(result)]() mutable {
        next(std::move(result));
        absl::MutexLock lock(&board_calls_mu);
        --board_calls;
      });
    };
  }

  // Waits up to `timeout` for every OnPool() continuation to have run;
  // false if some have not.
  bool WaitForBoardCalls(absl::Duration timeout) {
    absl::MutexLock lock(&board_calls_mu);
    return board_calls_mu.AwaitWithTimeout(absl::Condition(
                                               +[](int* n) { return *n == 0; }, &board_calls),
                                           timeout);
  }

  // Drops the board's pushed files (it left the inventory).
  void ForgetBoard(const std::string& board) {
    absl::MutexLock lock(&mu);
    for (auto it = pushed.begin(); it != pushed.end();) {
      it = it->first.first == board ? pushed.erase(it) : std::next(it);
    }
  }

  // The SHA-256 of what fleetd last pushed to (board, path); PushedSha is
  // empty when it pushed nothing there.
  void RememberPush(const std::string& board, const std::string& path, const std::string& sha) {
    absl::MutexLock lock(&mu);
    pushed[{board, path}] = sha;
  }
  std::string PushedSha(const std::string& board, const std::string& path) {
    absl::MutexLock lock(&mu);
    auto it = pushed.find({board, path});
    return it == pushed.end() ? "" : it->second;
  }

  // Board names a selector picks, for event filters: nullopt for an empty
  // selector (every event, fleet-wide ones included).
  absl::StatusOr<std::optional<std::set<std::string>>> EventBoards(const fleet::Selector& selector) {
    if (selector.labels().empty() && selector.boards().empty()) return std::optional<std::set<std::string>>();
    absl::StatusOr<std::vector<BoardRecord>> picked = deps.inventory->Select(selector);
    if (!picked.ok()) return picked.status();
    std::set<std::string> names;
    for (const BoardRecord& b : *picked) names.insert(b.name);
    return std::optional<std::set<std::string>>(std::move(names));
  }

  const FleetServiceDeps deps;
  // The size check every request passes first.
  const RequestLimits limits;
  CallAuthorizer auth;
  OpenStreams streams;
  absl::Mutex mu;
  // (board, path) -> SHA-256 of the content fleetd last pushed there.
  std::map<std::pair<std::string, std::string>, std::string> pushed ABSL_GUARDED_BY(mu);
  // OnPool() continuations that have not run yet.
  absl::Mutex board_calls_mu;
  int board_calls ABSL_GUARDED_BY(board_calls_mu) = 0;
  // Last members: destroyed first (timers before the pool it submits to), so
  // no task outlives the state it uses.
  std::unique_ptr<WorkerPool> pool;
  // Runs tasks on `pool` later (e.g. a push retrying an offline board).
  std::unique_ptr<TimerQueue> timers;
};

}  // namespace threadfleet::fleetd::internal

#endif  // THREADFLEET_SERVER_FLEETD_API_INTERNAL_SERVICE_STATE_H_
