// libFuzzer target (the `fuzz` preset): arbitrary bytes as a job spec an
// operator applies, and as a cron expression. The parsers must never crash
// nor hang, every refusal must be INVALID_ARGUMENT naming the spec file, and
// whatever they accept must lie within the limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/fleetd/jobs/cron.h"
#include "server/fleetd/jobs/job_spec.h"

namespace {

using threadfleet::fleetd::jobs::CronSchedule;
using threadfleet::fleetd::jobs::JobSpec;
using threadfleet::fleetd::jobs::JobSpecLimits;

// Small limits, so the fuzzer reaches them.
const JobSpecLimits kLimits{
    .max_spec_bytes = 8 * 1024, .max_steps = 8, .max_files = 4, .max_regex_bytes = 64, .max_args = 4};

void Check(bool condition) {
  if (!condition) std::abort();
}

void CheckSpec(const JobSpec& spec) {
  Check(!spec.name.empty() && spec.name.size() <= 64);
  Check(!spec.steps.empty() && spec.steps.size() <= kLimits.max_steps);
  Check(spec.files.size() <= kLimits.max_files);
  Check(spec.timeout > absl::ZeroDuration() && spec.timeout <= kLimits.max_timeout);
  Check(spec.retries >= 0 && spec.retries <= kLimits.max_retries);
  Check(!spec.selector.empty() || !spec.board_names.empty());
  for (const JobSpec::File& file : spec.files) {
    Check(!file.path.empty() && file.path[0] != '/' && !absl::StrContains(file.path, ".."));
    Check(file.location.line > 0);
  }
  for (const auto& step : spec.steps) {
    Check(step.run.args.size() <= kLimits.max_args);
    Check(step.expect.output_pattern.size() <= kLimits.max_regex_bytes);
  }
  if (spec.schedule.has_value()) spec.schedule->NextAfter(absl::FromUnixSeconds(1700000000));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<JobSpec> spec = threadfleet::fleetd::jobs::ParseJobSpec(in, "fuzz.yaml", kLimits);
  if (spec.ok()) {
    CheckSpec(*spec);
  } else {
    Check(spec.status().code() == absl::StatusCode::kInvalidArgument);
    Check(absl::StartsWith(spec.status().message(), "fuzz.yaml"));
  }
  if (size <= 128) {
    absl::StatusOr<CronSchedule> cron = CronSchedule::Parse(in, "Europe/Berlin");
    if (cron.ok()) {
      const absl::Time start = absl::FromUnixSeconds(1700000000);
      const absl::Time next = cron->NextAfter(start);
      Check(next > start);
    } else {
      Check(cron.status().code() == absl::StatusCode::kInvalidArgument);
    }
  }
  return 0;
}
