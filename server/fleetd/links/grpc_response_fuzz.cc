// libFuzzer: what a board (or anything listening on a board's port) may send
// back to fleetd's health-stream client, after HTTP/2 has parsed it: header
// fields, DATA bytes split anywhere, trailers.
//
// Input: a header block of "name:value" lines, an empty line, then DATA bytes;
// the first byte picks the chunk size the DATA is fed in.
//
// Beyond "no crash, no sanitizer report", it checks the reader's contract:
// each message handed over is no longer than the limit, and feeding the same
// DATA whole or in chunks yields the same messages and the same verdict.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/fleetd/links/grpc_response.h"

namespace {

using threadfleet::fleetd::GrpcResponseReader;

constexpr size_t kLimit = 256;

void Require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "contract broken: %s\n", what);
  std::abort();
}

struct Outcome {
  std::vector<std::string> messages;
  absl::StatusCode data = absl::StatusCode::kOk;
  absl::StatusCode finish = absl::StatusCode::kOk;
};

Outcome Read(absl::string_view headers, absl::string_view data, size_t chunk) {
  Outcome out;
  GrpcResponseReader reader(kLimit);
  for (absl::string_view line : absl::StrSplit(headers, '\n')) {
    const size_t colon = line.find(':', 1);  // ":status:200" names a pseudo-header
    if (colon == absl::string_view::npos) continue;
    reader.OnHeader(line.substr(0, colon), line.substr(colon + 1));
  }
  if (absl::Status s = reader.OnHeadersDone(); !s.ok()) {
    out.data = s.code();
    return out;
  }
  while (!data.empty()) {
    const size_t n = std::min(chunk, data.size());
    absl::Status s = reader.OnData(data.substr(0, n), [&](absl::string_view m) {
      Require(m.size() <= kLimit, "message over the limit handed over");
      out.messages.emplace_back(m);
      return absl::OkStatus();
    });
    data.remove_prefix(n);
    if (!s.ok()) {
      out.data = s.code();
      return out;
    }
  }
  Require(reader.messages() == out.messages.size(), "messages() counts what was handed over");
  out.finish = reader.Finish().code();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + bytes[0] % 32;
  const absl::string_view input(reinterpret_cast<const char*>(bytes) + 1, size - 1);
  const size_t split = input.find("\n\n");
  const absl::string_view headers = input.substr(0, split);
  const absl::string_view data = split == absl::string_view::npos ? "" : input.substr(split + 2);

  const Outcome whole = Read(headers, data, data.size() + 1);
  const Outcome pieces = Read(headers, data, chunk);
  Require(whole.messages == pieces.messages, "chunking changes the messages");
  Require(whole.data == pieces.data && whole.finish == pieces.finish, "chunking changes the verdict");
  return 0;
}
