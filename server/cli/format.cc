#include "server/cli/format.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace threadfleet::cli {

std::string FormatDuration(uint64_t micros) {
  constexpr uint64_t kMs = 1000, kSec = 1000 * kMs, kMin = 60 * kSec, kHour = 60 * kMin, kDay = 24 * kHour;
  if (micros < kMs) return absl::StrCat(micros, "us");
  if (micros < kSec) return absl::StrCat(micros / kMs, "ms");
  if (micros < kMin) {
    // Truncate to tenths so 59.99 s never prints as "60.0s".
    const uint64_t tenths = micros / (kSec / 10);
    return absl::StrFormat("%d.%ds", tenths / 10, tenths % 10);
  }
  if (micros < kHour) return absl::StrFormat("%dm%02ds", micros / kMin, micros % kMin / kSec);
  if (micros < kDay) return absl::StrFormat("%dh%02dm", micros / kHour, micros % kHour / kMin);
  return absl::StrFormat("%dd%02dh", micros / kDay, micros % kDay / kHour);
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"K", "M", "G", "T"};
  if (bytes < 1024) return absl::StrCat(bytes, "B");
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  // Truncated like FormatDuration: 16383 bytes are "15K", never "16K".
  if (value < 10) return absl::StrFormat("%.1f%s", static_cast<int64_t>(value * 10) / 10.0, kUnits[unit]);
  return absl::StrFormat("%d%s", static_cast<int64_t>(value), kUnits[unit]);
}

std::string FormatUsage(uint64_t used, uint64_t total) {
  if (total == 0) return absl::StrCat(FormatBytes(used), "/?");
  return absl::StrFormat("%s/%s (%d%%)", FormatBytes(used), FormatBytes(total), used * 100 / total);
}

std::string FormatPercent(double percent) { return absl::StrFormat("%.1f%%", percent); }

std::string EnumText(absl::string_view name, absl::string_view prefix) {
  if (name.empty()) return "?";
  absl::ConsumePrefix(&name, prefix);
  return absl::AsciiStrToLower(name);
}

std::string ThreadStateText(board::v1::ThreadState state) {
  return EnumText(board::v1::ThreadState_Name(state), "THREAD_STATE_");
}
std::string ThreadStateText(const board::v1::ThreadInfo& thread) {
  std::string text = ThreadStateText(thread.state());
  if (thread.unkillable()) absl::StrAppend(&text, " (unkillable)");
  if (thread.native_time_us() > 0) {
    absl::StrAppend(&text, " (in native code for ", FormatDuration(thread.native_time_us()), ")");
  }
  return text;
}
std::string ProgramStateText(board::v1::ProgramState state) {
  return EnumText(board::v1::ProgramState_Name(state), "PROGRAM_STATE_");
}
std::string BoardEventKindText(board::v1::EventKind kind) {
  return EnumText(board::v1::EventKind_Name(kind), "EVENT_KIND_");
}
std::string BoardStateText(fleet::v1::BoardState state) {
  return EnumText(fleet::v1::BoardState_Name(state), "BOARD_STATE_");
}
std::string BoardOriginText(fleet::v1::BoardOrigin origin) {
  return EnumText(fleet::v1::BoardOrigin_Name(origin), "BOARD_ORIGIN_");
}
std::string SeverityText(fleet::v1::Severity severity) {
  return EnumText(fleet::v1::Severity_Name(severity), "SEVERITY_");
}
std::string EventKindText(fleet::v1::EventKind kind) {
  return EnumText(fleet::v1::EventKind_Name(kind), "EVENT_KIND_");
}
std::string RoleText(fleet::v1::Role role) { return EnumText(fleet::v1::Role_Name(role), "ROLE_"); }
std::string PushStageText(fleet::v1::PushStage stage) {
  return EnumText(fleet::v1::PushStage_Name(stage), "PUSH_STAGE_");
}
std::string RunStateText(fleet::v1::RunState state) {
  return EnumText(fleet::v1::RunState_Name(state), "RUN_STATE_");
}

std::string StatusCodeName(int code) {
  if (code < 0 || code > 16) return absl::StrCat("CODE_", code);
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

bool IsUnset(const google::protobuf::Timestamp& time) { return time.seconds() == 0 && time.nanos() == 0; }

absl::Time ToTime(const google::protobuf::Timestamp& time) {
  return absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
}

std::string FormatElapsed(const google::protobuf::Timestamp& start, const google::protobuf::Timestamp& end) {
  if (IsUnset(start) || IsUnset(end)) return "-";
  const int64_t micros = absl::ToInt64Microseconds(ToTime(end) - ToTime(start));
  return FormatDuration(static_cast<uint64_t>(std::max<int64_t>(0, micros)));
}

std::string FormatTimestamp(const google::protobuf::Timestamp& time) {
  if (IsUnset(time)) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", ToTime(time), absl::LocalTimeZone());
}

std::string FormatAge(const google::protobuf::Timestamp& time, absl::Time now) {
  if (IsUnset(time)) return "-";
  const absl::Duration age = now - ToTime(time);
  if (age < absl::Seconds(1)) return "0s";
  const uint64_t whole_seconds = static_cast<uint64_t>(absl::ToInt64Seconds(age));
  if (whole_seconds < 60) return absl::StrCat(whole_seconds, "s");
  return FormatDuration(whole_seconds * 1'000'000);
}

std::string FormatLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  return absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

}  // namespace threadfleet::cli
