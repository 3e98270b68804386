// HttpServer's routes on a real loopback port: requests with headers and
// bodies reach the route, its answers (whole or streamed, from any thread)
// reach the client, and the rules a browser sees hold on every answer
// (security headers, CORS, TLS). Clients are raw sockets, byte for byte, and
// cpp-httplib's (with OpenSSL for HTTPS).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "server/fleetd/http/dashboard_route.h"
#include "server/fleetd/http/http_server.h"
#include "server/fleetd/http/static_site.h"

namespace threadfleet::fleetd {
namespace {

using ::testing::AllOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr int kReadWaitMs = 3000;
constexpr absl::Duration kWait = absl::Seconds(10);

// A raw loopback connection. Every wait is bounded (kReadWaitMs per read).
class RawClient {
 public:
  explicit RawClient(int port, int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { Close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool Send(absl::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads until `got` contains `until`, the server closes, or it is quiet
  // for kReadWaitMs. Returns everything read so far.
  std::string ReadUntil(const std::string& until) {
    for (int reads = 0; reads < 100000 && got_.find(until) == std::string::npos; ++reads) {
      if (!ReadSome()) break;
    }
    return got_;
  }

  // Reads until the server closes (true) or kReadWaitMs of quiet (false).
  bool ReadToClose() {
    for (int reads = 0; reads < 1000000; ++reads) {
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, kReadWaitMs) <= 0) return false;
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
      got_.append(buf, static_cast<size_t>(n));
    }
    return false;
  }

  const std::string& got() const { return got_; }

 private:
  bool ReadSome() {
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, kReadWaitMs) <= 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string got_;
};

// A route that keeps each request and its responder for the test to answer.
class HeldRoute {
 public:
  HttpRoute route() {
    return [this](HttpRequest request, std::shared_ptr<HttpResponder> responder) {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(std::move(request));
      responders_.push_back(std::move(responder));
      arrived_.notify_all();
    };
  }

  // The n-th request's responder (0-based), waiting up to kWait for it.
  std::shared_ptr<HttpResponder> Responder(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    arrived_.wait_for(lock, std::chrono::seconds(10), [&] { return responders_.size() > n; });
    return responders_.size() > n ? responders_[n] : nullptr;
  }
  HttpRequest Request(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.at(n);
  }
  // Lets the responders go (as a route does once it answered).
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    responders_.clear();
  }

 private:
  std::mutex mu_;
  std::condition_variable arrived_;
  std::vector<HttpRequest> requests_;
  std::vector<std::shared_ptr<HttpResponder>> responders_;
};

HttpServer::Handlers WithRoute(HttpRoute route) {
  return {.health = [] { return absl::OkStatus(); },
          .metrics = [] { return std::string("x 1\n"); },
          .route = std::move(route)};
}

// Sets `cancelled` when the exchange's OnCancel runs.
void NotifyOnCancel(HttpResponder& responder, absl::Notification& cancelled) {
  responder.OnCancel([&cancelled] { cancelled.Notify(); });
}

TEST(HttpRoute, TheRouteGetsMethodPathQueryHeadersBodyAndPeerAndItsReplyReachesTheClient) {
  HeldRoute held;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", WithRoute(held.route()));
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient client((*http)->port());
  ASSERT_TRUE(
      client.Send("POST /threadfleet.fleet.v1.Fleet/WhoAmI?x=1 HTTP/1.1\r\nHost: fleetd\r\n"
                  "Content-Type: application/json\r\nAuthorization: Bearer tf_abc\r\nContent-Length: "
                  "7\r\n\r\n{\"a\":1}"));
  std::shared_ptr<HttpResponder> responder = held.Responder(0);
  ASSERT_NE(responder, nullptr);
  const HttpRequest request = held.Request(0);
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/threadfleet.fleet.v1.Fleet/WhoAmI");
  EXPECT_EQ(request.query, "x=1");
  EXPECT_EQ(request.Header("authorization"), "Bearer tf_abc");
  EXPECT_EQ(request.Header("content-type"), "application/json");
  EXPECT_EQ(request.body, "{\"a\":1}");
  EXPECT_THAT(request.peer, StartsWith("ipv4:127.0.0.1:"));
  EXPECT_FALSE(request.tls);

  // Answered from another thread, as a gRPC callback would.
  std::thread([responder] {
    responder->Reply(200, {{"content-type", "application/json"}}, "{\"user\":\"x\"}");
  }).join();
  const std::string response = client.ReadUntil("{\"user\":\"x\"}");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("content-type: application/json\r\n"));
  EXPECT_THAT(response, HasSubstr("content-length: 12\r\n"));
  EXPECT_THAT(response, EndsWith("\r\n\r\n{\"user\":\"x\"}"));
}

TEST(HttpRoute, AStreamedAnswerArrivesChunkedAndTheConnectionCarriesTheNextRequest) {
  HeldRoute held;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", WithRoute(held.route()));
  ASSERT_TRUE(http.ok()) << http.status();
  std::thread answer([&] {
    std::shared_ptr<HttpResponder> responder = held.Responder(0);
    if (responder == nullptr) return;
    responder->StartStream(200, {{"content-type", "application/connect+json"}});
    for (const char* message : {"one,", "two,", "three"}) EXPECT_TRUE(responder->Write(message));
    responder->Finish();
    EXPECT_FALSE(responder->Write("late")) << "Write after Finish must refuse";
    held.Responder(1)->Reply(200, {}, "second");
  });
  httplib::Client client("127.0.0.1", (*http)->port());
  httplib::Result first = client.Post("/stream", "{}", "application/json");
  httplib::Result second = client.Get("/next");
  answer.join();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->get_header_value("Transfer-Encoding"), "chunked");
  EXPECT_EQ(first->get_header_value("Content-Type"), "application/connect+json");
  EXPECT_EQ(first->body, "one,two,three");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "second");
}

TEST(HttpRoute, AStreamWhoseClientStopsReadingIsClosedAtTheBufferCapAndCancelled) {
  HeldRoute held;
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(
      "127.0.0.1:0", WithRoute(held.route()), HttpLimits{.max_stream_buffer_bytes = 256 << 10});
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient client((*http)->port(), /*receive_buffer=*/4096);
  ASSERT_TRUE(client.Send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::shared_ptr<HttpResponder> responder = held.Responder(0);
  ASSERT_NE(responder, nullptr);
  absl::Notification cancelled;
  NotifyOnCancel(*responder, cancelled);
  responder->StartStream(200, {});
  // The client reads nothing: the kernel's buffers fill, then the server's.
  // Paced so the loop takes each message off the queue: the cap is hit by
  // what waits on the connection, as with a real slow reader.
  const std::string message(16 << 10, 'm');
  bool refused = false;
  for (int i = 0; i < 4096 && !refused; ++i) {
    refused = !responder->Write(message);
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_TRUE(refused) << "Write never refused past the stream buffer cap";
  EXPECT_TRUE(cancelled.WaitForNotificationWithTimeout(kWait));
  EXPECT_FALSE(responder->Write(message));
  EXPECT_TRUE(client.ReadToClose()) << "the server kept the connection";
}

TEST(HttpRoute, AClientClosingMidStreamCancelsTheAnswer) {
  HeldRoute held;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", WithRoute(held.route()));
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient client((*http)->port());
  ASSERT_TRUE(client.Send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::shared_ptr<HttpResponder> responder = held.Responder(0);
  ASSERT_NE(responder, nullptr);
  absl::Notification cancelled;
  NotifyOnCancel(*responder, cancelled);
  responder->StartStream(200, {});
  ASSERT_TRUE(responder->Write("hello"));
  EXPECT_THAT(client.ReadUntil("hello\r\n"), HasSubstr("5\r\nhello\r\n"));
  client.Close();
  EXPECT_TRUE(cancelled.WaitForNotificationWithTimeout(kWait));
  EXPECT_FALSE(responder->Write("anyone?"));
}

TEST(HttpRoute, StopCancelsOpenStreamsAndLaterCallsDoNothing) {
  HeldRoute held;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", WithRoute(held.route()));
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient a((*http)->port());
  RawClient b((*http)->port());
  ASSERT_TRUE(a.Send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::shared_ptr<HttpResponder> first = held.Responder(0);
  ASSERT_TRUE(b.Send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::shared_ptr<HttpResponder> second = held.Responder(1);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  absl::Notification first_cancelled, second_cancelled;
  NotifyOnCancel(*first, first_cancelled);
  NotifyOnCancel(*second, second_cancelled);
  first->StartStream(200, {});
  (*http)->Stop();
  EXPECT_TRUE(first_cancelled.HasBeenNotified());
  EXPECT_TRUE(second_cancelled.HasBeenNotified());
  EXPECT_FALSE(first->Write("after stop"));
  second->Reply(200, {}, "after stop");  // nothing to answer: must not crash
  EXPECT_TRUE(a.ReadToClose());
  // Set after the connection ended: runs at once.
  absl::Notification late;
  NotifyOnCancel(*first, late);
  EXPECT_TRUE(late.HasBeenNotified());
}

TEST(HttpRoute, ARouteThatNeverAnswersTimesOut503AndIsCancelled) {
  HeldRoute held;
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(
      "127.0.0.1:0", WithRoute(held.route()), HttpLimits{.request_timeout = absl::Milliseconds(300)});
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient client((*http)->port());
  ASSERT_TRUE(client.Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::shared_ptr<HttpResponder> responder = held.Responder(0);
  ASSERT_NE(responder, nullptr);
  absl::Notification cancelled;
  NotifyOnCancel(*responder, cancelled);
  EXPECT_TRUE(client.ReadToClose());
  EXPECT_THAT(client.got(), StartsWith("HTTP/1.1 503 "));
  EXPECT_THAT(client.got(), HasSubstr("limits.http.request_timeout_ms"));
  EXPECT_TRUE(cancelled.WaitForNotificationWithTimeout(kWait));
}

TEST(HttpRoute, AStreamOutlivesTheRequestAndIdleTimeoutsWhileItStreams) {
  HeldRoute held;
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(
      "127.0.0.1:0", WithRoute(held.route()),
      HttpLimits{.idle_timeout = absl::Milliseconds(100), .request_timeout = absl::Milliseconds(100)});
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient client((*http)->port());
  ASSERT_TRUE(client.Send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::shared_ptr<HttpResponder> responder = held.Responder(0);
  ASSERT_NE(responder, nullptr);
  responder->StartStream(200, {});
  absl::SleepFor(absl::Milliseconds(500));  // five timeouts' worth of quiet
  ASSERT_TRUE(responder->Write("still here"));
  EXPECT_THAT(client.ReadUntil("still here\r\n"), HasSubstr("still here\r\n"));
}

TEST(HttpRoute, AResponderDroppedWithoutAnAnswerIs500) {
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", WithRoute([](HttpRequest, std::shared_ptr<HttpResponder>) {}));
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient client((*http)->port());
  ASSERT_TRUE(client.Send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(client.ReadToClose());
  EXPECT_THAT(client.got(), StartsWith("HTTP/1.1 500 "));
}

TEST(HttpRoute, HeadGetsTheHeadersAndLengthButNoBody) {
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", WithRoute([](HttpRequest, std::shared_ptr<HttpResponder> r) {
                          r->Reply(200, {{"content-type", "text/html"}}, "<p>hello</p>");
                        }));
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient client((*http)->port());
  ASSERT_TRUE(client.Send("HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_TRUE(client.ReadToClose());
  EXPECT_THAT(client.got(),
              AllOf(StartsWith("HTTP/1.1 200 "), HasSubstr("content-length: 12\r\n"), EndsWith("\r\n\r\n")));
}

TEST(HttpRoute, AtTheCapAnIdleConnectionGoesBeforeALiveStream) {
  HeldRoute held;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", WithRoute(held.route()), HttpLimits{.max_connections = 4});
  ASSERT_TRUE(http.ok()) << http.status();
  // Three streams, opened first (so quieter than the idle one).
  std::vector<std::unique_ptr<RawClient>> streams;
  for (size_t i = 0; i < 3; ++i) {
    streams.push_back(std::make_unique<RawClient>((*http)->port()));
    ASSERT_TRUE(streams.back()->Send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::shared_ptr<HttpResponder> responder = held.Responder(i);
    ASSERT_NE(responder, nullptr);
    responder->StartStream(200, {});
    EXPECT_THAT(streams.back()->ReadUntil("\r\n\r\n"), StartsWith("HTTP/1.1 200 "));
  }
  RawClient idle((*http)->port());
  ASSERT_TRUE(idle.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_THAT(idle.ReadUntil("ok\n"), StartsWith("HTTP/1.1 200 "));
  RawClient probe((*http)->port());
  ASSERT_TRUE(probe.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(probe.ReadUntil("ok\n"), StartsWith("HTTP/1.1 200 "));
  EXPECT_TRUE(idle.ReadToClose());
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(held.Responder(i)->Write("live")) << "stream " << i;
}

// The headers every answer must carry (browser_policy.h).
void ExpectSecurityHeaders(const std::string& response) {
  EXPECT_THAT(response, HasSubstr("content-security-policy: default-src 'self'; script-src 'self'; "
                                  "style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                                  "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                                  "form-action 'self'\r\n"));
  EXPECT_THAT(response, HasSubstr("x-content-type-options: nosniff\r\n"));
  EXPECT_THAT(response, HasSubstr("referrer-policy: no-referrer\r\n"));
  EXPECT_THAT(response, HasSubstr("x-frame-options: DENY\r\n"));
  EXPECT_THAT(response, HasSubstr("cross-origin-opener-policy: same-origin\r\n"));
  EXPECT_THAT(response, HasSubstr("cross-origin-resource-policy: same-origin\r\n"));
}

std::string Exchange(int port, const std::string& request) {
  RawClient client(port);
  client.Send(request);  // the server may close before it has all of it
  client.ReadToClose();
  return client.got();
}

TEST(HttpRoute, EveryAnswerCarriesTheSecurityHeadersAndNoStoreUnlessTheRouteSetsCaching) {
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", WithRoute([](HttpRequest request, std::shared_ptr<HttpResponder> r) {
                          if (request.path == "/cached")
                            return r->Reply(200, {{"cache-control", "public, max-age=60"}}, "c");
                          r->Reply(404, {}, "no such page\n");
                        }),
                        HttpLimits{.max_header_bytes = 1024, .max_body_bytes = 1024});
  ASSERT_TRUE(http.ok()) << http.status();
  const int port = (*http)->port();
  const std::string close = "Host: x\r\nConnection: close\r\n";
  for (const auto& [request, status] : std::vector<std::pair<std::string, std::string>>{
           {"GET /healthz HTTP/1.1\r\n" + close + "\r\n", "200"},
           {"GET /nope HTTP/1.1\r\n" + close + "\r\n", "404"},
           {"POST /x HTTP/1.1\r\n" + close + "Content-Length: 4096\r\n\r\n", "413"},
           {"GET /x HTTP/1.1\r\n" + close + "X: " + std::string(2048, 'x') + "\r\n\r\n", "431"},
       }) {
    const std::string response = Exchange(port, request);
    EXPECT_THAT(response, StartsWith("HTTP/1.1 " + status + " ")) << request.substr(0, 40);
    ExpectSecurityHeaders(response);
    EXPECT_THAT(response, HasSubstr("cache-control: no-store\r\n"));
    EXPECT_THAT(response, Not(HasSubstr("strict-transport-security")));
  }
  const std::string cached = Exchange(port, "GET /cached HTTP/1.1\r\n" + close + "\r\n");
  EXPECT_THAT(cached, HasSubstr("cache-control: public, max-age=60\r\n"));
  EXPECT_THAT(cached, Not(HasSubstr("no-store")));
}

TEST(HttpRoute, CrossOriginRequestsAreRefusedUnlessListedAndListedOnesGetCorsHeaders) {
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(
      "127.0.0.1:0",
      WithRoute([](HttpRequest, std::shared_ptr<HttpResponder> r) { r->Reply(200, {}, "ok"); }), HttpLimits{},
      HttpServerOptions{.cors_origins = {"https://lab.example:8443"}});
  ASSERT_TRUE(http.ok()) << http.status();
  const int port = (*http)->port();
  const std::string host = absl::StrCat("127.0.0.1:", port);
  const auto post = [&](const std::string& origin) {
    return Exchange(
        port, absl::StrCat("POST /threadfleet.fleet.v1.Fleet/ListBoards HTTP/1.1\r\nHost: ", host,
                           "\r\nOrigin: ", origin, "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"));
  };

  const std::string same = post("http://" + host);
  EXPECT_THAT(same, StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(same, Not(HasSubstr("access-control-allow-origin")));

  const std::string other = post("https://evil.example");
  EXPECT_THAT(other, StartsWith("HTTP/1.1 403 "));
  EXPECT_THAT(other, HasSubstr("origin https://evil.example may not call fleetd"));
  EXPECT_THAT(other, HasSubstr("http.cors_origins"));
  ExpectSecurityHeaders(other);
  // Same host, other scheme: another origin.
  EXPECT_THAT(post("https://" + host), StartsWith("HTTP/1.1 403 "));

  const std::string listed = post("https://lab.example:8443");
  EXPECT_THAT(listed, StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(listed, HasSubstr("access-control-allow-origin: https://lab.example:8443\r\n"));
  EXPECT_THAT(listed, HasSubstr("vary: Origin\r\n"));
  EXPECT_THAT(listed, Not(HasSubstr("access-control-allow-credentials")));

  const std::string preflight = Exchange(
      port, absl::StrCat(
                "OPTIONS /threadfleet.fleet.v1.Fleet/ListBoards HTTP/1.1\r\nHost: ", host,
                "\r\nOrigin: https://lab.example:8443\r\nAccess-Control-Request-Method: POST\r\n"
                "Access-Control-Request-Headers: authorization, content-type\r\nConnection: close\r\n\r\n"));
  EXPECT_THAT(preflight, StartsWith("HTTP/1.1 204 "));
  EXPECT_THAT(preflight, HasSubstr("access-control-allow-origin: https://lab.example:8443\r\n"));
  EXPECT_THAT(preflight, HasSubstr("access-control-allow-methods: POST, GET\r\n"));
  EXPECT_THAT(preflight, HasSubstr("access-control-allow-headers: authorization, content-type, "
                                   "connect-protocol-version, connect-timeout-ms\r\n"));
  EXPECT_THAT(preflight, HasSubstr("access-control-max-age: "));
  const std::string refused_preflight = Exchange(
      port, absl::StrCat("OPTIONS /x HTTP/1.1\r\nHost: ", host,
                         "\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n"
                         "Connection: close\r\n\r\n"));
  EXPECT_THAT(refused_preflight, StartsWith("HTTP/1.1 403 "));
}

TEST(HttpRoute, DashboardRouteSendsConnectPathsToTheGatewayOrAnswersUnimplemented) {
  absl::StatusOr<std::shared_ptr<const StaticSite>> site = StaticSite::Load("");
  ASSERT_TRUE(site.ok()) << site.status();
  absl::StatusOr<std::unique_ptr<HttpServer>> without =
      HttpServer::Start("127.0.0.1:0", WithRoute(DashboardRoute(*site, nullptr)));
  ASSERT_TRUE(without.ok()) << without.status();
  const std::string connect_request =
      "POST /threadfleet.fleet.v1.Fleet/WhoAmI HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
  const std::string unimplemented = Exchange((*without)->port(), connect_request);
  EXPECT_THAT(unimplemented, StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(unimplemented, HasSubstr("content-type: application/json\r\n"));
  EXPECT_THAT(unimplemented, HasSubstr("{\"code\":\"unimplemented\""));
  const std::string page =
      Exchange((*without)->port(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(page, StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(page, HasSubstr("http.web_root"));

  absl::StatusOr<std::unique_ptr<HttpServer>> with = HttpServer::Start(
      "127.0.0.1:0",
      WithRoute(DashboardRoute(*site, [](HttpRequest request, std::shared_ptr<HttpResponder> r) {
        r->Reply(200, {{"content-type", "application/json"}}, "{\"method\":\"" + request.path + "\"}");
      })));
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_THAT(
      Exchange((*with)->port(), connect_request),
      AllOf(StartsWith("HTTP/1.1 200 "), HasSubstr("{\"method\":\"/threadfleet.fleet.v1.Fleet/WhoAmI\"}")));
}

// A self-signed certificate for 127.0.0.1 made by the openssl tool in a
// temporary directory.
class TlsFiles {
 public:
  TlsFiles() {
    char pattern[] = "/tmp/http_route_test_XXXXXX";
    if (::mkdtemp(pattern) == nullptr) return;
    dir_ = pattern;
    const std::string command = absl::StrCat(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 "
        "-addext subjectAltName=IP:127.0.0.1 -keyout ",
        key(), " -out ", cert(), " 2>/dev/null");
    ok_ = std::system(command.c_str()) == 0;
  }
  ~TlsFiles() {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  bool ok() const { return ok_; }
  std::string cert() const { return dir_ + "/http.pem"; }
  std::string key() const { return dir_ + "/http.key"; }
  std::string dir() const { return dir_; }

 private:
  std::string dir_;
  bool ok_ = false;
};

TEST(HttpRoute, WithACertificateTheListenerSpeaksHttpsOnlyWithHsts) {
  TlsFiles files;
  ASSERT_TRUE(files.ok());
  HeldRoute held;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", WithRoute([](HttpRequest request, std::shared_ptr<HttpResponder> r) {
                          r->Reply(200, {}, request.tls ? "over tls" : "plain");
                        }),
                        HttpLimits{.request_timeout = absl::Milliseconds(500)},
                        HttpServerOptions{.tls_cert_file = files.cert(), .tls_key_file = files.key()});
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_TRUE((*http)->tls());

  httplib::SSLClient client("127.0.0.1", (*http)->port());
  client.set_ca_cert_path(files.cert().c_str());
  client.enable_server_certificate_verification(true);
  httplib::Result health = client.Get("/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->get_header_value("Strict-Transport-Security"), "max-age=31536000");
  EXPECT_EQ(health->get_header_value("X-Frame-Options"), "DENY");
  httplib::Result routed = client.Get("/page");
  ASSERT_TRUE(routed);
  EXPECT_EQ(routed->body, "over tls");

  // Plain HTTP gets no answer; a client that never finishes its handshake
  // is closed after request_timeout.
  RawClient plain((*http)->port());
  ASSERT_TRUE(plain.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(plain.ReadToClose());
  EXPECT_THAT(plain.got(), Not(HasSubstr("HTTP/1.1 200")));
  RawClient silent((*http)->port());
  EXPECT_TRUE(silent.ReadToClose());
}

TEST(HttpRoute, TlsFilesThatCannotBeUsedAreRefusedNamingTheKey) {
  TlsFiles files;
  ASSERT_TRUE(files.ok());
  absl::StatusOr<std::unique_ptr<HttpServer>> missing = HttpServer::Start(
      "127.0.0.1:0", WithRoute(nullptr), {},
      HttpServerOptions{.tls_cert_file = files.dir() + "/none.pem", .tls_key_file = files.key()});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("http.tls_cert"));
  absl::StatusOr<std::unique_ptr<HttpServer>> swapped =
      HttpServer::Start("127.0.0.1:0", WithRoute(nullptr), {},
                        HttpServerOptions{.tls_cert_file = files.cert(), .tls_key_file = files.cert()});
  EXPECT_EQ(swapped.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(swapped.status().message(), HasSubstr("http.tls_key"));
}

}  // namespace
}  // namespace threadfleet::fleetd
