// FleetServiceState: what every call of the Fleet API shares — the
// service's dependencies, the call authorizer, the open streams, the worker
// pool that runs board calls (and its timers), and what the service caches
// (boards' info, the SHA-256 of pushed files).
//
// Example (a handler on the pool):
//
//   absl::StatusOr<std::shared_ptr<BoardLink>> link = state->Reachable("b01");
//   if (!link.ok()) return link.status();  // NOT_FOUND or UNAVAILABLE
//   absl::StatusOr<pb::ThreadInfo> t = (*link)->KillThread(7, absl::Seconds(1));
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

// Board calls run here; enough for a lab's fan-out to proceed in parallel,
// never a thread per board.
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

  // The link of a board that is in the inventory and reachable. NOT_FOUND
  // for an unknown board, UNAVAILABLE when it is offline.
  absl::StatusOr<std::shared_ptr<BoardLink>> Reachable(absl::string_view board) {
    absl::StatusOr<BoardRecord> record = deps.inventory->Get(board);
    if (!record.ok()) return record.status();
    return ReachableLink(record->name);
  }
  absl::StatusOr<std::shared_ptr<BoardLink>> ReachableLink(const std::string& board) {
    std::shared_ptr<BoardLink> link = deps.links->Get(board);
    if (link == nullptr) {
      return absl::UnavailableError(absl::StrCat("board ", board, ": fleetd has no link to it"));
    }
    const BoardView view = View(board);
    if (view.state == fleet::BOARD_STATE_OFFLINE) {
      return absl::UnavailableError(absl::StrCat("board ", board, " is offline: ", view.reason));
    }
    return link;
  }

  // The board as the API shows it: record, link state, cached info.
  fleet::Board ToProto(const BoardRecord& record) {
    fleet::Board board;
    board.set_name(record.name);
    board.set_address(record.address);
    for (const auto& [k, v] : record.labels) (*board.mutable_labels())[k] = v;
    board.set_origin(record.origin);
    const BoardView view = View(record.name);
    board.set_state(view.state);
    if (view.since != absl::InfinitePast()) *board.mutable_state_since() = ToTimestamp(view.since);
    board.set_state_reason(view.reason);
    absl::MutexLock lock(&mu);
    auto it = infos.find(record.name);
    if (it != infos.end()) *board.mutable_info() = it->second.second;
    return board;
  }

  // Fetches BoardInfo (on the pool, in parallel) for the boards that are
  // reachable and whose cached info is missing or from an earlier
  // connection, then runs `done`.
  void RefreshInfos(const std::vector<BoardRecord>& boards, std::function<void()> done) {
    auto names = std::make_shared<std::vector<std::pair<std::string, uint64_t>>>();
    {
      absl::MutexLock lock(&mu);
      for (const BoardRecord& b : boards) {
        const BoardView view = View(b.name);
        if (view.state == fleet::BOARD_STATE_OFFLINE) continue;
        auto it = infos.find(b.name);
        if (it == infos.end() || it->second.first != view.connections)
          names->emplace_back(b.name, view.connections);
      }
    }
    FanOut(
        *pool, names->size(),
        [this, names](size_t i) {
          const auto& [name, connections] = (*names)[i];
          std::shared_ptr<BoardLink> link = deps.links->Get(name);
          if (link == nullptr) return;
          absl::StatusOr<pb::BoardInfo> info = link->GetInfo();
          if (!info.ok()) return;
          absl::MutexLock lock(&mu);
          infos[name] = {connections, *std::move(info)};
        },
        std::move(done));
  }

  // Drops the board's cached info and pushed files (it left the inventory).
  void ForgetBoard(const std::string& board) {
    absl::MutexLock lock(&mu);
    infos.erase(board);
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
  // Board -> (link connection count when fetched, its info).
  std::map<std::string, std::pair<uint64_t, pb::BoardInfo>> infos ABSL_GUARDED_BY(mu);
  // (board, path) -> SHA-256 of the content fleetd last pushed there.
  std::map<std::pair<std::string, std::string>, std::string> pushed ABSL_GUARDED_BY(mu);
  // Last members: destroyed first (timers before the pool it submits to), so
  // no task outlives the state it uses.
  std::unique_ptr<WorkerPool> pool;
  // Runs tasks on `pool` later (e.g. a push retrying an offline board).
  std::unique_ptr<TimerQueue> timers;
};

}  // namespace threadfleet::fleetd::internal

#endif  // THREADFLEET_SERVER_FLEETD_API_INTERNAL_SERVICE_STATE_H_
