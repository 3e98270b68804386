// Run reports: a job run (fleet.proto's Run) as CI systems read it — JUnit
// XML, TAP 13, Markdown for a CI step summary or CSV for a spreadsheet (the
// formats LAVA offers) — with the evidence of each
// failed step as the failure's text, so a red build says why without a
// board at hand.
//
// Example (fleetctl job junit / job report):
//
//   absl::StatusOr<ReportFormat> format = ParseReportFormat("junit");
//   std::cout << RenderRunReport(run, *format);  // run from GetRun
//
// Every format has one case per board and step, named "steps[I] KIND" (I
// from 0, as the spec's messages count) with the board as its class, plus:
// a "board" case for a board whose outcome no step carries (it ended ERROR
// between steps, or never started a step), and a "run" case for a run that
// failed without any board result (no boards could be reserved). States map
// as CI readers expect: PASSED passes, FAILED fails, ERROR and CANCELLED are
// errors, SKIPPED (and a step still QUEUED or RUNNING) is skipped.
//
// Everything a board or user wrote (output, messages, tracebacks) is
// escaped for the format: XML 1.0 (characters XML cannot carry, such as
// control bytes and invalid UTF-8, become "\xNN" text), YAML double-quoted or
// block scalars, Markdown table cells and HTML. Output is deterministic for a
// given Run (no "now"), so reports can be compared and archived.
#ifndef THREADFLEET_SERVER_CLI_RUN_REPORT_H_
#define THREADFLEET_SERVER_CLI_RUN_REPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::cli {

enum class ReportFormat { kJunit, kTap, kMarkdown, kCsv };

// "junit", "tap", "markdown" or "csv"; INVALID_ARGUMENT naming the known ones
// otherwise.
[[nodiscard]] absl::StatusOr<ReportFormat> ParseReportFormat(absl::string_view name);

// A testsuites document with one testsuite per run: tests, failures, errors,
// skipped and time as JUnit readers count them; the run's job, id, version,
// trigger, state and message as suite properties; per testcase a property
// "flaky" (and "attempts", "retried_because") when the board passed only
// after a retry, the evidence as failure/error text and a run step's output
// (when the Run holds it) as system-out.
std::string RunToJunit(const threadfleet::fleet::v1::Run& run);

// TAP version 13: a plan, a test line per case ("ok 3 - b01 steps[2]
// expect"), "# SKIP" for skipped ones, and a YAML diagnostics block
// (message, severity, board, step, attempts, flaky, evidence) under each
// case that did not pass or passed flaky.
std::string RunToTap(const threadfleet::fleet::v1::Run& run);

// GitHub-flavoured Markdown for a CI step summary: a heading with the run's
// outcome, the counts, a table with a row per board, then each failed case
// in a <details> block with its evidence in a code fence.
std::string RunToMarkdown(const threadfleet::fleet::v1::Run& run);

// RFC 4180 CSV: a header row, then a row per case: run, job, board, case,
// result, attempts, flaky, seconds, message (one line; the evidence is left
// to the other formats). Text cells a spreadsheet would take for a formula
// (starting with =, +, -, @, tab or CR) get a leading apostrophe.
std::string RunToCsv(const threadfleet::fleet::v1::Run& run);

// A step's evidence as text, each part after an empty line: the output
// excerpt, the failed threads with their tracebacks, the thread table, the
// anomalies and the heap; made printable as every format's text is (no
// control bytes, valid UTF-8). Empty for empty evidence.
std::string EvidenceDetails(const threadfleet::fleet::v1::Evidence& evidence);

std::string RenderRunReport(const threadfleet::fleet::v1::Run& run, ReportFormat format);

}  // namespace threadfleet::cli

#endif  // THREADFLEET_SERVER_CLI_RUN_REPORT_H_
