#include "server/fleetd/jobs/job_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace threadfleet::fleetd::jobs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kFullSpec[] = R"(name: seed-smoke
description: The three seed scripts on every local board.
boards: {selector: "lab=local", count: all, on_busy: fail}
schedule: "*/5 * * * *"
time_zone: Europe/Berlin
catch_up: false
timeout: 2m
retries: 1
rollout: {max_boards_at_once: 50}
abort: {failed_percent: 30, min_boards: 4}
steps:
  - push: {file: app.py}
  - push: {file: lib/util.py, to: /lib/util.py}
  - run: {file: app.py, args: ["3", fast], timeout: 30s, name: app}
  - expect:
      output: "Shared variable is\\s+8"
      no_failed_threads: true
      no_anomalies: [deadlock, stall, unkillable]
      max_stack_percent: 80
      min_heap_free: 16k
      metric: {name: temp, min: 0, max: 50}
  - run: {file: /lib/util.py, wait: false}
  - expect:
      metric:
        - {name: temp, max: 50}
        - {name: humidity, min: 10}
  - kill: {program: util, grace: 500ms}
  - kill: {program: app}
  - sleep: 1m30s
notify: {url: "http://127.0.0.1:8080/hook", on: [failed, error], timeout: 3s, retries: 4}
)";

absl::StatusOr<JobSpec> Parse(const std::string& yaml, const JobSpecLimits& limits = {}) {
  return ParseJobSpec(yaml, "jobs/smoke.yaml", limits);
}

// The message of a spec refused as INVALID_ARGUMENT.
std::string Refusal(const std::string& yaml, const JobSpecLimits& limits = {}) {
  absl::StatusOr<JobSpec> spec = Parse(yaml, limits);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << yaml;
  return std::string(spec.status().message());
}

// A minimal valid spec whose steps are `steps` (YAML lines of the list).
std::string WithSteps(const std::string& steps) {
  return absl::StrCat("name: t\nboards: {selector: lab=local}\nsteps:\n", steps);
}

TEST(JobSpecTest, FullSpecParsesEveryKey) {
  absl::StatusOr<JobSpec> spec = Parse(kFullSpec);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "seed-smoke");
  EXPECT_EQ(spec->description, "The three seed scripts on every local board.");
  EXPECT_EQ(spec->selector, "lab=local");
  EXPECT_EQ(spec->count, 0);
  EXPECT_TRUE(spec->fail_when_busy);
  ASSERT_TRUE(spec->schedule.has_value());
  EXPECT_EQ(spec->schedule_text, "*/5 * * * *");
  EXPECT_EQ(spec->schedule->time_zone(), "Europe/Berlin");
  EXPECT_FALSE(spec->catch_up);
  EXPECT_EQ(spec->timeout, absl::Minutes(2));
  EXPECT_EQ(spec->retries, 1);
  EXPECT_EQ(spec->max_boards_at_once, 50);
  ASSERT_TRUE(spec->abort.has_value());
  EXPECT_EQ(spec->abort->failed_percent, 30);
  EXPECT_EQ(spec->abort->min_boards, 4);
  EXPECT_EQ(spec->boards_location.line, 3);
  EXPECT_EQ(spec->boards_location.column, 9);

  ASSERT_EQ(spec->steps.size(), 9u);
  EXPECT_EQ(spec->steps[0].kind, Step::Kind::kPush);
  EXPECT_EQ(spec->steps[0].push.to, "/app.py");
  EXPECT_EQ(spec->steps[0].location.line, 12);
  EXPECT_EQ(spec->steps[1].push.to, "/lib/util.py");

  const RunStep& run = spec->steps[2].run;
  EXPECT_EQ(run.path, "/app.py");
  EXPECT_THAT(run.args, ElementsAre("3", "fast"));
  EXPECT_EQ(run.timeout, absl::Seconds(30));
  EXPECT_EQ(run.name, "app");
  EXPECT_TRUE(run.wait);

  const ExpectStep& expect = spec->steps[3].expect;
  ASSERT_NE(expect.output, nullptr);
  EXPECT_TRUE(RE2::PartialMatch("x\nShared variable is  8\n", *expect.output));
  EXPECT_EQ(expect.output_pattern, "Shared variable is\\s+8");
  EXPECT_TRUE(expect.no_failed_threads);
  EXPECT_THAT(expect.no_anomalies, ElementsAre("deadlock", "stall", "thread_unkillable"));
  EXPECT_EQ(expect.max_stack_percent, 80);
  EXPECT_EQ(expect.min_heap_free_bytes, 16 * 1024);
  ASSERT_EQ(expect.metrics.size(), 1u);
  EXPECT_EQ(expect.metrics[0].name, "temp");
  EXPECT_EQ(expect.metrics[0].min, 0);
  EXPECT_EQ(expect.metrics[0].max, 50);

  EXPECT_EQ(spec->steps[4].run.path, "/lib/util.py");
  EXPECT_EQ(spec->steps[4].run.name, "util");
  EXPECT_FALSE(spec->steps[4].run.wait);
  EXPECT_EQ(spec->steps[4].run.timeout, absl::Seconds(60));
  ASSERT_EQ(spec->steps[5].expect.metrics.size(), 2u);
  EXPECT_FALSE(spec->steps[5].expect.metrics[0].min.has_value());
  EXPECT_EQ(spec->steps[5].expect.metrics[1].min, 10);
  EXPECT_EQ(spec->steps[6].kill.program, "util");
  EXPECT_EQ(spec->steps[6].kill.grace, absl::Milliseconds(500));
  EXPECT_EQ(spec->steps[7].kill.grace, absl::ZeroDuration());
  EXPECT_EQ(spec->steps[7].kill.program, "app");
  EXPECT_EQ(spec->steps[8].kind, Step::Kind::kSleep);
  EXPECT_EQ(spec->steps[8].sleep.duration, absl::Seconds(90));

  ASSERT_EQ(spec->files.size(), 2u);
  EXPECT_EQ(spec->files[0].path, "app.py");
  EXPECT_EQ(spec->files[0].location.line, 12);
  EXPECT_EQ(spec->files[0].location.column, 18);
  EXPECT_EQ(spec->files[1].path, "lib/util.py");

  ASSERT_TRUE(spec->notify.has_value());
  EXPECT_EQ(spec->notify->url, "http://127.0.0.1:8080/hook");
  EXPECT_THAT(spec->notify->on, ElementsAre("failed", "error"));
  EXPECT_EQ(spec->notify->timeout, absl::Seconds(3));
  EXPECT_EQ(spec->notify->retries, 4);
}

TEST(JobSpecTest, DefaultsApplyWhenKeysAreLeftOut) {
  absl::StatusOr<JobSpec> spec = Parse(WithSteps("  - run: {file: app.py}\n  - sleep: 500ms\n"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->count, 0);
  EXPECT_FALSE(spec->fail_when_busy);
  EXPECT_FALSE(spec->schedule.has_value());
  EXPECT_EQ(spec->time_zone, "UTC");
  EXPECT_TRUE(spec->catch_up);
  EXPECT_EQ(spec->timeout, absl::Minutes(10));
  EXPECT_EQ(spec->retries, 0);
  EXPECT_EQ(spec->max_boards_at_once, 0);
  EXPECT_FALSE(spec->abort.has_value());
  EXPECT_FALSE(spec->notify.has_value());
  EXPECT_TRUE(spec->files.empty());
  EXPECT_EQ(spec->steps[0].run.name, "app");
  EXPECT_EQ(spec->steps[1].sleep.duration, absl::Milliseconds(500));
}

TEST(JobSpecTest, BoardNamesAndCountParse) {
  absl::StatusOr<JobSpec> spec =
      Parse("name: t\nboards:\n  names: [b01, b02, b03]\n  count: 2\nsteps:\n  - sleep: 1s\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->board_names, ElementsAre("b01", "b02", "b03"));
  EXPECT_EQ(spec->count, 2);
  EXPECT_TRUE(spec->selector.empty());
}

TEST(JobSpecTest, NotifyDefaultsToEveryEndState) {
  absl::StatusOr<JobSpec> spec =
      Parse(WithSteps("  - sleep: 1s\n") + "notify: {url: http://ci.local/hook}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->notify->on, ElementsAre("passed", "failed", "error", "cancelled"));
  EXPECT_EQ(spec->notify->timeout, absl::Seconds(5));
  EXPECT_EQ(spec->notify->retries, 2);
}

TEST(JobSpecTest, UnknownKeyPointsAtItAndListsTheKnownOnes) {
  EXPECT_EQ(
      Refusal(WithSteps("  - run: {file: app.py, timout: 3s}\n")),
      "jobs/smoke.yaml:4:25: steps[0].run: unknown key 'timout' (known: file, args, timeout, name, wait)");
  EXPECT_EQ(Refusal("name: t\nboard: {selector: a=b}\n"),
            "jobs/smoke.yaml:2:1: spec: unknown key 'board' (known: name, description, boards, schedule, "
            "time_zone, "
            "catch_up, timeout, retries, rollout, abort, steps, notify)");
}

TEST(JobSpecTest, UnknownStepKindListsTheKinds) {
  EXPECT_EQ(
      Refusal(WithSteps("  - sleep: 1s\n  - exec: {cmd: ls}\n")),
      "jobs/smoke.yaml:5:5: steps[1]: unknown step kind 'exec' (known: push, run, expect, kill, sleep, pin, "
      "adc)");
  EXPECT_THAT(Refusal(WithSteps("  - {sleep: 1s, run: {file: a.py}}\n")),
              StartsWith("jobs/smoke.yaml:4:5: steps[0]: a step is a map with one key"));
}

TEST(JobSpecTest, WrongTypesNameTheKey) {
  EXPECT_EQ(Refusal(WithSteps("  - run: {file: [a]}\n")),
            "jobs/smoke.yaml:4:17: steps[0].run.file: must be a non-empty string");
  EXPECT_EQ(Refusal(WithSteps("  - sleep: 1s\n") + "retries: many\n"),
            "jobs/smoke.yaml:5:10: retries: must be an integer from 0 to 5");
  EXPECT_EQ(Refusal(WithSteps("  - run: {file: a.py, wait: maybe}\n")),
            "jobs/smoke.yaml:4:29: steps[0].run.wait: must be true or false");
  EXPECT_EQ(Refusal("name: t\nboards: lab=local\nsteps: [{sleep: 1s}]\n"),
            "jobs/smoke.yaml:2:9: boards: must be a map (known keys: selector, names, count, on_busy)");
  EXPECT_EQ(Refusal("name: t\nboards: {selector: a=b}\nsteps: {sleep: 1s}\n"),
            "jobs/smoke.yaml:3:8: steps: must be a non-empty list of steps");
}

TEST(JobSpecTest, MissingRequiredKeysPointAtTheirMap) {
  EXPECT_EQ(Refusal("boards: {selector: a=b}\nsteps: [{sleep: 1s}]\n"),
            "jobs/smoke.yaml:1:1: name: missing (required)");
  EXPECT_EQ(Refusal(WithSteps("  - run: {args: [x]}\n")),
            "jobs/smoke.yaml:4:10: steps[0].run.file: missing (required)");
  EXPECT_EQ(Refusal("name: t\nboards: {count: 2}\nsteps: [{sleep: 1s}]\n"),
            "jobs/smoke.yaml:2:9: boards: needs a selector, names, or both");
}

TEST(JobSpecTest, BadDurationsAndSizesAreRefused) {
  EXPECT_EQ(Refusal(WithSteps("  - sleep: 10\n")),
            "jobs/smoke.yaml:4:12: steps[0].sleep: must be a duration such as 500ms, 30s, 2m, 1h or 1m30s");
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 30s1m\n")), HasSubstr("steps[0].sleep: must be a duration"));
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 0s\n")),
              HasSubstr("steps[0].sleep: must be more than 0 and at most 24h"));
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "timeout: 25h\n"),
              HasSubstr("5:10: timeout: must be more than 0 and at most 24h"));
  EXPECT_EQ(
      Refusal(WithSteps("  - run: {file: a.py}\n  - expect: {min_heap_free: 16 kB}\n")),
      "jobs/smoke.yaml:5:29: steps[1].expect.min_heap_free: must be a size such as 16k, 1M or 20000 (bytes; "
      "k = 1024)");
}

TEST(JobSpecTest, SizesAcceptPlainBytesKibAndMib) {
  absl::StatusOr<JobSpec> spec =
      Parse(WithSteps("  - expect: {min_heap_free: 20000}\n  - expect: {min_heap_free: 16k}\n  - expect: "
                      "{min_heap_free: 1M}\n"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->steps[0].expect.min_heap_free_bytes, 20000);
  EXPECT_EQ(spec->steps[1].expect.min_heap_free_bytes, 16384);
  EXPECT_EQ(spec->steps[2].expect.min_heap_free_bytes, 1048576);
}

TEST(JobSpecTest, BadRegexGivesRe2sReason) {
  EXPECT_EQ(
      Refusal(WithSteps("  - run: {file: a.py}\n  - expect: {output: \"a(b\"}\n")),
      "jobs/smoke.yaml:5:22: steps[1].expect.output: not a valid RE2 regular expression: missing ): a(b");
}

TEST(JobSpecTest, OutputExpectationNeedsAnEarlierRun) {
  EXPECT_EQ(Refusal(WithSteps("  - expect: {output: ok}\n")),
            "jobs/smoke.yaml:4:22: steps[0].expect.output: no earlier run step has output to search");
}

TEST(JobSpecTest, BadCronAndTimeZoneAreRefused) {
  EXPECT_EQ(Refusal(WithSteps("  - sleep: 1s\n") + "schedule: \"61 * * * *\"\n"),
            "jobs/smoke.yaml:5:11: schedule: minute field: 61 is out of range 0-59");
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "schedule: \"* * * * *\"\ntime_zone: Mars/Base\n"),
              StartsWith("jobs/smoke.yaml:6:12: time_zone: unknown time zone \"Mars/Base\""));
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "time_zone: Mars/Base\n"),
              StartsWith("jobs/smoke.yaml:5:12: time_zone: unknown time zone"));
}

TEST(JobSpecTest, JobNameMustBeLowerCaseWordsUpTo64) {
  EXPECT_EQ(Refusal("name: Seed_Smoke\nboards: {selector: a=b}\nsteps: [{sleep: 1s}]\n"),
            "jobs/smoke.yaml:1:7: name: must be 1-64 lower-case letters, digits or '-'");
  EXPECT_THAT(Refusal("name: " + std::string(65, 'a') + "\nboards: {selector: a=b}\nsteps: [{sleep: 1s}]\n"),
              HasSubstr("name: must be 1-64"));
  EXPECT_TRUE(
      Parse("name: " + std::string(64, 'a') + "\nboards: {selector: a=b}\nsteps: [{sleep: 1s}]\n").ok());
}

TEST(JobSpecTest, KillMustNameAProgramAnEarlierRunStarts) {
  EXPECT_EQ(Refusal(WithSteps("  - run: {file: app.py, wait: false}\n  - kill: {program: ap}\n")),
            "jobs/smoke.yaml:5:21: steps[1].kill.program: no earlier run step starts a program named 'ap' "
            "(started: "
            "app)");
  EXPECT_THAT(
      Refusal(WithSteps("  - kill: {program: app}\n  - run: {file: app.py}\n")),
      HasSubstr("steps[0].kill.program: no earlier run step starts a program named 'app' (there is none"));
}

TEST(JobSpecTest, PushPathsMustStayInsideTheSpecsFolder) {
  EXPECT_EQ(
      Refusal(WithSteps("  - push: {file: /etc/passwd}\n")),
      "jobs/smoke.yaml:4:18: steps[0].push.file: must be relative to the spec file (it is uploaded with the "
      "spec)");
  EXPECT_EQ(Refusal(WithSteps("  - push: {file: lib/../../secret.py}\n")),
            "jobs/smoke.yaml:4:18: steps[0].push.file: must not contain '..'");
  EXPECT_THAT(Refusal(WithSteps("  - push: {file: a.py, to: lib/a.py}\n")),
              HasSubstr("steps[0].push.to: must be an absolute path on the board"));
  EXPECT_THAT(Refusal(WithSteps("  - run: {file: /../a.py}\n")),
              HasSubstr("steps[0].run.file: must not contain '..'"));
}

TEST(JobSpecTest, SelectorAndBoardNamesAreValidated) {
  EXPECT_THAT(Refusal("name: t\nboards: {selector: \"lab==x\"}\nsteps: [{sleep: 1s}]\n"),
              StartsWith("jobs/smoke.yaml:2:20: boards.selector: "));
  EXPECT_THAT(Refusal("name: t\nboards: {names: [b01, \"b 2\"]}\nsteps: [{sleep: 1s}]\n"),
              StartsWith("jobs/smoke.yaml:2:23: boards.names[1]: board name \"b 2\""));
  EXPECT_EQ(Refusal("name: t\nboards: {names: [b01], count: 2}\nsteps: [{sleep: 1s}]\n"),
            "jobs/smoke.yaml:2:31: boards.count: 2 is more than the 1 boards boards.names lists");
  EXPECT_EQ(Refusal("name: t\nboards: {selector: a=b, on_busy: queue}\nsteps: [{sleep: 1s}]\n"),
            "jobs/smoke.yaml:2:34: boards.on_busy: must be wait or fail");
}

TEST(JobSpecTest, NotifyTakesOnlyPlainHttpUrls) {
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "notify: {url: \"https://ci.example/hook\"}\n"),
              StartsWith("jobs/smoke.yaml:5:15: notify.url: https is not supported"));
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "notify: {url: \"ftp://x\"}\n"),
              HasSubstr("notify.url: must start with http://"));
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "notify: {url: \"http://h:99999/\"}\n"),
              HasSubstr("notify.url: has a port that is not 1-65535"));
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "notify: {url: \"http://h/\", on: [done]}\n"),
              HasSubstr("notify.on[0]: must be one of passed, failed, error, cancelled"));
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "notify: {url: \"http://h/\", retries: 6}\n"),
              HasSubstr("notify.retries: must be an integer from 0 to 5"));
}

TEST(JobSpecTest, ExpectChecksAreValidated) {
  EXPECT_THAT(Refusal(WithSteps("  - expect: {}\n")),
              HasSubstr("4:13: steps[0].expect: has no check (known: output, "));
  EXPECT_THAT(
      Refusal(WithSteps("  - expect: {no_anomalies: [deadlok]}\n")),
      HasSubstr("4:29: steps[0].expect.no_anomalies[0]: 'deadlok' is not an anomaly kind (known: deadlock,"));
  EXPECT_THAT(Refusal(WithSteps("  - expect: {max_stack_percent: 120}\n")),
              HasSubstr("steps[0].expect.max_stack_percent: must be an integer from 1 to 100"));
  EXPECT_THAT(Refusal(WithSteps("  - expect: {metric: {name: temp}}\n")),
              HasSubstr("steps[0].expect.metric: needs min, max or both"));
  EXPECT_THAT(Refusal(WithSteps("  - expect: {metric: [{name: t, min: 5, max: 1}]}\n")),
              HasSubstr("steps[0].expect.metric[0].max: is less than min"));
}

TEST(JobSpecTest, YamlAnchorsAliasesAndTagsAreRefused) {
  EXPECT_THAT(Refusal(WithSteps("  - run: &r {file: a.py}\n  - run: *r\n")),
              StartsWith("jobs/smoke.yaml:4:10: anchors (&name) are not allowed"));
  EXPECT_THAT(Refusal(WithSteps("  - sleep: !!str 1s\n")), StartsWith("jobs/smoke.yaml:4:12: tags ("));
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "---\nname: u\n"), HasSubstr("one YAML document"));
}

TEST(JobSpecTest, SyntaxErrorsAndEmptySpecsAreRefused) {
  EXPECT_THAT(Refusal("name: [t\n"), StartsWith("jobs/smoke.yaml:"));
  EXPECT_THAT(Refusal("name: [t\n"), HasSubstr("not valid YAML"));
  EXPECT_EQ(Refusal(""), "jobs/smoke.yaml: the spec is empty");
  EXPECT_EQ(Refusal("# nothing\n"), "jobs/smoke.yaml: the spec is empty");
  EXPECT_THAT(Refusal(std::string("name: t\0x", 9)), HasSubstr("NUL byte at offset 7"));
  EXPECT_THAT(Refusal("name: t\nname: u\n"), HasSubstr("2:1: name: is given twice"));
}

TEST(JobSpecTest, DeepNestingIsRefusedWithoutRecursingIntoIt) {
  const std::string flow = "name: " + std::string(30000, '[') + std::string(30000, ']') + "\n";
  EXPECT_THAT(Refusal(flow), HasSubstr("nests deeper than 16 levels"));
  std::string block = "name: t\nsteps:\n";
  for (int i = 0; i < 20000; ++i) block += "- ";
  block += "x\n";
  EXPECT_THAT(Refusal(block), HasSubstr("nests deeper than 16 levels"));
}

TEST(JobSpecTest, TooManyNodesAreRefused) {
  std::string spec = WithSteps("  - run:\n      file: a.py\n      args: [");
  for (int i = 0; i < 9000; ++i) spec += "a,";
  spec += "a]\n";
  EXPECT_THAT(Refusal(spec), HasSubstr("more than 8192 YAML nodes"));
}

TEST(JobSpecTest, EveryLimitIsEnforcedNamingIt) {
  JobSpecLimits limits;
  limits.max_spec_bytes = 64;
  EXPECT_EQ(Refusal(WithSteps("  - sleep: 1s\n") + "description: " + std::string(40, 'x') + "\n", limits),
            "jobs/smoke.yaml: the spec is 113 bytes, more than the limit of 64");

  limits = {};
  limits.max_steps = 2;
  EXPECT_EQ(Refusal(WithSteps("  - sleep: 1s\n  - sleep: 1s\n  - sleep: 1s\n"), limits),
            "jobs/smoke.yaml:4:3: steps: has 3 steps, more than the limit of 2");

  limits = {};
  limits.max_files = 1;
  EXPECT_EQ(
      Refusal(WithSteps("  - push: {file: a.py}\n  - push: {file: a.py}\n  - push: {file: b.py}\n"), limits),
      "jobs/smoke.yaml:6:18: steps[2].push.file: the job names more than 1 files");

  limits = {};
  limits.max_regex_bytes = 4;
  EXPECT_EQ(Refusal(WithSteps("  - run: {file: a.py}\n  - expect: {output: abcde}\n"), limits),
            "jobs/smoke.yaml:5:22: steps[1].expect.output: is 5 bytes, more than the limit of 4");

  limits = {};
  limits.max_args = 1;
  EXPECT_EQ(Refusal(WithSteps("  - run: {file: a.py, args: [a, b]}\n"), limits),
            "jobs/smoke.yaml:4:29: steps[0].run.args: has 2 items, more than the limit of 1");

  limits = {};
  limits.max_timeout = absl::Minutes(1);
  EXPECT_THAT(Refusal(WithSteps("  - run: {file: a.py, timeout: 2m}\n"), limits),
              HasSubstr("steps[0].run.timeout: must be more than 0 and at most 1m"));

  limits = {};
  limits.max_retries = 2;
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "retries: 3\n", limits),
              HasSubstr("retries: must be an integer from 0 to 2"));

  limits = {};
  limits.max_notify_retries = 1;
  EXPECT_THAT(Refusal(WithSteps("  - sleep: 1s\n") + "notify: {url: \"http://h/\", retries: 2}\n", limits),
              HasSubstr("notify.retries: must be an integer from 0 to 1"));
}

TEST(JobSpecTest, StepKindNamesAreTheSpecsWords) {
  EXPECT_EQ(StepKindName(Step::Kind::kPush), "push");
  EXPECT_EQ(StepKindName(Step::Kind::kRun), "run");
  EXPECT_EQ(StepKindName(Step::Kind::kExpect), "expect");
  EXPECT_EQ(StepKindName(Step::Kind::kKill), "kill");
  EXPECT_EQ(StepKindName(Step::Kind::kSleep), "sleep");
  EXPECT_EQ(StepKindName(Step::Kind::kPin), "pin");
  EXPECT_EQ(StepKindName(Step::Kind::kAdc), "adc");
}

TEST(JobSpecTest, PinAndAdcStepsDriveInputsAndExpectPinChecksAnOutput) {
  absl::StatusOr<JobSpec> spec =
      Parse(WithSteps("  - pin: {pin: 4, value: 1}\n"
                      "  - adc: {channel: 0, value: 65535}\n"
                      "  - expect: {pin: {pin: 2, value: 1}}\n"
                      "  - expect:\n"
                      "      pin:\n"
                      "        - {pin: 2, value: 0, within: 3s}\n"
                      "        - {pin: 5, value: 1, within: 0s}\n"
                      "  - pin: {pin: 4, release: true}\n"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->steps.size(), 5u);
  EXPECT_EQ(spec->steps[0].kind, Step::Kind::kPin);
  EXPECT_EQ(spec->steps[0].pin.pin, 4u);
  EXPECT_EQ(spec->steps[0].pin.value, 1u);
  EXPECT_FALSE(spec->steps[0].pin.release);
  EXPECT_EQ(spec->steps[1].kind, Step::Kind::kAdc);
  EXPECT_EQ(spec->steps[1].adc.channel, 0u);
  EXPECT_EQ(spec->steps[1].adc.value, 65535u);
  ASSERT_EQ(spec->steps[2].expect.pins.size(), 1u);
  EXPECT_EQ(spec->steps[2].expect.pins[0].pin, 2u);
  EXPECT_EQ(spec->steps[2].expect.pins[0].value, 1u);
  EXPECT_EQ(spec->steps[2].expect.pins[0].within, absl::Seconds(1));
  ASSERT_EQ(spec->steps[3].expect.pins.size(), 2u);
  EXPECT_EQ(spec->steps[3].expect.pins[0].within, absl::Seconds(3));
  EXPECT_EQ(spec->steps[3].expect.pins[1].within, absl::ZeroDuration());
  EXPECT_TRUE(spec->steps[4].pin.release);
}

TEST(JobSpecTest, PinAndAdcInputOutOfBoundsIsRefusedAtItsPlace) {
  EXPECT_EQ(Refusal(WithSteps("  - pin: {pin: 256, value: 1}\n")),
            "jobs/smoke.yaml:4:16: steps[0].pin.pin: must be an integer from 0 to 255");
  EXPECT_EQ(Refusal(WithSteps("  - pin: {pin: 4, value: 2}\n")),
            "jobs/smoke.yaml:4:26: steps[0].pin.value: must be an integer from 0 to 1");
  EXPECT_EQ(Refusal(WithSteps("  - pin: {pin: 4}\n")),
            "jobs/smoke.yaml:4:10: steps[0].pin.value: missing: give value (0 or 1) or release: true");
  EXPECT_EQ(
      Refusal(WithSteps("  - pin: {pin: 4, value: 1, release: true}\n")),
      "jobs/smoke.yaml:4:26: steps[0].pin.value: give either value (0 or 1) or release: true, not both");
  EXPECT_EQ(Refusal(WithSteps("  - adc: {channel: 0, value: 65536}\n")),
            "jobs/smoke.yaml:4:30: steps[0].adc.value: must be an integer from 0 to 65535");
  EXPECT_EQ(Refusal(WithSteps("  - adc: {value: 1}\n")),
            "jobs/smoke.yaml:4:10: steps[0].adc.channel: missing (required)");
  EXPECT_EQ(Refusal(WithSteps("  - expect: {pin: {pin: 2, value: 3}}\n")),
            "jobs/smoke.yaml:4:35: steps[0].expect.pin.value: must be an integer from 0 to 1");
  EXPECT_EQ(Refusal(WithSteps("  - expect: {pin: [{pin: 2, value: 1, within: 2m}]}\n")),
            "jobs/smoke.yaml:4:47: steps[0].expect.pin[0].within: must be at most 1m");
}

TEST(JobSpecTest, SpecMessageFormatsLaterChecksTheSameWay) {
  EXPECT_EQ(SpecMessage("a.yaml", {.line = 4, .column = 7}, "steps[0].push.file: app.py was not uploaded"),
            "a.yaml:4:7: steps[0].push.file: app.py was not uploaded");
  EXPECT_EQ(SpecMessage("a.yaml", {}, "x"), "a.yaml: x");
}

}  // namespace
}  // namespace threadfleet::fleetd::jobs
