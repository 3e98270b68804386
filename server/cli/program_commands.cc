// fleetctl push and run: send a script to boards, start it, follow it.

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/cli/commands.h"
#include "server/cli/format.h"
#include "server/cli/table.h"
#include "server/common/read_text_file.h"

namespace threadfleet::cli {
namespace {

// Per-board progress lines: "b01   done     64K  sha256 1a2b3c4d".
std::string ProgressLine(const std::string& board, const std::string& status, const std::string& detail) {
  static const auto* table = new StreamingTable({"", "", ""}, {4, 9});  // "unchanged"
  return table->Row({board, status, detail});
}

std::string DescribeBoardError(const fleet::v1::BoardError& error) {
  std::string text = StatusCodeName(error.code());
  if (!error.message().empty()) absl::StrAppend(&text, ": ", error.message());
  return text;
}

// The boards a push reached and those it did not, by name.
struct PushOutcome {
  grpc::Status status;
  // Boards that have the file now: written, or unchanged.
  std::vector<std::string> done;
  size_t unchanged = 0;
  std::map<std::string, std::string> failed;  // board -> "CODE: message"
};

// Runs PushFile, writing progress to `progress` (table lines at DONE/FAILED)
// or, with -o json, every response as a JSON line to out().
PushOutcome Push(Session& session, const fleet::v1::PushFileRequest& request, std::ostream& progress) {
  PushOutcome outcome;
  std::map<std::string, bool> finished;  // every board seen -> reached DONE/FAILED
  auto context = session.client().NewContext();
  auto reader = session.client().stub().PushFile(context.get(), request);
  fleet::v1::PushFileResponse response;
  while (reader->Read(&response)) {
    if (session.json()) session.PrintJson(response, JsonLayout::kLine);
    finished.emplace(response.board(), false);
    if (response.stage() == fleet::v1::PUSH_STAGE_DONE) {
      finished[response.board()] = true;
      outcome.done.push_back(response.board());
      if (!session.json()) {
        progress << ProgressLine(response.board(), "done",
                                 absl::StrCat(FormatBytes(response.total_bytes()), "  sha256 ",
                                              response.sha256_hex().substr(0, 8)))
                 << std::flush;
      }
    } else if (response.stage() == fleet::v1::PUSH_STAGE_UNCHANGED) {
      // The board already had this content: nothing written.
      finished[response.board()] = true;
      outcome.done.push_back(response.board());
      ++outcome.unchanged;
      if (!session.json()) {
        progress << ProgressLine(response.board(), "unchanged",
                                 absl::StrCat(FormatBytes(response.total_bytes()), "  sha256 ",
                                              response.sha256_hex().substr(0, 8)))
                 << std::flush;
      }
    } else if (response.stage() == fleet::v1::PUSH_STAGE_QUEUED && response.has_error()) {
      // Unreachable for now: fleetd tries again until the call's deadline.
      if (!session.json()) {
        progress << ProgressLine(response.board(), "waiting",
                                 absl::StrCat(DescribeBoardError(response.error()), " (retrying)"))
                 << std::flush;
      }
    } else if (response.stage() == fleet::v1::PUSH_STAGE_FAILED) {
      finished[response.board()] = true;
      outcome.failed[response.board()] = DescribeBoardError(response.error());
      if (!session.json()) {
        progress << ProgressLine(response.board(), "failed", outcome.failed[response.board()]) << std::flush;
      }
    }
  }
  outcome.status = reader->Finish();
  for (const auto& [board, ended] : finished) {
    if (!ended) outcome.failed[board] = "no result before the push ended";
  }
  return outcome;
}

// Lists each failed board on stderr: "fleetctl: error: b02: UNAVAILABLE: ...".
void ReportFailedBoards(Session& session, const std::map<std::string, std::string>& failed) {
  for (const auto& [board, error] : failed) session.Fail(absl::StrCat(board, ": ", error));
}

struct PushWords {
  SelectorFlags selector;
  std::string file;
  std::string path;
  bool force = false;
};

int PushCommand(Session& session, const PushWords& words, const fleet::v1::Selector& selector) {
  absl::StatusOr<std::string> content = common::ReadTextFile(words.file, "file");
  if (!content.ok()) return session.Fail(content.status().message());
  fleet::v1::PushFileRequest request;
  *request.mutable_selector() = selector;
  request.set_path(words.path);
  request.set_content(*std::move(content));
  request.set_force(words.force);
  PushOutcome outcome = Push(session, request, session.out());
  if (!outcome.status.ok()) {
    ReportFailedBoards(session, outcome.failed);
    return session.Fail(outcome.status);
  }
  if (!session.json()) {
    session.out() << "pushed to " << outcome.done.size() << "/" << outcome.done.size() + outcome.failed.size()
                  << " boards";
    if (outcome.unchanged > 0) session.out() << " (" << outcome.unchanged << " unchanged)";
    session.out() << std::endl;
  }
  ReportFailedBoards(session, outcome.failed);
  return outcome.failed.empty() ? kExitOk : kExitFailed;
}

struct RunWords {
  SelectorFlags selector;
  std::vector<std::string> positionals;  // [BOARD] FILE [ARGS...]
  bool follow = false;
  std::string name;
};

struct RunPlan {
  fleet::v1::Selector selector;
  std::string file;
  std::string path;
  std::string name;
  std::vector<std::string> args;
  bool follow = false;
};

// Waits (bounded by the call timeout) until fleetd's view of the program has
// it ended, then answers the exit code: 0 finished, 1 failed or killed.
int ExitByFinalState(Session& session, const std::string& board, uint32_t program_id) {
  const absl::Time give_up = absl::Now() + std::max(session.client().timeout(), absl::Seconds(5));
  std::string last_problem = "fleetd does not list it";
  while (absl::Now() < give_up) {
    fleet::v1::BoardThreads threads;
    grpc::Status status = GetBoardThreads(session, board, /*include_finished=*/true, threads);
    if (!status.ok()) return session.Fail(status);
    for (const board::v1::ProgramInfo& program : threads.programs()) {
      if (program.id() != program_id) continue;
      if (program.state() == board::v1::PROGRAM_STATE_RUNNING) {
        last_problem = "fleetd still lists it as running";
        break;
      }
      if (session.json()) {
        session.PrintJson(program, JsonLayout::kLine);
      } else if (program.state() != board::v1::PROGRAM_STATE_FINISHED) {
        session.err() << "fleetctl: " << board << " program " << program_id << " "
                      << ProgramStateText(program.state()) << " (exit code " << program.exit_code() << ")"
                      << std::endl;
      }
      return program.state() == board::v1::PROGRAM_STATE_FINISHED ? kExitOk : kExitFailed;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return session.Fail(
      absl::StrCat("cannot tell how program ", program_id, " on ", board, " ended: ", last_problem));
}

int RunCommand(Session& session, const RunPlan& plan) {
  absl::StatusOr<std::string> content = common::ReadTextFile(plan.file, "file");
  if (!content.ok()) return session.Fail(content.status().message());
  // With --follow, stdout carries only the program's output.
  std::ostream& progress = plan.follow ? session.err() : session.out();

  fleet::v1::PushFileRequest push;
  *push.mutable_selector() = plan.selector;
  push.set_path(plan.path);
  push.set_content(*std::move(content));
  PushOutcome pushed = Push(session, push, progress);
  ReportFailedBoards(session, pushed.failed);
  if (!pushed.status.ok()) return session.Fail(pushed.status);
  if (pushed.done.empty()) return kExitFailed;

  fleet::v1::RunProgramRequest run;
  for (const std::string& board : pushed.done) run.mutable_selector()->add_boards(board);
  run.set_path(plan.path);
  run.set_name(plan.name);
  for (const std::string& arg : plan.args) run.add_args(arg);
  fleet::v1::RunProgramResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().RunProgram(context.get(), run, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) session.PrintJson(response, JsonLayout::kLine);

  bool any_failed = !pushed.failed.empty();
  const fleet::v1::BoardProgramStart* started = nullptr;
  for (const fleet::v1::BoardProgramStart& result : response.results()) {
    if (result.has_error() && result.error().code() != 0) {
      any_failed = true;
      const std::string why = DescribeBoardError(result.error());
      if (!session.json()) progress << ProgressLine(result.board(), "failed", why) << std::flush;
      session.Fail(absl::StrCat(result.board(), ": ", why));
      continue;
    }
    started = &result;
    if (!session.json()) {
      progress << ProgressLine(result.board(), "started",
                               absl::StrCat("program ", result.program_id(), " (main thread ",
                                            result.main_thread_id(), ")"))
               << std::flush;
    }
  }
  if (!plan.follow || started == nullptr) return any_failed ? kExitFailed : kExitOk;

  status = CopyProgramOutput(session, started->board(), started->program_id(), /*follow=*/true);
  if (!status.ok()) return session.Fail(status);
  return ExitByFinalState(session, started->board(), started->program_id());
}

// Throws CLI::ValidationError unless `file` is a readable regular file.
void RequireLocalFile(const std::string& file) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(file, error)) {
    throw CLI::ValidationError(absl::StrCat("FILE: ", file, " is not a readable file"));
  }
}

}  // namespace

void AddProgramCommands(CLI::App& app, Action& action, const std::vector<std::string>& program_args) {
  {
    auto words = std::make_shared<PushWords>();
    CLI::App* push = app.add_subcommand("push", "Write a file to the picked boards (all by default)");
    push->add_option("FILE", words->file, "Local file to push")->required();
    words->selector.AddTo(*push);
    push->add_option("--path", words->path, "Absolute path on the boards (default: /BASENAME)");
    push->add_flag("--force", words->force, "Write even to boards whose file already has this content");
    push->callback([&action, words] {
      RequireLocalFile(words->file);
      if (words->path.empty()) words->path = "/" + std::filesystem::path(words->file).filename().string();
      if (words->path.front() != '/')
        throw CLI::ValidationError("--path must be absolute, e.g. /app/main.py");
      fleet::v1::Selector selector = words->selector.Build();
      action = [words, selector](Session& session) { return PushCommand(session, *words, selector); };
    });
  }
  {
    auto words = std::make_shared<RunWords>();
    CLI::App* run = app.add_subcommand(
        "run",
        "Push FILE to /BASENAME on the picked boards and start it: run (BOARD | -l SEL | -b LIST) FILE "
        "[--follow] [--name N] [-- ARGS...]");
    run->add_option("WORDS", words->positionals, "[BOARD] FILE [-- ARGS...]");
    words->selector.AddTo(*run);
    run->add_flag("-f,--follow", words->follow, "Stream the output until the program ends (one board only)");
    run->add_option("--name", words->name, "Program name (default: the file name)");
    run->callback([&action, words, &program_args] {
      const bool has_selector = !words->selector.labels.empty() || !words->selector.boards.empty();
      const size_t file_index = has_selector ? 0 : 1;
      if (words->positionals.size() <= file_index) {
        throw CLI::ValidationError(has_selector
                                       ? "run: give the FILE to run"
                                       : "run: give BOARD and FILE (or pick boards with -l/-b, then FILE)");
      }
      RunPlan plan;
      plan.selector = words->selector.Build();
      if (!has_selector) plan.selector.add_boards(words->positionals[0]);
      plan.file = words->positionals[file_index];
      plan.args.assign(words->positionals.begin() + static_cast<long>(file_index) + 1,
                       words->positionals.end());
      plan.args.insert(plan.args.end(), program_args.begin(), program_args.end());
      RequireLocalFile(plan.file);
      plan.path = "/" + std::filesystem::path(plan.file).filename().string();
      plan.name = words->name;
      plan.follow = words->follow;
      if (plan.follow && plan.selector.boards_size() != 1) {
        throw CLI::ValidationError("--follow needs exactly one board: run BOARD FILE --follow, or -b NAME");
      }
      action = [plan](Session& session) { return RunCommand(session, plan); };
    });
  }
}

}  // namespace threadfleet::cli
