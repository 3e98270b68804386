// JobSpec: a fleet test job as its YAML spec describes it (docs/jobs.md,
// docs/jobs.schema.json), parsed and validated. Specs are untrusted input
// (any operator may apply one, and fleetd parses it again at each start):
// sizes and counts are bounded, regular expressions are compiled with RE2
// (linear time), never std::regex.
//
// Example:
//
//   absl::StatusOr<JobSpec> spec = ParseJobSpec(yaml_text, "jobs/smoke.yaml");
//   if (!spec.ok()) return spec.status();
//   // INVALID_ARGUMENT "jobs/smoke.yaml:7:9: steps[1].run: unknown key
//   // 'timout' (known: file, args, timeout, name, wait)"
//   for (const Step& step : spec->steps) { ... }
//
// Every error is INVALID_ARGUMENT "FILE:LINE:COL: message" (LINE and COL from
// 1) pointing at the offending key or value, so an editor can jump to it.
#ifndef THREADFLEET_SERVER_FLEETD_JOBS_JOB_SPEC_H_
#define THREADFLEET_SERVER_FLEETD_JOBS_JOB_SPEC_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "re2/re2.h"
#include "server/fleetd/jobs/cron.h"

namespace threadfleet::fleetd::jobs {

// Bounds on a spec; a spec over one is refused naming it.
struct JobSpecLimits {
  size_t max_spec_bytes = 64 * 1024;
  size_t max_steps = 64;
  size_t max_files = 32;
  // Bytes of all files a job names, together.
  size_t max_files_bytes = 4 * 1024 * 1024;
  size_t max_regex_bytes = 1024;
  size_t max_args = 32;
  absl::Duration max_timeout = absl::Hours(24);
  int max_retries = 5;
  int max_notify_retries = 5;
};

// Where a key or value is in the spec file, for messages of later checks.
struct SpecLocation {
  int line = 0;    // from 1; 0 when unknown
  int column = 0;  // from 1
};

struct PushStep {
  // As the spec names it, relative to the spec file ("app.py",
  // "lib/util.py"); uploaded with the spec.
  std::string file;
  // Absolute path on the board; default "/" + file.
  std::string to;
};

struct RunStep {
  // Absolute path of the script on the board: a relative `file` in the spec
  // is taken from "/" (where push puts it by default).
  std::string path;
  std::vector<std::string> args;
  // How long the program may run before the step fails (it is then killed
  // when the board's steps end). Default 60 s.
  absl::Duration timeout = absl::Seconds(60);
  // The program's name, for kill steps and messages; default the script's
  // file name without ".py".
  std::string name;
  // false: the step passes once the program started, and it keeps running
  // (later steps may check or kill it).
  bool wait = true;
};

// A bound on one fleet.report() value (the latest a thread of the board
// reported during the board's run).
struct MetricBound {
  std::string name;
  std::optional<double> min;
  std::optional<double> max;
};

// A pin a job expects at a level (checked against the board's machine,
// GetMachine), e.g. an output the program drives in answer to an input a
// pin step drove.
struct PinExpectation {
  uint32_t pin = 0;
  uint32_t value = 0;
  // How long the level may take to come (the program reacts to an input
  // through its IRQ handler or its loop): the check asks the board again
  // until then. Default 1 s; zero: once.
  absl::Duration within = absl::Seconds(1);
};

struct ExpectStep {
  // Searched (RE2 partial match) in the output of the board's latest run
  // step; a match is required. Null when not set.
  std::shared_ptr<const re2::RE2> output;
  // The pattern as written, for messages.
  std::string output_pattern;
  // No thread of the board's run programs ended with an exception.
  bool no_failed_threads = false;
  // Anomaly kinds (health.h AnomalyKindName: "deadlock", "stall",
  // "thread_unkillable" — "unkillable" is accepted as its alias —,
  // "stack_high", "heap_low", "native_stuck", "thread_failed") none of which
  // may have been raised on the board since its first step started.
  std::vector<std::string> no_anomalies;
  // Every thread's stack high-water mark, in percent of its stack.
  std::optional<int> max_stack_percent;
  // Free heap at the moment of the check, bytes ("16k" in the spec).
  std::optional<int64_t> min_heap_free_bytes;
  std::vector<MetricBound> metrics;
  std::vector<PinExpectation> pins;
};

struct KillStep {
  // The name of a program a run step of this job started.
  std::string program;
  // Default: the board's.
  absl::Duration grace = absl::ZeroDuration();
};

struct SleepStep {
  absl::Duration duration;
};

// Drives a board's input pin from the lab (Fleet SetPin), or hands it back.
struct PinStep {
  uint32_t pin = 0;
  // 0 or 1; unused with release.
  uint32_t value = 0;
  bool release = false;
};

// Sets what a board's ADC channel reads (Fleet SetAdc).
struct AdcStep {
  uint32_t channel = 0;
  // 0..65535.
  uint32_t value = 0;
};

struct Step {
  enum class Kind { kPush, kRun, kExpect, kKill, kSleep, kPin, kAdc };
  Kind kind = Kind::kSleep;
  SpecLocation location;
  PushStep push;
  RunStep run;
  ExpectStep expect;
  KillStep kill;
  SleepStep sleep;
  PinStep pin;
  AdcStep adc;
};

// "push", "run", "expect", "kill", "sleep", "pin", "adc".
absl::string_view StepKindName(Step::Kind kind);

struct NotifySpec {
  // http://HOST[:PORT]/PATH; fleetd POSTs the run as JSON there.
  std::string url;
  // Run end states that notify: "passed", "failed", "error", "cancelled".
  // Default: every end state.
  std::vector<std::string> on;
  absl::Duration timeout = absl::Seconds(5);
  int retries = 2;
};

struct JobSpec {
  // [a-z0-9-]+, 1-64 characters.
  std::string name;
  std::string description;

  // boards: {selector: "lab=local", count: all}
  // selector: a label selector ("lab=a,role!=spare") as in the Fleet API.
  std::string selector;
  // boards: {names: [b01, b02]} — alternatively or additionally.
  std::vector<std::string> board_names;
  // 0 means all the selector picks; N means N of them (the run waits until N
  // are free, or fails fast with on_busy: fail).
  int count = 0;
  // on_busy: wait (default) | fail.
  bool fail_when_busy = false;

  // Cron; nullopt for on-demand jobs.
  std::optional<CronSchedule> schedule;
  std::string schedule_text;
  std::string time_zone = "UTC";
  // A fire missed while fleetd was down runs once at start.
  bool catch_up = true;

  // The whole run, waiting for boards included. Default 10 min.
  absl::Duration timeout = absl::Minutes(10);
  // Per board, on FAILED or ERROR.
  int retries = 0;
  // 0: every picked board at once.
  int max_boards_at_once = 0;
  // abort: {failed_percent: 30, min_boards: 4} — stop starting boards once
  // at least min_boards boards ended and failed_percent of the ended ones
  // failed (FAILED or ERROR). nullopt: never.
  struct Abort {
    double failed_percent = 100;
    int min_boards = 1;
  };
  std::optional<Abort> abort;

  std::vector<Step> steps;
  std::optional<NotifySpec> notify;

  // Every file the push steps name, in spec order, without repeats, with
  // where the spec first names it.
  struct File {
    std::string path;
    SpecLocation location;
  };
  std::vector<File> files;
  // Where the `boards:` value is, for a selector that matches no board.
  SpecLocation boards_location;
};

// Parses and validates a spec. `spec_file` names it in messages. Does not
// check that the files exist (the caller holds them) nor the selector against
// the inventory: ApplyJob does both, pointing at JobSpec::files[i].location
// and JobSpec::boards_location with SpecMessage.
[[nodiscard]] absl::StatusOr<JobSpec> ParseJobSpec(absl::string_view yaml, absl::string_view spec_file,
                                                   const JobSpecLimits& limits = {});

// "FILE:LINE:COL: message" as ParseJobSpec writes them, for checks the
// caller makes later (a missing file, a selector matching no board).
std::string SpecMessage(absl::string_view spec_file, SpecLocation location, absl::string_view message);

}  // namespace threadfleet::fleetd::jobs

#endif  // THREADFLEET_SERVER_FLEETD_JOBS_JOB_SPEC_H_
