#include "server/cli/selector.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace threadfleet::cli {

absl::StatusOr<std::vector<std::string>> ParseBoardList(absl::string_view list) {
  std::vector<std::string> names;
  if (absl::StripAsciiWhitespace(list).empty()) return names;
  for (absl::string_view name : absl::StrSplit(list, ',')) {
    name = absl::StripAsciiWhitespace(name);
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "board list '", list, "' has an empty name (expected names separated by commas, e.g. b01,b02)"));
    }
    names.emplace_back(name);
  }
  return names;
}

absl::StatusOr<fleet::v1::Selector> BuildSelector(absl::string_view labels, absl::string_view boards) {
  absl::StatusOr<std::vector<std::string>> names = ParseBoardList(boards);
  if (!names.ok()) return names.status();
  fleet::v1::Selector selector;
  selector.set_labels(std::string(absl::StripAsciiWhitespace(labels)));
  for (std::string& name : *names) selector.add_boards(std::move(name));
  return selector;
}

absl::StatusOr<uint32_t> ParseId(absl::string_view text, absl::string_view what) {
  uint32_t id = 0;
  if (text.empty() || !absl::ascii_isdigit(static_cast<unsigned char>(text.front())) ||
      !absl::SimpleAtoi(text, &id) || id == 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", text, "' is not a positive number"));
  }
  return id;
}

absl::StatusOr<ThreadRef> ParseThreadRef(absl::string_view text) {
  const size_t slash = text.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' names no thread: expected BOARD/THREAD_ID (e.g. b01/7), or BOARD --program ID"));
  }
  ThreadRef ref;
  ref.board = std::string(text.substr(0, slash));
  if (ref.board.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' has no board name before '/' (e.g. b01/7)"));
  }
  absl::StatusOr<uint32_t> id = ParseId(text.substr(slash + 1), "thread id");
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("'", text, "': ", id.status().message()));
  ref.thread_id = *id;
  return ref;
}

absl::StatusOr<std::pair<std::string, std::string>> ParseModuleFunction(absl::string_view text) {
  const size_t dot = text.rfind('.');
  if (dot == absl::string_view::npos || dot == 0 || dot + 1 == text.size()) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not MODULE.FUNCTION (e.g. blink.run)"));
  }
  return std::make_pair(std::string(text.substr(0, dot)), std::string(text.substr(dot + 1)));
}

absl::StatusOr<std::pair<std::string, std::string>> ParseLabel(absl::string_view text) {
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(absl::StrCat("label '", text, "' is not KEY=VALUE (e.g. role=sensor)"));
  }
  return std::make_pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

}  // namespace threadfleet::cli
