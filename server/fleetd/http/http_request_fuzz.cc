// libFuzzer target (the `fuzz` preset): arbitrary bytes as what a client sends
// fleetd's HTTP listener, split into the chunks recv() might return. The
// parser must never crash, and whatever it accepts (method, path, query,
// header fields) must lie within the bytes it was given and within its
// limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "server/fleetd/http/http_request.h"

namespace {

constexpr threadfleet::fleetd::HttpHeadLimits kLimits{.max_header_bytes = 1024, .max_body_bytes = 4096};

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using threadfleet::fleetd::HttpParse;
  const std::string in(reinterpret_cast<const char*>(data), size);
  // Grow the buffer as the listener does, a prefix at a time.
  for (size_t prefix = 1; prefix <= in.size(); prefix += 1 + prefix / 2) {
    threadfleet::fleetd::HttpRequestHead head;
    threadfleet::fleetd::HttpRefusal refusal;
    const HttpParse result =
        ParseHttpRequestHead(absl::string_view(in).substr(0, prefix), kLimits, head, refusal);
    if (result == HttpParse::kHead) {
      Check(head.head_bytes <= prefix && head.head_bytes <= kLimits.max_header_bytes);
      Check(head.body_bytes <= kLimits.max_body_bytes);
      Check(!head.path.empty() && head.path[0] == '/');
      Check(head.path.find('?') == std::string::npos);
      // Every field came from the head: names lowercase and non-empty, and
      // together no bigger than the head itself.
      size_t field_bytes = 0;
      for (const auto& [name, value] : head.headers) {
        Check(!name.empty());
        for (char c : name) Check(!(c >= 'A' && c <= 'Z') && c != ' ' && c != ':');
        field_bytes += name.size() + value.size();
      }
      Check(field_bytes + head.path.size() + head.query.size() <= head.head_bytes);
    } else if (result == HttpParse::kRefused) {
      Check(refusal.status >= 400 && refusal.status < 500 && !refusal.message.empty());
    } else {
      Check(prefix <= kLimits.max_header_bytes);
    }
  }
  return 0;
}
