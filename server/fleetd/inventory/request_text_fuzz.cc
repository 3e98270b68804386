// libFuzzer: the text fields of Fleet API requests that fleetd parses itself —
// label selectors, board names, addresses, labels and the authorization
// header — with arbitrary bytes, as any caller may send them.
//
// Input: newline-separated fields: (0) a label selector, (1) labels as
// "k=v;k=v", (2) a board name, (3) an address, (4) an authorization header.
// Missing fields are empty.
//
// Beyond "no crash, no sanitizer report", it checks the contract a user relies
// on: every label ValidateLabel accepts can be selected — "k=v" parses and
// picks a board carrying it, "k!=v" parses and does not.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/fleetd/auth/token.h"
#include "server/fleetd/inventory/inventory.h"

namespace {

using threadfleet::fleetd::Labels;
using threadfleet::fleetd::LabelSelector;

void Require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "contract broken: %s\n", what);
  std::abort();
}

Labels ParseLabels(absl::string_view text) {
  Labels labels;
  for (absl::string_view pair : absl::StrSplit(text, ';', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (threadfleet::fleetd::ValidateLabel(kv.first, kv.second).ok()) labels[kv.first] = kv.second;
  }
  return labels;
}

void CheckEveryLabelIsSelectable(const Labels& labels) {
  for (const auto& [key, value] : labels) {
    auto equal = LabelSelector::Parse(key + "=" + value);
    Require(equal.ok(), "a valid label does not parse as key=value");
    Require(equal->Matches(labels), "key=value does not pick a board with that label");
    auto not_equal = LabelSelector::Parse(key + "!=" + value);
    Require(not_equal.ok(), "a valid label does not parse as key!=value");
    Require(!not_equal->Matches(labels), "key!=value picks a board with that label");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(reinterpret_cast<const char*>(data), size), '\n');
  fields.resize(5);

  Labels labels = ParseLabels(fields[1]);
  auto selector = LabelSelector::Parse(fields[0]);
  if (selector.ok()) (void)selector->Matches(labels);
  CheckEveryLabelIsSelectable(labels);

  (void)threadfleet::fleetd::ValidateBoardName(fields[2]);
  (void)threadfleet::fleetd::ValidateAddress(fields[3]);
  (void)threadfleet::fleetd::SecretFromAuthorization(fields[4]);
  return 0;
}
