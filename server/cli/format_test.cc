#include "server/cli/format.h"

#include <gtest/gtest.h>

#include "absl/time/clock.h"

namespace threadfleet::cli {
namespace {

TEST(FormatTest, DurationsPickTheLargestUsefulUnit) {
  EXPECT_EQ(FormatDuration(250), "250us");
  EXPECT_EQ(FormatDuration(350'000), "350ms");
  EXPECT_EQ(FormatDuration(1'234'000), "1.2s");
  EXPECT_EQ(FormatDuration(59'999'999), "59.9s");
  EXPECT_EQ(FormatDuration(185'000'000), "3m05s");
  EXPECT_EQ(FormatDuration(uint64_t{7'620} * 1'000'000), "2h07m");
  EXPECT_EQ(FormatDuration(uint64_t{273'600} * 1'000'000), "3d04h");
}

TEST(FormatTest, ThreadStatesSayWhatStopsAKill) {
  board::v1::ThreadInfo thread;
  thread.set_state(board::v1::THREAD_STATE_RUNNING);
  EXPECT_EQ(ThreadStateText(thread), "running");
  thread.set_native_time_us(12'300'000);
  EXPECT_EQ(ThreadStateText(thread), "running (in native code for 12.3s)");
  thread.set_unkillable(true);
  EXPECT_EQ(ThreadStateText(thread), "running (unkillable) (in native code for 12.3s)");
}

TEST(FormatTest, BytesUseBinaryUnitsWithOneDecimalBelowTen) {
  EXPECT_EQ(FormatBytes(512), "512B");
  EXPECT_EQ(FormatBytes(3174), "3.0K");
  EXPECT_EQ(FormatBytes(3200), "3.1K");
  EXPECT_EQ(FormatBytes(16384), "16K");
  EXPECT_EQ(FormatBytes(65536), "64K");
  EXPECT_EQ(FormatBytes(1572864), "1.5M");
  EXPECT_EQ(FormatBytes(uint64_t{2} << 30), "2.0G");
}

TEST(FormatTest, UsageShowsUsedTotalAndPercent) {
  EXPECT_EQ(FormatUsage(3200, 16384), "3.1K/16K (19%)");
  EXPECT_EQ(FormatUsage(10, 0), "10B/?");
}

TEST(FormatTest, EnumNamesLoseTheirPrefixAndCase) {
  EXPECT_EQ(ThreadStateText(board::v1::THREAD_STATE_RUNNING), "running");
  EXPECT_EQ(ThreadStateText(board::v1::THREAD_STATE_WAITING_LOCK), "waiting_lock");
  EXPECT_EQ(BoardStateText(fleet::v1::BOARD_STATE_OFFLINE), "offline");
  EXPECT_EQ(SeverityText(fleet::v1::SEVERITY_WARNING), "warning");
  EXPECT_EQ(ProgramStateText(board::v1::PROGRAM_STATE_KILLED), "killed");
  EXPECT_EQ(ThreadStateText(static_cast<board::v1::ThreadState>(42)), "?");
}

TEST(FormatTest, StatusCodesHaveTheirNames) {
  EXPECT_EQ(StatusCodeName(0), "OK");
  EXPECT_EQ(StatusCodeName(14), "UNAVAILABLE");
  EXPECT_EQ(StatusCodeName(7), "PERMISSION_DENIED");
  EXPECT_EQ(StatusCodeName(99), "CODE_99");
}

TEST(FormatTest, UnsetTimestampsPrintADash) {
  google::protobuf::Timestamp unset;
  EXPECT_EQ(FormatTimestamp(unset), "-");
  EXPECT_EQ(FormatAge(unset, absl::Now()), "-");
}

TEST(FormatTest, AgesCountWholeSeconds) {
  google::protobuf::Timestamp then;
  then.set_seconds(1'000'000);
  const absl::Time now = absl::FromUnixSeconds(1'000'000);
  EXPECT_EQ(FormatAge(then, now - absl::Seconds(3)), "0s");
  EXPECT_EQ(FormatAge(then, now + absl::Seconds(42)), "42s");
  EXPECT_EQ(FormatAge(then, now + absl::Seconds(312)), "5m12s");
}

TEST(FormatTest, TimestampsPrintDateAndTime) {
  google::protobuf::Timestamp time;
  time.set_seconds(1'700'000'000);
  EXPECT_EQ(FormatTimestamp(time).size(), std::string("2023-11-14 22:13:20").size());
}

TEST(FormatTest, LabelsAreSortedByKey) {
  google::protobuf::Map<std::string, std::string> labels;
  labels["lab"] = "local";
  labels["half"] = "a";
  EXPECT_EQ(FormatLabels(labels), "half=a,lab=local");
}

}  // namespace
}  // namespace threadfleet::cli
