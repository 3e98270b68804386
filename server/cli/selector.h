// Turning fleetctl's command-line words into what the Fleet API takes: board
// lists and label queries into a fleet.v1.Selector, "b01/7" into a board and
// thread id, "blink.run" into a module and a function, "k=v" into a label.
// Every parser returns INVALID_ARGUMENT with a message meant for the user.
//
// Example:
//
//   absl::StatusOr<fleet::v1::Selector> selector = BuildSelector("lab=a", "b01,b02");
//   absl::StatusOr<ThreadRef> target = ParseThreadRef("b01/7");  // {"b01", 7}
//   ParseThreadRef("b01/x");  // INVALID_ARGUMENT "b01/x: thread id 'x' is not a number ..."

#ifndef THREADFLEET_SERVER_CLI_SELECTOR_H_
#define THREADFLEET_SERVER_CLI_SELECTOR_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::cli {

// "b01,b02" -> {"b01", "b02"}; whitespace around names is dropped. An empty
// list gives no names; an empty name inside one ("b01,,b02") is an error.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> ParseBoardList(absl::string_view list);

// The selector of -l LABELS and -b LIST (either may be empty; both empty
// picks every board). Labels are passed as written: fleetd validates them.
[[nodiscard]] absl::StatusOr<fleet::v1::Selector> BuildSelector(absl::string_view labels,
                                                                absl::string_view boards);

// A thread on a board, as in `fleetctl kill b01/7`.
struct ThreadRef {
  std::string board;
  uint32_t thread_id = 0;
};

// "BOARD/THREAD_ID" with a non-empty board and a positive 32-bit id.
[[nodiscard]] absl::StatusOr<ThreadRef> ParseThreadRef(absl::string_view text);

// A positive 32-bit id (a thread or program id); `what` names it in errors.
[[nodiscard]] absl::StatusOr<uint32_t> ParseId(absl::string_view text, absl::string_view what);

// "module.function" (the module may be dotted: "app.sensors.run") ->
// {"app.sensors", "run"}. Both parts must be non-empty.
[[nodiscard]] absl::StatusOr<std::pair<std::string, std::string>> ParseModuleFunction(absl::string_view text);

// "key=value" with a non-empty key -> {key, value}.
[[nodiscard]] absl::StatusOr<std::pair<std::string, std::string>> ParseLabel(absl::string_view text);

}  // namespace threadfleet::cli

#endif  // THREADFLEET_SERVER_CLI_SELECTOR_H_
