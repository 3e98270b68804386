#include "server/fleetd/http/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/host_port.h"
#include "server/fleetd/http/http_request.h"

namespace threadfleet::fleetd {
namespace {

constexpr absl::string_view kTextContentType = "text/plain; charset=utf-8";
constexpr absl::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
// How often the loop wakes with nothing to do, to close timed-out connections.
constexpr int kTickMs = 100;
constexpr int kListenBacklog = 128;
// Read at most this much per readiness, so one client cannot hold the loop.
constexpr size_t kReadChunk = 16 << 10;

// One HTTP response, headers and body, as sent.
std::string Response(int status, absl::string_view reason, absl::string_view content_type,
                     absl::string_view body, bool close) {
  return absl::StrCat("HTTP/1.1 ", status, " ", reason, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: ", close ? "close" : "keep-alive",
                      "\r\n\r\n", body);
}

}  // namespace

// One client connection of the loop.
struct HttpServer::Connection {
  int fd = -1;
  // Bytes received and not yet handled (at most one request's worth).
  std::string in = {};
  // The response being sent, and how much of it went out.
  std::string out = {};
  size_t sent = 0;
  bool close_after_write = false;
  // Last time bytes moved either way, and when the request in progress (if
  // any) began.
  absl::Time last_activity;
  absl::Time request_start = absl::InfiniteFuture();
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(absl::string_view listen, Handlers handlers,
                                                              HttpLimits limits) {
  absl::StatusOr<common::HostPort> address = common::ParseHostPort(listen, common::PortRule::kListen);
  if (!address.ok()) return address.status();
  const std::string& host = address->host;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port_text = absl::StrCat(address->port);
  if (::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found) != 0 || found == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", listen, " (unknown host)"));
  }
  int fd = -1;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    // SO_REUSEADDR only, never SO_REUSEPORT: a second fleetd must fail to
    // start rather than share the port.
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, kListenBacklog) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", listen, " (address in use or not local?)"));
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  const int port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                     : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int wake[2];
  if (::pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("HTTP server: pipe: ", std::strerror(errno)));
  }
  std::unique_ptr<HttpServer> http(new HttpServer(std::move(handlers), limits, fd, wake[0], wake[1], port));
  http->thread_ = std::thread([raw = http.get()] { raw->Loop(); });
  return http;
}

HttpServer::HttpServer(Handlers handlers, HttpLimits limits, int listen_fd, int wake_read, int wake_write,
                       int port)
    : handlers_(std::move(handlers)),
      limits_(limits),
      listen_fd_(listen_fd),
      wake_read_(wake_read),
      wake_write_(wake_write),
      port_(port) {}

HttpServer::~HttpServer() {
  Stop();
  ::close(wake_read_);
  ::close(wake_write_);
}

void HttpServer::Stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  const char byte = 0;
  (void)!::write(wake_write_, &byte, 1);
  thread_.join();
  // Refuse new connections at once, rather than leave them in the backlog.
  ::close(listen_fd_);
}

void HttpServer::Loop() {
  std::vector<Connection> connections;
  std::vector<pollfd> fds;
  while (!stopping_.load()) {
    fds.clear();
    fds.push_back({.fd = listen_fd_, .events = POLLIN, .revents = 0});
    fds.push_back({.fd = wake_read_, .events = POLLIN, .revents = 0});
    for (const Connection& c : connections) {
      const short events = c.out.empty() ? POLLIN : POLLOUT;
      fds.push_back({.fd = c.fd, .events = events, .revents = 0});
    }
    if (::poll(fds.data(), fds.size(), kTickMs) < 0 && errno != EINTR) break;
    const absl::Time now = absl::Now();
    // Connections first (their indexes match fds from 2 on), then new ones.
    for (size_t i = 0; i < connections.size(); ++i) {
      const short revents = fds[i + 2].revents;
      if (revents != 0) Serve(connections[i], revents, now);
    }
    Expire(connections, now);
    if (fds[0].revents & POLLIN) Accept(connections, now);
  }
  for (Connection& c : connections) ::close(c.fd);
}

void HttpServer::Accept(std::vector<Connection>& connections, absl::Time now) {
  // At most max_connections per wake-up: a flood of connects cannot starve
  // the connections already served.
  for (int accepted = 0; accepted < limits_.max_connections; ++accepted) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (static_cast<int>(connections.size()) >= limits_.max_connections) {
      // Room for the newcomer: the connection that has been quiet longest
      // goes (an idle keep-alive, or the slowest sender). Probes are short,
      // so a /healthz always gets in however many connections are held.
      auto quietest = std::min_element(
          connections.begin(), connections.end(),
          [](const Connection& a, const Connection& b) { return a.last_activity < b.last_activity; });
      ::close(quietest->fd);
      connections.erase(quietest);
    }
    connections.push_back(Connection{.fd = fd, .last_activity = now});
  }
}

void HttpServer::Expire(std::vector<Connection>& connections, absl::Time now) {
  std::erase_if(connections, [&](Connection& c) {
    bool expired = false;
    if (c.fd < 0) {
      expired = true;  // closed by Serve
    } else if (c.request_start != absl::InfiniteFuture() || !c.out.empty()) {
      expired = now - std::min(c.request_start, c.last_activity) > limits_.request_timeout;
    } else {
      expired = now - c.last_activity > limits_.idle_timeout;
    }
    if (expired && c.fd >= 0) ::close(c.fd);
    return expired;
  });
}

void HttpServer::Serve(Connection& c, short revents, absl::Time now) {
  if (revents & (POLLERR | POLLNVAL)) return Close(c);
  if (!c.out.empty()) {
    if (!(revents & (POLLOUT | POLLHUP))) return;
    const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) return Close(c);
    c.sent += static_cast<size_t>(n);
    c.last_activity = now;
    if (c.sent < c.out.size()) return;
    c.out.clear();
    c.sent = 0;
    if (c.close_after_write) return Close(c);
    // A pipelined request may already be here.
    return Handle(c, now);
  }
  char buf[kReadChunk];
  const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) return Close(c);
  if (c.request_start == absl::InfiniteFuture()) c.request_start = now;
  c.last_activity = now;
  c.in.append(buf, static_cast<size_t>(n));
  Handle(c, now);
}

void HttpServer::Handle(Connection& c, absl::Time now) {
  if (c.in.empty()) return;
  if (c.request_start == absl::InfiniteFuture()) c.request_start = now;
  HttpRequestHead head;
  HttpRefusal refusal;
  switch (ParseHttpRequestHead(
      c.in, {.max_header_bytes = limits_.max_header_bytes, .max_body_bytes = limits_.max_body_bytes}, head,
      refusal)) {
    case HttpParse::kNeedMore:
      return;
    case HttpParse::kRefused:
      return Reply(c, refusal.status, refusal.reason, refusal.message, kTextContentType, /*close=*/true);
    case HttpParse::kHead:
      break;
  }
  const size_t request_bytes = head.head_bytes + head.body_bytes;
  if (c.in.size() < request_bytes) return;  // the body is still coming
  c.in.erase(0, request_bytes);
  c.request_start = c.in.empty() ? absl::InfiniteFuture() : now;
  Route(c, head.method, head.path, head.close);
}

void HttpServer::Route(Connection& c, const std::string& method, const std::string& path, bool close) {
  const bool known = path == "/healthz" || path == "/metrics";
  if (!known) return Reply(c, 404, "Not Found", "not found\n", kTextContentType, close);
  if (method != "GET") {
    return Reply(c, 405, "Method Not Allowed", absl::StrCat(path, " answers GET only\n"), kTextContentType,
                 close);
  }
  if (path == "/metrics") return Reply(c, 200, "OK", handlers_.metrics(), kMetricsContentType, close);
  const absl::Status health = handlers_.health();
  if (health.ok()) return Reply(c, 200, "OK", "ok\n", kTextContentType, close);
  Reply(c, 503, "Service Unavailable", absl::StrCat(health.ToString(), "\n"), kTextContentType, close);
}

void HttpServer::Reply(Connection& c, int status, absl::string_view reason, absl::string_view body,
                       absl::string_view content_type, bool close) {
  c.out = Response(status, reason, content_type, body, close);
  c.sent = 0;
  c.close_after_write = close;
  if (close) c.in.clear();
}

void HttpServer::Close(Connection& c) {
  ::close(c.fd);
  c.fd = -1;
}

}  // namespace threadfleet::fleetd
