#include "server/fleetd/api/internal/board_limits.h"

#include "absl/strings/str_cat.h"

namespace threadfleet::fleetd::internal {
namespace {

// The fields the Fleet API checks must have limits in board.options: a
// renamed field fails the build here, not a request at run time.
static_assert(BoardLimit("StartProgramRequest.name").max_length > 0);
static_assert(BoardLimit("StartProgramRequest.path").max_length > 0);
static_assert(BoardLimit("StartProgramRequest.args").max_count > 0);
static_assert(BoardLimit("StartThreadRequest.module").max_length > 0);
static_assert(BoardLimit("StartThreadRequest.function").max_length > 0);
static_assert(BoardLimit("StartThreadRequest.args").max_count > 0);
static_assert(BoardLimit("WriteFileHeader.path").max_length > 0);
static_assert(BoardLimit("ListFilesRequest.path").max_length > 0);
static_assert(BoardLimit("DeleteFileRequest.path").max_length > 0);

std::string Source(absl::string_view board_field, uint32_t limit) {
  return absl::StrCat(limit, ": board.options, ", board_field);
}

}  // namespace

absl::Status CheckBoardString(absl::string_view what, absl::string_view value,
                              absl::string_view board_field) {
  const BoardFieldLimit limit = BoardLimit(board_field);
  if (limit.max_length > 0 && value.size() > limit.max_length) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is ", value.size(),
                                                   " bytes, longer than a board takes (",
                                                   Source(board_field, limit.max_length), ")"));
  }
  if (const size_t nul = value.find('\0'); nul != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " holds a NUL byte at offset ", nul, " (a board's strings end at the first NUL)"));
  }
  return absl::OkStatus();
}

absl::Status CheckBoardStrings(absl::string_view what,
                               const google::protobuf::RepeatedPtrField<std::string>& values,
                               absl::string_view board_field) {
  const BoardFieldLimit limit = BoardLimit(board_field);
  if (limit.max_count > 0 && static_cast<uint32_t>(values.size()) > limit.max_count) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", values.size(),
                                                   " elements, more than a board takes (",
                                                   Source(board_field, limit.max_count), ")"));
  }
  for (int i = 0; i < values.size(); ++i) {
    if (absl::Status s = CheckBoardString(absl::StrCat(what, "[", i, "]"), values[i], board_field); !s.ok())
      return s;
  }
  return absl::OkStatus();
}

absl::Status CheckBoardPath(absl::string_view what, absl::string_view path, absl::string_view board_field) {
  if (absl::Status s = CheckBoardString(what, path, board_field); !s.ok()) return s;
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", path, "\" is not absolute (e.g. /app/main.py)"));
  }
  return absl::OkStatus();
}

}  // namespace threadfleet::fleetd::internal
