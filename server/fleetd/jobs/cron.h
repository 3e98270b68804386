// CronSchedule: a 5-field cron expression ("*/5 * * * *": minute, hour,
// day of month, month, day of week) evaluated in a time zone, as crontab(5)
// reads it: lists, ranges, steps, names (jan-dec, sun-sat), 7 as Sunday, and
// the day-of-month/day-of-week OR rule when both are restricted. The
// shorthands @hourly, @daily, @weekly, @monthly, @yearly are accepted.
//
// Example:
//
//   absl::StatusOr<CronSchedule> every5 = CronSchedule::Parse("*/5 * * * *", "UTC");
//   absl::Time next = every5->NextAfter(absl::Now());  // the next whole 5 minutes
//
// Errors are INVALID_ARGUMENT naming the field ("minute field: 61 is out of
// range 0-59") or the unknown time zone.
#ifndef THREADFLEET_SERVER_FLEETD_JOBS_CRON_H_
#define THREADFLEET_SERVER_FLEETD_JOBS_CRON_H_

#include <bitset>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace threadfleet::fleetd::jobs {

class CronSchedule {
 public:
  // `time_zone`: an IANA name ("Europe/Berlin") or "UTC".
  [[nodiscard]] static absl::StatusOr<CronSchedule> Parse(absl::string_view expression,
                                                          absl::string_view time_zone);

  // The first fire time strictly after `t` (whole minutes, in the schedule's
  // zone; a local time skipped by a DST change does not fire, one repeated
  // fires once). InfiniteFuture when none exists within 5 years (e.g.
  // "0 0 30 2 *").
  absl::Time NextAfter(absl::Time t) const;

  const std::string& expression() const { return expression_; }
  const std::string& time_zone() const { return zone_name_; }

 private:
  CronSchedule() = default;

  std::string expression_;
  std::string zone_name_;
  absl::TimeZone zone_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // 1-31
  std::bitset<13> months_;         // 1-12
  std::bitset<7> days_of_week_;    // 0 = Sunday
  bool day_of_month_restricted_ = false;
  bool day_of_week_restricted_ = false;
};

}  // namespace threadfleet::fleetd::jobs

#endif  // THREADFLEET_SERVER_FLEETD_JOBS_CRON_H_
