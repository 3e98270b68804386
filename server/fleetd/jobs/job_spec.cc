#include "server/fleetd/jobs/job_spec.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/common/machine_input.h"
#include "server/common/quoted_input.h"
#include "server/fleetd/inventory/inventory.h"

namespace threadfleet::fleetd::jobs {
namespace {

using common::QuoteInput;

// Bounds on the YAML itself, whatever the spec's limits: the deepest real
// spec nests 6 levels (top, steps, step, expect, metric list, metric), the
// largest a few thousand nodes (64 steps of 32 args).
constexpr int kMaxDepth = 16;
constexpr size_t kMaxNodes = 8192;
constexpr size_t kMaxNameChars = 64;
constexpr size_t kMaxPathChars = 255;
constexpr size_t kMaxArgBytes = 1024;
constexpr size_t kMaxDescriptionBytes = 4096;
constexpr size_t kMaxUrlBytes = 2048;
constexpr int kMaxBoardCount = 100000;

// ---- The YAML tree: built from yaml-cpp's events, so anchors, aliases and
// tags are refused where they appear and depth and size are bounded while
// yaml-cpp parses (it recurses once per nesting level).

struct YamlNode {
  enum class Kind { kNull, kScalar, kSequence, kMap };
  Kind kind = Kind::kNull;
  SpecLocation location;
  std::string scalar;
  // A sequence's items; a map's keys and values in turn (key, value, key,
  // value, ...): a vector of pairs would need YamlNode complete.
  std::vector<YamlNode> items;

  size_t map_size() const { return items.size() / 2; }
  const YamlNode& key(size_t i) const { return items[2 * i]; }
  const YamlNode& value(size_t i) const { return items[2 * i + 1]; }
};

// Thrown out of the event handler to stop yaml-cpp at once; caught in
// ParseJobSpec.
struct YamlRefusal {
  SpecLocation location;
  std::string message;
};

SpecLocation LocationOf(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return {.line = mark.line + 1, .column = mark.column + 1};
}

// Tags yaml-cpp reports for untagged nodes: "?" (plain) and "!" (quoted).
bool IsUntagged(const std::string& tag) { return tag.empty() || tag == "?" || tag == "!"; }

class TreeBuilder : public YAML::EventHandler {
 public:
  YamlNode& root() { return root_; }
  bool has_document() const { return documents_ > 0; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1)
      throw YamlRefusal{LocationOf(mark), "a spec is one YAML document ('---' starts a second)"};
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    RefuseAnchor(mark, anchor);
    Add(YamlNode{.kind = YamlNode::Kind::kNull, .location = LocationOf(mark)});
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    throw YamlRefusal{LocationOf(mark), "aliases (*name) are not allowed in a spec; write the value out"};
  }
  void OnAnchor(const YAML::Mark& mark, const std::string&) override { RefuseAnchor(mark, 1); }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    RefuseAnchor(mark, anchor);
    RefuseTag(mark, tag);
    Add(YamlNode{.kind = YamlNode::Kind::kScalar, .location = LocationOf(mark), .scalar = value});
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, tag, anchor, YamlNode::Kind::kSequence);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, tag, anchor, YamlNode::Kind::kMap);
  }
  void OnMapEnd() override { Close(); }

 private:
  void RefuseAnchor(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) {
      throw YamlRefusal{LocationOf(mark), "anchors (&name) are not allowed in a spec; write the value out"};
    }
  }
  void RefuseTag(const YAML::Mark& mark, const std::string& tag) {
    if (!IsUntagged(tag)) {
      throw YamlRefusal{LocationOf(mark),
                        absl::StrCat("tags (", QuoteInput(tag), ") are not allowed in a spec")};
    }
  }
  void Count(const YAML::Mark& mark) {
    if (++nodes_ > kMaxNodes) {
      throw YamlRefusal{LocationOf(mark), absl::StrCat("the spec has more than ", kMaxNodes, " YAML nodes")};
    }
  }
  void Open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, YamlNode::Kind kind) {
    RefuseAnchor(mark, anchor);
    RefuseTag(mark, tag);
    Count(mark);
    if (open_.size() >= static_cast<size_t>(kMaxDepth)) {
      throw YamlRefusal{LocationOf(mark), absl::StrCat("the spec nests deeper than ", kMaxDepth, " levels")};
    }
    open_.push_back(YamlNode{.kind = kind, .location = LocationOf(mark)});
  }
  void Close() {
    YamlNode done = std::move(open_.back());
    open_.pop_back();
    Place(std::move(done));
  }
  void Add(YamlNode node) {
    Count(YAML::Mark::null_mark());
    Place(std::move(node));
  }
  // Puts a finished node into the open collection, or makes it the root.
  void Place(YamlNode node) {
    if (open_.empty()) {
      root_ = std::move(node);
      return;
    }
    open_.back().items.push_back(std::move(node));
  }

  YamlNode root_;
  std::vector<YamlNode> open_;
  size_t nodes_ = 0;
  int documents_ = 0;
};

// ---- Messages

// A key as messages quote it: 'name' when it is a short printable word,
// QuoteInput's escaped form otherwise.
std::string QuoteKey(absl::string_view key) {
  const bool plain =
      !key.empty() && key.size() <= kMaxNameChars && std::all_of(key.begin(), key.end(), [](char c) {
        return absl::ascii_isgraph(static_cast<unsigned char>(c)) && c != '\'';
      });
  return plain ? absl::StrCat("'", key, "'") : QuoteInput(key);
}

// ---- Reading the tree against the grammar

class SpecReader {
 public:
  SpecReader(absl::string_view spec_file, const JobSpecLimits& limits) : file_(spec_file), limits_(limits) {}

  absl::Status Error(const YamlNode& node, absl::string_view path, absl::string_view message) const {
    return Error(node.location, path, message);
  }
  absl::Status Error(SpecLocation location, absl::string_view path, absl::string_view message) const {
    return absl::InvalidArgumentError(SpecMessage(
        file_, location, path.empty() ? std::string(message) : absl::StrCat(path, ": ", message)));
  }

  absl::string_view file() const { return file_; }
  const JobSpecLimits& limits() const { return limits_; }

 private:
  absl::string_view file_;
  const JobSpecLimits& limits_;
};

// One YAML map read against its known keys: an unknown or repeated key is an
// error pointing at the key.
class MapReader {
 public:
  MapReader(const SpecReader& reader, const YamlNode& node, std::string path)
      : reader_(reader), node_(node), path_(std::move(path)) {}

  absl::Status Check(const std::vector<absl::string_view>& known) {
    if (node_.kind != YamlNode::Kind::kMap) {
      return reader_.Error(node_, path_.empty() ? "spec" : path_,
                           absl::StrCat("must be a map (known keys: ", absl::StrJoin(known, ", "), ")"));
    }
    for (size_t i = 0; i < node_.map_size(); ++i) {
      const YamlNode& key = node_.key(i);
      const YamlNode& value = node_.value(i);
      if (key.kind != YamlNode::Kind::kScalar) return reader_.Error(key, path_, "keys must be plain names");
      if (std::find(known.begin(), known.end(), key.scalar) == known.end()) {
        return reader_.Error(
            key, path_.empty() ? "spec" : path_,
            absl::StrCat("unknown key ", QuoteKey(key.scalar), " (known: ", absl::StrJoin(known, ", "), ")"));
      }
      if (!values_.emplace(key.scalar, Entry{&key, &value}).second) {
        return reader_.Error(key, Path(key.scalar), "is given twice");
      }
    }
    return absl::OkStatus();
  }

  const YamlNode* Find(absl::string_view key) const {
    auto it = values_.find(std::string(key));
    return it == values_.end() ? nullptr : it->second.value;
  }
  bool Has(absl::string_view key) const { return Find(key) != nullptr; }
  // Where a value is; its key's place for an empty value (which has none).
  SpecLocation LocationOf(absl::string_view key) const {
    const Entry& entry = values_.at(std::string(key));
    return entry.value->location.line != 0 ? entry.value->location : entry.key->location;
  }
  SpecLocation location() const { return node_.location; }

  std::string Path(absl::string_view key) const {
    return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", key);
  }

  absl::Status Error(absl::string_view key, absl::string_view message) const {
    return reader_.Error(LocationOf(key), Path(key), message);
  }
  absl::Status Missing(absl::string_view key) const {
    return reader_.Error(node_.location, Path(key), "missing (required)");
  }

  // A scalar (a string, whatever YAML would make of it): required, or
  // absent leaving `out` as it is.
  absl::Status String(absl::string_view key, bool required, size_t max_bytes, std::string& out) const {
    const YamlNode* value = Find(key);
    if (value == nullptr) return required ? Missing(key) : absl::OkStatus();
    if (value->kind != YamlNode::Kind::kScalar || value->scalar.empty()) {
      return Error(key, "must be a non-empty string");
    }
    if (value->scalar.size() > max_bytes) {
      return Error(key,
                   absl::StrCat("is ", value->scalar.size(), " bytes, more than the limit of ", max_bytes));
    }
    out = value->scalar;
    return absl::OkStatus();
  }

  absl::Status Bool(absl::string_view key, bool& out) const {
    const YamlNode* value = Find(key);
    if (value == nullptr) return absl::OkStatus();
    const std::string text =
        value->kind == YamlNode::Kind::kScalar ? absl::AsciiStrToLower(value->scalar) : "";
    if (text == "true") {
      out = true;
    } else if (text == "false") {
      out = false;
    } else {
      return Error(key, "must be true or false");
    }
    return absl::OkStatus();
  }

  absl::Status Integer(absl::string_view key, int64_t min, int64_t max, int64_t& out) const {
    const YamlNode* value = Find(key);
    if (value == nullptr) return absl::OkStatus();
    int64_t parsed = 0;
    if (value->kind != YamlNode::Kind::kScalar || !absl::SimpleAtoi(value->scalar, &parsed) || parsed < min ||
        parsed > max) {
      return Error(key, absl::StrCat("must be an integer from ", min, " to ", max));
    }
    out = parsed;
    return absl::OkStatus();
  }
  absl::Status Int(absl::string_view key, int min, int max, int& out) const {
    int64_t wide = out;
    if (absl::Status s = Integer(key, min, max, wide); !s.ok()) return s;
    out = static_cast<int>(wide);
    return absl::OkStatus();
  }

  absl::Status Number(absl::string_view key, std::optional<double>& out) const {
    const YamlNode* value = Find(key);
    if (value == nullptr) return absl::OkStatus();
    double parsed = 0;
    if (value->kind != YamlNode::Kind::kScalar || !absl::SimpleAtod(value->scalar, &parsed) ||
        !std::isfinite(parsed)) {
      return Error(key, "must be a number");
    }
    out = parsed;
    return absl::OkStatus();
  }

  // A duration ("500ms", "30s", "2m", "1h", "1m30s") in (0, max] (or
  // [0, max] with `zero_ok`).
  absl::Status Duration(absl::string_view key, absl::Duration max, bool zero_ok, absl::Duration& out) const;

  const SpecReader& reader() const { return reader_; }

 private:
  struct Entry {
    const YamlNode* key;
    const YamlNode* value;
  };
  const SpecReader& reader_;
  const YamlNode& node_;
  std::string path_;
  std::map<std::string, Entry> values_;
};

// Durations: one or more NUMBER UNIT with units h, m, s, ms, each at most
// once, largest first. Nullopt when `text` is not one.
std::optional<absl::Duration> ParseDurationText(absl::string_view text) {
  static constexpr std::pair<absl::string_view, int64_t> kUnits[] = {
      {"h", 3600 * 1000}, {"ms", 1}, {"m", 60 * 1000}, {"s", 1000}};
  auto rank = [](absl::string_view unit) { return unit == "h" ? 0 : unit == "m" ? 1 : unit == "s" ? 2 : 3; };
  int64_t millis = 0;
  int last_rank = -1;
  size_t i = 0;
  if (text.empty()) return std::nullopt;
  while (i < text.size()) {
    size_t digits = 0;
    int64_t number = 0;
    while (i < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
      if (++digits > 9) return std::nullopt;
      number = number * 10 + (text[i] - '0');
      ++i;
    }
    if (digits == 0) return std::nullopt;
    bool matched = false;
    for (const auto& [unit, unit_millis] : kUnits) {
      if (text.substr(i, unit.size()) != unit) continue;
      if (rank(unit) <= last_rank) return std::nullopt;
      last_rank = rank(unit);
      millis += number * unit_millis;
      i += unit.size();
      matched = true;
      break;
    }
    if (!matched) return std::nullopt;
  }
  return absl::Milliseconds(millis);
}

std::string FormatLimit(absl::Duration d) { return absl::FormatDuration(d); }

absl::Status MapReader::Duration(absl::string_view key, absl::Duration max, bool zero_ok,
                                 absl::Duration& out) const {
  const YamlNode* value = Find(key);
  if (value == nullptr) return absl::OkStatus();
  std::optional<absl::Duration> parsed;
  if (value->kind == YamlNode::Kind::kScalar) parsed = ParseDurationText(value->scalar);
  if (!parsed.has_value()) {
    return Error(key, "must be a duration such as 500ms, 30s, 2m, 1h or 1m30s");
  }
  if (*parsed > max || (!zero_ok && *parsed == absl::ZeroDuration())) {
    return Error(
        key, absl::StrCat("must be ", zero_ok ? "at most " : "more than 0 and at most ", FormatLimit(max)));
  }
  out = *parsed;
  return absl::OkStatus();
}

// Sizes: a plain integer of bytes, or with k (1024) or M (1024 * 1024).
std::optional<int64_t> ParseSizeText(absl::string_view text) {
  int64_t multiplier = 1;
  if (absl::ConsumeSuffix(&text, "k") || absl::ConsumeSuffix(&text, "K")) {
    multiplier = 1024;
  } else if (absl::ConsumeSuffix(&text, "M")) {
    multiplier = 1024 * 1024;
  }
  if (text.empty() || text.size() > 12 || !std::all_of(text.begin(), text.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c));
      })) {
    return std::nullopt;
  }
  int64_t number = 0;
  if (!absl::SimpleAtoi(text, &number)) return std::nullopt;
  return number * multiplier;
}

bool IsJobNameChar(char c) {
  return absl::ascii_islower(static_cast<unsigned char>(c)) ||
         absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-';
}
bool IsProgramNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

// A path as a job names it: '/'-separated parts of printable characters,
// none empty, "." or "..". Returns what is wrong, or "".
std::string PathProblem(absl::string_view path) {
  if (path.size() > kMaxPathChars) return absl::StrCat("is longer than ", kMaxPathChars, " characters");
  for (char c : path) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c)) || c == '\\') {
      return "may contain only printable characters other than spaces and '\\'";
    }
  }
  absl::string_view rest = path;
  absl::ConsumePrefix(&rest, "/");
  for (absl::string_view part : absl::StrSplit(rest, '/')) {
    if (part == "..") return "must not contain '..'";
    if (part.empty() || part == ".") return "must not contain empty or '.' parts";
  }
  return "";
}

// ---- Sections

absl::Status ReadBoards(const SpecReader& reader, const YamlNode& node, JobSpec& spec) {
  MapReader boards(reader, node, "boards");
  if (absl::Status s = boards.Check({"selector", "names", "count", "on_busy"}); !s.ok()) return s;
  spec.boards_location = node.location;
  if (absl::Status s = boards.String("selector", false, 1024, spec.selector); !s.ok()) return s;
  if (boards.Has("selector")) {
    if (absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(spec.selector); !selector.ok()) {
      return boards.Error("selector", selector.status().message());
    }
  }
  if (const YamlNode* names = boards.Find("names"); names != nullptr) {
    if (names->kind != YamlNode::Kind::kSequence || names->items.empty()) {
      return boards.Error("names", "must be a list of board names");
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < names->items.size(); ++i) {
      const YamlNode& item = names->items[i];
      const std::string path = absl::StrCat("boards.names[", i, "]");
      if (item.kind != YamlNode::Kind::kScalar) return reader.Error(item, path, "must be a board name");
      if (absl::Status s = ValidateBoardName(item.scalar); !s.ok())
        return reader.Error(item, path, s.message());
      if (!seen.insert(item.scalar).second) {
        return reader.Error(item, path, absl::StrCat("board ", QuoteInput(item.scalar), " is listed twice"));
      }
      spec.board_names.push_back(item.scalar);
    }
  }
  if (!boards.Has("selector") && !boards.Has("names")) {
    return reader.Error(node, "boards", "needs a selector, names, or both");
  }
  if (const YamlNode* count = boards.Find("count"); count != nullptr) {
    if (count->kind == YamlNode::Kind::kScalar && count->scalar == "all") {
      spec.count = 0;
    } else {
      int64_t n = 0;
      if (count->kind != YamlNode::Kind::kScalar || !absl::SimpleAtoi(count->scalar, &n) || n < 1 ||
          n > kMaxBoardCount) {
        return boards.Error("count", absl::StrCat("must be all or an integer from 1 to ", kMaxBoardCount));
      }
      spec.count = static_cast<int>(n);
      if (!boards.Has("selector") && static_cast<size_t>(n) > spec.board_names.size()) {
        return boards.Error("count", absl::StrCat(n, " is more than the ", spec.board_names.size(),
                                                  " boards boards.names lists"));
      }
    }
  }
  if (const YamlNode* on_busy = boards.Find("on_busy"); on_busy != nullptr) {
    if (on_busy->kind == YamlNode::Kind::kScalar &&
        (on_busy->scalar == "wait" || on_busy->scalar == "fail")) {
      spec.fail_when_busy = on_busy->scalar == "fail";
    } else {
      return boards.Error("on_busy", "must be wait or fail");
    }
  }
  return absl::OkStatus();
}

absl::Status ReadRollout(const SpecReader& reader, const YamlNode& node, JobSpec& spec) {
  MapReader rollout(reader, node, "rollout");
  if (absl::Status s = rollout.Check({"max_boards_at_once"}); !s.ok()) return s;
  if (!rollout.Has("max_boards_at_once")) return rollout.Missing("max_boards_at_once");
  return rollout.Int("max_boards_at_once", 1, kMaxBoardCount, spec.max_boards_at_once);
}

absl::Status ReadAbort(const SpecReader& reader, const YamlNode& node, JobSpec& spec) {
  MapReader abort(reader, node, "abort");
  if (absl::Status s = abort.Check({"failed_percent", "min_boards"}); !s.ok()) return s;
  JobSpec::Abort rule;
  std::optional<double> percent;
  if (absl::Status s = abort.Number("failed_percent", percent); !s.ok()) return s;
  if (!percent.has_value()) return abort.Missing("failed_percent");
  if (*percent <= 0 || *percent > 100)
    return abort.Error("failed_percent", "must be more than 0 and at most 100");
  rule.failed_percent = *percent;
  if (absl::Status s = abort.Int("min_boards", 1, kMaxBoardCount, rule.min_boards); !s.ok()) return s;
  spec.abort = rule;
  return absl::OkStatus();
}

// http://HOST[:PORT][/PATH]. Returns what is wrong, or "".
std::string UrlProblem(absl::string_view url) {
  if (absl::StartsWithIgnoreCase(url, "https://")) {
    return "https is not supported: fleetd posts over plain http (point it at a relay on a trusted network)";
  }
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) return "must start with http://";
  for (char c : url) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c)))
      return "must not contain spaces or control characters";
  }
  const absl::string_view authority = rest.substr(0, rest.find('/'));
  if (authority.empty()) return "has no host";
  if (absl::StrContains(authority, '@')) return "must not carry credentials (user@host)";
  absl::string_view host = authority;
  if (size_t colon = authority.rfind(':'); colon != absl::string_view::npos && authority.back() != ']') {
    host = authority.substr(0, colon);
    int port = 0;
    if (!absl::SimpleAtoi(authority.substr(colon + 1), &port) || port < 1 || port > 65535) {
      return "has a port that is not 1-65535";
    }
  }
  if (host.empty()) return "has no host";
  return "";
}

absl::Status ReadNotify(const SpecReader& reader, const YamlNode& node, JobSpec& spec) {
  MapReader notify(reader, node, "notify");
  if (absl::Status s = notify.Check({"url", "on", "timeout", "retries"}); !s.ok()) return s;
  NotifySpec out;
  if (absl::Status s = notify.String("url", true, kMaxUrlBytes, out.url); !s.ok()) return s;
  if (std::string problem = UrlProblem(out.url); !problem.empty()) return notify.Error("url", problem);
  static const std::vector<absl::string_view> kEndStates = {"passed", "failed", "error", "cancelled"};
  if (const YamlNode* on = notify.Find("on"); on != nullptr) {
    if (on->kind != YamlNode::Kind::kSequence || on->items.empty()) {
      return notify.Error(
          "on", absl::StrCat("must be a list of run end states (", absl::StrJoin(kEndStates, ", "), ")"));
    }
    for (size_t i = 0; i < on->items.size(); ++i) {
      const YamlNode& item = on->items[i];
      if (item.kind != YamlNode::Kind::kScalar ||
          std::find(kEndStates.begin(), kEndStates.end(), item.scalar) == kEndStates.end()) {
        return reader.Error(item, absl::StrCat("notify.on[", i, "]"),
                            absl::StrCat("must be one of ", absl::StrJoin(kEndStates, ", ")));
      }
      if (std::find(out.on.begin(), out.on.end(), item.scalar) == out.on.end()) out.on.push_back(item.scalar);
    }
  } else {
    for (absl::string_view state : kEndStates) out.on.emplace_back(state);
  }
  if (absl::Status s = notify.Duration("timeout", absl::Minutes(1), false, out.timeout); !s.ok()) return s;
  if (absl::Status s = notify.Int("retries", 0, reader.limits().max_notify_retries, out.retries); !s.ok())
    return s;
  spec.notify = std::move(out);
  return absl::OkStatus();
}

// ---- Steps

struct StepContext {
  // Names of the programs earlier run steps start.
  std::vector<std::string> programs;
};

absl::Status ReadPush(const MapReader& step, const YamlNode& node, JobSpec& spec, Step& out) {
  MapReader push(step.reader(), node, step.Path("push"));
  if (absl::Status s = push.Check({"file", "to"}); !s.ok()) return s;
  if (absl::Status s = push.String("file", true, kMaxPathChars + 1, out.push.file); !s.ok()) return s;
  if (out.push.file[0] == '/') {
    return push.Error("file", "must be relative to the spec file (it is uploaded with the spec)");
  }
  if (std::string problem = PathProblem(out.push.file); !problem.empty()) return push.Error("file", problem);
  out.push.to = "/" + out.push.file;
  if (absl::Status s = push.String("to", false, kMaxPathChars + 1, out.push.to); !s.ok()) return s;
  if (push.Has("to")) {
    if (out.push.to[0] != '/') return push.Error("to", "must be an absolute path on the board (/app.py)");
    if (std::string problem = PathProblem(out.push.to); !problem.empty()) return push.Error("to", problem);
  }
  const bool known = std::any_of(spec.files.begin(), spec.files.end(),
                                 [&](const JobSpec::File& f) { return f.path == out.push.file; });
  if (!known) {
    if (spec.files.size() >= step.reader().limits().max_files) {
      return push.Error("file",
                        absl::StrCat("the job names more than ", step.reader().limits().max_files, " files"));
    }
    spec.files.push_back({out.push.file, push.LocationOf("file")});
  }
  return absl::OkStatus();
}

absl::Status ReadRun(const MapReader& step, const YamlNode& node, StepContext& context, Step& out) {
  const JobSpecLimits& limits = step.reader().limits();
  MapReader run(step.reader(), node, step.Path("run"));
  if (absl::Status s = run.Check({"file", "args", "timeout", "name", "wait"}); !s.ok()) return s;
  std::string file;
  if (absl::Status s = run.String("file", true, kMaxPathChars + 1, file); !s.ok()) return s;
  if (std::string problem = PathProblem(file); !problem.empty()) return run.Error("file", problem);
  out.run.path = file[0] == '/' ? file : "/" + file;
  if (const YamlNode* args = run.Find("args"); args != nullptr) {
    if (args->kind != YamlNode::Kind::kSequence) return run.Error("args", "must be a list of strings");
    if (args->items.size() > limits.max_args) {
      return run.Error("args", absl::StrCat("has ", args->items.size(), " items, more than the limit of ",
                                            limits.max_args));
    }
    for (size_t i = 0; i < args->items.size(); ++i) {
      const YamlNode& arg = args->items[i];
      const std::string path = absl::StrCat(run.Path("args"), "[", i, "]");
      if (arg.kind != YamlNode::Kind::kScalar) return step.reader().Error(arg, path, "must be a string");
      if (arg.scalar.size() > kMaxArgBytes) {
        return step.reader().Error(arg, path, absl::StrCat("is longer than ", kMaxArgBytes, " bytes"));
      }
      out.run.args.push_back(arg.scalar);
    }
  }
  if (absl::Status s = run.Duration("timeout", limits.max_timeout, false, out.run.timeout); !s.ok()) return s;
  absl::string_view base = out.run.path;
  base = base.substr(base.rfind('/') + 1);
  absl::ConsumeSuffix(&base, ".py");
  out.run.name = std::string(base);
  if (absl::Status s = run.String("name", false, kMaxNameChars + 1, out.run.name); !s.ok()) return s;
  if (out.run.name.empty() || out.run.name.size() > kMaxNameChars ||
      !std::all_of(out.run.name.begin(), out.run.name.end(), IsProgramNameChar)) {
    return run.Has("name")
               ? run.Error("name",
                           absl::StrCat("must be 1-", kMaxNameChars, " letters, digits, '_', '-' or '.'"))
               : run.Error("file",
                           "gives no usable program name; add name: (letters, digits, '_', '-', '.')");
  }
  if (absl::Status s = run.Bool("wait", out.run.wait); !s.ok()) return s;
  context.programs.push_back(out.run.name);
  return absl::OkStatus();
}

// The anomaly kinds expect.no_anomalies names (health.h's names).
const std::vector<absl::string_view>& AnomalyNames() {
  static const std::vector<absl::string_view> names = {
      "deadlock", "stall", "thread_unkillable", "stack_high", "heap_low", "native_stuck", "thread_failed"};
  return names;
}

absl::Status ReadMetric(const SpecReader& reader, const YamlNode& node, const std::string& path,
                        ExpectStep& out) {
  MapReader metric(reader, node, path);
  if (absl::Status s = metric.Check({"name", "min", "max"}); !s.ok()) return s;
  MetricBound bound;
  if (absl::Status s = metric.String("name", true, kMaxNameChars, bound.name); !s.ok()) return s;
  if (absl::Status s = metric.Number("min", bound.min); !s.ok()) return s;
  if (absl::Status s = metric.Number("max", bound.max); !s.ok()) return s;
  if (!bound.min.has_value() && !bound.max.has_value())
    return reader.Error(node, path, "needs min, max or both");
  if (bound.min.has_value() && bound.max.has_value() && *bound.min > *bound.max) {
    return metric.Error("max", "is less than min");
  }
  out.metrics.push_back(std::move(bound));
  return absl::OkStatus();
}

// The largest pin number and ADC value a spec may name (machine_input.h).
constexpr int kMaxPin = static_cast<int>(common::kPinNumberLimit - 1);
constexpr int kMaxAdcChannel = static_cast<int>(common::kAdcChannelLimit - 1);
constexpr int kMaxAdcValue = static_cast<int>(common::kMaxAdcValue);
// How long an expect.pin may wait for its level at most.
constexpr absl::Duration kMaxPinWait = absl::Minutes(1);

// A required integer key of `map` from min to max.
absl::Status RequiredInt(const MapReader& map, absl::string_view key, int min, int max, int& out) {
  if (!map.Has(key)) return map.Missing(key);
  return map.Int(key, min, max, out);
}

absl::Status ReadPinExpectation(const SpecReader& reader, const YamlNode& node, const std::string& path,
                                ExpectStep& out) {
  MapReader pin(reader, node, path);
  if (absl::Status s = pin.Check({"pin", "value", "within"}); !s.ok()) return s;
  PinExpectation expected;
  int number = 0;
  int value = 0;
  if (absl::Status s = RequiredInt(pin, "pin", 0, kMaxPin, number); !s.ok()) return s;
  if (absl::Status s = RequiredInt(pin, "value", 0, 1, value); !s.ok()) return s;
  if (absl::Status s = pin.Duration("within", kMaxPinWait, true, expected.within); !s.ok()) return s;
  expected.pin = static_cast<uint32_t>(number);
  expected.value = static_cast<uint32_t>(value);
  out.pins.push_back(expected);
  return absl::OkStatus();
}

absl::Status ReadPin(const MapReader& step, const YamlNode& node, Step& out) {
  MapReader pin(step.reader(), node, step.Path("pin"));
  if (absl::Status s = pin.Check({"pin", "value", "release"}); !s.ok()) return s;
  int number = 0;
  if (absl::Status s = RequiredInt(pin, "pin", 0, kMaxPin, number); !s.ok()) return s;
  out.pin.pin = static_cast<uint32_t>(number);
  if (absl::Status s = pin.Bool("release", out.pin.release); !s.ok()) return s;
  if (out.pin.release) {
    if (pin.Has("value")) return pin.Error("value", "give either value (0 or 1) or release: true, not both");
    return absl::OkStatus();
  }
  if (!pin.Has("value")) {
    return step.reader().Error(node, pin.Path("value"), "missing: give value (0 or 1) or release: true");
  }
  int value = 0;
  if (absl::Status s = pin.Int("value", 0, 1, value); !s.ok()) return s;
  out.pin.value = static_cast<uint32_t>(value);
  return absl::OkStatus();
}

absl::Status ReadAdc(const MapReader& step, const YamlNode& node, Step& out) {
  MapReader adc(step.reader(), node, step.Path("adc"));
  if (absl::Status s = adc.Check({"channel", "value"}); !s.ok()) return s;
  int channel = 0;
  int value = 0;
  if (absl::Status s = RequiredInt(adc, "channel", 0, kMaxAdcChannel, channel); !s.ok()) return s;
  if (absl::Status s = RequiredInt(adc, "value", 0, kMaxAdcValue, value); !s.ok()) return s;
  out.adc.channel = static_cast<uint32_t>(channel);
  out.adc.value = static_cast<uint32_t>(value);
  return absl::OkStatus();
}

absl::Status ReadExpect(const MapReader& step, const YamlNode& node, const StepContext& context, Step& out) {
  const SpecReader& reader = step.reader();
  const std::vector<absl::string_view> known = {
      "output", "no_failed_threads", "no_anomalies", "max_stack_percent", "min_heap_free", "metric", "pin"};
  MapReader expect(reader, node, step.Path("expect"));
  if (absl::Status s = expect.Check(known); !s.ok()) return s;
  if (node.items.empty()) {
    return reader.Error(node, step.Path("expect"),
                        absl::StrCat("has no check (known: ", absl::StrJoin(known, ", "), ")"));
  }
  ExpectStep& e = out.expect;
  if (expect.Has("output")) {
    if (absl::Status s = expect.String("output", true, reader.limits().max_regex_bytes, e.output_pattern);
        !s.ok()) {
      return s;
    }
    if (context.programs.empty()) return expect.Error("output", "no earlier run step has output to search");
    RE2::Options options;
    options.set_log_errors(false);
    auto regex = std::make_shared<re2::RE2>(e.output_pattern, options);
    if (!regex->ok())
      return expect.Error("output", absl::StrCat("not a valid RE2 regular expression: ", regex->error()));
    e.output = std::move(regex);
  }
  if (absl::Status s = expect.Bool("no_failed_threads", e.no_failed_threads); !s.ok()) return s;
  if (const YamlNode* anomalies = expect.Find("no_anomalies"); anomalies != nullptr) {
    const std::string list_hint =
        absl::StrCat("must be a list of anomaly kinds (", absl::StrJoin(AnomalyNames(), ", "), ")");
    if (anomalies->kind != YamlNode::Kind::kSequence || anomalies->items.empty()) {
      return expect.Error("no_anomalies", list_hint);
    }
    for (size_t i = 0; i < anomalies->items.size(); ++i) {
      const YamlNode& item = anomalies->items[i];
      std::string kind = item.kind == YamlNode::Kind::kScalar ? item.scalar : "";
      if (kind == "unkillable") kind = "thread_unkillable";
      if (std::find(AnomalyNames().begin(), AnomalyNames().end(), kind) == AnomalyNames().end()) {
        return reader.Error(
            item, absl::StrCat(expect.Path("no_anomalies"), "[", i, "]"),
            absl::StrCat(item.kind == YamlNode::Kind::kScalar ? QuoteKey(item.scalar) : "this",
                         " is not an anomaly kind (known: ", absl::StrJoin(AnomalyNames(), ", "),
                         ", unkillable)"));
      }
      if (std::find(e.no_anomalies.begin(), e.no_anomalies.end(), kind) == e.no_anomalies.end()) {
        e.no_anomalies.push_back(kind);
      }
    }
  }
  if (expect.Has("max_stack_percent")) {
    int percent = 0;
    if (absl::Status s = expect.Int("max_stack_percent", 1, 100, percent); !s.ok()) return s;
    e.max_stack_percent = percent;
  }
  if (const YamlNode* heap = expect.Find("min_heap_free"); heap != nullptr) {
    std::optional<int64_t> bytes;
    if (heap->kind == YamlNode::Kind::kScalar) bytes = ParseSizeText(heap->scalar);
    if (!bytes.has_value() || *bytes < 1 || *bytes > int64_t{1} << 40) {
      return expect.Error("min_heap_free", "must be a size such as 16k, 1M or 20000 (bytes; k = 1024)");
    }
    e.min_heap_free_bytes = *bytes;
  }
  if (const YamlNode* metric = expect.Find("metric"); metric != nullptr) {
    if (metric->kind == YamlNode::Kind::kSequence) {
      if (metric->items.empty())
        return expect.Error("metric", "must be a map {name, min, max} or a list of them");
      for (size_t i = 0; i < metric->items.size(); ++i) {
        if (absl::Status s =
                ReadMetric(reader, metric->items[i], absl::StrCat(expect.Path("metric"), "[", i, "]"), e);
            !s.ok()) {
          return s;
        }
      }
    } else if (absl::Status s = ReadMetric(reader, *metric, expect.Path("metric"), e); !s.ok()) {
      return s;
    }
  }
  if (const YamlNode* pin = expect.Find("pin"); pin != nullptr) {
    if (pin->kind == YamlNode::Kind::kSequence) {
      if (pin->items.empty())
        return expect.Error("pin", "must be a map {pin, value, within} or a list of them");
      for (size_t i = 0; i < pin->items.size(); ++i) {
        if (absl::Status s =
                ReadPinExpectation(reader, pin->items[i], absl::StrCat(expect.Path("pin"), "[", i, "]"), e);
            !s.ok()) {
          return s;
        }
      }
    } else if (absl::Status s = ReadPinExpectation(reader, *pin, expect.Path("pin"), e); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ReadKill(const MapReader& step, const YamlNode& node, const StepContext& context, Step& out) {
  MapReader kill(step.reader(), node, step.Path("kill"));
  if (absl::Status s = kill.Check({"program", "grace"}); !s.ok()) return s;
  if (absl::Status s = kill.String("program", true, kMaxNameChars, out.kill.program); !s.ok()) return s;
  if (std::find(context.programs.begin(), context.programs.end(), out.kill.program) ==
      context.programs.end()) {
    return kill.Error(
        "program",
        absl::StrCat("no earlier run step starts a program named ", QuoteKey(out.kill.program),
                     context.programs.empty()
                         ? " (there is none before it)"
                         : absl::StrCat(" (started: ", absl::StrJoin(context.programs, ", "), ")")));
  }
  return kill.Duration("grace", step.reader().limits().max_timeout, true, out.kill.grace);
}

absl::Status ReadStep(const SpecReader& reader, const YamlNode& node, size_t index, StepContext& context,
                      JobSpec& spec) {
  static const std::vector<absl::string_view> kKinds = {"push",  "run", "expect", "kill",
                                                        "sleep", "pin", "adc"};
  const std::string path = absl::StrCat("steps[", index, "]");
  Step out;
  out.location = node.location;
  if (node.kind != YamlNode::Kind::kMap || node.map_size() != 1) {
    return reader.Error(
        node, path,
        absl::StrCat("a step is a map with one key, its kind (", absl::StrJoin(kKinds, ", "), ")"));
  }
  MapReader step(reader, node, path);
  if (absl::Status s = step.Check(kKinds); !s.ok()) {
    const YamlNode& key = node.key(0);
    if (key.kind != YamlNode::Kind::kScalar) return s;
    return reader.Error(key, path,
                        absl::StrCat("unknown step kind ", QuoteKey(key.scalar),
                                     " (known: ", absl::StrJoin(kKinds, ", "), ")"));
  }
  const YamlNode& value = node.value(0);
  const std::string& kind = node.key(0).scalar;
  absl::Status status;
  if (kind == "push") {
    out.kind = Step::Kind::kPush;
    status = ReadPush(step, value, spec, out);
  } else if (kind == "run") {
    out.kind = Step::Kind::kRun;
    status = ReadRun(step, value, context, out);
  } else if (kind == "expect") {
    out.kind = Step::Kind::kExpect;
    status = ReadExpect(step, value, context, out);
  } else if (kind == "kill") {
    out.kind = Step::Kind::kKill;
    status = ReadKill(step, value, context, out);
  } else if (kind == "pin") {
    out.kind = Step::Kind::kPin;
    status = ReadPin(step, value, out);
  } else if (kind == "adc") {
    out.kind = Step::Kind::kAdc;
    status = ReadAdc(step, value, out);
  } else {
    out.kind = Step::Kind::kSleep;
    status = step.Duration("sleep", reader.limits().max_timeout, false, out.sleep.duration);
  }
  if (!status.ok()) return status;
  spec.steps.push_back(std::move(out));
  return absl::OkStatus();
}

absl::Status ReadSpec(const SpecReader& reader, const YamlNode& root, JobSpec& spec) {
  const JobSpecLimits& limits = reader.limits();
  MapReader top(reader, root, "");
  if (absl::Status s = top.Check({"name", "description", "boards", "schedule", "time_zone", "catch_up",
                                  "timeout", "retries", "rollout", "abort", "steps", "notify"});
      !s.ok()) {
    return s;
  }
  if (absl::Status s = top.String("name", true, kMaxNameChars + 1, spec.name); !s.ok()) return s;
  if (spec.name.size() > kMaxNameChars || !std::all_of(spec.name.begin(), spec.name.end(), IsJobNameChar)) {
    return top.Error("name", absl::StrCat("must be 1-", kMaxNameChars, " lower-case letters, digits or '-'"));
  }
  if (absl::Status s = top.String("description", false, kMaxDescriptionBytes, spec.description); !s.ok())
    return s;
  const YamlNode* boards = top.Find("boards");
  if (boards == nullptr) return top.Missing("boards");
  if (absl::Status s = ReadBoards(reader, *boards, spec); !s.ok()) return s;
  if (absl::Status s = top.String("time_zone", false, 64, spec.time_zone); !s.ok()) return s;
  if (top.Has("schedule")) {
    if (absl::Status s = top.String("schedule", true, 256, spec.schedule_text); !s.ok()) return s;
    absl::StatusOr<CronSchedule> schedule = CronSchedule::Parse(spec.schedule_text, spec.time_zone);
    if (!schedule.ok()) {
      const bool zone = absl::StartsWith(schedule.status().message(), "unknown time zone");
      return top.Error(zone && top.Has("time_zone") ? "time_zone" : "schedule", schedule.status().message());
    }
    spec.schedule = *std::move(schedule);
  } else if (top.Has("time_zone")) {
    if (absl::StatusOr<CronSchedule> zone_check = CronSchedule::Parse("@daily", spec.time_zone);
        !zone_check.ok()) {
      return top.Error("time_zone", zone_check.status().message());
    }
  }
  if (absl::Status s = top.Bool("catch_up", spec.catch_up); !s.ok()) return s;
  if (absl::Status s = top.Duration("timeout", limits.max_timeout, false, spec.timeout); !s.ok()) return s;
  if (absl::Status s = top.Int("retries", 0, limits.max_retries, spec.retries); !s.ok()) return s;
  if (const YamlNode* rollout = top.Find("rollout"); rollout != nullptr) {
    if (absl::Status s = ReadRollout(reader, *rollout, spec); !s.ok()) return s;
  }
  if (const YamlNode* abort = top.Find("abort"); abort != nullptr) {
    if (absl::Status s = ReadAbort(reader, *abort, spec); !s.ok()) return s;
  }
  const YamlNode* steps = top.Find("steps");
  if (steps == nullptr) return top.Missing("steps");
  if (steps->kind != YamlNode::Kind::kSequence || steps->items.empty()) {
    return top.Error("steps", "must be a non-empty list of steps");
  }
  if (steps->items.size() > limits.max_steps) {
    return top.Error("steps", absl::StrCat("has ", steps->items.size(), " steps, more than the limit of ",
                                           limits.max_steps));
  }
  StepContext context;
  for (size_t i = 0; i < steps->items.size(); ++i) {
    if (absl::Status s = ReadStep(reader, steps->items[i], i, context, spec); !s.ok()) return s;
  }
  if (const YamlNode* notify = top.Find("notify"); notify != nullptr) {
    if (absl::Status s = ReadNotify(reader, *notify, spec); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view StepKindName(Step::Kind kind) {
  switch (kind) {
    case Step::Kind::kPush:
      return "push";
    case Step::Kind::kRun:
      return "run";
    case Step::Kind::kExpect:
      return "expect";
    case Step::Kind::kKill:
      return "kill";
    case Step::Kind::kSleep:
      return "sleep";
    case Step::Kind::kPin:
      return "pin";
    case Step::Kind::kAdc:
      return "adc";
  }
  return "unknown";
}

std::string SpecMessage(absl::string_view spec_file, SpecLocation location, absl::string_view message) {
  if (location.line == 0) return absl::StrCat(spec_file, ": ", message);
  return absl::StrCat(spec_file, ":", location.line, ":", location.column, ": ", message);
}

absl::StatusOr<JobSpec> ParseJobSpec(absl::string_view yaml, absl::string_view spec_file,
                                     const JobSpecLimits& limits) {
  const SpecReader reader(spec_file, limits);
  if (yaml.size() > limits.max_spec_bytes) {
    return reader.Error(
        SpecLocation{}, "",
        absl::StrCat("the spec is ", yaml.size(), " bytes, more than the limit of ", limits.max_spec_bytes));
  }
  // yaml-cpp reads a NUL as the end of its input; a spec is text.
  if (size_t nul = yaml.find('\0'); nul != absl::string_view::npos) {
    return reader.Error(SpecLocation{}, "", absl::StrCat("the spec contains a NUL byte at offset ", nul));
  }
  TreeBuilder builder;
  try {
    std::istringstream input{std::string(yaml)};
    YAML::Parser parser(input);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const YamlRefusal& refusal) {
    return reader.Error(refusal.location, "", refusal.message);
  } catch (const YAML::Exception& e) {
    return reader.Error(LocationOf(e.mark), "", absl::StrCat("not valid YAML: ", e.msg));
  }
  if (!builder.has_document() || builder.root().kind == YamlNode::Kind::kNull) {
    return reader.Error(SpecLocation{}, "", "the spec is empty");
  }
  JobSpec spec;
  if (absl::Status s = ReadSpec(reader, builder.root(), spec); !s.ok()) return s;
  return spec;
}

}  // namespace threadfleet::fleetd::jobs
