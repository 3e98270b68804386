// HttpServer on a real loopback port, asked by a real HTTP client
// (cpp-httplib's); and the metrics it serves: RenderMetrics over a real
// HealthAggregator, the RPC-counting interceptor on a real gRPC server.
#include "server/fleetd/http/http_server.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/fleetd/http/metrics.h"
#include "threadfleet/board/v1/board.grpc.pb.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = ::threadfleet::board::v1;
namespace fleet = ::threadfleet::fleet::v1;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

HttpServer::Handlers Handlers(std::atomic<bool>& healthy) {
  return {.health = [&healthy]() -> absl::Status {
            if (healthy) return absl::OkStatus();
            return absl::UnavailableError("database is locked");
          },
          .metrics = [] { return std::string("# HELP x y\n# TYPE x gauge\nx 1\n"); }};
}

TEST(HttpServer, HealthzAnswersOkWhileHealthyAnd503WithTheReasonOtherwise) {
  std::atomic<bool> healthy = true;
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start("127.0.0.1:0", Handlers(healthy));
  ASSERT_TRUE(http.ok()) << http.status();
  ASSERT_GT((*http)->port(), 0);
  httplib::Client client("127.0.0.1", (*http)->port());

  httplib::Result ok = client.Get("/healthz");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "ok\n");

  healthy = false;
  httplib::Result bad = client.Get("/healthz");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 503);
  EXPECT_THAT(bad->body, HasSubstr("database is locked"));
}

TEST(HttpServer, MetricsAreServedAsPrometheusText) {
  std::atomic<bool> healthy = true;
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start("127.0.0.1:0", Handlers(healthy));
  ASSERT_TRUE(http.ok()) << http.status();
  httplib::Client client("127.0.0.1", (*http)->port());
  httplib::Result r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r->body, "# HELP x y\n# TYPE x gauge\nx 1\n");
}

TEST(HttpServer, UnknownPathIs404) {
  std::atomic<bool> healthy = true;
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start("127.0.0.1:0", Handlers(healthy));
  ASSERT_TRUE(http.ok()) << http.status();
  httplib::Client client("127.0.0.1", (*http)->port());
  httplib::Result r = client.Get("/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "not found\n");
}

TEST(HttpServer, PortInUseIsUnavailableAndBadAddressIsInvalid) {
  std::atomic<bool> healthy = true;
  absl::StatusOr<std::unique_ptr<HttpServer>> first = HttpServer::Start("127.0.0.1:0", Handlers(healthy));
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<HttpServer>> second =
      HttpServer::Start(absl::StrCat("127.0.0.1:", (*first)->port()), Handlers(healthy));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpServer::Start("127.0.0.1", Handlers(healthy)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HttpServer, StopEndsServingAndIsIdempotent) {
  std::atomic<bool> healthy = true;
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start("127.0.0.1:0", Handlers(healthy));
  ASSERT_TRUE(http.ok()) << http.status();
  const int port = (*http)->port();
  (*http)->Stop();
  (*http)->Stop();
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1, 0);
  EXPECT_FALSE(client.Get("/healthz"));
}

// A raw loopback connection: what a slow, idle or hostile client does,
// byte for byte. Every read waits at most kReadWait, so a server that never
// answers fails the test instead of hanging it.
constexpr int kReadWaitMs = 3000;

class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  // False once the server has closed or reset the connection.
  bool Send(absl::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // What the server sent until it closed the connection or went quiet for
  // kReadWaitMs; "" when it sent nothing.
  std::string Read() {
    std::string got;
    char buf[4096];
    for (int reads = 0; reads < 1024; ++reads) {
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, kReadWaitMs) <= 0) break;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
      if (got.find("\r\n\r\n") != std::string::npos && got.find("Content-Length") != std::string::npos) {
        // One whole response is enough for these tests.
        const size_t length_at = got.find("Content-Length: ") + 16;
        const size_t body_at = got.find("\r\n\r\n") + 4;
        if (got.size() >= body_at + std::stoul(got.substr(length_at))) break;
      }
    }
    return got;
  }

  // True when the server closed the connection (EOF or reset) within
  // kReadWaitMs, having sent nothing more.
  bool ClosedByServer() {
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, kReadWaitMs) <= 0) return false;
    char c;
    return ::recv(fd_, &c, 1, 0) <= 0;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

TEST(HttpServer, ABodyOverTheLimitIsRefused413BeforeItIsRead) {
  std::atomic<bool> healthy = true;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", Handlers(healthy), HttpLimits{.max_body_bytes = 1024});
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient client((*http)->port());
  ASSERT_TRUE(client.connected());
  // Announces 300 MB and sends a little: the answer must not wait for the rest.
  ASSERT_TRUE(client.Send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 314572800\r\n\r\n"));
  ASSERT_TRUE(client.Send(std::string(4096, 'x')));
  const std::string response = client.Read();
  EXPECT_THAT(response, StartsWith("HTTP/1.1 413 "));
  EXPECT_THAT(response, HasSubstr("limits.http.max_body_bytes"));
}

TEST(HttpServer, HeadersOverTheLimitAreRefused431) {
  std::atomic<bool> healthy = true;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", Handlers(healthy), HttpLimits{.max_header_bytes = 4096});
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient client((*http)->port());
  ASSERT_TRUE(client.connected());
  std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 64; ++i)
    absl::StrAppend(&request, "X-Filler-", i, ": ", std::string(1000, 'f'), "\r\n");
  request += "\r\n";
  client.Send(request);  // the server may close before it has all of it
  const std::string response = client.Read();
  EXPECT_THAT(response, StartsWith("HTTP/1.1 431 "));
  EXPECT_THAT(response, HasSubstr("limits.http.max_header_bytes"));
}

TEST(HttpServer, HealthzAndMetricsAnswerWhileIdleAndSlowClientsHoldConnections) {
  std::atomic<bool> healthy = true;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", Handlers(healthy), HttpLimits{.max_connections = 16});
  ASSERT_TRUE(http.ok()) << http.status();
  // 40 idle connections and 10 that started a request and stalled.
  std::vector<std::unique_ptr<RawClient>> holders;
  for (int i = 0; i < 50; ++i) {
    holders.push_back(std::make_unique<RawClient>((*http)->port()));
    ASSERT_TRUE(holders.back()->connected());
    if (i >= 40) holders.back()->Send("GET /metr");
  }
  for (absl::string_view path : {"/healthz", "/metrics"}) {
    RawClient probe((*http)->port());
    ASSERT_TRUE(probe.connected());
    ASSERT_TRUE(probe.Send(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n")));
    EXPECT_THAT(probe.Read(), StartsWith("HTTP/1.1 200 ")) << path;
  }
}

TEST(HttpServer, AtTheConnectionCapTheLongestIdleConnectionMakesRoom) {
  std::atomic<bool> healthy = true;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start("127.0.0.1:0", Handlers(healthy), HttpLimits{.max_connections = 2});
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient oldest((*http)->port());
  ASSERT_TRUE(oldest.connected());
  // The server has taken `oldest` in once it answers on it.
  ASSERT_TRUE(oldest.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_THAT(oldest.Read(), StartsWith("HTTP/1.1 200 "));
  RawClient second((*http)->port());
  ASSERT_TRUE(second.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_THAT(second.Read(), StartsWith("HTTP/1.1 200 "));
  RawClient third((*http)->port());
  ASSERT_TRUE(third.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(third.Read(), StartsWith("HTTP/1.1 200 "));
  EXPECT_TRUE(oldest.ClosedByServer());
}

TEST(HttpServer, AnIdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  std::atomic<bool> healthy = true;
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(
      "127.0.0.1:0", Handlers(healthy), HttpLimits{.idle_timeout = absl::Milliseconds(200)});
  ASSERT_TRUE(http.ok()) << http.status();
  RawClient client((*http)->port());
  ASSERT_TRUE(client.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_THAT(client.Read(), StartsWith("HTTP/1.1 200 "));
  EXPECT_TRUE(client.ClosedByServer());
}

pb::HealthSnapshot Snapshot(uint32_t running, uint32_t sleeping, uint32_t heap_free) {
  pb::HealthSnapshot s;
  s.set_uptime_us(1000000);
  s.mutable_heap()->set_total_bytes(100000);
  s.mutable_heap()->set_free_bytes(heap_free);
  s.mutable_thread_counts()->set_running(running);
  s.mutable_thread_counts()->set_sleeping(sleeping);
  return s;
}

TEST(RenderMetrics, ShowsBoardsThreadsAnomaliesEventsAndProcessWithHelpAndType) {
  HealthAggregator health;
  std::vector<AnomalyEvent> ignored = health.OnSnapshot("b01", Snapshot(2, 1, 50000), absl::Now());
  ignored = health.OnSnapshot("b02", Snapshot(3, 0, 1000), absl::Now());  // heap low
  MetricCounters counters;
  counters.CountEvent(fleet::SEVERITY_WARNING);
  counters.CountEvent(fleet::SEVERITY_WARNING);
  counters.CountRpc("/threadfleet.fleet.v1.Fleet/ListBoards", grpc::StatusCode::UNAUTHENTICATED);
  MetricsView view;
  view.boards["b01"].state = BoardState::kOnline;
  view.boards["b02"].state = BoardState::kDegraded;
  view.boards["b03"].state = BoardState::kOffline;
  view.health = &health;
  view.health_snapshots_total = 2;
  view.counters = &counters;
  absl::StatusOr<ProcessStats> process = ReadProcessStats();
  ASSERT_TRUE(process.ok()) << process.status();
  view.process = *process;

  const std::string text = RenderMetrics(view);
  EXPECT_THAT(text, HasSubstr("# HELP fleetd_boards "));
  EXPECT_THAT(text, HasSubstr("# TYPE fleetd_boards gauge\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_boards{state=\"online\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_boards{state=\"degraded\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_boards{state=\"offline\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_threads{state=\"running\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_threads{state=\"sleeping\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_anomalies_active{kind=\"heap_low\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_anomalies_active{kind=\"deadlock\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE fleetd_events_total counter\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_events_total{severity=\"warning\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_events_total{severity=\"error\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_rpcs_total{method=\"/threadfleet.fleet.v1.Fleet/"
                              "ListBoards\",code=\"UNAUTHENTICATED\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_health_snapshots_total 2\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE fleetd_process_cpu_seconds_total counter\n"));
  EXPECT_THAT(text, HasSubstr("fleetd_process_resident_memory_bytes "));
  EXPECT_GT(process->resident_memory_bytes, 1u << 20);
}

TEST(RenderMetrics, LeavesProcessSeriesOutWhenProcIsUnreadable) {
  const std::string text = RenderMetrics(MetricsView{});
  EXPECT_THAT(text, Not(HasSubstr("fleetd_process_")));
  EXPECT_THAT(text, HasSubstr("fleetd_boards{state=\"online\"} 0\n"));
  EXPECT_THAT(text, StartsWith("# HELP fleetd_boards "));
}

// A BoardControl service that implements nothing: each call ends
// UNIMPLEMENTED, which is all the interceptor needs to count.
class NothingService final : public pb::BoardControl::Service {};

TEST(RpcCountingInterceptors, CountEveryCallByMethodAndCode) {
  MetricCounters counters;
  NothingService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.experimental().SetInterceptorCreators(RpcCountingInterceptors(counters));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);

  auto stub = pb::BoardControl::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    pb::GetInfoResponse response;
    EXPECT_EQ(stub->GetInfo(&context, {}, &response).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  server->Shutdown();

  auto rpcs = counters.Rpcs();
  EXPECT_EQ((rpcs[{"/threadfleet.board.v1.BoardControl/GetInfo", "UNIMPLEMENTED"}]), 2u);
}

}  // namespace
}  // namespace threadfleet::fleetd
