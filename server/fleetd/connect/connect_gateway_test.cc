// ConnectGateway in front of the real FleetService: an in-process gRPC
// server, a real SqliteStore with real tokens and audit log, an inventory
// whose boards have no links (no board is needed to test the transcoding).
// The HTTP side is a recording HttpResponder: what the HTTP server would
// have sent, and a way to end the connection.
#include "server/fleetd/connect/connect_gateway.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "server/fleetd/api/fleet_service.h"
#include "server/fleetd/auth/token.h"
#include "server/fleetd/connect/connect_protocol.h"
#include "server/fleetd/health/event_hub.h"
#include "server/fleetd/health/health.h"
#include "server/fleetd/inventory/inventory.h"
#include "server/fleetd/links/board_directory.h"
#include "server/fleetd/testing/temp_store.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {
namespace {

namespace fleet = ::threadfleet::fleet::v1;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using namespace std::chrono_literals;

// How long a test waits for an answer before it fails.
constexpr absl::Duration kWait = absl::Seconds(20);

// Boards in the inventory with no link: every one offline, no board calls.
class UnlinkedBoards : public BoardDirectory {
 public:
  absl::Status Add(std::string name, std::string) override {
    absl::MutexLock lock(&mu_);
    names_.insert(std::move(name));
    return absl::OkStatus();
  }
  absl::Status Remove(absl::string_view name) override {
    absl::MutexLock lock(&mu_);
    return names_.erase(std::string(name)) == 1 ? absl::OkStatus() : absl::NotFoundError(name);
  }
  std::optional<LinkStatus> Status(absl::string_view name) const override {
    absl::MutexLock lock(&mu_);
    if (!names_.contains(std::string(name))) return std::nullopt;
    return LinkStatus{.message = "not linked in this test"};
  }
  std::map<std::string, LinkStatus> Statuses() const override {
    absl::MutexLock lock(&mu_);
    std::map<std::string, LinkStatus> out;
    for (const std::string& name : names_) out[name] = LinkStatus{.message = "not linked in this test"};
    return out;
  }
  std::shared_ptr<BoardClient> Client(absl::string_view) const override { return nullptr; }

 private:
  mutable absl::Mutex mu_;
  std::set<std::string> names_ ABSL_GUARDED_BY(mu_);
};

// What the HTTP server would have sent for one request.
class RecordingResponder : public HttpResponder {
 public:
  void Reply(int status, HttpHeaders headers, std::string body) override {
    absl::MutexLock lock(&mu_);
    if (answered_) return;
    answered_ = finished_ = true;
    status_ = status;
    headers_ = std::move(headers);
    body_ = std::move(body);
  }
  void StartStream(int status, HttpHeaders headers) override {
    absl::MutexLock lock(&mu_);
    if (answered_) return;
    answered_ = true;
    status_ = status;
    headers_ = std::move(headers);
  }
  bool Write(std::string bytes) override {
    absl::MutexLock lock(&mu_);
    if (!answered_ || finished_ || gone_) return false;
    body_ += bytes;
    return true;
  }
  void Finish() override {
    absl::MutexLock lock(&mu_);
    finished_ = true;
  }
  void OnCancel(std::function<void()> cancel) override {
    bool run_now = false;
    {
      absl::MutexLock lock(&mu_);
      run_now = gone_;
      if (!run_now) cancel_ = std::move(cancel);
    }
    if (run_now) cancel();
  }

  // The client closes the connection.
  void Disconnect() {
    std::function<void()> cancel;
    {
      absl::MutexLock lock(&mu_);
      gone_ = true;
      if (!finished_) cancel = std::move(cancel_);
    }
    if (cancel) cancel();
  }

  // Waits until the answer is complete (Reply, or Finish after a stream).
  bool WaitFinished() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&finished_), kWait);
  }
  // Waits until the body holds at least `envelopes` whole envelopes.
  bool WaitEnvelopes(size_t envelopes) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return Envelopes(body_).size() >= envelopes; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
  }

  int status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  HttpHeaders headers() {
    absl::MutexLock lock(&mu_);
    return headers_;
  }
  std::string body() {
    absl::MutexLock lock(&mu_);
    return body_;
  }

  // The envelopes of a streamed body, as far as they are whole.
  static std::vector<ConnectEnvelope> Envelopes(absl::string_view bytes) {
    std::vector<ConnectEnvelope> out;
    for (absl::StatusOr<ConnectEnvelope> e = DecodeEnvelope(bytes, bytes.size()); e.ok();
         e = DecodeEnvelope(bytes, bytes.size())) {
      out.push_back(*e);
      bytes.remove_prefix(e->size);
    }
    return out;
  }

 private:
  absl::Mutex mu_;
  bool answered_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool gone_ ABSL_GUARDED_BY(mu_) = false;
  int status_ ABSL_GUARDED_BY(mu_) = 0;
  HttpHeaders headers_ ABSL_GUARDED_BY(mu_);
  std::string body_ ABSL_GUARDED_BY(mu_);
  std::function<void()> cancel_ ABSL_GUARDED_BY(mu_);
};

class ConnectGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(temp_.Init("connect_gateway_test"));
    absl::StatusOr<std::unique_ptr<Inventory>> inventory = Inventory::Open(temp_.store(), {}, absl::Now());
    ASSERT_TRUE(inventory.ok()) << inventory.status();
    inventory_ = *std::move(inventory);
    hub_ = std::make_unique<EventHub>(temp_.store());
    tokens_ = std::make_unique<TokenAuthority>(temp_.store());
    operator_ = Secret("ci", fleet::ROLE_OPERATOR);
    viewer_ = Secret("watcher", fleet::ROLE_VIEWER);
    for (const std::string name : {"b01", "b02"}) {
      ASSERT_TRUE(inventory_->Add(name, "127.0.0.1:1", {}, absl::Now()).ok());
      ASSERT_TRUE(boards_.Add(name, "127.0.0.1:1").ok());
    }
    service_ = std::make_unique<FleetService>(FleetServiceDeps{.store = &temp_.store(),
                                                               .inventory = inventory_.get(),
                                                               .links = &boards_,
                                                               .health = &health_,
                                                               .tokens = tokens_.get(),
                                                               .hub = hub_.get()});
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    StartGateway({});
  }

  void TearDown() override {
    gateway_.reset();
    if (service_ != nullptr) service_->Shutdown();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + 5s);
    server_.reset();
    service_.reset();
  }

  void StartGateway(ConnectGatewayLimits limits) {
    gateway_ = std::make_unique<ConnectGateway>(server_->InProcessChannel(grpc::ChannelArguments()), limits);
  }

  std::string Secret(const std::string& name, fleet::Role role) {
    absl::StatusOr<IssuedToken> t = tokens_->Create(name, role, "test", absl::Now());
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->secret : "";
  }

  // A POST to `method` with `secret` as bearer token (none when empty).
  static HttpRequest Post(const std::string& method, const std::string& content_type, std::string body,
                          const std::string& secret) {
    HttpRequest request{.method = "POST",
                        .path = "/threadfleet.fleet.v1.Fleet/" + method,
                        .headers = {{"content-type", content_type}},
                        .body = std::move(body),
                        .peer = "ipv4:127.0.0.1:40000"};
    if (!secret.empty()) request.headers.emplace_back("authorization", "Bearer " + secret);
    return request;
  }

  // Serves `request` and waits for the whole answer.
  std::shared_ptr<RecordingResponder> Call(HttpRequest request) {
    auto responder = std::make_shared<RecordingResponder>();
    gateway_->Serve(std::move(request), responder);
    EXPECT_TRUE(responder->WaitFinished()) << "no answer within " << kWait;
    return responder;
  }

  std::vector<AuditRecord> Audit() {
    absl::StatusOr<std::vector<AuditRecord>> audit = temp_.store().ListAudit(AuditQuery{.limit = 100});
    EXPECT_TRUE(audit.ok()) << audit.status();
    return audit.ok() ? *audit : std::vector<AuditRecord>{};
  }

  testing::TempStore temp_;  // first: destroyed after what uses its store
  std::unique_ptr<Inventory> inventory_;
  HealthAggregator health_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<TokenAuthority> tokens_;
  UnlinkedBoards boards_;
  std::string operator_, viewer_;
  std::unique_ptr<FleetService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ConnectGateway> gateway_;
};

TEST_F(ConnectGatewayTest, OnlyFleetMethodPathsAreTheGateways) {
  EXPECT_TRUE(ConnectGateway::Handles("/threadfleet.fleet.v1.Fleet/ListBoards"));
  EXPECT_TRUE(ConnectGateway::Handles("/threadfleet.fleet.v1.Fleet/Nope"));
  EXPECT_FALSE(ConnectGateway::Handles("/boards/b01"));
  EXPECT_FALSE(ConnectGateway::Handles("/threadfleet.board.v1.Board/GetInfo"));
}

TEST_F(ConnectGatewayTest, UnaryJsonAnswersTheBoardsAsProto3Json) {
  auto answer = Call(Post("ListBoards", "application/json", "{}", viewer_));
  EXPECT_EQ(answer->status(), 200) << answer->body();
  EXPECT_THAT(answer->headers(), Contains(Pair("content-type", "application/json")));
  fleet::ListBoardsResponse boards;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(answer->body(), &boards).ok()) << answer->body();
  ASSERT_EQ(boards.boards_size(), 2);
  EXPECT_EQ(boards.boards(0).name(), "b01");
  EXPECT_EQ(boards.boards(1).name(), "b02");
}

TEST_F(ConnectGatewayTest, UnaryBinaryAnswersABinaryMessage) {
  fleet::ListBoardsRequest request;
  request.mutable_selector()->add_boards("b02");
  auto answer = Call(Post("ListBoards", "application/proto", request.SerializeAsString(), viewer_));
  EXPECT_EQ(answer->status(), 200) << answer->body();
  EXPECT_THAT(answer->headers(), Contains(Pair("content-type", "application/proto")));
  fleet::ListBoardsResponse boards;
  ASSERT_TRUE(boards.ParseFromString(answer->body()));
  ASSERT_EQ(boards.boards_size(), 1);
  EXPECT_EQ(boards.boards(0).name(), "b02");
}

TEST_F(ConnectGatewayTest, AnUnknownBoardIsNotFound404WithConnectErrorJson) {
  auto answer = Call(Post("GetBoard", "application/json", R"({"name":"nope"})", viewer_));
  EXPECT_EQ(answer->status(), 404);
  EXPECT_THAT(answer->headers(), Contains(Pair("content-type", "application/json")));
  EXPECT_THAT(answer->body(), HasSubstr(R"("code":"not_found")"));
  EXPECT_THAT(answer->body(), HasSubstr("nope"));
}

TEST_F(ConnectGatewayTest, AnUnknownFieldIsInvalidArgumentNamingIt) {
  auto answer = Call(Post("GetBoard", "application/json", R"({"name":"b01","grace":5})", viewer_));
  EXPECT_EQ(answer->status(), 400);
  EXPECT_THAT(answer->body(), HasSubstr(R"("code":"invalid_argument")"));
  EXPECT_THAT(answer->body(), HasSubstr("grace"));
  EXPECT_THAT(answer->body(), HasSubstr("GetBoardRequest"));
}

TEST_F(ConnectGatewayTest, BadJsonAndBadBinaryAreInvalidArgument) {
  EXPECT_EQ(Call(Post("ListBoards", "application/json", "{", viewer_))->status(), 400);
  EXPECT_EQ(Call(Post("ListBoards", "application/proto", "\xff\xff\xff", viewer_))->status(), 400);
}

TEST_F(ConnectGatewayTest, ProtocolMistakesAreRefusedBeforeAnyCall) {
  auto unknown = Call(Post("Nope", "application/json", "{}", viewer_));
  EXPECT_EQ(unknown->status(), 404);
  EXPECT_THAT(unknown->body(), HasSubstr("Nope"));

  HttpRequest get = Post("ListBoards", "application/json", "", viewer_);
  get.method = "GET";
  auto not_post = Call(std::move(get));
  EXPECT_EQ(not_post->status(), 405);
  EXPECT_THAT(not_post->headers(), Contains(Pair("allow", "POST")));

  EXPECT_EQ(Call(Post("ListBoards", "text/plain", "{}", viewer_))->status(), 415);
  EXPECT_EQ(Call(Post("ListBoards", "application/connect+json", "{}", viewer_))->status(), 415);

  HttpRequest version = Post("ListBoards", "application/json", "{}", viewer_);
  version.headers.emplace_back("connect-protocol-version", "2");
  EXPECT_EQ(Call(std::move(version))->status(), 400);

  HttpRequest timeout = Post("ListBoards", "application/json", "{}", viewer_);
  timeout.headers.emplace_back("connect-timeout-ms", "12345678901");
  auto bad_timeout = Call(std::move(timeout));
  EXPECT_EQ(bad_timeout->status(), 400);
  EXPECT_THAT(bad_timeout->body(), HasSubstr("connect-timeout-ms"));

  HttpRequest gzip = Post("ListBoards", "application/json", "{}", viewer_);
  gzip.headers.emplace_back("content-encoding", "gzip");
  EXPECT_EQ(Call(std::move(gzip))->status(), 501);
}

TEST_F(ConnectGatewayTest, NoTokenIsUnauthenticated401) {
  auto answer = Call(Post("ListBoards", "application/json", "{}", ""));
  EXPECT_EQ(answer->status(), 401);
  EXPECT_THAT(answer->body(), HasSubstr(R"("code":"unauthenticated")"));
}

TEST_F(ConnectGatewayTest, AViewersKillIsPermissionDenied403AndAudited) {
  auto answer = Call(Post("KillThread", "application/json", R"({"board":"b01","threadId":7})", viewer_));
  EXPECT_EQ(answer->status(), 403);
  EXPECT_THAT(answer->body(), HasSubstr(R"("code":"permission_denied")"));
  const std::vector<AuditRecord> audit = Audit();
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(audit[0].actor, "watcher");
  EXPECT_EQ(audit[0].action, "Fleet.KillThread");
  EXPECT_EQ(audit[0].target, "b01/7");
  EXPECT_EQ(audit[0].result_code, absl::StatusCode::kPermissionDenied);
}

TEST_F(ConnectGatewayTest, WatchEventsStreamsEnvelopesUntilTheClientLeaves) {
  fleet::Event before;
  before.set_kind(fleet::EVENT_KIND_BOARD_STATE);
  before.set_message("before the watch");
  absl::StatusOr<fleet::Event> first = hub_->Record(before);
  ASSERT_TRUE(first.ok()) << first.status();
  fleet::Event markup = before;
  markup.set_board("b01");
  markup.set_message("<script>alert(1)</script>");
  ASSERT_TRUE(hub_->Record(markup).ok());

  auto responder = std::make_shared<RecordingResponder>();
  const std::string request = absl::StrCat(R"({"afterId":")", first->id(), R"("})");
  gateway_->Serve(Post("WatchEvents", "application/connect+json", EncodeEnvelope(0, request), viewer_),
                  responder);
  ASSERT_TRUE(responder->WaitEnvelopes(1)) << responder->body();
  EXPECT_EQ(responder->status(), 200);
  EXPECT_THAT(responder->headers(), Contains(Pair("content-type", "application/connect+json")));
  EXPECT_EQ(gateway_->open_streams(), 1);

  fleet::Event live = before;
  live.set_message("while watching");
  ASSERT_TRUE(hub_->Record(live).ok());
  ASSERT_TRUE(responder->WaitEnvelopes(2)) << responder->body();

  const std::string body = responder->body();
  std::vector<ConnectEnvelope> envelopes = RecordingResponder::Envelopes(body);
  fleet::WatchEventsResponse replayed, arrived;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(envelopes[0].payload), &replayed).ok());
  EXPECT_EQ(replayed.event().message(), "<script>alert(1)</script>");
  EXPECT_THAT(std::string(envelopes[0].payload), Not(HasSubstr("<script>")));
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(envelopes[1].payload), &arrived).ok());
  EXPECT_EQ(arrived.event().message(), "while watching");

  responder->Disconnect();
  EXPECT_TRUE(responder->WaitFinished());
  const absl::Time deadline = absl::Now() + kWait;
  while (gateway_->open_streams() != 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(gateway_->open_streams(), 0);
}

TEST_F(ConnectGatewayTest, AStreamsErrorsEndItWithHttp200AndAnEndStreamMessage) {
  auto answer = Call(Post("WatchEvents", "application/connect+json", EncodeEnvelope(0, "{}"), ""));
  EXPECT_EQ(answer->status(), 200);
  const std::string body = answer->body();
  std::vector<ConnectEnvelope> envelopes = RecordingResponder::Envelopes(body);
  ASSERT_EQ(envelopes.size(), 1u) << answer->body();
  EXPECT_EQ(envelopes[0].flags, kEnvelopeEndStream);
  EXPECT_THAT(std::string(envelopes[0].payload), HasSubstr(R"({"error":{"code":"unauthenticated")"));

  auto bad =
      Call(Post("WatchEvents", "application/connect+json", EncodeEnvelope(0, R"({"bogus":1})"), viewer_));
  EXPECT_EQ(bad->status(), 200);
  const std::string bad_body = bad->body();
  envelopes = RecordingResponder::Envelopes(bad_body);
  ASSERT_EQ(envelopes.size(), 1u);
  EXPECT_THAT(std::string(envelopes[0].payload), HasSubstr("invalid_argument"));
  EXPECT_THAT(std::string(envelopes[0].payload), HasSubstr("bogus"));
}

TEST_F(ConnectGatewayTest, BinaryStreamsCarryBinaryMessages) {
  fleet::Event event;
  event.set_kind(fleet::EVENT_KIND_BOARD_STATE);
  absl::StatusOr<fleet::Event> first = hub_->Record(event);
  ASSERT_TRUE(first.ok());
  event.set_message("second");
  ASSERT_TRUE(hub_->Record(event).ok());
  fleet::WatchEventsRequest request;
  request.set_after_id(first->id());
  auto responder = std::make_shared<RecordingResponder>();
  gateway_->Serve(Post("WatchEvents", "application/connect+proto",
                       EncodeEnvelope(0, request.SerializeAsString()), viewer_),
                  responder);
  ASSERT_TRUE(responder->WaitEnvelopes(1));
  EXPECT_THAT(responder->headers(), Contains(Pair("content-type", "application/connect+proto")));
  fleet::WatchEventsResponse answer;
  const std::string body = responder->body();
  ASSERT_TRUE(answer.ParseFromString(std::string(RecordingResponder::Envelopes(body)[0].payload)));
  EXPECT_EQ(answer.event().message(), "second");
  responder->Disconnect();
  EXPECT_TRUE(responder->WaitFinished());
}

TEST_F(ConnectGatewayTest, StreamsOverTheCapAreResourceExhausted) {
  StartGateway(ConnectGatewayLimits{.max_open_streams = 1});
  auto open = std::make_shared<RecordingResponder>();
  gateway_->Serve(Post("WatchEvents", "application/connect+json", EncodeEnvelope(0, "{}"), viewer_), open);
  auto refused = Call(Post("WatchEvents", "application/connect+json", EncodeEnvelope(0, "{}"), viewer_));
  const std::string body = refused->body();
  std::vector<ConnectEnvelope> envelopes = RecordingResponder::Envelopes(body);
  ASSERT_EQ(envelopes.size(), 1u);
  EXPECT_THAT(std::string(envelopes[0].payload), HasSubstr("resource_exhausted"));
  EXPECT_THAT(std::string(envelopes[0].payload), HasSubstr("max_connect_streams"));
  open->Disconnect();
  EXPECT_TRUE(open->WaitFinished());
}

TEST_F(ConnectGatewayTest, TheClientsTimeoutBecomesTheCallsDeadline) {
  HttpRequest request = Post("WatchEvents", "application/connect+json", EncodeEnvelope(0, "{}"), viewer_);
  request.headers.emplace_back("connect-timeout-ms", "200");
  auto answer = Call(std::move(request));
  const std::string body = answer->body();
  std::vector<ConnectEnvelope> envelopes = RecordingResponder::Envelopes(body);
  ASSERT_FALSE(envelopes.empty());
  EXPECT_THAT(std::string(envelopes.back().payload), HasSubstr("deadline_exceeded"));
}

}  // namespace
}  // namespace threadfleet::fleetd
