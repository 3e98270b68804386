#include "server/fleetd/jobs/cron.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace threadfleet::fleetd::jobs {
namespace {

using ::testing::HasSubstr;

absl::TimeZone Zone(const std::string& name) {
  absl::TimeZone zone;
  EXPECT_TRUE(absl::LoadTimeZone(name, &zone)) << name;
  return zone;
}

absl::Time Utc(int y, int mo, int d, int h, int mi) {
  return absl::FromCivil(absl::CivilMinute(y, mo, d, h, mi), absl::UTCTimeZone());
}

CronSchedule MustParse(const std::string& expression, const std::string& zone = "UTC") {
  absl::StatusOr<CronSchedule> schedule = CronSchedule::Parse(expression, zone);
  EXPECT_TRUE(schedule.ok()) << expression << ": " << schedule.status();
  return *schedule;
}

std::string ParseError(const std::string& expression, const std::string& zone = "UTC") {
  absl::StatusOr<CronSchedule> schedule = CronSchedule::Parse(expression, zone);
  EXPECT_EQ(schedule.status().code(), absl::StatusCode::kInvalidArgument) << expression;
  return std::string(schedule.status().message());
}

TEST(CronTest, StepFiresOnEveryMultipleStrictlyAfter) {
  const CronSchedule every5 = MustParse("*/5 * * * *");
  EXPECT_EQ(every5.NextAfter(Utc(2024, 3, 1, 10, 2)), Utc(2024, 3, 1, 10, 5));
  EXPECT_EQ(every5.NextAfter(Utc(2024, 3, 1, 10, 5)), Utc(2024, 3, 1, 10, 10));
  EXPECT_EQ(every5.NextAfter(Utc(2024, 3, 1, 10, 5) + absl::Seconds(30)), Utc(2024, 3, 1, 10, 10));
  EXPECT_EQ(every5.NextAfter(Utc(2024, 3, 1, 23, 58)), Utc(2024, 3, 2, 0, 0));
}

TEST(CronTest, RangesListsAndRangeStepsCombine) {
  const CronSchedule schedule = MustParse("10-20/5,45 9-10 * * *");
  EXPECT_EQ(schedule.NextAfter(Utc(2024, 3, 1, 8, 0)), Utc(2024, 3, 1, 9, 10));
  EXPECT_EQ(schedule.NextAfter(Utc(2024, 3, 1, 9, 10)), Utc(2024, 3, 1, 9, 15));
  EXPECT_EQ(schedule.NextAfter(Utc(2024, 3, 1, 9, 20)), Utc(2024, 3, 1, 9, 45));
  EXPECT_EQ(schedule.NextAfter(Utc(2024, 3, 1, 10, 45)), Utc(2024, 3, 2, 9, 10));
}

TEST(CronTest, StartWithStepRunsToTheFieldsEnd) {
  const CronSchedule schedule = MustParse("50/5 * * * *");
  EXPECT_EQ(schedule.NextAfter(Utc(2024, 3, 1, 9, 56)), Utc(2024, 3, 1, 10, 50));
  EXPECT_EQ(schedule.NextAfter(Utc(2024, 3, 1, 9, 50)), Utc(2024, 3, 1, 9, 55));
}

TEST(CronTest, MonthAndDayNamesAndSevenAsSunday) {
  // 2024-03-01 is a Friday.
  const CronSchedule weekdays = MustParse("0 8 * MAR-apr mon-fri");
  EXPECT_EQ(weekdays.NextAfter(Utc(2024, 3, 1, 9, 0)), Utc(2024, 3, 4, 8, 0));
  const CronSchedule sunday = MustParse("0 0 * * 7");
  EXPECT_EQ(sunday.NextAfter(Utc(2024, 3, 1, 0, 0)), Utc(2024, 3, 3, 0, 0));
  EXPECT_EQ(MustParse("0 0 * * sun").NextAfter(Utc(2024, 3, 1, 0, 0)), Utc(2024, 3, 3, 0, 0));
  EXPECT_EQ(MustParse("0 0 1 jan *").NextAfter(Utc(2024, 3, 1, 0, 0)), Utc(2025, 1, 1, 0, 0));
}

TEST(CronTest, RestrictedDayOfMonthAndDayOfWeekFireOnEither) {
  // The 15th, or any Monday: 2024-03-04 is a Monday, before the 15th.
  const CronSchedule schedule = MustParse("0 12 15 * 1");
  EXPECT_EQ(schedule.NextAfter(Utc(2024, 3, 1, 0, 0)), Utc(2024, 3, 4, 12, 0));
  EXPECT_EQ(schedule.NextAfter(Utc(2024, 3, 11, 12, 0)), Utc(2024, 3, 15, 12, 0));
}

TEST(CronTest, StarredStepDayOfWeekIsNotRestrictedSoBothDaysMustMatch) {
  // "*/2" starts with '*': unrestricted (crontab(5) as Vixie cron reads it),
  // so the 15th fires only on an even weekday: 2024-06-15 is a Saturday.
  EXPECT_EQ(MustParse("0 12 15 * */2").NextAfter(Utc(2024, 3, 1, 0, 0)), Utc(2024, 6, 15, 12, 0));
}

TEST(CronTest, ShorthandsStandForTheirFields) {
  EXPECT_EQ(MustParse("@daily").NextAfter(Utc(2024, 3, 1, 10, 0)), Utc(2024, 3, 2, 0, 0));
  EXPECT_EQ(MustParse("@hourly").NextAfter(Utc(2024, 3, 1, 10, 0)), Utc(2024, 3, 1, 11, 0));
  EXPECT_EQ(MustParse("@weekly").NextAfter(Utc(2024, 3, 1, 10, 0)), Utc(2024, 3, 3, 0, 0));
  EXPECT_EQ(MustParse("@monthly").NextAfter(Utc(2024, 3, 1, 10, 0)), Utc(2024, 4, 1, 0, 0));
  EXPECT_EQ(MustParse("@yearly").NextAfter(Utc(2024, 3, 1, 10, 0)), Utc(2025, 1, 1, 0, 0));
}

TEST(CronTest, FiresInTheSchedulesZone) {
  const CronSchedule schedule = MustParse("0 9 * * *", "Europe/Berlin");
  // 09:00 CET is 08:00 UTC in winter.
  EXPECT_EQ(schedule.NextAfter(Utc(2024, 1, 10, 0, 0)), Utc(2024, 1, 10, 8, 0));
  EXPECT_EQ(schedule.time_zone(), "Europe/Berlin");
}

TEST(CronTest, LocalTimeSkippedBySpringForwardDoesNotFire) {
  // Europe/Berlin jumps from 02:00 to 03:00 on 2024-03-31.
  const absl::TimeZone berlin = Zone("Europe/Berlin");
  const CronSchedule schedule = MustParse("30 2 * * *", "Europe/Berlin");
  const absl::Time before = absl::FromCivil(absl::CivilMinute(2024, 3, 30, 12, 0), berlin);
  EXPECT_EQ(schedule.NextAfter(before), absl::FromCivil(absl::CivilMinute(2024, 4, 1, 2, 30), berlin));
}

TEST(CronTest, LocalTimeRepeatedByFallBackFiresOnce) {
  // Europe/Berlin repeats 02:00-02:59 on 2024-10-27 (CEST, then CET).
  const CronSchedule schedule = MustParse("30 2 * * *", "Europe/Berlin");
  const absl::Time first = schedule.NextAfter(Utc(2024, 10, 26, 12, 0));
  EXPECT_EQ(first, Utc(2024, 10, 27, 0, 30));                      // 02:30 CEST
  EXPECT_EQ(schedule.NextAfter(first), Utc(2024, 10, 28, 1, 30));  // 02:30 CET the next day
}

TEST(CronTest, ImpossibleDateNeverFires) {
  EXPECT_EQ(MustParse("0 0 30 2 *").NextAfter(Utc(2024, 1, 1, 0, 0)), absl::InfiniteFuture());
}

TEST(CronTest, LeapDayFiresInALeapYear) {
  EXPECT_EQ(MustParse("0 0 29 2 *").NextAfter(Utc(2024, 3, 1, 0, 0)), Utc(2028, 2, 29, 0, 0));
}

TEST(CronTest, ErrorsNameTheFieldAndTheLimit) {
  EXPECT_EQ(ParseError("61 * * * *"), "minute field: 61 is out of range 0-59");
  EXPECT_EQ(ParseError("* 24 * * *"), "hour field: 24 is out of range 0-23");
  EXPECT_EQ(ParseError("* * 0 * *"), "day-of-month field: 0 is out of range 1-31");
  EXPECT_THAT(ParseError("* * * foo *"), HasSubstr("month field: \"foo\" is not a number nor a name"));
  EXPECT_THAT(ParseError("* * * * 8"), HasSubstr("day-of-week field: 8 is out of range 0-7"));
  EXPECT_THAT(ParseError("*/0 * * * *"), HasSubstr("minute field: step \"0\" must be a number from 1 to 60"));
  EXPECT_THAT(ParseError("5-1 * * * *"), HasSubstr("minute field: range \"5-1\" ends before it starts"));
  EXPECT_THAT(ParseError("1,,2 * * * *"), HasSubstr("minute field: empty list item"));
  EXPECT_THAT(ParseError("* * * *"), HasSubstr("has 4"));
  EXPECT_THAT(ParseError("@reboot"), HasSubstr("unknown shorthand \"@reboot\""));
}

TEST(CronTest, UnknownOrPathLikeTimeZonesAreRefused) {
  EXPECT_THAT(ParseError("* * * * *", "Mars/Olympus"), HasSubstr("unknown time zone \"Mars/Olympus\""));
  EXPECT_THAT(ParseError("* * * * *", "/etc/passwd"), HasSubstr("unknown time zone"));
  EXPECT_THAT(ParseError("* * * * *", "../../etc/localtime"), HasSubstr("unknown time zone"));
  EXPECT_THAT(ParseError("* * * * *", ""), HasSubstr("unknown time zone"));
}

}  // namespace
}  // namespace threadfleet::fleetd::jobs
