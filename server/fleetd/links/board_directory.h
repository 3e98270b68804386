// BoardDirectory: what the Fleet API needs of fleetd's board links — which
// boards fleetd links to, how each one stands, and each one's BoardClient
// to call it. LinkManager (board_link.h) implements it over real
// connections; the service's unit tests fake it, so the service's fan-out,
// retry and limit logic runs without sockets.
//
// Example:
//
//   std::optional<LinkStatus> s = directory.Status("b01");
//   if (!s || s->state == BoardState::kOffline) return absl::UnavailableError(...);
//   std::shared_ptr<BoardClient> b01 = directory.Client("b01");
//   b01->KillThread(7, absl::Seconds(1), {}, [](absl::StatusOr<pb::ThreadInfo> t) { ... });
#ifndef THREADFLEET_SERVER_FLEETD_LINKS_BOARD_DIRECTORY_H_
#define THREADFLEET_SERVER_FLEETD_LINKS_BOARD_DIRECTORY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/fleetd/links/board_client.h"
#include "threadfleet/board/v1/board.pb.h"

namespace threadfleet::fleetd {

enum class BoardState { kOffline, kOnline, kDegraded };

// "offline", "online", "degraded".
absl::string_view BoardStateName(BoardState state);

struct LinkStatus {
  BoardState state = BoardState::kOffline;
  // Why the board is offline or degraded, one line, e.g. "connection lost:
  // the board closed the connection"; empty when online.
  std::string message;
  // When the state last changed.
  absl::Time since = absl::InfinitePast();
  // When the latest snapshot arrived; InfinitePast before the first.
  absl::Time last_snapshot = absl::InfinitePast();
  // Connections that came up (first snapshot and info): 1 after the first,
  // +1 after each reconnection.
  uint64_t connections = 0;
  // The board's GetInfo answer on the current (or, offline, the last)
  // connection; null before the first, or when the board did not answer it.
  std::shared_ptr<const threadfleet::board::v1::BoardInfo> info;
};

class BoardDirectory {
 public:
  virtual ~BoardDirectory() = default;

  // Links a board and returns at once (it connects in the background; it is
  // OFFLINE "connecting" until then). INVALID_ARGUMENT for an empty name or
  // address; ALREADY_EXISTS if the name is taken.
  [[nodiscard]] virtual absl::Status Add(std::string name, std::string address) = 0;

  // Unlinks a board: its calls end (CANCELLED) and it is forgotten.
  // NOT_FOUND if unknown.
  [[nodiscard]] virtual absl::Status Remove(absl::string_view name) = 0;

  // The board's state; nullopt if it has no link.
  virtual std::optional<LinkStatus> Status(absl::string_view name) const = 0;

  // The state of every linked board, by name.
  virtual std::map<std::string, LinkStatus> Statuses() const = 0;

  // The board's client; null if it has no link. It stays usable (its calls
  // failing) after a Remove() while the caller holds it.
  virtual std::shared_ptr<BoardClient> Client(absl::string_view name) const = 0;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_LINKS_BOARD_DIRECTORY_H_
