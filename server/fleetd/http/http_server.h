// fleetd's plain-HTTP endpoint (cpp-httplib): what monitoring scrapes and
// probes. Only adapts HTTP to two callbacks; what they answer is decided by
// whoever wires it (fleetd_main: the store's health, metrics.h's text).
//
//   GET /healthz  200 "ok\n" when the health callback returns OK;
//                 503 "<message>\n" otherwise.
//   GET /metrics  200, Content-Type "text/plain; version=0.0.4; charset=utf-8",
//                 the metrics callback's text.
//   anything else 404 "not found\n".
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(
//       "127.0.0.1:0", {.health = [&] { return store.SchemaVersion().status(); },
//                       .metrics = [&] { return RenderMetrics(...); }});
//   if (!http.ok()) return http.status();        // e.g. the port is taken
//   std::cerr << "http=127.0.0.1:" << (*http)->port() << "\n";
//   (*http)->Stop();
//
// Callbacks run on the server's worker threads, possibly concurrently.
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_HTTP_SERVER_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace threadfleet::fleetd {

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
                                                                         Handlers handlers);

  // Stops serving.
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port it listens on (the real one when asked for port 0).
  int port() const { return port_; }

  // Stops accepting, ends the server's threads and returns once they have
  // ended. Idempotent.
  void Stop();

 private:
  HttpServer(std::unique_ptr<httplib::Server> server, int port);

  std::unique_ptr<httplib::Server> server_;
  const int port_;
  std::thread thread_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_HTTP_SERVER_H_
