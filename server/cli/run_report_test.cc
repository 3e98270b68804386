#include "server/cli/run_report.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace threadfleet::cli {
namespace {

namespace fleet = threadfleet::fleet::v1;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A run of four boards: b01 passed, b02 failed an expect (a thread raised),
// b03 was lost (ERROR between steps), b04 never started (SKIPPED), b05
// passed after a retry (flaky).
fleet::Run MixedRun() {
  fleet::Run run;
  const bool parsed = google::protobuf::TextFormat::ParseFromString(
      R"pb(
        id: 42
        job_name: "seed-smoke"
        job_version: 3
        state: RUN_STATE_FAILED
        trigger: "manual:ci"
        start_time { seconds: 1700000000 }
        end_time { seconds: 1700000012 nanos: 500000000 }
        message: "2 of 5 boards did not pass"
        counts { boards: 5 passed: 2 failed: 1 error: 1 skipped: 1 flaky: 1 }
        results {
          board: "b01"
          state: RUN_STATE_PASSED
          attempts: 1
          start_time { seconds: 1700000000 }
          end_time { seconds: 1700000003 }
          steps {
            index: 0
            kind: "push"
            state: RUN_STATE_PASSED
            message: "12 KB written"
            start_time { seconds: 1700000000 }
            end_time { seconds: 1700000001 }
          }
          steps {
            index: 1
            kind: "run"
            state: RUN_STATE_PASSED
            start_time { seconds: 1700000001 }
            end_time { seconds: 1700000003 }
            output: "Shared variable is  8\n"
          }
        }
        results {
          board: "b02"
          state: RUN_STATE_FAILED
          attempts: 1
          message: "steps[2] expect: a thread failed"
          steps { index: 0 kind: "push" state: RUN_STATE_PASSED }
          steps { index: 1 kind: "run" state: RUN_STATE_PASSED }
          steps {
            index: 2
            kind: "expect"
            state: RUN_STATE_FAILED
            message: "no_failed_threads: thread 3 died of ValueError <&> \"x\""
            evidence {
              output_excerpt: "starting\r\nbad byte \x01 here\n"
              failed_threads {
                id: 3
                name: "worker"
                program_id: 1
                state: THREAD_STATE_FAILED
                exception {
                  type: "ValueError"
                  message: "boom"
                  traceback: "Traceback (most recent call last):\n  File \"app.py\", line 7\nValueError: boom"
                }
              }
              threads {
                id: 1
                name: "main"
                program_id: 1
                state: THREAD_STATE_FINISHED
                stack_size_bytes: 16384
                stack_peak_bytes: 4096
              }
              anomalies {
                kind: EVENT_KIND_BOARD_EVENT
                thread_id: 3
                message: "thread 3 failed"
                board_event { kind: EVENT_KIND_THREAD_FAILED }
              }
              heap { total_bytes: 65536 used_bytes: 16384 free_bytes: 49152 largest_free_bytes: 40000 }
            }
          }
          steps { index: 3 kind: "kill" state: RUN_STATE_SKIPPED }
        }
        results {
          board: "b03"
          state: RUN_STATE_ERROR
          attempts: 2
          message: "connection lost"
          retried_because: "connection lost"
          steps { index: 0 kind: "push" state: RUN_STATE_PASSED }
          steps { index: 1 kind: "run" state: RUN_STATE_SKIPPED }
        }
        results { board: "b04" state: RUN_STATE_SKIPPED message: "the abort rule stopped the run" }
        results {
          board: "b05"
          state: RUN_STATE_PASSED
          attempts: 2
          flaky: true
          retried_because: "steps[1] run: timed out"
          steps { index: 0 kind: "push" state: RUN_STATE_PASSED }
          steps { index: 1 kind: "run" state: RUN_STATE_PASSED }
        }
      )pb",
      &run);
  EXPECT_TRUE(parsed);
  return run;
}

TEST(ParseReportFormat, KnowsTheFourFormatsAndNamesThemOtherwise) {
  EXPECT_EQ(*ParseReportFormat("junit"), ReportFormat::kJunit);
  EXPECT_EQ(*ParseReportFormat("tap"), ReportFormat::kTap);
  EXPECT_EQ(*ParseReportFormat("markdown"), ReportFormat::kMarkdown);
  EXPECT_EQ(*ParseReportFormat("csv"), ReportFormat::kCsv);
  absl::StatusOr<ReportFormat> xlsx = ParseReportFormat("xlsx");
  EXPECT_EQ(xlsx.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(xlsx.status().message(), HasSubstr("known: junit, tap, markdown, csv"));
}

TEST(RunToCsv, HasAHeaderAndARowPerCase) {
  const std::string csv = RunToCsv(MixedRun());

  EXPECT_THAT(csv, StartsWith("run,job,board,case,result,attempts,flaky,seconds,message\r\n"));
  EXPECT_THAT(csv, HasSubstr("42,seed-smoke,b01,steps[0] push,passed,1,false,1.000,12 KB written\r\n"));
}

TEST(RunToCsv, QuotesSeparatorsAndDefusesFormulas) {
  fleet::Run run;
  run.set_id(7);
  run.set_job_name("j");
  fleet::BoardResult* board = run.add_results();
  board->set_board("b01");
  board->set_state(fleet::RUN_STATE_FAILED);
  fleet::StepResult* step = board->add_steps();
  step->set_kind("expect");
  step->set_state(fleet::RUN_STATE_FAILED);
  step->set_message("=HYPERLINK(\"x\"), then a comma\nand a line");

  const std::string csv = RunToCsv(run);

  EXPECT_THAT(csv, HasSubstr(",\"'=HYPERLINK(\"\"x\"\"), then a comma and a line\"\r\n"));
}

TEST(RunToJunit, CountsEveryBoardStepAsATestcaseOfOneSuite) {
  const std::string xml = RunToJunit(MixedRun());
  // 2 + 4 + (2 + a board case) + a board case + 2 = 12 cases; b02's expect
  // failed; b03's loss (board case) is an error; b02's kill, b03's run and
  // b04 are skipped.
  EXPECT_THAT(xml, HasSubstr(R"(<testsuite name="seed-smoke run 42" id="42" tests="12" failures="1" )"
                             R"(errors="1" skipped="3" time="12.500" timestamp="2023-11-14T22:13:20">)"));
  EXPECT_THAT(xml, HasSubstr(R"(<testcase name="steps[2] expect" classname="b02" time="0.000">)"));
  EXPECT_THAT(xml, HasSubstr(R"(<testcase name="board" classname="b03")"));
  EXPECT_THAT(xml, HasSubstr(R"(<error message="ERROR: connection lost" type="ERROR">)"));
  EXPECT_THAT(xml, HasSubstr(R"(<skipped message="the abort rule stopped the run"/>)"));
}

TEST(RunToJunit, TheFailureTextIsTheEvidenceEscaped) {
  const std::string xml = RunToJunit(MixedRun());
  EXPECT_THAT(
      xml,
      AllOf(HasSubstr(R"(<failure message="FAILED: no_failed_threads: thread 3 died of ValueError )"
                      R"(&lt;&amp;&gt; &quot;x&quot;" type="FAILED">)"),
            HasSubstr("bad byte \\x01 here"), Not(HasSubstr("\x01")), Not(HasSubstr("\r")),
            HasSubstr("thread 3 &quot;worker&quot; (program 1): failed: ValueError: boom"),
            HasSubstr("      File &quot;app.py&quot;, line 7"), HasSubstr("threads at the failure:"),
            HasSubstr("thread_failed thread 3: thread 3 failed"), HasSubstr("heap: 16K/64K (25%) used")));
}

TEST(RunToJunit, AFlakyBoardCarriesItAsAProperty) {
  const std::string xml = RunToJunit(MixedRun());
  EXPECT_THAT(xml, HasSubstr(R"(<testcase name="steps[0] push" classname="b05" time="0.000">
      <properties>
        <property name="flaky" value="true"/>
        <property name="attempts" value="2"/>
        <property name="retried_because" value="steps[1] run: timed out"/>
      </properties>)"));
}

TEST(RunToJunit, ARunStepsOutputIsItsSystemOut) {
  EXPECT_THAT(RunToJunit(MixedRun()), HasSubstr("<system-out>Shared variable is  8\n</system-out>"));
}

TEST(RunToJunit, ARunWithoutBoardResultsFailsOneRunCase) {
  fleet::Run run;
  run.set_id(7);
  run.set_job_name("j");
  run.set_state(fleet::RUN_STATE_ERROR);
  run.set_message("no boards free within the timeout (10m)");
  const std::string xml = RunToJunit(run);
  EXPECT_THAT(xml, AllOf(HasSubstr(R"(tests="1" failures="0" errors="1")"),
                         HasSubstr(R"(<testcase name="run" classname="run")"),
                         HasSubstr("ERROR: no boards free within the timeout (10m)")));
}

TEST(RunToTap, IsTap13WithAPlanAndYamlDiagnosticsForWhatDidNotPass) {
  const std::string tap = RunToTap(MixedRun());
  EXPECT_THAT(tap,
              AllOf(HasSubstr("TAP version 13\n1..12\n"), HasSubstr("ok 1 - b01 steps[0] push\n"),
                    HasSubstr("not ok 5 - b02 steps[2] expect\n  ---\n"), HasSubstr("  severity: \"fail\"\n"),
                    HasSubstr("ok 6 - b02 steps[3] kill # SKIP not started\n"),
                    HasSubstr("not ok 9 - b03 board\n"), HasSubstr("  flaky: true\n")));
  // The evidence is a literal block: every line indented, the byte escaped.
  EXPECT_THAT(tap, AllOf(HasSubstr("  evidence: |2-\n    FAILED: no_failed_threads"),
                         HasSubstr("\n      bad byte \\x01 here\n"), HasSubstr("\n  ...\n")));
}

TEST(RunToTap, AHashInADescriptionIsEscaped) {
  fleet::Run run = MixedRun();
  run.mutable_results(0)->set_board("b#1");
  EXPECT_THAT(RunToTap(run), HasSubstr("ok 1 - b\\#1 steps[0] push\n"));
}

TEST(RunToMarkdown, HasATableRowPerBoardAndFailuresInDetails) {
  const std::string md = RunToMarkdown(MixedRun());
  EXPECT_THAT(
      md,
      AllOf(HasSubstr("## ❌ Job seed-smoke run 42: failed\n"),
            HasSubstr("| Board | Result | Attempts | Time (s) | Message |\n"),
            HasSubstr(
                "| b05 | ⚠️ passed (flaky) | 2 | 0.000 | retried because: steps\\[1\\] run: timed out |"),
            HasSubstr("<details><summary>❌ b02 steps[2] expect: FAILED: no_failed_threads: thread 3 "
                      "died of ValueError &lt;&amp;&gt; &quot;x&quot;</summary>\n\n```text\n"),
            HasSubstr("<details><summary>💥 b03 board: ERROR: connection lost</summary>")));
}

TEST(RunToMarkdown, TableCellsAndFencesCannotBeBrokenByWhatBoardsPrint) {
  fleet::Run run = MixedRun();
  run.mutable_results(2)->set_message("a | b\n<script>`x`");
  run.mutable_results(1)->mutable_steps(2)->mutable_evidence()->set_output_excerpt("```\nescape\n````");
  const std::string md = RunToMarkdown(run);
  EXPECT_THAT(md, AllOf(HasSubstr("| a \\| b &lt;script&gt;\\`x\\` |"),
                        HasSubstr("<summary>💥 b03 board: ERROR: a | b &lt;script&gt;`x`</summary>"),
                        HasSubstr("`````text\n")));
}

}  // namespace
}  // namespace threadfleet::cli
