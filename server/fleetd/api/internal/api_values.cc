#include "server/fleetd/api/internal/api_values.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/quoted_input.h"

namespace threadfleet::fleetd::internal {

namespace fleet = threadfleet::fleet::v1;

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

fleet::BoardState ToFleetState(BoardState state) {
  switch (state) {
    case BoardState::kOnline:
      return fleet::BOARD_STATE_ONLINE;
    case BoardState::kDegraded:
      return fleet::BOARD_STATE_DEGRADED;
    case BoardState::kOffline:
      return fleet::BOARD_STATE_OFFLINE;
  }
  return fleet::BOARD_STATE_OFFLINE;
}

fleet::BoardError ToBoardError(const absl::Status& status) {
  fleet::BoardError error;
  error.set_code(static_cast<int32_t>(status.code()));
  error.set_message(std::string(status.message()));
  return error;
}

}  // namespace threadfleet::fleetd::internal
