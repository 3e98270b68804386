#include "server/fleetd/jobs/cron.h"

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/common/quoted_input.h"

namespace threadfleet::fleetd::jobs {
namespace {

using common::QuoteInput;

// NextAfter looks this far ahead: every valid day/month combination recurs
// within 4 years (29 February), so a schedule with no fire in 5 never fires.
constexpr int kSearchDays = 5 * 366;
// IANA names are short; a longer one is not a zone (and is not looked up).
constexpr size_t kMaxTimeZoneChars = 64;

struct Field {
  const char* name;
  int min;
  int max;
  // Lower-case names for min, min+1, ...; empty when the field has none.
  std::vector<absl::string_view> names;
};

const Field& MinuteField() {
  static const Field field{"minute", 0, 59, {}};
  return field;
}
const Field& HourField() {
  static const Field field{"hour", 0, 23, {}};
  return field;
}
const Field& DayOfMonthField() {
  static const Field field{"day-of-month", 1, 31, {}};
  return field;
}
const Field& MonthField() {
  static const Field field{
      "month", 1, 12, {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}};
  return field;
}
// 0-7: crontab(5) reads 7 as Sunday too; the caller folds it onto 0.
const Field& DayOfWeekField() {
  static const Field field{"day-of-week", 0, 7, {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}};
  return field;
}

absl::Status FieldError(const Field& field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field.name, " field: ", what));
}

// One value of a field: a number or (for months and days of week) a name.
absl::StatusOr<int> ParseValue(const Field& field, absl::string_view text) {
  int value = 0;
  if (absl::SimpleAtoi(text, &value) && !text.empty() &&
      absl::ascii_isdigit(static_cast<unsigned char>(text[0]))) {
    if (value < field.min || value > field.max) {
      return FieldError(field, absl::StrCat(value, " is out of range ", field.min, "-", field.max));
    }
    return value;
  }
  const std::string lower = absl::AsciiStrToLower(text);
  for (size_t i = 0; i < field.names.size(); ++i) {
    if (lower == field.names[i]) return field.min + static_cast<int>(i);
  }
  return FieldError(
      field, absl::StrCat(QuoteInput(text), " is not a number", field.names.empty() ? "" : " nor a name",
                          " of range ", field.min, "-", field.max));
}

// A field: a comma-separated list of "*", "N", "N-M", each optionally
// followed by "/STEP" ("N/STEP" runs from N to the field's end). Sets the
// bits value - min in `bits` (of at least max - min + 1 bits).
template <size_t kBits>
absl::Status ParseField(const Field& field, absl::string_view text, std::bitset<kBits>& bits) {
  if (text.empty()) return FieldError(field, "is empty");
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    if (item.empty()) return FieldError(field, absl::StrCat("empty list item in ", QuoteInput(text)));
    absl::string_view range = item;
    int step = 1;
    bool has_step = false;
    if (size_t slash = item.find('/'); slash != absl::string_view::npos) {
      range = item.substr(0, slash);
      absl::string_view step_text = item.substr(slash + 1);
      if (!absl::SimpleAtoi(step_text, &step) || step < 1 || step > field.max - field.min + 1) {
        return FieldError(field, absl::StrCat("step ", QuoteInput(step_text), " must be a number from 1 to ",
                                              field.max - field.min + 1));
      }
      has_step = true;
    }
    int first = field.min;
    int last = field.max;
    if (range != "*") {
      const size_t dash = range.find('-');
      absl::StatusOr<int> low = ParseValue(field, range.substr(0, dash));
      if (!low.ok()) return low.status();
      first = *low;
      last = has_step ? field.max : first;
      if (dash != absl::string_view::npos) {
        absl::StatusOr<int> high = ParseValue(field, range.substr(dash + 1));
        if (!high.ok()) return high.status();
        last = *high;
        if (last < first) {
          return FieldError(field, absl::StrCat("range ", QuoteInput(range), " ends before it starts"));
        }
      }
    }
    for (int value = first; value <= last; value += step) bits.set(static_cast<size_t>(value - field.min));
  }
  return absl::OkStatus();
}

// The five fields a shorthand stands for; empty for an unknown one.
absl::string_view ExpandShorthand(absl::string_view expression) {
  const std::string lower = absl::AsciiStrToLower(expression);
  if (lower == "@hourly") return "0 * * * *";
  if (lower == "@daily" || lower == "@midnight") return "0 0 * * *";
  if (lower == "@weekly") return "0 0 * * 0";
  if (lower == "@monthly") return "0 0 1 * *";
  if (lower == "@yearly" || lower == "@annually") return "0 0 1 1 *";
  return "";
}

// Only names of the zone database: LoadTimeZone would read any path given.
bool IsTimeZoneName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxTimeZoneChars || name[0] == '/' || absl::StrContains(name, "..")) {
    return false;
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '-' && c != '+') {
      return false;
    }
  }
  return true;
}

int DayOfWeek(absl::CivilDay day) {
  switch (absl::GetWeekday(day)) {
    case absl::Weekday::sunday:
      return 0;
    case absl::Weekday::monday:
      return 1;
    case absl::Weekday::tuesday:
      return 2;
    case absl::Weekday::wednesday:
      return 3;
    case absl::Weekday::thursday:
      return 4;
    case absl::Weekday::friday:
      return 5;
    case absl::Weekday::saturday:
      return 6;
  }
  return 0;
}

}  // namespace

absl::StatusOr<CronSchedule> CronSchedule::Parse(absl::string_view expression, absl::string_view time_zone) {
  CronSchedule schedule;
  if (!IsTimeZoneName(time_zone) || !absl::LoadTimeZone(std::string(time_zone), &schedule.zone_)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown time zone ", QuoteInput(time_zone),
                                                   " (an IANA name such as Europe/Berlin, or UTC)"));
  }
  schedule.zone_name_ = std::string(time_zone);
  schedule.expression_ = std::string(absl::StripAsciiWhitespace(expression));
  absl::string_view fields_text = schedule.expression_;
  if (!fields_text.empty() && fields_text[0] == '@') {
    fields_text = ExpandShorthand(fields_text);
    if (fields_text.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown shorthand ", QuoteInput(schedule.expression_),
                       " (known: @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually)"));
    }
  }
  const std::vector<absl::string_view> fields =
      absl::StrSplit(fields_text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (fields.size() != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("a cron expression has 5 fields (minute hour day-of-month month day-of-week), ",
                     QuoteInput(schedule.expression_), " has ", fields.size()));
  }
  std::bitset<8> days_of_week;
  if (absl::Status s = ParseField(MinuteField(), fields[0], schedule.minutes_); !s.ok()) return s;
  if (absl::Status s = ParseField(HourField(), fields[1], schedule.hours_); !s.ok()) return s;
  // Bit d-1 for day d; shifted so the bitset's index is the day.
  std::bitset<31> days_of_month;
  if (absl::Status s = ParseField(DayOfMonthField(), fields[2], days_of_month); !s.ok()) return s;
  std::bitset<12> months;
  if (absl::Status s = ParseField(MonthField(), fields[3], months); !s.ok()) return s;
  if (absl::Status s = ParseField(DayOfWeekField(), fields[4], days_of_week); !s.ok()) return s;
  for (size_t day = 1; day <= 31; ++day) schedule.days_of_month_[day] = days_of_month[day - 1];
  for (size_t month = 1; month <= 12; ++month) schedule.months_[month] = months[month - 1];
  for (size_t day = 0; day < 7; ++day)
    schedule.days_of_week_[day] = days_of_week[day] || (day == 0 && days_of_week[7]);
  // crontab(5): a field starting with "*" is unrestricted ("*/2" included).
  schedule.day_of_month_restricted_ = fields[2][0] != '*';
  schedule.day_of_week_restricted_ = fields[4][0] != '*';
  return schedule;
}

absl::Time CronSchedule::NextAfter(absl::Time t) const {
  if (t == absl::InfiniteFuture()) return absl::InfiniteFuture();
  // Civil times map to absolute ones monotonically (a repeated hour maps to
  // its first pass), so no candidate before t's own civil minute can be
  // after t.
  const absl::CivilMinute start = absl::ToCivilMinute(t, zone_);
  const absl::CivilDay first_day(start);
  for (int offset = 0; offset < kSearchDays; ++offset) {
    const absl::CivilDay day = first_day + offset;
    if (!months_[static_cast<size_t>(day.month())]) continue;
    const bool dom = days_of_month_[static_cast<size_t>(day.day())];
    const bool dow = days_of_week_[static_cast<size_t>(DayOfWeek(day))];
    const bool day_matches =
        day_of_month_restricted_ && day_of_week_restricted_ ? (dom || dow) : (dom && dow);
    if (!day_matches) continue;
    for (int hour = 0; hour < 24; ++hour) {
      if (!hours_[static_cast<size_t>(hour)]) continue;
      for (int minute = 0; minute < 60; ++minute) {
        if (!minutes_[static_cast<size_t>(minute)]) continue;
        const absl::CivilMinute candidate(day.year(), day.month(), day.day(), hour, minute);
        if (candidate < start) continue;
        const absl::TimeZone::TimeInfo info = zone_.At(candidate);
        // A local time a DST change skips does not exist: no fire.
        if (info.kind == absl::TimeZone::TimeInfo::SKIPPED) continue;
        // A repeated one fires on its first pass only.
        if (info.pre > t) return info.pre;
      }
    }
  }
  return absl::InfiniteFuture();
}

}  // namespace threadfleet::fleetd::jobs
