#include "server/cli/run_report.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "server/cli/format.h"
#include "server/cli/table.h"

namespace threadfleet::cli {
namespace {

// ---- Text every format starts from

// `text` as valid UTF-8 holding only printable characters, '\n' and '\t':
// every other byte (control bytes, DEL, bytes of invalid UTF-8, a '\r'
// that does not end a line) becomes the text "\xNN", so nothing a board
// printed can break the document around it. A "\r\n" becomes "\n".
std::string CleanText(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      ++i;
      continue;
    }
    if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f)) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length from the lead byte, then continuation
    // bytes, no overlong form, no surrogate, at most U+10FFFF, and not the
    // two noncharacters XML 1.0 excludes (U+FFFE, U+FFFF).
    size_t length = 0;
    uint32_t code = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
      code = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      code = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      code = c & 0x07;
    }
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xc0) == 0x80;
      code = (code << 6) | (next & 0x3f);
    }
    if (valid) {
      const uint32_t smallest = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
      valid = code >= smallest && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) && code != 0xfffe &&
              code != 0xffff;
    }
    if (valid) {
      out.append(text.data() + i, length);
      i += length;
    } else {
      absl::StrAppendFormat(&out, "\\x%02X", c);
      ++i;
    }
  }
  return out;
}

// `text` on one line: CleanText, then newlines and tabs as spaces.
std::string OneLine(absl::string_view text) {
  std::string out = CleanText(text);
  std::replace(out.begin(), out.end(), '\n', ' ');
  std::replace(out.begin(), out.end(), '\t', ' ');
  return out;
}

// Seconds from `start` to `end`; 0 when either is unset (not started, or
// not ended yet).
double Seconds(const google::protobuf::Timestamp& start, const google::protobuf::Timestamp& end) {
  if (IsUnset(start) || IsUnset(end)) return 0;
  return std::max(0.0, absl::ToDoubleSeconds(ToTime(end) - ToTime(start)));
}

std::string SecondsText(double seconds) { return absl::StrFormat("%.3f", seconds); }

// ISO 8601 in UTC, as JUnit's timestamp attribute has it.
std::string IsoTime(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%S", ToTime(t), absl::UTCTimeZone());
}

// What a CI reader makes of a state.
enum class Verdict { kPassed, kFailed, kError, kSkipped };

Verdict VerdictOf(fleet::v1::RunState state) {
  switch (state) {
    case fleet::v1::RUN_STATE_PASSED:
      return Verdict::kPassed;
    case fleet::v1::RUN_STATE_FAILED:
      return Verdict::kFailed;
    case fleet::v1::RUN_STATE_ERROR:
    case fleet::v1::RUN_STATE_CANCELLED:
      return Verdict::kError;
    default:
      return Verdict::kSkipped;
  }
}

// One test case of a report: a board's step, a board, or the run.
struct ReportCase {
  // The board; "run" for the run's own case.
  std::string classname;
  // "steps[2] expect", "board" or "run".
  std::string name;
  fleet::v1::RunState state = fleet::v1::RUN_STATE_UNSPECIFIED;
  std::string message;
  double seconds = 0;
  // Null when the case has none.
  const fleet::v1::Evidence* evidence = nullptr;
  // A run step's output, when the Run holds it.
  std::string output;
  uint64_t output_cut_bytes = 0;
  // Of the board the case belongs to.
  int attempts = 0;
  bool flaky = false;
  std::string retried_because;
};

bool CarriesOutcome(const fleet::v1::StepResult& step, fleet::v1::RunState board_state) {
  return step.state() == board_state;
}

// The cases of a run, in board order, each board's steps in spec order.
std::vector<ReportCase> CasesOf(const fleet::v1::Run& run) {
  std::vector<ReportCase> cases;
  for (const fleet::v1::BoardResult& result : run.results()) {
    const auto base = [&result] {
      ReportCase c;
      c.classname = result.board();
      c.attempts = result.attempts();
      c.flaky = result.flaky();
      c.retried_because = result.retried_because();
      return c;
    };
    bool outcome_shown = VerdictOf(result.state()) == Verdict::kPassed;
    for (const fleet::v1::StepResult& step : result.steps()) {
      ReportCase c = base();
      c.name = absl::StrCat("steps[", step.index(), "] ", step.kind());
      c.state = step.state();
      c.message = step.message();
      c.seconds = Seconds(step.start_time(), step.end_time());
      if (step.has_evidence()) c.evidence = &step.evidence();
      c.output = step.output();
      c.output_cut_bytes = step.output_cut_bytes();
      if (CarriesOutcome(step, result.state())) outcome_shown = true;
      cases.push_back(std::move(c));
    }
    // A board that ended without a step carrying why (lost between steps,
    // never started one): its own case says it.
    if (!outcome_shown || result.steps().empty()) {
      ReportCase c = base();
      c.name = "board";
      c.state = result.state();
      c.message = result.message();
      c.seconds = Seconds(result.start_time(), result.end_time());
      cases.push_back(std::move(c));
    }
  }
  const Verdict run_verdict = VerdictOf(run.state());
  if (run.results().empty() && run_verdict != Verdict::kPassed) {
    ReportCase c;
    c.classname = "run";
    c.name = "run";
    c.state = run.state();
    c.message = run.message();
    c.seconds = Seconds(run.start_time(), run.end_time());
    cases.push_back(std::move(c));
  }
  return cases;
}

// "b01 steps[2] expect", or "run" for the run's case.
std::string CaseTitle(const ReportCase& c) {
  return c.classname == c.name ? c.name : absl::StrCat(c.classname, " ", c.name);
}

std::string StateLine(const ReportCase& c) {
  std::string line = absl::AsciiStrToUpper(RunStateText(c.state));
  if (!c.message.empty()) absl::StrAppend(&line, ": ", c.message);
  return line;
}

std::string ThreadLine(const board::v1::ThreadInfo& t) {
  std::string line = absl::StrCat("thread ", t.id(), " \"", t.name(), "\"");
  if (t.program_id() != 0) absl::StrAppend(&line, " (program ", t.program_id(), ")");
  absl::StrAppend(&line, ": ", ThreadStateText(t));
  if (t.has_exception()) {
    absl::StrAppend(&line, ": ", t.exception().type());
    if (!t.exception().message().empty()) absl::StrAppend(&line, ": ", t.exception().message());
  }
  return line;
}

// Each line of `text` after `prefix` (empty lines stay empty); ends in '\n'.
std::string Indent(absl::string_view text, absl::string_view prefix) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(absl::StripSuffix(text, "\n"), '\n')) {
    if (line.empty()) {
      out.push_back('\n');
    } else {
      absl::StrAppend(&out, prefix, line, "\n");
    }
  }
  return out;
}

std::string AnomalyLine(const fleet::v1::Event& e) {
  const std::string kind = e.kind() == fleet::v1::EVENT_KIND_BOARD_EVENT && e.has_board_event()
                               ? BoardEventKindText(e.board_event().kind())
                               : EventKindText(e.kind());
  std::string line = absl::StrCat(!IsUnset(e.time()) ? IsoTime(e.time()) + "Z" : "-", " ", kind);
  if (e.thread_id() != 0) absl::StrAppend(&line, " thread ", e.thread_id());
  if (e.program_id() != 0) absl::StrAppend(&line, " program ", e.program_id());
  if (!e.message().empty()) absl::StrAppend(&line, ": ", e.message());
  return line;
}

// Why a case failed, as text (not yet escaped for any format): the state
// and message, the board's attempts, the output excerpt, the failed
// threads with their tracebacks, the thread table, the anomalies and the
// heap.
std::string EvidenceText(const ReportCase& c) {
  std::string text = absl::StrCat(StateLine(c), "\n");
  if (c.classname != "run") {
    absl::StrAppend(&text, "board: ", c.classname, ", attempts: ", c.attempts, "\n");
  }
  if (!c.retried_because.empty()) absl::StrAppend(&text, "retried because: ", c.retried_because, "\n");
  if (c.evidence != nullptr) absl::StrAppend(&text, EvidenceDetails(*c.evidence));
  return text;
}

// Why a case is skipped: its message, else what its state says.
std::string SkipReason(const ReportCase& c) {
  if (!c.message.empty()) return c.message;
  if (c.state == fleet::v1::RUN_STATE_SKIPPED) return "not started";
  return absl::StrCat("not ended: ", RunStateText(c.state));
}

struct Totals {
  int tests = 0, failures = 0, errors = 0, skipped = 0;
};

Totals TotalsOf(const std::vector<ReportCase>& cases) {
  Totals t;
  for (const ReportCase& c : cases) {
    ++t.tests;
    switch (VerdictOf(c.state)) {
      case Verdict::kFailed:
        ++t.failures;
        break;
      case Verdict::kError:
        ++t.errors;
        break;
      case Verdict::kSkipped:
        ++t.skipped;
        break;
      case Verdict::kPassed:
        break;
    }
  }
  return t;
}

// ---- JUnit XML

// `text` for an XML attribute value or element content.
std::string Xml(absl::string_view text) {
  const std::string clean = CleanText(text);
  std::string out;
  out.reserve(clean.size());
  for (char ch : clean) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\n':
        out += "&#10;";
        break;
      case '\t':
        out += "&#9;";
        break;
      default:
        out.push_back(ch);
    }
  }
  return out;
}

// As Xml, keeping newlines and tabs literal (element content, where a
// reader keeps them).
std::string XmlContent(absl::string_view text) {
  std::string out = Xml(text);
  out = absl::StrReplaceAll(out, {{"&#10;", "\n"}, {"&#9;", "\t"}});
  return out;
}

std::string Property(absl::string_view name, absl::string_view value, absl::string_view indent) {
  return absl::StrCat(indent, "<property name=\"", Xml(name), "\" value=\"", Xml(value), "\"/>\n");
}

std::string SuiteName(const fleet::v1::Run& run) { return absl::StrCat(run.job_name(), " run ", run.id()); }

}  // namespace

std::string EvidenceDetails(const fleet::v1::Evidence& e) {
  std::string text;
  if (!e.output_excerpt().empty()) {
    absl::StrAppend(&text, "\noutput (the end of the latest run step's):\n",
                    Indent(e.output_excerpt(), "  "));
  }
  if (!e.failed_threads().empty()) {
    absl::StrAppend(&text, "\nfailed threads:\n");
    for (const board::v1::ThreadInfo& t : e.failed_threads()) {
      absl::StrAppend(&text, "  ", ThreadLine(t), "\n");
      if (t.has_exception() && !t.exception().traceback().empty()) {
        absl::StrAppend(&text, Indent(t.exception().traceback(), "    "));
      }
    }
  }
  if (!e.threads().empty()) {
    Table table({"ID", "NAME", "PROGRAM", "STATE", "STACK PEAK", "CPU"});
    for (const board::v1::ThreadInfo& t : e.threads()) {
      table.AddRow({absl::StrCat(t.id()), t.name(), absl::StrCat(t.program_id()), ThreadStateText(t),
                    FormatUsage(t.stack_peak_bytes(), t.stack_size_bytes()),
                    FormatDuration(t.cpu_time_us())});
    }
    absl::StrAppend(&text, "\nthreads at the failure:\n", Indent(table.Render(), "  "));
  }
  if (!e.anomalies().empty()) {
    absl::StrAppend(&text, "\nanomalies since the board's first step:\n");
    for (const fleet::v1::Event& a : e.anomalies()) absl::StrAppend(&text, "  ", AnomalyLine(a), "\n");
  }
  if (e.has_heap()) {
    absl::StrAppend(&text, "\nheap: ", FormatUsage(e.heap().used_bytes(), e.heap().total_bytes()), " used, ",
                    FormatBytes(e.heap().free_bytes()), " free, largest free block ",
                    FormatBytes(e.heap().largest_free_bytes()), "\n");
  }
  return CleanText(text);
}

absl::StatusOr<ReportFormat> ParseReportFormat(absl::string_view name) {
  if (name == "junit") return ReportFormat::kJunit;
  if (name == "tap") return ReportFormat::kTap;
  if (name == "markdown") return ReportFormat::kMarkdown;
  if (name == "csv") return ReportFormat::kCsv;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown report format '", OneLine(name), "' (known: junit, tap, markdown, csv)"));
}

std::string RunToJunit(const fleet::v1::Run& run) {
  const std::vector<ReportCase> cases = CasesOf(run);
  const Totals totals = TotalsOf(cases);
  const std::string run_time = SecondsText(Seconds(run.start_time(), run.end_time()));
  const std::string counts =
      absl::StrFormat(R"(tests="%d" failures="%d" errors="%d" skipped="%d" time="%s")", totals.tests,
                      totals.failures, totals.errors, totals.skipped, run_time);
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  absl::StrAppend(&xml, "<testsuites name=\"threadfleet\" ", counts, ">\n");
  absl::StrAppend(&xml, "  <testsuite name=\"", Xml(SuiteName(run)), "\" id=\"", run.id(), "\" ", counts);
  if (!IsUnset(run.start_time())) absl::StrAppend(&xml, " timestamp=\"", IsoTime(run.start_time()), "\"");
  absl::StrAppend(&xml, ">\n    <properties>\n");
  absl::StrAppend(
      &xml, Property("job", run.job_name(), "      "), Property("run_id", absl::StrCat(run.id()), "      "),
      Property("job_version", absl::StrCat(run.job_version()), "      "),
      Property("trigger", run.trigger(), "      "), Property("state", RunStateText(run.state()), "      "));
  if (!run.message().empty()) absl::StrAppend(&xml, Property("message", run.message(), "      "));
  const fleet::v1::RunCounts& n = run.counts();
  absl::StrAppend(
      &xml,
      Property("boards",
               absl::StrFormat("%d (passed %d, failed %d, error %d, skipped %d, cancelled %d, flaky %d)",
                               n.boards(), n.passed(), n.failed(), n.error(), n.skipped(), n.cancelled(),
                               n.flaky()),
               "      "),
      "    </properties>\n");
  for (const ReportCase& c : cases) {
    absl::StrAppend(&xml, "    <testcase name=\"", Xml(c.name), "\" classname=\"", Xml(c.classname),
                    "\" time=\"", SecondsText(c.seconds), "\">\n");
    if (c.flaky) {
      absl::StrAppend(&xml, "      <properties>\n", Property("flaky", "true", "        "),
                      Property("attempts", absl::StrCat(c.attempts), "        "));
      if (!c.retried_because.empty()) {
        absl::StrAppend(&xml, Property("retried_because", c.retried_because, "        "));
      }
      absl::StrAppend(&xml, "      </properties>\n");
    }
    const Verdict verdict = VerdictOf(c.state);
    if (verdict == Verdict::kFailed || verdict == Verdict::kError) {
      const char* element = verdict == Verdict::kFailed ? "failure" : "error";
      absl::StrAppend(&xml, "      <", element, " message=\"", Xml(StateLine(c)), "\" type=\"",
                      absl::AsciiStrToUpper(RunStateText(c.state)), "\">", XmlContent(EvidenceText(c)), "</",
                      element, ">\n");
    } else if (verdict == Verdict::kSkipped) {
      absl::StrAppend(&xml, "      <skipped message=\"", Xml(SkipReason(c)), "\"/>\n");
    }
    if (!c.output.empty()) {
      std::string output = c.output;
      if (c.output_cut_bytes > 0) {
        output = absl::StrCat("[", c.output_cut_bytes, " bytes cut from the start]\n", output);
      }
      absl::StrAppend(&xml, "      <system-out>", XmlContent(output), "</system-out>\n");
    }
    absl::StrAppend(&xml, "    </testcase>\n");
  }
  absl::StrAppend(&xml, "  </testsuite>\n</testsuites>\n");
  return xml;
}

// ---- TAP 13

namespace {

// A TAP description: one line, and '#' escaped (it starts a directive).
std::string TapDescription(absl::string_view text) {
  return absl::StrReplaceAll(OneLine(text), {{"\\", "\\\\"}, {"#", "\\#"}});
}

// A YAML double-quoted scalar.
std::string YamlQuoted(absl::string_view text) {
  const std::string clean = CleanText(text);
  std::string out = "\"";
  for (char ch : clean) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out.push_back(ch);
    }
  }
  out += "\"";
  return out;
}

// `key: value` at `indent`: a literal block scalar for multi-line text
// (with an explicit indentation indicator, so a first line that starts
// with spaces reads back unchanged), a double-quoted scalar otherwise.
std::string YamlField(absl::string_view key, absl::string_view value, absl::string_view indent) {
  const std::string clean = CleanText(value);
  if (clean.find('\n') == std::string::npos) {
    return absl::StrCat(indent, key, ": ", YamlQuoted(clean), "\n");
  }
  std::string out = absl::StrCat(indent, key, ": |2-\n");
  const std::string inner = absl::StrCat(indent, "  ");
  for (absl::string_view line : absl::StrSplit(absl::StripSuffix(clean, "\n"), '\n')) {
    absl::StrAppend(&out, line.empty() ? "" : inner, line, "\n");
  }
  return out;
}

}  // namespace

std::string RunToTap(const fleet::v1::Run& run) {
  const std::vector<ReportCase> cases = CasesOf(run);
  std::string tap = "TAP version 13\n";
  if (cases.empty()) {
    absl::StrAppend(&tap, "1..0 # SKIP ", TapDescription(absl::StrCat(SuiteName(run), ": no boards")), "\n");
    return tap;
  }
  absl::StrAppend(&tap, "1..", cases.size(), "\n");
  absl::StrAppend(&tap, "# ", TapDescription(SuiteName(run)), ": ", RunStateText(run.state()));
  if (!run.message().empty()) absl::StrAppend(&tap, ": ", TapDescription(run.message()));
  absl::StrAppend(&tap, "\n");
  int number = 0;
  for (const ReportCase& c : cases) {
    ++number;
    const Verdict verdict = VerdictOf(c.state);
    absl::StrAppend(&tap, verdict == Verdict::kPassed || verdict == Verdict::kSkipped ? "ok " : "not ok ",
                    number, " - ", TapDescription(CaseTitle(c)));
    if (verdict == Verdict::kSkipped) {
      absl::StrAppend(&tap, " # SKIP ", TapDescription(SkipReason(c)));
    }
    absl::StrAppend(&tap, "\n");
    if (verdict != Verdict::kFailed && verdict != Verdict::kError && !c.flaky) continue;
    const std::string in = "  ";
    absl::StrAppend(&tap, in, "---\n");
    absl::StrAppend(&tap, YamlField("message", c.message, in));
    absl::StrAppend(&tap, YamlField("severity",
                                    verdict == Verdict::kPassed   ? "comment"
                                    : verdict == Verdict::kFailed ? "fail"
                                                                  : "error",
                                    in));
    absl::StrAppend(&tap, YamlField("state", RunStateText(c.state), in));
    if (c.classname != "run") absl::StrAppend(&tap, YamlField("board", c.classname, in));
    absl::StrAppend(&tap, in, "duration_ms: ", static_cast<int64_t>(c.seconds * 1000), "\n");
    if (c.attempts > 0) absl::StrAppend(&tap, in, "attempts: ", c.attempts, "\n");
    if (c.flaky) absl::StrAppend(&tap, in, "flaky: true\n");
    if (!c.retried_because.empty())
      absl::StrAppend(&tap, YamlField("retried_because", c.retried_because, in));
    if (verdict != Verdict::kPassed) absl::StrAppend(&tap, YamlField("evidence", EvidenceText(c), in));
    absl::StrAppend(&tap, in, "...\n");
  }
  return tap;
}

// ---- Markdown

namespace {

// `text` for a table cell: one line, and every character Markdown or HTML
// would read as markup escaped.
std::string MarkdownCell(absl::string_view text) {
  const std::string line = OneLine(text);
  std::string out;
  for (char ch : line) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '|':
        out += "\\|";
        break;
      case '\\':
      case '`':
      case '*':
      case '_':
      case '[':
      case ']':
      case '(':
      case ')':
      case '#':
      case '!':
      case '~':
        out.push_back('\\');
        out.push_back(ch);
        break;
      default:
        out.push_back(ch);
    }
  }
  return out;
}

// `text` as HTML text (inside <summary>).
std::string Html(absl::string_view text) {
  return absl::StrReplaceAll(OneLine(text), {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

// A code fence longer than any run of backticks in `text`, so the text
// cannot close it.
std::string FenceFor(absl::string_view text) {
  size_t longest = 0, current = 0;
  for (char ch : text) {
    current = ch == '`' ? current + 1 : 0;
    longest = std::max(longest, current);
  }
  return std::string(std::max<size_t>(3, longest + 1), '`');
}

std::string Mark(Verdict verdict, bool flaky) {
  switch (verdict) {
    case Verdict::kPassed:
      return flaky ? "⚠️" : "✅";
    case Verdict::kFailed:
      return "❌";
    case Verdict::kError:
      return "💥";
    case Verdict::kSkipped:
      return "⏭️";
  }
  return "";
}

}  // namespace

std::string RunToMarkdown(const fleet::v1::Run& run) {
  const std::vector<ReportCase> cases = CasesOf(run);
  const fleet::v1::RunCounts& n = run.counts();
  std::string md =
      absl::StrCat("## ", Mark(VerdictOf(run.state()), false), " Job ", MarkdownCell(run.job_name()), " run ",
                   run.id(), ": ", RunStateText(run.state()), "\n\n");
  if (!run.message().empty()) absl::StrAppend(&md, "> ", MarkdownCell(run.message()), "\n\n");
  absl::StrAppend(&md, "Boards: ", n.boards(), " · passed ", n.passed(), " · failed ", n.failed(),
                  " · error ", n.error(), " · skipped ", n.skipped(), " · cancelled ", n.cancelled(),
                  " · flaky ", n.flaky(), "  \n");
  absl::StrAppend(&md, "Job version ", run.job_version(), " · trigger ", MarkdownCell(run.trigger()));
  if (!IsUnset(run.start_time())) absl::StrAppend(&md, " · started ", IsoTime(run.start_time()), "Z");
  if (!IsUnset(run.end_time())) {
    absl::StrAppend(&md, " · took ", SecondsText(Seconds(run.start_time(), run.end_time())), " s");
  }
  absl::StrAppend(&md, "\n\n");

  if (!run.results().empty()) {
    absl::StrAppend(&md, "| Board | Result | Attempts | Time (s) | Message |\n|---|---|---|---|---|\n");
    for (const fleet::v1::BoardResult& r : run.results()) {
      std::string result = absl::StrCat(Mark(VerdictOf(r.state()), r.flaky()), " ", RunStateText(r.state()));
      if (r.flaky()) absl::StrAppend(&result, " (flaky)");
      std::string message = r.message();
      if (r.flaky() && !r.retried_because().empty())
        message = absl::StrCat("retried because: ", r.retried_because());
      absl::StrAppend(&md, "| ", MarkdownCell(r.board()), " | ", result, " | ", r.attempts(), " | ",
                      SecondsText(Seconds(r.start_time(), r.end_time())), " | ", MarkdownCell(message),
                      " |\n");
    }
    absl::StrAppend(&md, "\n");
  }

  bool heading = false;
  for (const ReportCase& c : cases) {
    const Verdict verdict = VerdictOf(c.state);
    if (verdict != Verdict::kFailed && verdict != Verdict::kError) continue;
    if (!heading) {
      absl::StrAppend(&md, "### Failures\n\n");
      heading = true;
    }
    const std::string evidence = CleanText(EvidenceText(c));
    const std::string fence = FenceFor(evidence);
    absl::StrAppend(&md, "<details><summary>", Mark(verdict, false), " ", Html(CaseTitle(c)), ": ",
                    Html(StateLine(c)), "</summary>\n\n", fence, "text\n", evidence, fence,
                    "\n\n</details>\n\n");
  }
  return md;
}

namespace {

// One CSV field: quoted when it holds a separator, quote or line break;
// `text` fields that a spreadsheet would evaluate are defused first.
std::string CsvField(absl::string_view value, bool text) {
  std::string field(value);
  if (text && !field.empty() && absl::string_view("=+-@\t\r").find(field[0]) != absl::string_view::npos) {
    field.insert(0, "'");
  }
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  return absl::StrCat("\"", absl::StrReplaceAll(field, {{"\"", "\"\""}}), "\"");
}

}  // namespace

std::string RunToCsv(const fleet::v1::Run& run) {
  std::string csv = "run,job,board,case,result,attempts,flaky,seconds,message\r\n";
  const std::string run_id = absl::StrCat(run.id());
  for (const ReportCase& c : CasesOf(run)) {
    absl::StrAppend(&csv, run_id, ",", CsvField(run.job_name(), true), ",", CsvField(c.classname, true), ",",
                    CsvField(c.name, true), ",", RunStateText(c.state), ",", c.attempts, ",",
                    c.flaky ? "true" : "false", ",", SecondsText(c.seconds), ",",
                    CsvField(OneLine(c.message), true), "\r\n");
  }
  return csv;
}

std::string RenderRunReport(const fleet::v1::Run& run, ReportFormat format) {
  switch (format) {
    case ReportFormat::kJunit:
      return RunToJunit(run);
    case ReportFormat::kTap:
      return RunToTap(run);
    case ReportFormat::kMarkdown:
      return RunToMarkdown(run);
    case ReportFormat::kCsv:
      return RunToCsv(run);
  }
  return RunToJunit(run);
}

}  // namespace threadfleet::cli
