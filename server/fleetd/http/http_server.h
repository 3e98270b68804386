// fleetd's HTTP listener: what monitoring scrapes and probes, and the
// dashboard's server. Only adapts HTTP/1.1 to callbacks; what they answer is
// decided by whoever wires it (fleetd_main: the store's health, metrics.h's
// text, and the dashboard route: the Connect gateway and the static site).
//
//   GET /healthz  200 "ok\n" when the health callback returns OK;
//                 503 "<message>\n" otherwise.
//   GET /metrics  200, Content-Type "text/plain; version=0.0.4; charset=utf-8",
//                 the metrics callback's text.
//   other methods on those paths 405; anything else goes to the route
//   (http_exchange.h), or is 404 "not found\n" without one.
//
// Browser rules (browser_policy.h), before any of that: a request whose
// Origin is neither the listener's own nor in `cors_origins` is refused 403;
// a CORS preflight is answered 204 by the server itself; every response
// (built-in, refusal, route) carries the security headers, and
// "Cache-Control: no-store" unless the route set its own.
//
// Bounded in every dimension (HttpLimits, fleetd.yaml's limits.http): headers
// over max_header_bytes get 431, a body announced over max_body_bytes 413
// without being read, chunked bodies 411; at most max_connections are open; a
// kept-alive connection idle for idle_timeout is closed, and so is one whose
// request (or response) takes longer than request_timeout. A route that does
// not answer within request_timeout gets its client a 503 (then close) and
// its OnCancel run. A streamed answer is live: exempt from both timeouts
// while it streams, bounded instead by max_stream_buffer_bytes unsent (over
// it the connection is closed and OnCancel runs), and ended (OnCancel) when
// the client closes its side.
//
// At the connection cap a new connection closes an old one, chosen in this
// order: idle keep-alives first, then connections mid-request (handshake,
// slow senders, responses being written), then those waiting for a route's
// answer, streams last; the quietest of the first non-empty group goes. So
// probes always get in, and a dashboard's few live streams are not closed
// for another client while idle connections remain; when every connection
// is a stream the quietest stream goes (its client reconnects).
//
// With TLS (tls_cert_file/tls_key_file) the listener speaks only HTTPS,
// TLS 1.2 or later; the handshake is bounded by request_timeout.
//
// One thread serves every connection with non-blocking sockets and poll():
// no client can hold a thread. Routes answer from any thread through a
// queue and the wake pipe. cpp-httplib (used before) gives each connection
// a pool thread for its whole keep-alive, cannot cap connections (its task
// queue cannot refuse a socket without leaking it) and has no limit on the
// header block as a whole.
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(
//       "127.0.0.1:0", {.health = [&] { return store.CheckHealth(); },
//                       .metrics = [&] { return RenderMetrics(...); },
//                       .route = DashboardRoute(...)},
//       HttpLimits{.max_connections = 64}, HttpServerOptions{.cors_origins = {...}});
//   if (!http.ok()) return http.status();        // e.g. the port is taken
//   std::cerr << "http=127.0.0.1:" << (*http)->port() << "\n";
//   (*http)->Stop();
//
// health and metrics and the route run on the server's thread, one at a
// time: they must be quick (no board calls; the route hands its work on).
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_HTTP_SERVER_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_HTTP_SERVER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/fleetd/http/http_exchange.h"

namespace threadfleet::fleetd {

// fleetd.yaml's `limits.http` section; the defaults are fleetd's.
struct HttpLimits {
  // Request line and headers together.
  size_t max_header_bytes = 8192;
  // A request body. 2 MiB: the dashboard pushes a file of up to
  // limits.request.max_push_bytes (1 MiB) as Connect JSON, base64 (~1.4 MiB).
  size_t max_body_bytes = size_t{2} << 20;
  // Open connections; at the cap, the longest-idle one is closed for a new one.
  int max_connections = 64;
  // A kept-alive connection with no request in progress is closed after this.
  absl::Duration idle_timeout = absl::Seconds(2);
  // A request must arrive whole, and its response be taken, within this.
  absl::Duration request_timeout = absl::Seconds(5);
  // Bytes of a streamed answer queued and not yet taken by the client; more
  // closes the connection (a client that stopped reading).
  size_t max_stream_buffer_bytes = size_t{1} << 20;
  // Server-streaming Fleet API calls open at once over Connect (the
  // gateway's, connect/connect_gateway.h); more are refused with
  // resource_exhausted. Each holds a watcher in fleetd until it ends.
  int max_connect_streams = 32;
};

// The listener's transport and browser rules (fleetd.yaml's http section).
struct HttpServerOptions {
  // PEM certificate chain and private key; both set: HTTPS only.
  std::string tls_cert_file = {};
  std::string tls_key_file = {};
  // Origins (e.g. "https://lab.example:8443") other than the listener's own
  // whose pages may call it.
  std::vector<std::string> cors_origins = {};
};

class HttpServer {
 public:
  struct Handlers {
    // OK when fleetd can serve; otherwise its message says why.
    std::function<absl::Status()> health = nullptr;
    // The Prometheus text exposition.
    std::function<std::string()> metrics = nullptr;
    // Every other request; unset: 404.
    HttpRoute route = nullptr;
  };

  // Listens on `listen` ("host:port", port 0 picks a free one) and serves in
  // the background. INVALID_ARGUMENT for a malformed address, or TLS files
  // that cannot be loaded (naming the file); UNAVAILABLE naming the address
  // when it cannot be bound (in use, no such interface).
  // REQUIRES: health and metrics set.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpServer>> Start(absl::string_view listen,
                                                                         Handlers handlers,
                                                                         HttpLimits limits = {},
                                                                         HttpServerOptions options = {});

  // Stops serving.
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port it listens on (the real one when asked for port 0).
  int port() const { return port_; }

  // True when the listener speaks HTTPS.
  bool tls() const;

  // Closes every connection (running the OnCancel of answers in progress)
  // and the listening socket, ends the server's thread and returns once it
  // has ended. Idempotent.
  void Stop();

 private:
  // The poll() loop and its connections (http_server.cc).
  class Loop;

  HttpServer(std::unique_ptr<Loop> loop, int listen_fd, int port);

  std::unique_ptr<Loop> loop_;
  const int listen_fd_;
  const int port_;
  std::thread thread_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_HTTP_SERVER_H_
