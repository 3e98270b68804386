#include "server/fleetd/inventory/inventory.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/common/host_port.h"
#include "server/common/quoted_input.h"
#include "server/common/read_text_file.h"

namespace threadfleet::fleetd {
namespace {

constexpr size_t kMaxBoardNameChars = 64;
constexpr size_t kMaxLabelChars = 63;

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}
bool IsLabelChar(char c) { return IsNameChar(c) || c == '/'; }

absl::Status ValidateLabelPart(absl::string_view what, absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (text.size() > kMaxLabelChars) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", common::QuoteInput(text), " is longer than ", kMaxLabelChars, " characters"));
  }
  if (!std::all_of(text.begin(), text.end(), IsLabelChar)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " ", common::QuoteInput(text), " may only contain letters, digits, '.', '_', '-' and '/'"));
  }
  return absl::OkStatus();
}

// Line numbers of yaml-cpp marks are 0-based; people count from 1.
std::string Where(absl::string_view file_name, const YAML::Node& node) {
  if (node.Mark().is_null()) return std::string(file_name);
  return absl::StrCat(file_name, ":", node.Mark().line + 1);
}

absl::StatusOr<Labels> ParseLabels(const YAML::Node& node, absl::string_view where) {
  Labels labels;
  if (!node || node.IsNull()) return labels;
  if (!node.IsMap())
    return absl::InvalidArgumentError(absl::StrCat(where, "labels must be a map of key: value"));
  for (const auto& entry : node) {
    if (!entry.first.IsScalar() || !entry.second.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "labels must be a map of key: value"));
    }
    std::string key = entry.first.Scalar();
    std::string value = entry.second.Scalar();
    if (absl::Status s = ValidateLabel(key, value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, s.message()));
    }
    labels.emplace(std::move(key), std::move(value));
  }
  return labels;
}

// One entry of `boards:`. `index` is 1-based, for entries without a name.
absl::StatusOr<BoardRecord> ParseBoardEntry(const YAML::Node& entry, size_t index,
                                            absl::string_view file_name) {
  std::string at = Where(file_name, entry);
  if (!entry.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(at, ": board entry ", index, " must be a map with name, address and labels"));
  }
  const YAML::Node name = entry["name"];
  if (!name || !name.IsScalar() || name.Scalar().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(at, ": board entry ", index, " has no name"));
  }
  BoardRecord board{.name = name.Scalar(), .origin = threadfleet::fleet::v1::BOARD_ORIGIN_LAB_FILE};
  std::string prefix = absl::StrCat(at, ": board ", board.name, ": ");
  if (absl::Status s = ValidateBoardName(board.name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, s.message()));
  }
  for (const auto& field : entry) {
    std::string key = field.first.IsScalar() ? field.first.Scalar() : "";
    if (key != "name" && key != "address" && key != "labels") {
      return absl::InvalidArgumentError(absl::StrCat(Where(file_name, field.first), ": board ", board.name,
                                                     ": unknown key \"", key,
                                                     "\" (expected name, address, labels)"));
    }
  }
  const YAML::Node address = entry["address"];
  if (!address || !address.IsScalar() || address.Scalar().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "missing address (host:port)"));
  }
  board.address = address.Scalar();
  if (absl::Status s = ValidateAddress(board.address); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(file_name, address), ": board ", board.name, ": ", s.message()));
  }
  absl::StatusOr<Labels> labels = ParseLabels(entry["labels"], prefix);
  if (!labels.ok()) return labels.status();
  board.labels = *std::move(labels);
  return board;
}

}  // namespace

absl::Status ValidateBoardName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("board name is empty");
  if (name.size() > kMaxBoardNameChars) {
    return absl::InvalidArgumentError(absl::StrCat("board name ", common::QuoteInput(name),
                                                   " is longer than ", kMaxBoardNameChars, " characters"));
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name[0])) ||
      !std::all_of(name.begin(), name.end(), IsNameChar)) {
    return absl::InvalidArgumentError(
        absl::StrCat("board name ", common::QuoteInput(name),
                     " must start with a letter or digit and contain only letters, digits, '.', '_', '-'"));
  }
  return absl::OkStatus();
}

absl::Status ValidateAddress(absl::string_view address) { return common::ParseHostPort(address).status(); }

absl::Status ValidateLabel(absl::string_view key, absl::string_view value) {
  if (absl::Status s = ValidateLabelPart("label key", key); !s.ok()) return s;
  return ValidateLabelPart(absl::StrCat("label ", key, ": value"), value);  // key checked above
}

absl::StatusOr<LabelSelector> LabelSelector::Parse(absl::string_view text) {
  LabelSelector selector;
  if (absl::StripAsciiWhitespace(text).empty()) return selector;
  int number = 0;
  for (absl::string_view term : absl::StrSplit(text, ',')) {
    ++number;
    term = absl::StripAsciiWhitespace(term);
    auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("label selector ", common::QuoteInput(text), ": term ",
                                                     number, " (", common::QuoteInput(term), ") ", what));
    };
    if (term.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("label selector ", common::QuoteInput(text), ": term ", number,
                       " is empty; write key=value or key!=value, separated by commas"));
    }
    Term parsed;
    size_t op = term.find("!=");
    size_t op_size = 2;
    parsed.equal = op == absl::string_view::npos;
    if (parsed.equal) {
      op = term.find('=');
      op_size = 1;
    }
    if (op == absl::string_view::npos) return error("has no \"=\" or \"!=\"; write key=value or key!=value");
    parsed.key = std::string(absl::StripAsciiWhitespace(term.substr(0, op)));
    parsed.value = std::string(absl::StripAsciiWhitespace(term.substr(op + op_size)));
    if (parsed.key.empty()) return error("has an empty key");
    if (parsed.value.empty()) return error("has an empty value");
    if (absl::Status s = ValidateLabel(parsed.key, parsed.value); !s.ok()) return error(s.message());
    selector.terms_.push_back(std::move(parsed));
  }
  return selector;
}

bool LabelSelector::Matches(const Labels& labels) const {
  return std::all_of(terms_.begin(), terms_.end(), [&](const Term& term) {
    auto it = labels.find(term.key);
    bool has_value = it != labels.end() && it->second == term.value;
    return has_value == term.equal;
  });
}

absl::StatusOr<std::vector<BoardRecord>> ParseLabFile(absl::string_view text, absl::string_view file_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  std::vector<BoardRecord> boards;
  if (!root || root.IsNull()) return boards;
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(file_name, root), ": expected a map with a `boards` list"));
  }
  for (const auto& entry : root) {
    std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "";
    if (key != "boards") {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(file_name, entry.first), ": unknown key \"", key, "\" (expected boards)"));
    }
  }
  const YAML::Node list = root["boards"];
  if (!list || list.IsNull()) return boards;
  if (!list.IsSequence()) {
    return absl::InvalidArgumentError(absl::StrCat(Where(file_name, list), ": `boards` must be a list"));
  }
  std::map<std::string, int, std::less<>> first_line;
  size_t index = 0;
  for (const YAML::Node& entry : list) {
    absl::StatusOr<BoardRecord> board = ParseBoardEntry(entry, ++index, file_name);
    if (!board.ok()) return board.status();
    int line = entry.Mark().line + 1;
    auto [it, inserted] = first_line.emplace(board->name, line);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(file_name, ":", line, ": board ", board->name,
                                                     " is defined twice (first at line ", it->second, ")"));
    }
    boards.push_back(*std::move(board));
  }
  return boards;
}

absl::StatusOr<std::vector<BoardRecord>> ReadLabFile(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadTextFile(path, "lab file");
  if (!text.ok()) return text.status();
  return ParseLabFile(*text, path);
}

absl::StatusOr<std::unique_ptr<Inventory>> Inventory::Open(Store& store, std::vector<BoardRecord> lab_boards,
                                                           absl::Time now) {
  absl::StatusOr<std::vector<BoardRecord>> stored = store.ListBoards();
  if (!stored.ok()) return stored.status();
  absl::flat_hash_map<std::string, absl::Time> added;
  for (const BoardRecord& board : *stored) added.emplace(board.name, board.add_time);
  for (BoardRecord& board : lab_boards) {
    auto it = added.find(board.name);
    board.add_time = it != added.end() ? it->second : now;
  }
  if (absl::Status s = store.ReplaceLabFileBoards(lab_boards); !s.ok()) return s;
  return std::unique_ptr<Inventory>(new Inventory(store));
}

absl::StatusOr<std::vector<BoardRecord>> Inventory::Select(const threadfleet::fleet::v1::Selector& selector) {
  absl::StatusOr<LabelSelector> labels = LabelSelector::Parse(selector.labels());
  if (!labels.ok()) return labels.status();
  absl::StatusOr<std::vector<BoardRecord>> boards = store_.ListBoards();
  if (!boards.ok()) return boards.status();
  if (selector.boards().empty()) {
    std::erase_if(*boards, [&](const BoardRecord& board) { return !labels->Matches(board.labels); });
    return boards;
  }
  absl::flat_hash_set<absl::string_view> known;
  for (const BoardRecord& board : *boards) known.insert(board.name);
  std::vector<absl::string_view> unknown;
  for (const std::string& name : selector.boards()) {
    if (!known.contains(name)) unknown.push_back(name);
  }
  if (!unknown.empty()) {
    // A few names, each cut short: the list comes from the caller.
    constexpr size_t kNamesShown = 5;
    std::vector<std::string> shown;
    for (size_t i = 0; i < unknown.size() && i < kNamesShown; ++i)
      shown.push_back(common::QuoteInput(unknown[i]));
    return absl::NotFoundError(absl::StrCat(
        unknown.size() == 1 ? "no board named " : "no boards named ", absl::StrJoin(shown, ", "),
        unknown.size() > kNamesShown ? absl::StrCat(" and ", unknown.size() - kNamesShown, " more") : ""));
  }
  absl::flat_hash_set<absl::string_view> named(selector.boards().begin(), selector.boards().end());
  std::erase_if(*boards, [&](const BoardRecord& board) {
    return !named.contains(board.name) || !labels->Matches(board.labels);
  });
  return boards;
}

absl::StatusOr<BoardRecord> Inventory::Get(absl::string_view name) { return store_.GetBoard(name); }

absl::StatusOr<BoardRecord> Inventory::Add(absl::string_view name, absl::string_view address, Labels labels,
                                           absl::Time now) {
  if (absl::Status s = ValidateBoardName(name); !s.ok()) return s;
  if (absl::Status s = ValidateAddress(address); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("board ", name, ": ", s.message()));
  }
  for (const auto& [key, value] : labels) {
    if (absl::Status s = ValidateLabel(key, value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("board ", name, ": ", s.message()));
    }
  }
  BoardRecord board{.name = std::string(name),
                    .address = std::string(address),
                    .labels = std::move(labels),
                    .origin = threadfleet::fleet::v1::BOARD_ORIGIN_RUNTIME,
                    .add_time = now};
  absl::MutexLock lock(&mu_);
  absl::StatusOr<BoardRecord> existing = store_.GetBoard(name);
  if (existing.ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("board ", name, " exists already (address ", existing->address, ")"));
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();
  if (absl::Status s = store_.PutBoard(board); !s.ok()) return s;
  return board;
}

absl::StatusOr<BoardRecord> Inventory::GetMutable(absl::string_view name) {
  absl::StatusOr<BoardRecord> board = store_.GetBoard(name);
  if (!board.ok()) return board.status();
  if (board->origin == threadfleet::fleet::v1::BOARD_ORIGIN_LAB_FILE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "board ", name, " is defined in lab.yaml; edit the file and restart fleetd to change it"));
  }
  return board;
}

absl::Status Inventory::Remove(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  if (absl::StatusOr<BoardRecord> board = GetMutable(name); !board.ok()) return board.status();
  return store_.DeleteBoard(name);
}

absl::StatusOr<BoardRecord> Inventory::SetLabels(absl::string_view name, const Labels& set,
                                                 const std::vector<std::string>& remove) {
  for (const auto& [key, value] : set) {
    if (absl::Status s = ValidateLabel(key, value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("board ", common::QuoteInput(name), ": ", s.message()));
    }
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<BoardRecord> board = GetMutable(name);
  if (!board.ok()) return board.status();
  for (const std::string& key : remove) board->labels.erase(key);
  for (const auto& [key, value] : set) board->labels[key] = value;
  if (absl::Status s = store_.PutBoard(*board); !s.ok()) return s;
  return board;
}

}  // namespace threadfleet::fleetd
