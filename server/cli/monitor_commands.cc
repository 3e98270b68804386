// fleetctl logs, health and events: watching the fleet.

#include <limits>
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

using fleet::v1::Event;

struct LogsPlan {
  std::string board;
  uint32_t program_id = 0;  // 0: the board's newest program
  bool follow = false;
};

int Logs(Session& session, LogsPlan plan) {
  if (plan.program_id == 0) {
    fleet::v1::BoardThreads threads;
    grpc::Status status = GetBoardThreads(session, plan.board, /*include_finished=*/true, threads);
    if (!status.ok()) return session.Fail(status);
    for (const board::v1::ProgramInfo& program : threads.programs()) {
      plan.program_id = std::max(plan.program_id, program.id());
    }
    if (plan.program_id == 0) {
      return session.Fail(absl::StrCat("NOT_FOUND: board ", plan.board, " lists no program (",
                                       BoardStateText(threads.state()), "); give a PROGRAM_ID"));
    }
  }
  grpc::Status status = CopyProgramOutput(session, plan.board, plan.program_id, plan.follow);
  if (!status.ok()) return session.Fail(status);
  return kExitOk;
}

std::string KindCell(const Event& event) {
  if (event.kind() == fleet::v1::EVENT_KIND_BOARD_EVENT && event.has_board_event()) {
    return BoardEventKindText(event.board_event().kind());
  }
  return EventKindText(event.kind());
}

std::string AnomaliesCell(const fleet::v1::BoardHealth& health) {
  if (health.anomalies().empty()) return "0";
  std::vector<std::string> kinds;
  for (const Event& event : health.anomalies()) kinds.push_back(KindCell(event));
  return absl::StrCat(health.anomalies_size(), " (", absl::StrJoin(kinds, ", "), ")");
}

int Health(Session& session, const fleet::v1::GetHealthRequest& request) {
  fleet::v1::GetHealthResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().GetHealth(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  Table table({"BOARD", "STATE", "UPTIME", "HEAP", "THREADS", "CPU", "ANOMALIES"});
  table.SetMaxWidth(6, 60);
  for (const fleet::v1::BoardHealth& health : response.boards()) {
    if (!health.has_snapshot()) {
      table.AddRow(
          {health.board(), BoardStateText(health.state()), "-", "-", "-", "-", AnomaliesCell(health)});
      continue;
    }
    const board::v1::HealthSnapshot& snapshot = health.snapshot();
    const board::v1::ThreadCounts& counts = snapshot.thread_counts();
    const uint32_t live = counts.running() + counts.sleeping() + counts.waiting_lock();
    table.AddRow({health.board(), BoardStateText(health.state()), FormatDuration(snapshot.uptime_us()),
                  FormatUsage(snapshot.heap().used_bytes(), snapshot.heap().total_bytes()),
                  absl::StrCat(live), FormatPercent(snapshot.cpu_usage_percent()), AnomaliesCell(health)});
  }
  session.out() << table.Render() << std::flush;
  return kExitOk;
}

std::vector<std::string> EventCells(const Event& event) {
  return {absl::StrCat(event.id()),
          FormatTimestamp(event.time()),
          event.board().empty() ? "-" : event.board(),
          SeverityText(event.severity()),
          KindCell(event),
          event.message()};
}

const std::vector<std::string>& EventHeaders() {
  static const auto* headers =
      new std::vector<std::string>{"ID", "TIME", "BOARD", "SEVERITY", "KIND", "MESSAGE"};
  return *headers;
}

struct EventsPlan {
  fleet::v1::Selector selector;
  uint64_t after_id = 0;
  fleet::v1::Severity min_severity = fleet::v1::SEVERITY_UNSPECIFIED;
  int32_t limit = 0;
  bool follow = false;
};

int ListEvents(Session& session, const EventsPlan& plan) {
  fleet::v1::ListEventsRequest request;
  *request.mutable_selector() = plan.selector;
  request.set_after_id(plan.after_id);
  request.set_min_severity(plan.min_severity);
  request.set_limit(plan.limit);
  fleet::v1::ListEventsResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ListEvents(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  Table table(EventHeaders());
  table.SetMaxWidth(5, 100);
  for (const Event& event : response.events()) table.AddRow(EventCells(event));
  session.out() << table.Render() << std::flush;
  return kExitOk;
}

// Follows WatchEvents until the stream ends, fleetd stops or `limit` events
// (if positive) were printed.
int WatchEvents(Session& session, const EventsPlan& plan) {
  fleet::v1::WatchEventsRequest request;
  *request.mutable_selector() = plan.selector;
  request.set_after_id(plan.after_id);
  request.set_min_severity(plan.min_severity);
  auto context = session.client().NewContext(CallKind::kFollow);
  auto reader = session.client().stub().WatchEvents(context.get(), request);
  const StreamingTable table(EventHeaders(), {6, 19, 6, 8, 14});
  if (!session.json()) session.out() << table.Header() << std::flush;
  int printed = 0;
  fleet::v1::WatchEventsResponse response;
  while (reader->Read(&response)) {
    if (session.json()) {
      session.PrintJson(response, JsonLayout::kLine);
    } else {
      session.out() << table.Row(EventCells(response.event())) << std::flush;
    }
    if (plan.limit > 0 && ++printed >= plan.limit) {
      context->TryCancel();
      reader->Finish();
      return kExitOk;
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return session.Fail(status);
  return kExitOk;
}

}  // namespace

void AddMonitorCommands(CLI::App& app, Action& action) {
  {
    struct Words {
      std::string board;
      std::string program;
      bool follow = false;
    };
    auto words = std::make_shared<Words>();
    CLI::App* logs =
        app.add_subcommand("logs", "Print a program's output (default: the board's newest program)");
    logs->add_option("BOARD", words->board, "Board name")->required();
    logs->add_option("PROGRAM_ID", words->program, "Program id");
    logs->add_flag("-f,--follow", words->follow, "Keep printing until the program ends");
    logs->callback([&action, words] {
      LogsPlan plan;
      plan.board = words->board;
      plan.follow = words->follow;
      if (!words->program.empty()) {
        auto id = ParseId(words->program, "PROGRAM_ID");
        ThrowUsageErrorUnlessOk(id.status());
        plan.program_id = *id;
      }
      action = [plan](Session& session) { return Logs(session, plan); };
    });
  }
  {
    auto selector = std::make_shared<SelectorFlags>();
    CLI::App* health =
        app.add_subcommand("health", "Show the latest health of the picked boards (all by default)");
    selector->AddTo(*health);
    health->callback([&action, selector] {
      fleet::v1::GetHealthRequest request;
      *request.mutable_selector() = selector->Build();
      action = [request](Session& session) { return Health(session, request); };
    });
  }
  {
    struct Words {
      SelectorFlags selector;
      uint64_t after_id = 0;
      std::string min_severity;
      int32_t limit = 0;
      bool follow = false;
    };
    auto words = std::make_shared<Words>();
    CLI::App* events = app.add_subcommand("events", "List stored events, oldest first; -f follows new ones");
    words->selector.AddTo(*events);
    events->add_option("--after", words->after_id, "Only events with a larger id");
    events->add_option("--min-severity", words->min_severity, "Only events at least this severe")
        ->check(CLI::IsMember({"info", "warning", "error"}));
    events->add_option("--limit", words->limit, "At most this many events (with -f: stop after them)")
        ->check(CLI::Range(0, std::numeric_limits<int32_t>::max()));
    events->add_flag("-f,--follow", words->follow, "Keep printing new events as they are stored");
    events->callback([&action, words] {
      EventsPlan plan;
      plan.selector = words->selector.Build();
      plan.after_id = words->after_id;
      plan.limit = words->limit;
      plan.follow = words->follow;
      if (words->min_severity == "info") plan.min_severity = fleet::v1::SEVERITY_INFO;
      if (words->min_severity == "warning") plan.min_severity = fleet::v1::SEVERITY_WARNING;
      if (words->min_severity == "error") plan.min_severity = fleet::v1::SEVERITY_ERROR;
      if (plan.follow) {
        action = [plan](Session& session) { return WatchEvents(session, plan); };
      } else {
        action = [plan](Session& session) { return ListEvents(session, plan); };
      }
    });
  }
}

}  // namespace threadfleet::cli
