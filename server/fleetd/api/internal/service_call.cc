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

std::string FanOutSummary(size_t boards, const std::vector<std::pair<std::string, absl::Status>>& failures) {
  if (failures.empty()) return absl::StrCat(boards, " boards ok");
  std::vector<std::string> parts;
  for (const auto& [board, status] : failures) parts.push_back(absl::StrCat(board, ": ", status.ToString()));
  return absl::StrCat(boards - failures.size(), " of ", boards,
                      " boards ok; failed: ", absl::StrJoin(parts, "; "));
}

}  // namespace threadfleet::fleetd::internal
