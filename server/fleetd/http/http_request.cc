#include "server/fleetd/http/http_request.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace threadfleet::fleetd {
namespace {

HttpParse Refuse(HttpRefusal& refusal, int status, absl::string_view reason, std::string message) {
  refusal = HttpRefusal{.status = status, .reason = std::string(reason), .message = std::move(message)};
  return HttpParse::kRefused;
}

HttpParse BadRequest(HttpRefusal& refusal, absl::string_view what) {
  return Refuse(refusal, 400, "Bad Request", absl::StrCat(what, "\n"));
}

bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// RFC 9110's token characters: a field name never holds spaces, so "X : y"
// (which some proxies read differently) is refused.
bool IsFieldName(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

HttpParse ParseHttpRequestHead(absl::string_view in, const HttpHeadLimits& limits, HttpRequestHead& head,
                               HttpRefusal& refusal) {
  const size_t end = in.find("\r\n\r\n");
  if (end == absl::string_view::npos) {
    if (in.size() <= limits.max_header_bytes) return HttpParse::kNeedMore;
    return Refuse(refusal, 431, "Request Header Fields Too Large",
                  absl::StrCat("request headers are over ", limits.max_header_bytes,
                               " bytes (limits.http.max_header_bytes)\n"));
  }
  const size_t head_bytes = end + 4;
  if (head_bytes > limits.max_header_bytes) {
    return Refuse(refusal, 431, "Request Header Fields Too Large",
                  absl::StrCat("request headers are ", head_bytes, " bytes; the limit is ",
                               limits.max_header_bytes, " (limits.http.max_header_bytes)\n"));
  }
  std::vector<absl::string_view> lines = absl::StrSplit(in.substr(0, end), "\r\n");
  std::vector<absl::string_view> request_line = absl::StrSplit(lines[0], ' ');
  if (request_line.size() != 3 || !IsToken(request_line[0]) || !absl::StartsWith(request_line[1], "/") ||
      (request_line[2] != "HTTP/1.1" && request_line[2] != "HTTP/1.0")) {
    return BadRequest(refusal, "malformed request line");
  }
  HttpRequestHead out;
  out.method = std::string(request_line[0]);
  const absl::string_view target = request_line[1];
  const size_t question = target.find('?');
  out.path = std::string(target.substr(0, question));
  if (question != absl::string_view::npos) out.query = std::string(target.substr(question + 1));
  out.close = request_line[2] == "HTTP/1.0";
  out.head_bytes = head_bytes;
  std::optional<uint64_t> length;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0) return BadRequest(refusal, "malformed header line");
    const absl::string_view name = lines[i].substr(0, colon);
    const absl::string_view value = absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
    if (!IsFieldName(name)) return BadRequest(refusal, "malformed header line");
    out.headers.emplace_back(absl::AsciiStrToLower(name), std::string(value));
    if (absl::EqualsIgnoreCase(name, "Content-Length")) {
      uint64_t n = 0;
      if (value.empty() || !std::all_of(value.begin(), value.end(), absl::ascii_isdigit) ||
          !absl::SimpleAtoi(value, &n) || (length.has_value() && *length != n)) {
        return BadRequest(refusal, "malformed Content-Length");
      }
      length = n;
    } else if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
      return Refuse(refusal, 411, "Length Required",
                    "send a Content-Length; chunked bodies are not accepted\n");
    } else if (absl::EqualsIgnoreCase(name, "Connection")) {
      if (absl::EqualsIgnoreCase(value, "close")) out.close = true;
      if (absl::EqualsIgnoreCase(value, "keep-alive")) out.close = false;
    }
  }
  if (length.value_or(0) > limits.max_body_bytes) {
    // Refused on the announced size: the body is never read.
    return Refuse(refusal, 413, "Content Too Large",
                  absl::StrCat("the body is ", *length, " bytes; the limit is ", limits.max_body_bytes,
                               " (limits.http.max_body_bytes)\n"));
  }
  out.body_bytes = static_cast<size_t>(length.value_or(0));
  head = std::move(out);
  return HttpParse::kHead;
}

}  // namespace threadfleet::fleetd
