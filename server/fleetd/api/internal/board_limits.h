// What a board takes: the lengths of its strings and the counts of its lists
// as board.options sets them (the one place they live, read when the build
// is configured), and the checks that refuse a Fleet API request over them
// before any board is called, naming the field and the limit. Without them
// the board itself answers "malformed request: string overflow".
//
// Example:
//
//   absl::Status name = CheckBoardString("name", request.name(), "StartProgramRequest.name");
//   // INVALID_ARGUMENT "name is 40 bytes, longer than a board takes (32: board.options,
//   //                   StartProgramRequest.name)"
#ifndef THREADFLEET_SERVER_FLEETD_API_INTERNAL_BOARD_LIMITS_H_
#define THREADFLEET_SERVER_FLEETD_API_INTERNAL_BOARD_LIMITS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace threadfleet::fleetd::internal {

// One field's limits in board.options, e.g. {"StartProgramRequest.args",
// 128, 8}: each string at most max_length bytes (0: no length limit), at
// most max_count elements (0: not a list).
struct BoardFieldLimit {
  absl::string_view field;
  uint32_t max_length = 0;
  uint32_t max_count = 0;
};

inline constexpr BoardFieldLimit kBoardFieldLimits[] = {
#include "board_field_limits.inc"
};

// The limits of `field` ("Message.field" of threadfleet.board.v1); all zero
// when board.options sets none.
constexpr BoardFieldLimit BoardLimit(absl::string_view field) {
  for (const BoardFieldLimit& limit : kBoardFieldLimits) {
    if (limit.field == field) return limit;
  }
  return {field, 0, 0};
}

// OK when `value` fits `board_field`'s max_length and has no NUL byte (the
// board's strings end at the first one: "/app.py\0.bak" would be "/app.py"
// there). INVALID_ARGUMENT naming `what` (the request's field) and the
// limit otherwise; the value itself is not quoted.
// REQUIRES: board.options gives `board_field` a max_length.
absl::Status CheckBoardString(absl::string_view what, absl::string_view value, absl::string_view board_field);

// As CheckBoardString for each element ("args[2]"), and the count against
// `board_field`'s max_count.
absl::Status CheckBoardStrings(absl::string_view what,
                               const google::protobuf::RepeatedPtrField<std::string>& values,
                               absl::string_view board_field);

// A board path: CheckBoardString, then absolute ("/app/main.py").
absl::Status CheckBoardPath(absl::string_view what, absl::string_view path, absl::string_view board_field);

}  // namespace threadfleet::fleetd::internal

#endif  // THREADFLEET_SERVER_FLEETD_API_INTERNAL_BOARD_LIMITS_H_
