// The head of one HTTP/1.1 request as fleetd's HTTP listener reads it: the
// request line (method, path, query) and every header field (names
// lowercased; Content-Length and Connection also interpreted), checked
// against the listener's limits. Plain functions over bytes, no
// sockets: everything here comes from the network, so every input is checked
// and has a fuzzer (http_request_fuzz.cc).
//
// Example (http_server.cc, for each chunk received):
//
//   HttpRequestHead head;
//   HttpRefusal refusal;
//   switch (ParseHttpRequestHead(buffer, limits, head, refusal)) {
//     case HttpParse::kNeedMore: return;                    // read more
//     case HttpParse::kRefused: return Reply(refusal...);   // 400/411/413/431, then close
//     case HttpParse::kHead: break;   // head.head_bytes + head.body_bytes; head.headers
//   }
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_HTTP_REQUEST_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_HTTP_REQUEST_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "server/fleetd/http/http_exchange.h"

namespace threadfleet::fleetd {

// What the parser checks a request head against (a part of HttpLimits).
struct HttpHeadLimits {
  // Request line and header fields together, the blank line included: this
  // also bounds how many fields `headers` holds and their size.
  size_t max_header_bytes = 8192;
  // The body a request may announce with Content-Length.
  size_t max_body_bytes = size_t{2} << 20;
};

struct HttpRequestHead {
  std::string method;
  // The request target without its query ("/metrics?x=1" -> "/metrics"),
  // as sent (not percent-decoded).
  std::string path;
  // The target's query without '?' ("x=1"); empty when there is none.
  std::string query;
  // Every header field in the order sent, names lowercased, values trimmed.
  HttpHeaders headers;
  // The client asked to close after the response (HTTP/1.0 without
  // keep-alive, or Connection: close).
  bool close = false;
  // Bytes of the head (up to and including the blank line) and of the body
  // announced by Content-Length; the request is head_bytes + body_bytes long.
  size_t head_bytes = 0;
  size_t body_bytes = 0;
};

// Why a request is refused: the status to answer (then close), and a one-line
// message naming the limit where one was passed.
struct HttpRefusal {
  int status = 400;
  std::string reason;
  std::string message;
};

enum class HttpParse {
  kNeedMore,  // the head is not complete yet (and within its limit)
  kHead,      // `head` is set
  kRefused,   // `refusal` is set
};

// Parses the request head at the start of `in`. kRefused with:
// 431 when the head is (or, incomplete, already is) over max_header_bytes;
// 413 when Content-Length announces more than max_body_bytes (the body is
// never read); 411 for Transfer-Encoding (chunked bodies are not taken);
// 400 for a request line that is not "METHOD TARGET HTTP/1.x", a target that
// does not start with '/', a header line without ':' or whose name is not a
// token (no spaces: "Host : x"), or a Content-Length
// that is not one decimal number (also when sent twice with other values).
[[nodiscard]] HttpParse ParseHttpRequestHead(absl::string_view in, const HttpHeadLimits& limits,
                                             HttpRequestHead& head, HttpRefusal& refusal);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_HTTP_REQUEST_H_
