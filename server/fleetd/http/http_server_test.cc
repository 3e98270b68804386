// HttpServer on a real loopback port, asked by a real HTTP client
// (cpp-httplib's); and the metrics it serves: RenderMetrics over a real
// HealthAggregator, the RPC-counting interceptor on a real gRPC server.
#include "server/fleetd/http/http_server.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>

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
