// How fleetd's domain values appear in Fleet API messages. Used by the
// service and its stream reactors alike (the checks of request fields
// against the boards' limits are in board_limits.h).
//
// Example:
//
//   return reactor->Finish(ToGrpc(absl::InvalidArgumentError("...")));
//   *board.mutable_state_since() = ToTimestamp(status.since);
#ifndef THREADFLEET_SERVER_FLEETD_API_INTERNAL_API_VALUES_H_
#define THREADFLEET_SERVER_FLEETD_API_INTERNAL_API_VALUES_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/support/status.h"
#include "server/fleetd/links/board_directory.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::internal {

// The gRPC status of the same code and message.
grpc::Status ToGrpc(const absl::Status& status);

// `t` as a protobuf Timestamp (nanosecond precision).
google::protobuf::Timestamp ToTimestamp(absl::Time t);

// A link's state as the API names it.
threadfleet::fleet::v1::BoardState ToFleetState(BoardState state);

// A per-board failure of a fan-out: the status's code and message.
threadfleet::fleet::v1::BoardError ToBoardError(const absl::Status& status);

}  // namespace threadfleet::fleetd::internal

#endif  // THREADFLEET_SERVER_FLEETD_API_INTERNAL_API_VALUES_H_
