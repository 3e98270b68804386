// fleetctl board ls|get|add|rm|label|release: the inventory, and which
// boards jobs hold (reserved by a run) or skip (quarantined).

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/cli/commands.h"
#include "server/cli/format.h"
#include "server/cli/selector.h"
#include "server/cli/table.h"

namespace threadfleet::cli {
namespace {

using fleet::v1::Board;

// What jobs make of a board: "quarantined", "run 42", both, or "-".
std::string JobsCell(const Board& board) {
  std::vector<std::string> parts;
  if (board.has_quarantine()) parts.push_back("quarantined");
  if (board.reserved_by_run() != 0) parts.push_back(absl::StrCat("run ", board.reserved_by_run()));
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

// The link's reason, then the quarantine's.
std::string ReasonCell(const Board& board) {
  std::vector<std::string> parts;
  if (!board.state_reason().empty()) parts.push_back(board.state_reason());
  if (board.has_quarantine()) parts.push_back(absl::StrCat("quarantined: ", board.quarantine().reason()));
  return absl::StrJoin(parts, "; ");
}

// The real board it simulates (BoardInfo.profile); "-" until fleetd reached
// it, or for a board older than profiles.
std::string ProfileCell(const Board& board) {
  return board.info().profile().empty() ? "-" : board.info().profile();
}

int ListBoards(Session& session, const fleet::v1::ListBoardsRequest& request) {
  fleet::v1::ListBoardsResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ListBoards(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  const absl::Time now = absl::Now();
  Table table({"NAME", "ADDRESS", "STATE", "SINCE", "PROFILE", "JOBS", "LABELS", "ORIGIN", "REASON"});
  table.SetMaxWidth(8, 80);
  for (const Board& board : response.boards()) {
    table.AddRow({board.name(), board.address(), BoardStateText(board.state()),
                  FormatAge(board.state_since(), now), ProfileCell(board), JobsCell(board),
                  FormatLabels(board.labels()), BoardOriginText(board.origin()), ReasonCell(board)});
  }
  session.out() << table.Render() << std::flush;
  return kExitOk;
}

// A board as "Key: value" lines, the keys aligned.
std::string DescribeBoard(const Board& board) {
  std::vector<std::pair<std::string, std::string>> lines = {
      {"Name", board.name()},
      {"Address", board.address()},
      {"State",
       absl::StrCat(BoardStateText(board.state()), " (for ", FormatAge(board.state_since(), absl::Now()),
                    ", since ", FormatTimestamp(board.state_since()), ")")},
      {"Origin", BoardOriginText(board.origin())},
      {"Labels", board.labels().empty() ? "-" : FormatLabels(board.labels())},
  };
  if (!board.state_reason().empty()) lines.emplace_back("Reason", board.state_reason());
  if (board.has_quarantine()) {
    lines.emplace_back("Quarantined", absl::StrCat("since ", FormatTimestamp(board.quarantine().since()),
                                                   ": ", board.quarantine().reason(),
                                                   " (fleetctl board release ", board.name(), ")"));
  }
  if (board.reserved_by_run() != 0) {
    lines.emplace_back("Reserved by", absl::StrCat("run ", board.reserved_by_run()));
  }
  if (board.has_info()) {
    const board::v1::BoardInfo& info = board.info();
    lines.emplace_back(
        "Firmware", absl::StrCat(info.firmware_version(), " (MicroPython ", info.micropython_version(), ")"));
    lines.emplace_back("Profile", ProfileCell(board));
    lines.emplace_back("Uptime", FormatDuration(info.uptime_us()));
    lines.emplace_back("Heap", FormatBytes(info.heap_size_bytes()));
    lines.emplace_back("Max threads", absl::StrCat(info.max_threads()));
    lines.emplace_back("Flash", FormatUsage(info.flash_used_bytes(), info.flash_size_bytes()));
    lines.emplace_back("Output buffer", FormatBytes(info.output_buffer_bytes()));
  }
  size_t width = 0;
  for (const auto& [key, value] : lines) width = std::max(width, key.size());
  std::string text;
  for (const auto& [key, value] : lines) {
    absl::StrAppend(&text, key, ":", std::string(width - key.size() + 2, ' '), FitCell(value, 200), "\n");
  }
  return text;
}

int GetBoard(Session& session, const fleet::v1::GetBoardRequest& request) {
  fleet::v1::GetBoardResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().GetBoard(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << DescribeBoard(response.board()) << std::flush;
  }
  return kExitOk;
}

int AddBoard(Session& session, const fleet::v1::AddBoardRequest& request) {
  fleet::v1::AddBoardResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().AddBoard(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << "added board " << response.board().name() << " at " << response.board().address()
                  << std::endl;
  }
  return kExitOk;
}

int RemoveBoard(Session& session, const fleet::v1::RemoveBoardRequest& request) {
  fleet::v1::RemoveBoardResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().RemoveBoard(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << "removed board " << request.name() << std::endl;
  }
  return kExitOk;
}

int SetLabels(Session& session, const fleet::v1::SetLabelsRequest& request) {
  fleet::v1::SetLabelsResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().SetLabels(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    const std::string labels = FormatLabels(response.board().labels());
    session.out() << response.board().name() << " labels: " << (labels.empty() ? "(none)" : labels)
                  << std::endl;
  }
  return kExitOk;
}

int ReleaseBoard(Session& session, const fleet::v1::ReleaseBoardRequest& request) {
  fleet::v1::ReleaseBoardResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ReleaseBoard(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << "board " << response.board().name() << " is in service: jobs may pick it again"
                  << std::endl;
  }
  return kExitOk;
}

// Fills `labels` from "k=v" words; throws CLI::ValidationError on a bad one.
void AddLabels(const std::vector<std::string>& words,
               google::protobuf::Map<std::string, std::string>& labels) {
  for (const std::string& word : words) {
    auto label = ParseLabel(word);
    ThrowUsageErrorUnlessOk(label.status());
    labels[label->first] = label->second;
  }
}

}  // namespace

void AddBoardCommands(CLI::App& app, Action& action) {
  CLI::App* board = app.add_subcommand("board", "List, inspect and change the boards of the lab");
  board->require_subcommand(0, 1);

  {
    auto selector = std::make_shared<SelectorFlags>();
    CLI::App* ls = board->add_subcommand("ls", "List the boards a selector picks (all by default)");
    selector->AddTo(*ls);
    ls->callback([&action, selector] {
      fleet::v1::ListBoardsRequest request;
      *request.mutable_selector() = selector->Build();
      action = [request](Session& session) { return ListBoards(session, request); };
    });
  }
  {
    auto name = std::make_shared<std::string>();
    CLI::App* get = board->add_subcommand("get", "Show one board");
    get->alias("show");
    get->add_option("NAME", *name, "Board name")->required();
    get->callback([&action, name] {
      fleet::v1::GetBoardRequest request;
      request.set_name(*name);
      action = [request](Session& session) { return GetBoard(session, request); };
    });
  }
  {
    struct Words {
      std::string name, address;
      std::vector<std::string> labels;
    };
    auto words = std::make_shared<Words>();
    CLI::App* add = board->add_subcommand("add", "Add a board at run time (admin)");
    add->add_option("NAME", words->name, "Board name")->required();
    add->add_option("ADDRESS", words->address, "Where its control channel listens, HOST:PORT")->required();
    add->add_option("--label", words->labels, "A label k=v (repeatable)");
    add->callback([&action, words] {
      fleet::v1::AddBoardRequest request;
      request.set_name(words->name);
      request.set_address(words->address);
      AddLabels(words->labels, *request.mutable_labels());
      action = [request](Session& session) { return AddBoard(session, request); };
    });
  }
  {
    auto name = std::make_shared<std::string>();
    CLI::App* rm = board->add_subcommand("rm", "Remove a board added at run time (admin)");
    rm->add_option("NAME", *name, "Board name")->required();
    rm->callback([&action, name] {
      fleet::v1::RemoveBoardRequest request;
      request.set_name(*name);
      action = [request](Session& session) { return RemoveBoard(session, request); };
    });
  }
  {
    struct Words {
      std::string name;
      std::vector<std::string> set, remove;
    };
    auto words = std::make_shared<Words>();
    CLI::App* label =
        board->add_subcommand("label", "Set or remove labels of a board added at run time (admin)");
    label->add_option("NAME", words->name, "Board name")->required();
    label->add_option("LABELS", words->set, "Labels to set, k=v ...");
    label->add_option("--remove", words->remove, "Label keys to remove (repeatable)");
    label->callback([&action, words] {
      if (words->set.empty() && words->remove.empty()) {
        throw CLI::ValidationError("board label: give labels to set (k=v ...) or --remove KEY");
      }
      fleet::v1::SetLabelsRequest request;
      request.set_board(words->name);
      AddLabels(words->set, *request.mutable_set());
      for (const std::string& key : words->remove) request.add_remove(key);
      action = [request](Session& session) { return SetLabels(session, request); };
    });
  }
  {
    auto name = std::make_shared<std::string>();
    CLI::App* release =
        board->add_subcommand("release", "Take a quarantined board back into service for jobs (operator)");
    release->add_option("NAME", *name, "Board name")->required();
    release->callback([&action, name] {
      fleet::v1::ReleaseBoardRequest request;
      request.set_name(*name);
      action = [request](Session& session) { return ReleaseBoard(session, request); };
    });
  }
}

}  // namespace threadfleet::cli
