#include "server/fleetd/api/internal/service_call.h"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace threadfleet::fleetd::internal {

absl::Time DeadlineOf(const grpc::ServerContextBase& context) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  // gRPC says "none" with the clock's largest time (Timespec2Timepoint).
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

absl::Status ClientSawStatus(const absl::Status& result, absl::Time deadline, bool cancelled,
                             absl::Time now) {
  const std::string fleetd_result = result.ok() ? "OK" : result.ToString();
  if (now > deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat("the call ended after its deadline; fleetd's result was ", fleetd_result));
  }
  if (cancelled) {
    return absl::CancelledError(
        absl::StrCat("the client cancelled the call or it ended first; fleetd's result was ", fleetd_result));
  }
  return result;
}

std::string FanOutSummary(size_t boards, const std::vector<std::pair<std::string, absl::Status>>& failures) {
  if (failures.empty()) return absl::StrCat(boards, " boards ok");
  std::vector<std::string> parts;
  for (const auto& [board, status] : failures) parts.push_back(absl::StrCat(board, ": ", status.ToString()));
  return absl::StrCat(boards - failures.size(), " of ", boards,
                      " boards ok; failed: ", absl::StrJoin(parts, "; "));
}

}  // namespace threadfleet::fleetd::internal
