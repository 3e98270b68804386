// fleetctl threads, kill and start: threads across the fleet.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/cli/commands.h"
#include "server/cli/format.h"
#include "server/cli/selector.h"
#include "server/cli/table.h"

namespace threadfleet::cli {
namespace {

using board::v1::ThreadInfo;

std::string WaitCell(const ThreadInfo& thread) {
  if (thread.waiting_lock_id() == 0) return "-";
  return absl::StrCat("lock ", thread.waiting_lock_id(), " for ", FormatDuration(thread.wait_time_us()));
}

int ListThreads(Session& session, const fleet::v1::ListThreadsRequest& request) {
  fleet::v1::ListThreadsResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ListThreads(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  Table table({"BOARD", "ID", "NAME", "PROGRAM", "STATE", "CPU", "STACK", "PEAK", "WAIT"});
  for (const fleet::v1::BoardThreads& board : response.boards()) {
    if (board.state() == fleet::v1::BOARD_STATE_OFFLINE && board.threads().empty()) {
      table.AddRow({board.board(), "-", "(offline)"});
      continue;
    }
    std::map<uint32_t, std::string> program_names;
    for (const board::v1::ProgramInfo& program : board.programs())
      program_names[program.id()] = program.name();
    for (const ThreadInfo& thread : board.threads()) {
      std::string program = "-";
      if (thread.program_id() != 0) {
        program = absl::StrCat(thread.program_id());
        if (auto it = program_names.find(thread.program_id()); it != program_names.end()) {
          absl::StrAppend(&program, " (", it->second, ")");
        }
      }
      table.AddRow({board.board(), absl::StrCat(thread.id()), thread.name(), program, ThreadStateText(thread),
                    FormatDuration(thread.cpu_time_us()),
                    FormatUsage(thread.stack_used_bytes(), thread.stack_size_bytes()),
                    FormatBytes(thread.stack_peak_bytes()), WaitCell(thread)});
    }
  }
  session.out() << table.Render() << std::flush;
  return kExitOk;
}

int KillThread(Session& session, const fleet::v1::KillThreadRequest& request) {
  fleet::v1::KillThreadResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().KillThread(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  const ThreadInfo& thread = response.thread();
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << request.board() << "/" << request.thread_id() << " " << ThreadStateText(thread)
                  << std::endl;
  }
  if (thread.unkillable()) {
    return session.Fail(
        absl::StrCat(request.board(), "/", request.thread_id(),
                     " is unkillable: still alive after the grace period (only a reset ends it)"));
  }
  return kExitOk;
}

int KillProgram(Session& session, const fleet::v1::KillProgramRequest& request) {
  fleet::v1::KillProgramResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().KillProgram(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << request.board() << " program " << request.program_id() << " "
                  << ProgramStateText(response.program().state()) << std::endl;
  }
  if (!response.unkillable_thread_ids().empty()) {
    return session.Fail(absl::StrCat(request.board(), " program ", request.program_id(), ": threads ",
                                     absl::StrJoin(response.unkillable_thread_ids(), ", "),
                                     " are unkillable (only a reset ends them)"));
  }
  return kExitOk;
}

int StartThread(Session& session, const fleet::v1::StartThreadRequest& request) {
  fleet::v1::StartThreadResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().StartThread(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << "started " << request.board() << "/" << response.thread_id() << " (program "
                  << response.program_id() << ")" << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddThreadCommands(CLI::App& app, Action& action) {
  {
    struct Words {
      SelectorFlags selector;
      bool all = false;
    };
    auto words = std::make_shared<Words>();
    CLI::App* threads =
        app.add_subcommand("threads", "List the threads of the picked boards (all by default)");
    words->selector.AddTo(*threads);
    threads->add_flag("-a,--all", words->all, "Also list ended threads the boards remember");
    threads->callback([&action, words] {
      fleet::v1::ListThreadsRequest request;
      *request.mutable_selector() = words->selector.Build();
      request.set_include_finished(words->all);
      action = [request](Session& session) { return ListThreads(session, request); };
    });
  }
  {
    struct Words {
      std::string target;
      std::string program;
      uint32_t grace_ms = 0;
    };
    auto words = std::make_shared<Words>();
    CLI::App* kill =
        app.add_subcommand("kill", "Kill a thread (BOARD/THREAD_ID) or a program (BOARD --program ID)");
    kill->add_option("TARGET", words->target, "BOARD/THREAD_ID, or BOARD with --program")->required();
    kill->add_option("--program", words->program, "Kill every thread of this program");
    kill->add_option("--grace", words->grace_ms,
                     "Milliseconds to wait for the threads to end (default: the board's)");
    kill->callback([&action, words] {
      if (!words->program.empty()) {
        if (words->target.find('/') != std::string::npos) {
          throw CLI::ValidationError("kill: give either BOARD/THREAD_ID or BOARD --program ID, not both");
        }
        auto id = ParseId(words->program, "--program");
        ThrowUsageErrorUnlessOk(id.status());
        fleet::v1::KillProgramRequest request;
        request.set_board(words->target);
        request.set_program_id(*id);
        request.set_grace_ms(words->grace_ms);
        action = [request](Session& session) { return KillProgram(session, request); };
        return;
      }
      auto ref = ParseThreadRef(words->target);
      ThrowUsageErrorUnlessOk(ref.status());
      fleet::v1::KillThreadRequest request;
      request.set_board(ref->board);
      request.set_thread_id(ref->thread_id);
      request.set_grace_ms(words->grace_ms);
      action = [request](Session& session) { return KillThread(session, request); };
    });
  }
  {
    struct Words {
      std::string board;
      std::string function;
      std::vector<std::string> args;
    };
    auto words = std::make_shared<Words>();
    CLI::App* start = app.add_subcommand("start", "Start MODULE.FUNC as a new thread on a board");
    start->add_option("BOARD", words->board, "Board name")->required();
    start->add_option("FUNCTION", words->function, "MODULE.FUNC, e.g. blink.run")->required();
    start->add_option("ARGS", words->args, "Arguments, each a Python literal (e.g. 3 \"'led'\")");
    start->callback([&action, words] {
      auto parts = ParseModuleFunction(words->function);
      ThrowUsageErrorUnlessOk(parts.status());
      fleet::v1::StartThreadRequest request;
      request.set_board(words->board);
      request.set_module(parts->first);
      request.set_function(parts->second);
      for (const std::string& arg : words->args) request.add_args(arg);
      action = [request](Session& session) { return StartThread(session, request); };
    });
  }
}

}  // namespace threadfleet::cli
