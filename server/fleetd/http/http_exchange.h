// One request to fleetd's HTTP listener beyond its built-in routes, and the
// way its answer goes back: the seam between the HTTP server (http_server.h,
// which owns sockets, TLS, limits and security headers) and what serves the
// dashboard (the Connect gateway, connect/, and the web-ui's files).
//
// The server calls its route handler on its own thread with the request
// whole (body included, within limits.http). The handler must return
// quickly; it answers through the HttpResponder now or later, from any
// thread:
//
//   void Serve(HttpRequest request, std::shared_ptr<HttpResponder> responder) {
//     if (request.method != "POST") return responder->Reply(405, {}, "POST only\n");
//     StartCall(std::move(request.body), [responder](std::string answer) {   // a gRPC thread
//       responder->Reply(200, {{"content-type", "application/json"}}, std::move(answer));
//     });
//   }
//
// A streamed answer (Connect server streaming) goes out as an HTTP/1.1
// chunked body: StartStream once, Write per message, Finish at the end.
// Write returns false once the client is gone (or let more than
// limits.http.max_stream_buffer_bytes pile up unsent: the server then closes
// the connection); the handler stops writing and cancels its work.
// OnCancel's callback runs once when the connection ends before the answer
// completed (client gone, buffer cap, fleetd stopping).
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_HTTP_EXCHANGE_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_HTTP_EXCHANGE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace threadfleet::fleetd {

// Header fields: names lowercased, values trimmed, in the order sent.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;
  // The target's path, without its query ("/a/b?x=1" -> "/a/b").
  std::string path;
  // The target's query without '?' ("x=1"); empty when there is none.
  std::string query;
  HttpHeaders headers;
  std::string body;
  // The client's address as gRPC prints peers ("ipv4:127.0.0.1:51234",
  // "ipv6:[::1]:51234"): what the audit log records for the call.
  std::string peer;
  // The request came over TLS.
  bool tls = false;

  // The first value of header `name` (lowercase), if sent.
  std::optional<absl::string_view> Header(absl::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return absl::string_view(value);
    }
    return std::nullopt;
  }
};

// How a route answers. Thread-safe; every method may be called from any
// thread. A request is answered once: either Reply, or StartStream, any
// number of Writes and Finish. Calls after that (or after the connection
// closed) do nothing. Dropping the last reference without answering closes
// the connection with 500.
class HttpResponder {
 public:
  virtual ~HttpResponder() = default;

  // A whole response with a Content-Length. `headers` are added to the
  // server's own (security headers, CORS); content-type among them.
  virtual void Reply(int status, HttpHeaders headers, std::string body) = 0;

  // Sends the head of a chunked response.
  virtual void StartStream(int status, HttpHeaders headers) = 0;
  // Queues one chunk. False when the client is gone or the unsent bytes
  // passed the stream buffer limit: stop writing.
  [[nodiscard]] virtual bool Write(std::string bytes) = 0;
  // Sends the last chunk; the connection may then carry the next request.
  virtual void Finish() = 0;

  // `cancel` runs once, on the server's thread, if the connection ends
  // before the answer is complete. It must be quick. Set it before starting
  // the work it cancels; if the connection already ended it runs at once.
  virtual void OnCancel(std::function<void()> cancel) = 0;
};

// What the server calls for each request not to /healthz or /metrics (and
// not refused by the server's own rules: limits, CORS).
using HttpRoute = std::function<void(HttpRequest request, std::shared_ptr<HttpResponder> responder)>;

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_HTTP_EXCHANGE_H_
