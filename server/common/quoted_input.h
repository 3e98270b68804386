// How an error message, a log line or an audit entry quotes what a caller
// sent: a short, printable prefix and the full size, never the input whole.
// A caller controls the input's size, so echoing it whole lets one request
// make every copy of the message (status, log, audit row, the client's
// error) as big as the request itself.
//
// Example:
//
//   return absl::NotFoundError(absl::StrCat("board ", QuoteInput(name), " is not in the inventory"));
//   // name "b01"              -> board "b01" is not in the inventory
//   // name of 3 MiB of 'b'    -> board "bbbbbbbb…" (3145728 bytes) is not in the inventory
//   // name "a\nb"             -> board "a\nb" is not in the inventory
#ifndef THREADFLEET_SERVER_COMMON_QUOTED_INPUT_H_
#define THREADFLEET_SERVER_COMMON_QUOTED_INPUT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace threadfleet::common {

// Bytes of input QuoteInput keeps by default: enough to recognise a name or
// a path, small enough that a message stays one short line.
inline constexpr size_t kQuotedInputBytes = 64;

// `input` in double quotes with `"`, `\` and control bytes escaped (\n, \t,
// \0, \xNN), so the result is one printable line. When `input` is longer than
// `max_bytes` only its first `max_bytes` bytes are kept (cut back to a UTF-8
// character boundary), followed by "…" and " (N bytes)" giving the full size.
[[nodiscard]] std::string QuoteInput(absl::string_view input, size_t max_bytes = kQuotedInputBytes);

// `text` (already composed, e.g. an audit target "b01/7") cut to at most
// `max_bytes` bytes plus "… (N bytes)" when longer, and returned unchanged
// otherwise. For strings that are not quoted but may carry input.
[[nodiscard]] std::string CutInput(absl::string_view text, size_t max_bytes);

}  // namespace threadfleet::common

#endif  // THREADFLEET_SERVER_COMMON_QUOTED_INPUT_H_
