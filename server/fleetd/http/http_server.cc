#include "server/fleetd/http/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/host_port.h"
#include "server/fleetd/http/browser_policy.h"
#include "server/fleetd/http/http_request.h"
#include "server/fleetd/http/http_responder.h"
#include "server/fleetd/http/tls_transport.h"

namespace threadfleet::fleetd {
namespace {

constexpr absl::string_view kTextContentType = "text/plain; charset=utf-8";
constexpr absl::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
// How often the loop wakes with nothing to do, to close timed-out connections.
constexpr int kTickMs = 100;
constexpr int kListenBacklog = 128;
// Read at most this much per readiness, so one client cannot hold the loop
// (also a whole TLS record).
constexpr size_t kReadChunk = 16 << 10;

absl::string_view Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return status < 400 ? "OK" : "Error";
  }
}

// Framing is the server's: a route's own copies would contradict it.
bool IsFramingHeader(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "content-length") ||
         absl::EqualsIgnoreCase(name, "transfer-encoding") || absl::EqualsIgnoreCase(name, "connection");
}

// "ipv4:127.0.0.1:51234" / "ipv6:[::1]:51234", as gRPC prints peers.
std::string PeerName(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return absl::StrCat("ipv6:[", text, "]:", ntohs(in6->sin6_port));
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(&address);
  ::inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
  return absl::StrCat("ipv4:", text, ":", ntohs(in4->sin_port));
}

}  // namespace

class HttpServer::Loop {
 public:
  Loop(Handlers handlers, HttpLimits limits, HttpServerOptions options, std::unique_ptr<TlsContext> tls,
       std::shared_ptr<ExchangeQueue> queue, int listen_fd)
      : handlers_(std::move(handlers)),
        limits_(limits),
        options_(std::move(options)),
        tls_(std::move(tls)),
        queue_(std::move(queue)),
        listen_fd_(listen_fd) {}

  bool tls() const { return tls_ != nullptr; }
  void Run();
  void Stop() {
    stopping_.store(true);
    queue_->Wake();
  }

 private:
  // One client connection.
  struct Connection {
    int fd = -1;
    SocketTransport transport{-1, nullptr};
    std::string peer = {};
    bool handshaking = false;
    // The socket must become writable before a TLS read or handshake can go on.
    bool want_write = false;
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
    // The route's answer in progress (waiting for it, or streaming it).
    std::shared_ptr<Exchange> exchange = nullptr;
    bool streaming = false;
    // Of the request being answered: HEAD (no body goes out), the client
    // asked to close, and its Origin (for CORS headers).
    bool head_only = false;
    bool close_requested = false;
    OriginDecision origin = {};
  };

  // What the connection is doing, in the order connections are evicted at
  // the cap (http_server.h).
  static int EvictionRank(const Connection& c) {
    if (c.exchange != nullptr) return c.streaming ? 3 : 2;
    if (c.handshaking || !c.in.empty() || !c.out.empty()) return 1;
    return 0;
  }

  void Accept(absl::Time now);
  void Expire(absl::Time now);
  void ApplyEvents(absl::Time now);
  void Apply(Connection& c, ExchangeEvent& event, absl::Time now);
  void Serve(Connection& c, short revents, absl::Time now);
  void Send(Connection& c, absl::Time now);
  void Receive(Connection& c, absl::Time now);
  // Parses the request in c.in, if whole, and answers or routes it.
  void Handle(Connection& c, absl::Time now);
  void Dispatch(Connection& c, HttpRequest request, bool close, absl::Time now);
  // Queues a whole response with the server's headers.
  void Reply(Connection& c, int status, HttpHeaders headers, absl::string_view body, bool close);
  void ReplyText(Connection& c, int status, absl::string_view text, bool close) {
    Reply(c, status, {{"content-type", std::string(kTextContentType)}}, text, close);
  }
  // The status line and headers: the route's (or built-in's), then the
  // security and CORS headers, then framing.
  std::string Head(const Connection& c, int status, HttpHeaders headers, absl::string_view framing,
                   bool close) const;
  void PublishUnsent(Connection& c) {
    if (c.streaming && c.exchange != nullptr) c.exchange->unsent_bytes.store(c.out.size() - c.sent);
  }
  // Closes the socket; an answer in progress is cancelled.
  void Close(Connection& c);

  const Handlers handlers_;
  const HttpLimits limits_;
  const HttpServerOptions options_;
  const std::unique_ptr<TlsContext> tls_;
  const std::shared_ptr<ExchangeQueue> queue_;
  const int listen_fd_;
  std::atomic<bool> stopping_{false};
  std::vector<Connection> connections_;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(absl::string_view listen, Handlers handlers,
                                                              HttpLimits limits, HttpServerOptions options) {
  absl::StatusOr<common::HostPort> address = common::ParseHostPort(listen, common::PortRule::kListen);
  if (!address.ok()) return address.status();
  std::unique_ptr<TlsContext> tls;
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    absl::StatusOr<std::unique_ptr<TlsContext>> loaded =
        TlsContext::FromFiles(options.tls_cert_file, options.tls_key_file);
    if (!loaded.ok()) return loaded.status();
    tls = std::move(*loaded);
  }
  auto queue = std::make_shared<ExchangeQueue>();
  if (!queue->ok()) return absl::InternalError(absl::StrCat("HTTP server: pipe: ", std::strerror(errno)));
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
  auto loop = std::make_unique<Loop>(std::move(handlers), limits, std::move(options), std::move(tls),
                                     std::move(queue), fd);
  std::unique_ptr<HttpServer> http(new HttpServer(std::move(loop), fd, port));
  http->thread_ = std::thread([raw = http->loop_.get()] { raw->Run(); });
  return http;
}

HttpServer::HttpServer(std::unique_ptr<Loop> loop, int listen_fd, int port)
    : loop_(std::move(loop)), listen_fd_(listen_fd), port_(port) {}

HttpServer::~HttpServer() { Stop(); }

bool HttpServer::tls() const { return loop_->tls(); }

void HttpServer::Stop() {
  if (!thread_.joinable()) return;
  loop_->Stop();
  thread_.join();
  // Refuse new connections at once, rather than leave them in the backlog.
  ::close(listen_fd_);
}

void HttpServer::Loop::Run() {
  // OpenSSL writes with write(2): a client that closed its end would raise
  // SIGPIPE and end fleetd. Blocked on this thread, the write fails with
  // EPIPE instead and the connection is closed.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  std::vector<pollfd> fds;
  while (!stopping_.load()) {
    fds.clear();
    fds.push_back({.fd = listen_fd_, .events = POLLIN, .revents = 0});
    fds.push_back({.fd = queue_->wake_fd(), .events = POLLIN, .revents = 0});
    for (const Connection& c : connections_) {
      // A connection answering a request reads nothing more (a pipelined
      // request waits in the kernel) but still notices its client leaving.
      short events = c.exchange != nullptr ? POLLRDHUP : 0;
      if (c.exchange == nullptr && c.out.empty()) events |= POLLIN;
      if (c.handshaking) events |= POLLIN;
      if (!c.out.empty() || c.want_write) events |= POLLOUT;
      fds.push_back({.fd = c.fd, .events = events, .revents = 0});
    }
    if (::poll(fds.data(), fds.size(), kTickMs) < 0 && errno != EINTR) break;
    const absl::Time now = absl::Now();
    // Connections first (their indexes match fds from 2 on), then answers
    // from routes, then new connections.
    for (size_t i = 0; i < connections_.size(); ++i) {
      const short revents = fds[i + 2].revents;
      if (revents != 0 && connections_[i].fd >= 0) Serve(connections_[i], revents, now);
    }
    ApplyEvents(now);
    Expire(now);
    if (fds[0].revents & POLLIN) Accept(now);
  }
  for (Connection& c : connections_) Close(c);
  connections_.clear();
}

void HttpServer::Loop::Accept(absl::Time now) {
  // At most max_connections per wake-up: a flood of connects cannot starve
  // the connections already served.
  for (int accepted = 0; accepted < limits_.max_connections; ++accepted) {
    sockaddr_storage address{};
    socklen_t address_len = sizeof address;
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&address), &address_len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (static_cast<int>(connections_.size()) >= limits_.max_connections) {
      auto evicted = std::min_element(connections_.begin(), connections_.end(),
                                      [](const Connection& a, const Connection& b) {
                                        const int rank_a = EvictionRank(a), rank_b = EvictionRank(b);
                                        if (rank_a != rank_b) return rank_a < rank_b;
                                        return a.last_activity < b.last_activity;
                                      });
      Close(*evicted);
      connections_.erase(evicted);
    }
    Connection c{.fd = fd, .peer = PeerName(address), .last_activity = now};
    if (tls_ != nullptr) {
      SSL* ssl = tls_->NewSession(fd);
      if (ssl == nullptr) {
        ::close(fd);
        continue;
      }
      c.transport = SocketTransport(fd, ssl);
      c.handshaking = true;
      c.request_start = now;  // the handshake is bounded by request_timeout
    } else {
      c.transport = SocketTransport(fd, nullptr);
    }
    connections_.push_back(std::move(c));
  }
}

void HttpServer::Loop::Expire(absl::Time now) {
  for (Connection& c : connections_) {
    if (c.fd < 0 || c.streaming) continue;  // a stream is live: no timeout
    if (c.exchange != nullptr) {
      if (now - c.request_start <= limits_.request_timeout) continue;
      // The route never answered: tell the client, and the route to stop.
      c.exchange->Cancel();
      c.exchange = nullptr;
      ReplyText(c, 503, "the answer took longer than limits.http.request_timeout_ms\n", /*close=*/true);
      c.request_start = now;
      continue;
    }
    bool expired = false;
    if (c.request_start != absl::InfiniteFuture() || !c.out.empty()) {
      expired = now - std::min(c.request_start, c.last_activity) > limits_.request_timeout;
    } else {
      expired = now - c.last_activity > limits_.idle_timeout;
    }
    if (expired) Close(c);
  }
  std::erase_if(connections_, [](const Connection& c) { return c.fd < 0; });
}

void HttpServer::Loop::ApplyEvents(absl::Time now) {
  for (ExchangeEvent& event : queue_->Take()) {
    auto c = std::find_if(connections_.begin(), connections_.end(), [&](const Connection& conn) {
      return conn.fd >= 0 && conn.exchange == event.exchange;
    });
    // The connection is gone (closed, timed out): the route's answer too.
    if (c == connections_.end()) continue;
    Apply(*c, event, now);
  }
}

void HttpServer::Loop::Apply(Connection& c, ExchangeEvent& event, absl::Time now) {
  using Kind = ExchangeEvent::Kind;
  switch (event.kind) {
    case Kind::kReply: {
      std::shared_ptr<Exchange> exchange = std::move(c.exchange);
      exchange->Complete();
      const bool close = c.close_requested;
      Reply(c, event.status, std::move(event.headers), event.bytes, close);
      // The response must go out within request_timeout from now.
      c.request_start = now;
      return Send(c, now);
    }
    case Kind::kStartStream:
      c.streaming = true;
      c.out = Head(c, event.status, std::move(event.headers), "transfer-encoding: chunked\r\n",
                   c.close_requested);
      c.sent = 0;
      c.close_after_write = false;
      c.request_start = absl::InfiniteFuture();
      PublishUnsent(c);
      return Send(c, now);
    case Kind::kWrite:
      c.exchange->queued_bytes.fetch_sub(event.bytes.size());
      if (c.head_only) return;
      // Keep only what is unsent, so a long stream does not grow the buffer.
      c.out.erase(0, c.sent);
      c.sent = 0;
      c.out.append(event.bytes);
      if (c.out.size() > limits_.max_stream_buffer_bytes) return Close(c);
      PublishUnsent(c);
      return Send(c, now);
    case Kind::kFinish:
      c.exchange->Complete();
      c.exchange = nullptr;
      c.streaming = false;
      if (!c.head_only) c.out.append("0\r\n\r\n");
      c.close_after_write = c.close_requested;
      c.request_start = now;
      return Send(c, now);
    case Kind::kDropped:
      // A half-sent stream cannot become a 500: end it.
      if (c.streaming) return Close(c);
      c.exchange->Complete();
      c.exchange = nullptr;
      ReplyText(c, 500, "the request was dropped without an answer\n", /*close=*/true);
      c.request_start = now;
      return Send(c, now);
    case Kind::kOverflow:
      return Close(c);
  }
}

void HttpServer::Loop::Serve(Connection& c, short revents, absl::Time now) {
  if (revents & (POLLERR | POLLNVAL)) return Close(c);
  if (c.handshaking) {
    const IoStatus status = c.transport.Handshake();
    if (status == IoStatus::kClosed) return Close(c);
    c.want_write = status == IoStatus::kWantWrite;
    if (status != IoStatus::kDone) return;
    c.handshaking = false;
    c.request_start = absl::InfiniteFuture();
    c.last_activity = now;
    return;
  }
  if (!c.out.empty() && (revents & (POLLOUT | POLLHUP))) return Send(c, now);
  if (c.exchange != nullptr) {
    // Waiting for (or streaming) an answer: the client hanging up ends it.
    if (revents & (POLLRDHUP | POLLHUP)) Close(c);
    return;
  }
  if (c.out.empty() && (revents & (POLLIN | POLLHUP | POLLRDHUP | POLLOUT))) Receive(c, now);
}

void HttpServer::Loop::Send(Connection& c, absl::Time now) {
  if (c.fd < 0 || c.out.empty() || c.handshaking) return;
  const IoResult r = c.transport.Write(c.out.data() + c.sent, c.out.size() - c.sent);
  if (r.status == IoStatus::kClosed) return Close(c);
  c.want_write = false;
  if (r.status != IoStatus::kDone) return;
  c.sent += r.bytes;
  c.last_activity = now;
  if (c.sent < c.out.size()) return PublishUnsent(c);
  c.out.clear();
  c.sent = 0;
  PublishUnsent(c);
  if (c.close_after_write) return Close(c);
  // A pipelined request may already be here.
  if (c.exchange == nullptr) Handle(c, now);
}

void HttpServer::Loop::Receive(Connection& c, absl::Time now) {
  char buf[kReadChunk];
  const IoResult r = c.transport.Read(buf, sizeof buf);
  if (r.status == IoStatus::kClosed) return Close(c);
  c.want_write = r.status == IoStatus::kWantWrite;
  if (r.status != IoStatus::kDone) return;
  if (c.request_start == absl::InfiniteFuture()) c.request_start = now;
  c.last_activity = now;
  c.in.append(buf, r.bytes);
  Handle(c, now);
}

void HttpServer::Loop::Handle(Connection& c, absl::Time now) {
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
      c.origin = {};
      c.head_only = false;
      ReplyText(c, refusal.status, refusal.message, /*close=*/true);
      return Send(c, now);
    case HttpParse::kHead:
      break;
  }
  const size_t request_bytes = head.head_bytes + head.body_bytes;
  if (c.in.size() < request_bytes) return;  // the body is still coming
  HttpRequest request{.method = std::move(head.method),
                      .path = std::move(head.path),
                      .query = std::move(head.query),
                      .headers = std::move(head.headers),
                      .body = c.in.substr(head.head_bytes, head.body_bytes),
                      .peer = c.peer,
                      .tls = tls_ != nullptr};
  c.in.erase(0, request_bytes);
  c.request_start = c.in.empty() ? absl::InfiniteFuture() : now;
  Dispatch(c, std::move(request), head.close, now);
}

void HttpServer::Loop::Dispatch(Connection& c, HttpRequest request, bool close, absl::Time now) {
  c.origin = DecideOrigin(request, options_.cors_origins);
  c.head_only = request.method == "HEAD";
  if (c.origin.verdict == OriginVerdict::kRefused) {
    ReplyText(c, 403, c.origin.message, close);
    return Send(c, now);
  }
  if (IsPreflight(request)) {
    HttpHeaders headers;
    AddPreflightHeaders(c.origin, headers);
    Reply(c, 204, std::move(headers), "", close);
    return Send(c, now);
  }
  const std::string& path = request.path;
  if (path == "/healthz" || path == "/metrics") {
    if (request.method != "GET" && request.method != "HEAD") {
      ReplyText(c, 405, absl::StrCat(path, " answers GET only\n"), close);
    } else if (path == "/metrics") {
      Reply(c, 200, {{"content-type", std::string(kMetricsContentType)}}, handlers_.metrics(), close);
    } else if (const absl::Status health = handlers_.health(); health.ok()) {
      ReplyText(c, 200, "ok\n", close);
    } else {
      ReplyText(c, 503, absl::StrCat(health.ToString(), "\n"), close);
    }
    return Send(c, now);
  }
  if (!handlers_.route) {
    ReplyText(c, 404, "not found\n", close);
    return Send(c, now);
  }
  c.exchange = std::make_shared<Exchange>();
  c.streaming = false;
  c.close_requested = close;
  // The route's answer must come within request_timeout of the request.
  c.request_start = now;
  handlers_.route(std::move(request), MakeResponder(c.exchange, queue_, limits_.max_stream_buffer_bytes));
}

std::string HttpServer::Loop::Head(const Connection& c, int status, HttpHeaders headers,
                                   absl::string_view framing, bool close) const {
  std::erase_if(headers, [](const auto& h) { return IsFramingHeader(h.first); });
  AddDefaultCacheControl(headers);
  for (auto& header : SecurityHeaders(tls_ != nullptr)) headers.push_back(std::move(header));
  AddCorsHeaders(c.origin, headers);
  std::string head = absl::StrCat("HTTP/1.1 ", status, " ", Reason(status), "\r\n");
  for (const auto& [name, value] : headers) {
    // A header value must not end the head early (a route echoing input).
    if (value.find_first_of("\r\n") != std::string::npos) continue;
    absl::StrAppend(&head, name, ": ", value, "\r\n");
  }
  absl::StrAppend(&head, framing, "connection: ", close ? "close" : "keep-alive", "\r\n\r\n");
  return head;
}

void HttpServer::Loop::Reply(Connection& c, int status, HttpHeaders headers, absl::string_view body,
                             bool close) {
  // 204 and 304 have no body, and so no Content-Length either.
  const std::string framing =
      status == 204 || status == 304 ? std::string() : absl::StrCat("content-length: ", body.size(), "\r\n");
  c.out = Head(c, status, std::move(headers), framing, close);
  if (!c.head_only) c.out.append(body.data(), body.size());
  c.sent = 0;
  c.streaming = false;
  c.close_after_write = close;
  if (close) c.in.clear();
}

void HttpServer::Loop::Close(Connection& c) {
  if (c.fd < 0) return;
  c.transport = SocketTransport(-1, nullptr);
  ::close(c.fd);
  c.fd = -1;
  c.streaming = false;
  if (c.exchange != nullptr) std::exchange(c.exchange, nullptr)->Cancel();
}

}  // namespace threadfleet::fleetd
