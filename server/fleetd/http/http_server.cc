#include "server/fleetd/http/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/host_port.h"

namespace threadfleet::fleetd {
namespace {

// How long Start waits for the listening thread to accept.
constexpr absl::Duration kStartTimeout = absl::Seconds(10);
constexpr absl::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(absl::string_view listen, Handlers handlers) {
  absl::StatusOr<common::HostPort> address = common::ParseHostPort(listen, common::PortRule::kListen);
  if (!address.ok()) return address.status();
  const std::string& host = address->host;
  const int port = address->port;

  auto server = std::make_unique<httplib::Server>();
  // SO_REUSEADDR only: cpp-httplib's default also sets SO_REUSEPORT, which
  // would let a second fleetd share the port instead of failing to start.
  server->set_socket_options([](auto sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  server->Get("/healthz", [health = handlers.health](const httplib::Request&, httplib::Response& res) {
    const absl::Status status = health();
    if (status.ok()) {
      res.set_content("ok\n", "text/plain; charset=utf-8");
      return;
    }
    res.status = 503;
    res.set_content(absl::StrCat(status.ToString(), "\n"), "text/plain; charset=utf-8");
  });
  server->Get("/metrics", [metrics = handlers.metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), std::string(kMetricsContentType));
  });
  // Unmatched paths and methods: cpp-httplib sets 404 (or 400/405...) and
  // leaves the body empty; say it in words.
  server->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404) res.set_content("not found\n", "text/plain; charset=utf-8");
  });

  int bound = port;
  if (port == 0) {
    bound = server->bind_to_any_port(host);
    if (bound < 0) bound = 0;
  } else if (!server->bind_to_port(host, port)) {
    bound = 0;
  }
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", listen, " (address in use or not local?)"));
  }
  std::unique_ptr<HttpServer> http(new HttpServer(std::move(server), bound));
  httplib::Server* raw = http->server_.get();
  http->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  // stop() before the loop runs would be lost: wait until it runs.
  const absl::Time deadline = absl::Now() + kStartTimeout;
  while (!raw->is_running()) {
    if (absl::Now() > deadline) {
      return absl::UnavailableError(absl::StrCat("HTTP server on ", listen, " did not start"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return http;
}

HttpServer::HttpServer(std::unique_ptr<httplib::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace threadfleet::fleetd
