// fleetd's plain-HTTP endpoint: what monitoring scrapes and probes. Only
// adapts HTTP/1.1 to two callbacks; what they answer is decided by whoever
// wires it (fleetd_main: the store's health, metrics.h's text).
//
//   GET /healthz  200 "ok\n" when the health callback returns OK;
//                 503 "<message>\n" otherwise.
//   GET /metrics  200, Content-Type "text/plain; version=0.0.4; charset=utf-8",
//                 the metrics callback's text.
//   other methods on those paths 405; anything else 404 "not found\n".
//
// Bounded in every dimension (HttpLimits, fleetd.yaml's limits.http): headers
// over max_header_bytes get 431, a body announced over max_body_bytes 413
// without being read, chunked bodies 411; at most max_connections are open,
// and at the cap a new connection closes the one quiet longest, so idle or
// slow clients never keep a probe out; a kept-alive connection idle for
// idle_timeout is closed, and so is one whose request (or response) takes
// longer than request_timeout.
//
// One thread serves every connection with non-blocking sockets and poll():
// no client can hold a thread. cpp-httplib (used before) gives each
// connection a pool thread for its whole keep-alive, cannot cap connections
// (its task queue cannot refuse a socket without leaking it) and has no limit
// on the header block as a whole.
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(
//       "127.0.0.1:0", {.health = [&] { return store.CheckHealth(); },
//                       .metrics = [&] { return RenderMetrics(...); }},
//       HttpLimits{.max_connections = 64});
//   if (!http.ok()) return http.status();        // e.g. the port is taken
//   std::cerr << "http=127.0.0.1:" << (*http)->port() << "\n";
//   (*http)->Stop();
//
// Callbacks run on the server's thread, one at a time: they must be quick
// (no board calls).
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_HTTP_SERVER_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_HTTP_SERVER_H_

#include <atomic>
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

namespace threadfleet::fleetd {

// fleetd.yaml's `limits.http` section; the defaults are fleetd's.
struct HttpLimits {
  // Request line and headers together.
  size_t max_header_bytes = 8192;
  // A request body (no route takes one yet; the dashboard's Connect will).
  size_t max_body_bytes = size_t{64} << 10;
  // Open connections; at the cap, the longest-idle one is closed for a new one.
  int max_connections = 64;
  // A kept-alive connection with no request in progress is closed after this.
  absl::Duration idle_timeout = absl::Seconds(2);
  // A request must arrive whole, and its response be taken, within this.
  absl::Duration request_timeout = absl::Seconds(5);
};

class HttpServer {
 public:
  struct Handlers {
    // OK when fleetd can serve; otherwise its message says why.
    std::function<absl::Status()> health;
    // The Prometheus text exposition.
    std::function<std::string()> metrics;
  };

  // Listens on `listen` ("host:port", port 0 picks a free one) and serves in
  // the background. INVALID_ARGUMENT for a malformed address; UNAVAILABLE
  // naming the address when it cannot be bound (in use, no such interface).
  // REQUIRES: both handlers set.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpServer>> Start(absl::string_view listen,
                                                                         Handlers handlers,
                                                                         HttpLimits limits = {});

  // Stops serving.
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port it listens on (the real one when asked for port 0).
  int port() const { return port_; }

  // Closes every connection and the listening socket, ends the server's
  // thread and returns once it has ended. Idempotent.
  void Stop();

 private:
  struct Connection;

  HttpServer(Handlers handlers, HttpLimits limits, int listen_fd, int wake_read, int wake_write, int port);

  // The server's one thread: poll(), then serve, expire and accept.
  void Loop();
  void Accept(std::vector<Connection>& connections, absl::Time now);
  // Closes connections past their idle or request timeout, and those Serve
  // closed.
  void Expire(std::vector<Connection>& connections, absl::Time now);
  // Moves bytes on one ready connection.
  void Serve(Connection& c, short revents, absl::Time now);
  // Parses the request in c.in, if whole, and queues its response.
  void Handle(Connection& c, absl::Time now);
  void Route(Connection& c, const std::string& method, const std::string& path, bool close);
  void Reply(Connection& c, int status, absl::string_view reason, absl::string_view body,
             absl::string_view content_type, bool close);
  void Close(Connection& c);

  const Handlers handlers_;
  const HttpLimits limits_;
  const int listen_fd_;
  // Stop() writes a byte here to wake the loop.
  const int wake_read_;
  const int wake_write_;
  const int port_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_HTTP_SERVER_H_
