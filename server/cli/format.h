// How fleetctl writes numbers, times and states in its tables: short,
// human, stable. JSON output (-o json) does not use these; it prints the
// protobuf messages as they are.
//
// Example:
//
//   FormatDuration(1'234'000)               // "1.2s"
//   FormatBytes(16384)                      // "16K"
//   FormatUsage(3174, 16384)                // "3.1K/16K (19%)"
//   EnumText("THREAD_STATE_WAITING_LOCK", "THREAD_STATE_")  // "waiting_lock"
//   ThreadStateText(board::v1::THREAD_STATE_RUNNING)         // "running"

#ifndef THREADFLEET_SERVER_CLI_FORMAT_H_
#define THREADFLEET_SERVER_CLI_FORMAT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/map.h"
#include "google/protobuf/timestamp.pb.h"
#include "threadfleet/board/v1/board.pb.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::cli {

// A duration in microseconds: "250us", "350ms", "1.2s", "3m05s", "2h07m",
// "3d04h". Values are truncated, never rounded up to the next unit.
std::string FormatDuration(uint64_t micros);

// A byte count: "512B", "3.1K", "16K", "1.5M", "2.0G" (powers of 1024; one
// decimal below 10 units, none from 10 up).
std::string FormatBytes(uint64_t bytes);

// "used/total (pct%)", e.g. "3.1K/16K (19%)"; "used/?" when total is 0.
std::string FormatUsage(uint64_t used, uint64_t total);

// A percentage with one decimal: "12.5%".
std::string FormatPercent(double percent);

// An enum value name without its prefix, in lower case:
// ("BOARD_STATE_ONLINE", "BOARD_STATE_") -> "online". A name without the
// prefix is only lowered; an empty name (an unknown value) gives "?".
std::string EnumText(absl::string_view name, absl::string_view prefix);

std::string ThreadStateText(board::v1::ThreadState state);
// A thread's state with what a user must know to steer it:
// "running", "running (unkillable)", "running (in native code for 12.0s)".
std::string ThreadStateText(const board::v1::ThreadInfo& thread);
std::string ProgramStateText(board::v1::ProgramState state);
std::string BoardEventKindText(board::v1::EventKind kind);
std::string BoardStateText(fleet::v1::BoardState state);
std::string BoardOriginText(fleet::v1::BoardOrigin origin);
std::string SeverityText(fleet::v1::Severity severity);
std::string EventKindText(fleet::v1::EventKind kind);
std::string RoleText(fleet::v1::Role role);
std::string PushStageText(fleet::v1::PushStage stage);
std::string RunStateText(fleet::v1::RunState state);

// The name of a gRPC / google.rpc status code: 14 -> "UNAVAILABLE"; an
// unknown code gives "CODE_<n>".
std::string StatusCodeName(int code);

// Whether a timestamp is unset (0 seconds, 0 nanos).
bool IsUnset(const google::protobuf::Timestamp& time);
absl::Time ToTime(const google::protobuf::Timestamp& time);

// How long from `start` to `end` as FormatDuration writes it; "-" unless
// both are set; "0us" when end is before start.
std::string FormatElapsed(const google::protobuf::Timestamp& start, const google::protobuf::Timestamp& end);

// A timestamp in the local time zone, "2026-11-25 11:07:24"; "-" when unset
// (0 seconds, 0 nanos).
std::string FormatTimestamp(const google::protobuf::Timestamp& time);

// How long ago `time` was, at whole-second precision ("0s", "42s", "5m12s",
// "2h07m"); "-" when unset, "0s" when in the future.
std::string FormatAge(const google::protobuf::Timestamp& time, absl::Time now);

// Labels as "k1=v1,k2=v2", sorted by key; "" when there are none.
std::string FormatLabels(const google::protobuf::Map<std::string, std::string>& labels);

}  // namespace threadfleet::cli

#endif  // THREADFLEET_SERVER_CLI_FORMAT_H_
