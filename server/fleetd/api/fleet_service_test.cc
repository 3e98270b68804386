// FleetService end to end, in process: a grpc::Server on 127.0.0.1:0 with TLS
// from a fresh lab PKI, a real SqliteStore, real board links (LinkManager with
// fleetd's LabMonitor as listener) and two real `fleetboard serve` processes.
// A client calls it through a TLS channel with bearer tokens, as fleetctl
// does.
#include "server/fleetd/api/fleet_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "grpcpp/grpcpp.h"
#include "server/fleetd/api/internal/service_call.h"
#include "server/fleetd/health/lab_monitor.h"
#include "server/fleetd/store/sqlite_store.h"
#include "server/fleetd/testing/lab_processes.h"

namespace threadfleet::fleetd {
namespace {

namespace fleet = ::threadfleet::fleet::v1;
namespace pb = ::threadfleet::board::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::PollUntil;
using namespace std::chrono_literals;

// Prints a numbered line every 50 ms, three times, then ends.
constexpr char kCountScript[] =
    "import sys, time\n"
    "for i in range(3):\n"
    "    print('line', i, sys.argv[1])\n"
    "    time.sleep(0.05)\n";

// Runs until killed.
constexpr char kLoopScript[] =
    "import time\n"
    "while True:\n"
    "    time.sleep(0.05)\n";

// Two threads (the main one and a worker) that run until killed.
constexpr char kTwoLoopsScript[] =
    "import _thread, time\n"
    "def loop():\n"
    "    while True:\n"
    "        time.sleep(0.05)\n"
    "_thread.start_new_thread(loop, ())\n"
    "loop()\n";

// The main thread and 11 others, each swallowing fleet.ThreadKilled (only the
// board's hard kill, a grace period later, ends them).
constexpr char kSwallowScript[] =
    "import _thread, time\n"
    "def swallow():\n"
    "    while True:\n"
    "        try:\n"
    "            while True:\n"
    "                time.sleep(0.05)\n"
    "        except BaseException:\n"
    "            pass\n"
    "for i in range(11):\n"
    "    _thread.start_new_thread(swallow, ())\n"
    "swallow()\n";

// Two threads that each hold one lock and wait for the other's.
constexpr char kDeadlockScript[] =
    "import _thread, time\n"
    "a = _thread.allocate_lock()\n"
    "b = _thread.allocate_lock()\n"
    "def one():\n"
    "    a.acquire()\n"
    "    time.sleep(0.2)\n"
    "    b.acquire()\n"
    "def two():\n"
    "    b.acquire()\n"
    "    time.sleep(0.2)\n"
    "    a.acquire()\n"
    "_thread.start_new_thread(one, ())\n"
    "_thread.start_new_thread(two, ())\n";

class FleetServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(lab_.Init());
    ASSERT_NO_FATAL_FAILURE(lab_.IssueServer("fleetd-api"));

    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(lab_.path("fleet.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<Inventory>> inventory = Inventory::Open(*store_, {}, absl::Now());
    ASSERT_TRUE(inventory.ok()) << inventory.status();
    inventory_ = *std::move(inventory);
    hub_ = std::make_unique<EventHub>(*store_);
    monitor_ = std::make_unique<LabMonitor>(*store_, health_, *hub_);
    absl::StatusOr<LinkCredentials> creds =
        LinkCredentials::FromFiles(lab_.path("ca.pem"), lab_.path("fleetd.pem"), lab_.path("fleetd.key"));
    ASSERT_TRUE(creds.ok()) << creds.status();
    links_ = std::make_unique<LinkManager>(*creds, MakeLinkOptions(), monitor_.get());
    tokens_ = std::make_unique<TokenAuthority>(*store_);
    admin_ = Secret("root", fleet::ROLE_ADMIN);
    operator_ = Secret("ci", fleet::ROLE_OPERATOR);
    viewer_ = Secret("watcher", fleet::ROLE_VIEWER);

    service_ = std::make_unique<FleetService>(FleetServiceDeps{.store = store_.get(),
                                                               .inventory = inventory_.get(),
                                                               .links = links_.get(),
                                                               .health = &health_,
                                                               .tokens = tokens_.get(),
                                                               .hub = hub_.get(),
                                                               .board_calls = BoardCallLimits{}});
    grpc::SslServerCredentialsOptions tls;
    tls.pem_key_cert_pairs.push_back({testing::ReadFileOrEmpty(lab_.path("fleetd-api.key")),
                                      testing::ReadFileOrEmpty(lab_.path("fleetd-api.pem"))});
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(tls), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);

    grpc::SslCredentialsOptions client_tls;
    client_tls.pem_root_certs = testing::ReadFileOrEmpty(lab_.path("ca.pem"));
    stub_ = fleet::Fleet::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::SslCredentials(client_tls)));
  }

  // The links' options; a fixture may tighten them.
  virtual LinkOptions MakeLinkOptions() { return LinkOptions{}; }

  void TearDown() override {
    if (service_ != nullptr) service_->Shutdown();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + 5s);
    server_.reset();
    service_.reset();
    links_.reset();
    monitor_.reset();
  }

  std::string Secret(const std::string& name, fleet::Role role) {
    absl::StatusOr<IssuedToken> t = tokens_->Create(name, role, "test", absl::Now());
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->secret : "";
  }

  // A client context carrying `secret` (none when empty), 30 s deadline.
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& secret) {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!secret.empty()) context->AddMetadata("authorization", "Bearer " + secret);
    context->set_deadline(std::chrono::system_clock::now() + 30s);
    return context;
  }

  // Starts a board process and adds it through the API with `labels`.
  void AddBoard(const std::string& name, const std::map<std::string, std::string>& labels) {
    testing::BoardProcess& board = lab_.StartBoard(name);
    fleet::AddBoardRequest request;
    request.set_name(name);
    request.set_address(board.address());
    for (const auto& [k, v] : labels) (*request.mutable_labels())[k] = v;
    fleet::AddBoardResponse response;
    grpc::Status status = stub_->AddBoard(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.board().origin(), fleet::BOARD_ORIGIN_RUNTIME);
  }

  std::optional<fleet::Board> GetBoard(const std::string& name) {
    fleet::GetBoardRequest request;
    request.set_name(name);
    fleet::GetBoardResponse response;
    if (!stub_->GetBoard(Context(viewer_).get(), request, &response).ok()) return std::nullopt;
    return response.board();
  }

  bool WaitOnline(const std::string& name) {
    return PollUntil(10s, [&] {
      std::optional<fleet::Board> b = GetBoard(name);
      return b.has_value() && b->state() == fleet::BOARD_STATE_ONLINE;
    });
  }

  // Adds b01 {half: a} and b02 {half: b} and waits until both are online.
  void AddTwoBoards() {
    ASSERT_NO_FATAL_FAILURE(AddBoard("b01", {{"lab", "local"}, {"half", "a"}}));
    ASSERT_NO_FATAL_FAILURE(AddBoard("b02", {{"lab", "local"}, {"half", "b"}}));
    ASSERT_TRUE(WaitOnline("b01"));
    ASSERT_TRUE(WaitOnline("b02"));
  }

  // Pushes `content` to the boards named; returns every progress message.
  std::vector<fleet::PushFileResponse> Push(const std::vector<std::string>& boards, const std::string& path,
                                            const std::string& content, grpc::Status* status,
                                            std::chrono::seconds deadline = 30s) {
    fleet::PushFileRequest request;
    for (const std::string& b : boards) request.mutable_selector()->add_boards(b);
    request.set_path(path);
    request.set_content(content);
    auto context = Context(operator_);
    context->set_deadline(std::chrono::system_clock::now() + deadline);
    std::unique_ptr<grpc::ClientReader<fleet::PushFileResponse>> reader =
        stub_->PushFile(context.get(), request);
    std::vector<fleet::PushFileResponse> messages;
    fleet::PushFileResponse m;
    while (reader->Read(&m)) messages.push_back(m);
    *status = reader->Finish();
    return messages;
  }

  fleet::RunProgramResponse Run(const std::vector<std::string>& boards, const std::string& path,
                                const std::vector<std::string>& args = {}) {
    fleet::RunProgramRequest request;
    for (const std::string& b : boards) request.mutable_selector()->add_boards(b);
    request.set_path(path);
    for (const std::string& a : args) request.add_args(a);
    fleet::RunProgramResponse response;
    grpc::Status status = stub_->RunProgram(Context(operator_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  fleet::ListThreadsResponse Threads() {
    fleet::ListThreadsResponse response;
    grpc::Status status = stub_->ListThreads(Context(viewer_).get(), fleet::ListThreadsRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Whether the board's live threads (per ListThreads) include `thread_id`.
  bool LiveThread(const std::string& board, uint32_t thread_id) {
    const fleet::ListThreadsResponse threads = Threads();
    for (const fleet::BoardThreads& b : threads.boards()) {
      if (b.board() != board) continue;
      for (const pb::ThreadInfo& t : b.threads()) {
        if (t.id() == thread_id) return true;
      }
    }
    return false;
  }

  // Every thread and program of one board ListThreads shows, ended ones
  // included.
  fleet::BoardThreads AllThreads(const std::string& board) {
    fleet::ListThreadsRequest request;
    request.set_include_finished(true);
    request.mutable_selector()->add_boards(board);
    fleet::ListThreadsResponse response;
    grpc::Status status = stub_->ListThreads(Context(viewer_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.boards_size(), 1);
    return response.boards_size() == 1 ? response.boards(0) : fleet::BoardThreads();
  }

  // The threads of `program_id` in `threads`, keyed by id.
  static std::map<uint32_t, pb::ThreadInfo> ThreadsOf(const fleet::BoardThreads& threads,
                                                      uint32_t program_id) {
    std::map<uint32_t, pb::ThreadInfo> out;
    for (const pb::ThreadInfo& t : threads.threads()) {
      if (t.program_id() == program_id) out[t.id()] = t;
    }
    return out;
  }

  // A KillThread sent without waiting for it; its status comes to the future.
  struct PendingKill {
    grpc::ClientContext context;
    fleet::KillThreadRequest request;
    fleet::KillThreadResponse response;
    std::promise<grpc::Status> done;
    std::future<grpc::Status> status = done.get_future();
  };
  std::unique_ptr<PendingKill> StartKill(const std::string& board, uint32_t thread_id, uint32_t grace_ms,
                                         std::chrono::milliseconds deadline) {
    auto kill = std::make_unique<PendingKill>();
    kill->context.AddMetadata("authorization", "Bearer " + operator_);
    kill->context.set_deadline(std::chrono::system_clock::now() + deadline);
    kill->request.set_board(board);
    kill->request.set_thread_id(thread_id);
    kill->request.set_grace_ms(grace_ms);
    PendingKill* k = kill.get();
    stub_->async()->KillThread(&k->context, &k->request, &k->response,
                               [k](grpc::Status status) { k->done.set_value(std::move(status)); });
    return kill;
  }
  grpc::Status Kill(const std::string& board, uint32_t thread_id, uint32_t grace_ms,
                    std::chrono::milliseconds deadline = 30s) {
    std::unique_ptr<PendingKill> kill = StartKill(board, thread_id, grace_ms, deadline);
    return kill->status.get();
  }

  // Pushes and runs kSwallowScript on `board`; the ids of its 12 threads
  // once a snapshot lists them all.
  std::vector<uint32_t> RunSwallowers(const std::string& board) {
    grpc::Status pushed;
    Push({board}, "/swallow.py", kSwallowScript, &pushed);
    EXPECT_TRUE(pushed.ok()) << pushed.error_message();
    const fleet::RunProgramResponse run = Run({board}, "/swallow.py");
    if (run.results_size() != 1) return {};
    const uint32_t program = run.results(0).program_id();
    std::vector<uint32_t> ids;
    PollUntil(10s, [&] {
      ids.clear();
      for (const auto& [id, t] : ThreadsOf(AllThreads(board), program)) ids.push_back(id);
      return ids.size() == 12;
    });
    return ids;
  }

  // The audit rows of `action` on `target`.
  std::vector<AuditRecord> AuditOf(const std::string& action, const std::string& target) {
    std::vector<AuditRecord> rows;
    for (const AuditRecord& r : Audit()) {
      if (r.action == action && r.target == target) rows.push_back(r);
    }
    return rows;
  }

  // The audit log oldest first, as it was written.
  std::vector<AuditRecord> Audit() {
    absl::StatusOr<std::vector<AuditRecord>> audit = store_->ListAudit(AuditQuery{.limit = 1000});
    EXPECT_TRUE(audit.ok()) << audit.status();
    if (!audit.ok()) return {};
    return std::vector<AuditRecord>(audit->rbegin(), audit->rend());
  }

  testing::TestLab lab_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<Inventory> inventory_;
  HealthAggregator health_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<LabMonitor> monitor_;
  std::unique_ptr<LinkManager> links_;
  std::unique_ptr<TokenAuthority> tokens_;
  std::string admin_, operator_, viewer_;
  std::unique_ptr<FleetService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<fleet::Fleet::Stub> stub_;
};

TEST_F(FleetServiceTest, CallWithoutTokenIsUnauthenticatedAndViewerKillIsDeniedBothAudited) {
  fleet::ListBoardsResponse boards;
  grpc::Status anonymous = stub_->ListBoards(Context("").get(), fleet::ListBoardsRequest(), &boards);
  EXPECT_EQ(anonymous.error_code(), grpc::StatusCode::UNAUTHENTICATED) << anonymous.error_message();

  fleet::KillThreadRequest kill;
  kill.set_board("b01");
  kill.set_thread_id(7);
  fleet::KillThreadResponse killed;
  grpc::Status denied = stub_->KillThread(Context(viewer_).get(), kill, &killed);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("needs operator"));

  // Streaming calls pass the same gate.
  auto watch_context = Context("");
  std::unique_ptr<grpc::ClientReader<fleet::WatchEventsResponse>> watch =
      stub_->WatchEvents(watch_context.get(), fleet::WatchEventsRequest());
  fleet::WatchEventsResponse event;
  EXPECT_FALSE(watch->Read(&event));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);

  fleet::ListAuditResponse audit;
  ASSERT_TRUE(stub_->ListAudit(Context(admin_).get(), fleet::ListAuditRequest(), &audit).ok());
  ASSERT_EQ(audit.entries_size(), 3);  // newest first
  EXPECT_EQ(audit.entries(2).actor(), "anonymous");
  EXPECT_EQ(audit.entries(2).action(), "Fleet.ListBoards");
  EXPECT_EQ(audit.entries(2).code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(audit.entries(1).actor(), "watcher");
  EXPECT_EQ(audit.entries(1).action(), "Fleet.KillThread");
  EXPECT_EQ(audit.entries(1).target(), "b01/7");
  EXPECT_EQ(audit.entries(1).code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(audit.entries(1).state(), fleet::AUDIT_STATE_DONE);
  EXPECT_EQ(audit.entries(0).action(), "Fleet.WatchEvents");
  EXPECT_EQ(audit.entries(0).target(), "selector all");
  EXPECT_EQ(audit.next_after_id(), audit.entries(0).id());
  EXPECT_EQ(audit.next_before_id(), 0u) << "no older entry left";

  // A page of one, then the next older one through the cursor.
  fleet::ListAuditRequest page;
  page.set_limit(1);
  ASSERT_TRUE(stub_->ListAudit(Context(admin_).get(), page, &audit).ok());
  ASSERT_EQ(audit.entries_size(), 1);
  EXPECT_EQ(audit.entries(0).action(), "Fleet.WatchEvents");
  ASSERT_EQ(audit.next_before_id(), audit.entries(0).id());
  page.set_before_id(audit.next_before_id());
  ASSERT_TRUE(stub_->ListAudit(Context(admin_).get(), page, &audit).ok());
  ASSERT_EQ(audit.entries_size(), 1);
  EXPECT_EQ(audit.entries(0).action(), "Fleet.KillThread");
  EXPECT_NE(audit.next_before_id(), 0u);

  // Viewers may not read the audit log; operators may not manage tokens.
  EXPECT_EQ(stub_->ListAudit(Context(viewer_).get(), fleet::ListAuditRequest(), &audit).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  fleet::CreateTokenRequest create;
  create.set_name("x");
  create.set_role(fleet::ROLE_ADMIN);
  fleet::CreateTokenResponse created;
  EXPECT_EQ(stub_->CreateToken(Context(operator_).get(), create, &created).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(FleetServiceTest, TokensAreCreatedListedRevokedAndAudited) {
  fleet::CreateTokenRequest create;
  create.set_name("alice");
  create.set_role(fleet::ROLE_OPERATOR);
  fleet::CreateTokenResponse created;
  ASSERT_TRUE(stub_->CreateToken(Context(admin_).get(), create, &created).ok());
  EXPECT_TRUE(absl::StartsWith(created.secret(), "tf_"));
  EXPECT_EQ(created.token().created_by(), "root");
  EXPECT_EQ(created.token().role(), fleet::ROLE_OPERATOR);

  fleet::RevokeTokenRequest revoke;
  revoke.set_id(created.token().id());
  fleet::RevokeTokenResponse revoked;
  ASSERT_TRUE(stub_->RevokeToken(Context(admin_).get(), revoke, &revoked).ok());
  EXPECT_TRUE(revoked.token().has_revoke_time());
  fleet::ListBoardsResponse boards;
  EXPECT_EQ(
      stub_->ListBoards(Context(created.secret()).get(), fleet::ListBoardsRequest(), &boards).error_code(),
      grpc::StatusCode::UNAUTHENTICATED);

  fleet::ListTokensResponse tokens;
  ASSERT_TRUE(stub_->ListTokens(Context(admin_).get(), fleet::ListTokensRequest(), &tokens).ok());
  ASSERT_EQ(tokens.tokens_size(), 4);
  EXPECT_EQ(tokens.tokens(3).name(), "alice");

  create.set_role(fleet::ROLE_UNSPECIFIED);
  EXPECT_EQ(stub_->CreateToken(Context(admin_).get(), create, &created).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  const std::vector<AuditRecord> audit = Audit();
  ASSERT_GE(audit.size(), 4u);
  EXPECT_EQ(audit[0].action, "Fleet.CreateToken");
  EXPECT_EQ(audit[0].target, "token alice");
  EXPECT_EQ(audit[0].actor, "root");
  EXPECT_EQ(audit[1].action, "Fleet.RevokeToken");
  EXPECT_EQ(audit[1].target, "token alice");
  EXPECT_EQ(audit[2].actor, "anonymous");  // the revoked token's call
  EXPECT_EQ(audit[3].result_code, absl::StatusCode::kInvalidArgument);
}

TEST_F(FleetServiceTest, OversizedFieldsAreRefusedBeforeAuthorizationAndLeaveNoAuditRow) {
  fleet::KillThreadRequest kill;
  kill.set_board(std::string(3 << 20, 'b'));
  kill.set_thread_id(1);
  fleet::KillThreadResponse killed;
  grpc::Status anonymous = stub_->KillThread(Context("").get(), kill, &killed);
  EXPECT_EQ(anonymous.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << anonymous.error_message();
  EXPECT_THAT(anonymous.error_message(), HasSubstr("KillThreadRequest.board is 3145728 bytes"));
  EXPECT_THAT(anonymous.error_message(), HasSubstr("limits.request.max_field_bytes"));
  EXPECT_LT(anonymous.error_message().size(), 200u) << "the message never echoes the field";

  // Streams pass the same check.
  fleet::PushFileRequest push;
  push.set_path("/" + std::string(2000, 'p'));
  push.set_content("x");
  auto push_context = Context(operator_);
  std::unique_ptr<grpc::ClientReader<fleet::PushFileResponse>> pushing =
      stub_->PushFile(push_context.get(), push);
  fleet::PushFileResponse progress;
  EXPECT_FALSE(pushing->Read(&progress));
  EXPECT_EQ(pushing->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_THAT(Audit(), IsEmpty()) << "refused before any work: nothing to audit";
}

TEST_F(FleetServiceTest, RefusedCallsAuditTheirTargetCutShort) {
  fleet::KillThreadRequest kill;
  kill.set_board(std::string(1000, 'b'));  // within max_field_bytes
  kill.set_thread_id(1);
  fleet::KillThreadResponse killed;
  EXPECT_EQ(stub_->KillThread(Context("").get(), kill, &killed).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const std::vector<AuditRecord> audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_LT(audit[0].target.size(), 300u);
  EXPECT_THAT(audit[0].target, HasSubstr("(1002 bytes)"));
}

TEST_F(FleetServiceTest, IdsOf2To63AndMoreAreInvalidInsteadOfWrapping) {
  fleet::RevokeTokenRequest revoke;
  revoke.set_id(uint64_t{1} << 63);
  fleet::RevokeTokenResponse revoked;
  grpc::Status status = stub_->RevokeToken(Context(admin_).get(), revoke, &revoked);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("RevokeTokenRequest.id"));

  fleet::ListEventsRequest events;
  events.set_after_id(UINT64_MAX);
  fleet::ListEventsResponse listed;
  EXPECT_EQ(stub_->ListEvents(Context(viewer_).get(), events, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(FleetServiceTest, TokenNamesAreOneTo64LettersDigitsDotsDashesOrUnderscores) {
  fleet::CreateTokenRequest create;
  create.set_role(fleet::ROLE_VIEWER);
  fleet::CreateTokenResponse created;
  for (const std::string& bad : {std::string("a\nb"), std::string("nul\0x", 5), std::string(65, 'n'),
                                 std::string("has space"), std::string()}) {
    create.set_name(bad);
    grpc::Status status = stub_->CreateToken(Context(admin_).get(), create, &created);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(status.error_message(), HasSubstr("A-Z a-z 0-9 . _ -")) << bad;
  }
  create.set_name("ci-runner_2.prod");
  EXPECT_TRUE(stub_->CreateToken(Context(admin_).get(), create, &created).ok());
  create.set_name(std::string(64, 'n'));
  EXPECT_TRUE(stub_->CreateToken(Context(admin_).get(), create, &created).ok());
}

TEST_F(FleetServiceTest, AMutationsAuditEntryEndsDoneWithTheOutcome) {
  fleet::RevokeTokenRequest revoke;
  revoke.set_id(999);
  fleet::RevokeTokenResponse revoked;
  EXPECT_EQ(stub_->RevokeToken(Context(admin_).get(), revoke, &revoked).error_code(),
            grpc::StatusCode::NOT_FOUND);
  const std::vector<AuditRecord> audit = Audit();
  ASSERT_EQ(audit.size(), 1u) << "intent and outcome are one entry";
  EXPECT_EQ(audit[0].state, fleet::AUDIT_STATE_DONE);
  EXPECT_EQ(audit[0].result_code, absl::StatusCode::kNotFound);
  EXPECT_EQ(audit[0].target, "token id 999");
}

TEST(ClientSawStatus, IsTheResultUnlessTheDeadlinePassedOrTheClientCancelled) {
  const absl::Time now = absl::FromUnixSeconds(1000);
  EXPECT_EQ(internal::ClientSawStatus(absl::OkStatus(), now + absl::Seconds(1), false, now),
            absl::OkStatus());
  const absl::Status late = internal::ClientSawStatus(absl::OkStatus(), now - absl::Seconds(1), false, now);
  EXPECT_EQ(late.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(late.message(), HasSubstr("fleetd's result was OK"));
  const absl::Status cancelled =
      internal::ClientSawStatus(absl::NotFoundError("no thread 7"), absl::InfiniteFuture(), true, now);
  EXPECT_EQ(cancelled.code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(cancelled.message(), HasSubstr("no thread 7"));
}

TEST_F(FleetServiceTest, JobsAnswerUnimplementedAfterAuthorization) {
  fleet::RunJobRequest run;
  run.set_name("smoke");
  fleet::RunJobResponse response;
  grpc::Status status = stub_->RunJob(Context(operator_).get(), run, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(status.error_message(), "jobs are not enabled in this fleetd");
  EXPECT_EQ(stub_->RunJob(Context(viewer_).get(), run, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  const std::vector<AuditRecord> audit = Audit();
  ASSERT_EQ(audit.size(), 2u);
  EXPECT_EQ(audit[0].target, "job smoke");
  EXPECT_EQ(audit[0].result_code, absl::StatusCode::kUnimplemented);
}

TEST_F(FleetServiceTest, AddedBoardsComeOnlineAndSelectorsPickThem) {
  ASSERT_NO_FATAL_FAILURE(AddTwoBoards());

  fleet::ListBoardsRequest request;
  fleet::ListBoardsResponse response;
  ASSERT_TRUE(stub_->ListBoards(Context(viewer_).get(), request, &response).ok());
  ASSERT_EQ(response.boards_size(), 2);
  EXPECT_EQ(response.boards(0).name(), "b01");
  EXPECT_EQ(response.boards(0).info().name(), "b01");  // fetched once online
  EXPECT_TRUE(response.boards(0).has_state_since());
  EXPECT_EQ(response.boards(0).state_reason(), "");

  request.mutable_selector()->set_labels("half=b");
  ASSERT_TRUE(stub_->ListBoards(Context(viewer_).get(), request, &response).ok());
  ASSERT_EQ(response.boards_size(), 1);
  EXPECT_EQ(response.boards(0).name(), "b02");
  EXPECT_EQ(response.boards(0).labels().at("lab"), "local");

  request.mutable_selector()->set_labels("lab=local,half!=b");
  request.mutable_selector()->add_boards("b01");
  ASSERT_TRUE(stub_->ListBoards(Context(viewer_).get(), request, &response).ok());
  ASSERT_EQ(response.boards_size(), 1);
  EXPECT_EQ(response.boards(0).name(), "b01");

  request.mutable_selector()->set_labels("half");
  EXPECT_EQ(stub_->ListBoards(Context(viewer_).get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.mutable_selector()->set_labels("");
  request.mutable_selector()->add_boards("b77");
  grpc::Status unknown = stub_->ListBoards(Context(viewer_).get(), request, &response);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(unknown.error_message(), HasSubstr("b77"));

  fleet::AddBoardRequest again;
  again.set_name("b01");
  again.set_address("127.0.0.1:1");
  fleet::AddBoardResponse added;
  EXPECT_EQ(stub_->AddBoard(Context(admin_).get(), again, &added).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(stub_->AddBoard(Context(operator_).get(), again, &added).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  fleet::SetLabelsRequest relabel;
  relabel.set_board("b02");
  (*relabel.mutable_set())["role"] = "sensor";
  relabel.add_remove("half");
  fleet::SetLabelsResponse relabelled;
  ASSERT_TRUE(stub_->SetLabels(Context(admin_).get(), relabel, &relabelled).ok());
  EXPECT_EQ(relabelled.board().labels().count("half"), 0u);
  EXPECT_EQ(relabelled.board().labels().at("role"), "sensor");

  fleet::RemoveBoardRequest remove;
  remove.set_name("b02");
  fleet::RemoveBoardResponse removed;
  ASSERT_TRUE(stub_->RemoveBoard(Context(admin_).get(), remove, &removed).ok());
  EXPECT_FALSE(links_->Status("b02").has_value());
  EXPECT_EQ(stub_->RemoveBoard(Context(admin_).get(), remove, &removed).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(stub_->ListBoards(Context(viewer_).get(), fleet::ListBoardsRequest(), &response).ok());
  ASSERT_EQ(response.boards_size(), 1);
  EXPECT_FALSE(GetBoard("b02").has_value());

  std::vector<std::string> actions;
  for (const AuditRecord& r : Audit()) actions.push_back(r.action + " " + r.target + " " + r.actor);
  EXPECT_THAT(actions,
              ElementsAre("Fleet.AddBoard b01 root", "Fleet.AddBoard b02 root", "Fleet.AddBoard b01 root",
                          "Fleet.AddBoard b01 ci", "Fleet.SetLabels b02 root", "Fleet.RemoveBoard b02 root",
                          "Fleet.RemoveBoard b02 root"));
}

TEST_F(FleetServiceTest, PushReportsProgressPerBoardAndRunFollowsTheProgramOutputToItsEnd) {
  ASSERT_NO_FATAL_FAILURE(AddTwoBoards());

  grpc::Status pushed;
  std::vector<fleet::PushFileResponse> progress = Push({"b01", "b02"}, "/count.py", kCountScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  std::map<std::string, std::vector<fleet::PushStage>> stages;
  for (const fleet::PushFileResponse& m : progress) {
    stages[m.board()].push_back(m.stage());
    EXPECT_EQ(m.total_bytes(), sizeof(kCountScript) - 1);
    EXPECT_EQ(m.sha256_hex().size(), 64u);
  }
  for (const std::string board : {"b01", "b02"}) {
    EXPECT_THAT(stages[board],
                ElementsAre(fleet::PUSH_STAGE_QUEUED, fleet::PUSH_STAGE_WRITING, fleet::PUSH_STAGE_DONE))
        << board;
  }

  fleet::RunProgramResponse run = Run({"b01", "b02"}, "/count.py", {"hello"});
  ASSERT_EQ(run.results_size(), 2);
  EXPECT_EQ(run.results(0).board(), "b01");
  EXPECT_FALSE(run.results(0).has_error()) << run.results(0).error().message();
  EXPECT_FALSE(run.results(1).has_error()) << run.results(1).error().message();
  EXPECT_GT(run.results(0).program_id(), 0u);

  // Stored with who started it and the script's hash.
  absl::StatusOr<std::vector<ProgramRecord>> programs = store_->ListPrograms("b01", 10);
  ASSERT_TRUE(programs.ok()) << programs.status();
  ASSERT_EQ(programs->size(), 1u);
  EXPECT_EQ((*programs)[0].started_by, "ci");
  EXPECT_EQ((*programs)[0].script_sha256_hex, progress.front().sha256_hex());
  EXPECT_EQ((*programs)[0].name, "count.py");

  fleet::StreamOutputRequest follow;
  follow.set_board("b01");
  follow.set_program_id(run.results(0).program_id());
  follow.set_follow(true);
  auto context = Context(viewer_);
  std::unique_ptr<grpc::ClientReader<fleet::StreamOutputResponse>> reader =
      stub_->StreamOutput(context.get(), follow);
  std::string output;
  fleet::StreamOutputResponse chunk;
  while (reader->Read(&chunk)) output += chunk.chunk().data();
  grpc::Status ended = reader->Finish();
  EXPECT_TRUE(ended.ok()) << ended.error_message();
  EXPECT_EQ(output, "line 0 hello\nline 1 hello\nline 2 hello\n");

  // A program the board does not know.
  follow.set_program_id(999);
  auto context2 = Context(viewer_);
  reader = stub_->StreamOutput(context2.get(), follow);
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);

  // Errors of the call itself.
  Push({"b01"}, "count.py", kCountScript, &pushed);
  EXPECT_EQ(pushed.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Push({"b99"}, "/count.py", kCountScript, &pushed);
  EXPECT_EQ(pushed.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(FleetServiceTest, StartThreadRunsAFunctionAndACancelledFollowLeavesItRunning) {
  ASSERT_NO_FATAL_FAILURE(AddBoard("b01", {}));
  ASSERT_TRUE(WaitOnline("b01"));
  grpc::Status pushed;
  Push({"b01"}, "/ticker.py",
       "import time\n"
       "def run(label):\n"
       "    while True:\n"
       "        print('tick', label)\n"
       "        time.sleep(0.05)\n",
       &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();

  fleet::StartThreadRequest start;
  start.set_board("b01");
  start.set_module("ticker");
  start.set_function("run");
  start.add_args("'t1'");
  fleet::StartThreadResponse started;
  grpc::Status status = stub_->StartThread(Context(operator_).get(), start, &started);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GT(started.thread_id(), 0u);

  // Follow its output, then hang up: the call ends, the thread goes on.
  fleet::StreamOutputRequest follow;
  follow.set_board("b01");
  follow.set_program_id(started.program_id());
  follow.set_follow(true);
  auto context = Context(viewer_);
  std::unique_ptr<grpc::ClientReader<fleet::StreamOutputResponse>> reader =
      stub_->StreamOutput(context.get(), follow);
  std::string output;
  fleet::StreamOutputResponse chunk;
  while (output.find("tick t1\ntick t1\n") == std::string::npos && reader->Read(&chunk)) {
    output += chunk.chunk().data();
  }
  EXPECT_THAT(output, HasSubstr("tick t1\ntick t1\n"));
  context->TryCancel();
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(PollUntil(5s, [&] { return LiveThread("b01", started.thread_id()); }));

  // Without follow: what is buffered, then the end.
  follow.set_follow(false);
  auto context2 = Context(viewer_);
  reader = stub_->StreamOutput(context2.get(), follow);
  output.clear();
  while (reader->Read(&chunk)) output += chunk.chunk().data();
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_THAT(output, HasSubstr("tick t1\n"));

  absl::StatusOr<std::vector<ProgramRecord>> programs = store_->ListPrograms("b01", 10);
  ASSERT_TRUE(programs.ok()) << programs.status();
  ASSERT_EQ(programs->size(), 1u);
  EXPECT_EQ((*programs)[0].path, "ticker.run");
  EXPECT_EQ((*programs)[0].started_by, "ci");

  // The board's own errors pass through; a board without the file reports
  // NOT_FOUND in its result, not as the call's error.
  start.set_function("nope");
  EXPECT_EQ(stub_->StartThread(Context(operator_).get(), start, &started).error_code(),
            grpc::StatusCode::NOT_FOUND);
  fleet::RunProgramResponse run = Run({"b01"}, "/missing.py");
  ASSERT_EQ(run.results_size(), 1);
  EXPECT_EQ(run.results(0).error().code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(FleetServiceTest, BoardOfflineUntilThePushDeadlineFailsWhileTheOtherSucceeds) {
  ASSERT_NO_FATAL_FAILURE(AddBoard("b01", {}));
  ASSERT_TRUE(WaitOnline("b01"));
  fleet::AddBoardRequest ghost;
  ghost.set_name("b09");
  ghost.set_address("127.0.0.1:" + std::to_string(testing::FreePort()));
  fleet::AddBoardResponse added;
  ASSERT_TRUE(stub_->AddBoard(Context(admin_).get(), ghost, &added).ok());
  EXPECT_EQ(added.board().state(), fleet::BOARD_STATE_OFFLINE);
  EXPECT_NE(added.board().state_reason(), "");

  grpc::Status pushed;
  std::vector<fleet::PushFileResponse> progress =
      Push({"b01", "b09"}, "/count.py", kCountScript, &pushed, /*deadline=*/2s);

  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  ASSERT_FALSE(progress.empty());
  std::map<std::string, fleet::PushFileResponse> last;
  std::vector<fleet::PushFileResponse> b09_waiting;
  for (const fleet::PushFileResponse& m : progress) {
    last[m.board()] = m;
    if (m.board() == "b09" && m.stage() == fleet::PUSH_STAGE_QUEUED && m.has_error())
      b09_waiting.push_back(m);
  }
  EXPECT_EQ(last["b01"].stage(), fleet::PUSH_STAGE_DONE);
  ASSERT_EQ(b09_waiting.size(), 1u) << "the wait is reported once, with its reason";
  EXPECT_THAT(b09_waiting[0].error().message(), HasSubstr("offline"));
  EXPECT_EQ(last["b09"].stage(), fleet::PUSH_STAGE_FAILED);
  EXPECT_EQ(last["b09"].error().code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(last["b09"].error().message(), HasSubstr("offline"));
  EXPECT_THAT(last["b09"].error().message(), HasSubstr("gave up at its deadline"));

  // Offline boards are listed with their state and no threads.
  fleet::ListThreadsResponse threads = Threads();
  ASSERT_EQ(threads.boards_size(), 2);
  EXPECT_EQ(threads.boards(1).board(), "b09");
  EXPECT_EQ(threads.boards(1).state(), fleet::BOARD_STATE_OFFLINE);
  EXPECT_EQ(threads.boards(1).threads_size(), 0);

  const std::vector<AuditRecord> audit = Audit();
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(audit.back().action, "Fleet.PushFile");
  EXPECT_EQ(audit.back().target, "selector boards=b01,b09 /count.py");
  EXPECT_THAT(audit.back().result_message, HasSubstr("1 of 2 boards ok"));
}

TEST_F(FleetServiceTest, PushWaitsForABoardThatComesBackOnlineAndWritesIt) {
  ASSERT_NO_FATAL_FAILURE(AddBoard("b01", {}));
  ASSERT_TRUE(WaitOnline("b01"));
  testing::BoardProcess& b01 = lab_.board("b01");
  b01.Kill9();
  ASSERT_TRUE(PollUntil(10s, [&] {
    std::optional<fleet::Board> b = GetBoard("b01");
    return b.has_value() && b->state() == fleet::BOARD_STATE_OFFLINE;
  }));

  grpc::Status pushed;
  std::future<std::vector<fleet::PushFileResponse>> pushing =
      std::async(std::launch::async, [&] { return Push({"b01"}, "/count.py", kCountScript, &pushed); });
  std::this_thread::sleep_for(500ms);  // the push finds the board offline first
  ASSERT_NO_FATAL_FAILURE(b01.Start());
  std::vector<fleet::PushFileResponse> progress = pushing.get();

  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  std::vector<fleet::PushStage> stages;
  for (const fleet::PushFileResponse& m : progress) stages.push_back(m.stage());
  EXPECT_THAT(stages, ElementsAre(fleet::PUSH_STAGE_QUEUED, fleet::PUSH_STAGE_QUEUED,
                                  fleet::PUSH_STAGE_WRITING, fleet::PUSH_STAGE_DONE));
  EXPECT_THAT(progress.at(1).error().message(), HasSubstr("offline"));
  fleet::RunProgramResponse run = Run({"b01"}, "/count.py", {"back"});
  ASSERT_EQ(run.results_size(), 1);
  EXPECT_FALSE(run.results(0).has_error()) << run.results(0).error().message();
}

// A button on pin 4 whose IRQ handler copies its level to the LED on pin 2.
constexpr char kButtonLedScript[] =
    "import machine, time\n"
    "led = machine.Pin(2, machine.Pin.OUT)\n"
    "led.value(0)\n"
    "button = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_DOWN)\n"
    "button.irq(lambda p: led.value(p.value()), machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)\n"
    "while True:\n"
    "    time.sleep_ms(20)\n";

TEST_F(FleetServiceTest, TheLabDrivesAnInputPinTheProgramAnswersOnItsOutputAndEveryDriveIsAudited) {
  ASSERT_NO_FATAL_FAILURE(AddTwoBoards());
  grpc::Status pushed;
  Push({"b01"}, "/button.py", kButtonLedScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  Run({"b01"}, "/button.py");
  fleet::GetMachineRequest get;
  get.set_board("b01");
  auto pin_of = [&](uint32_t number) -> std::optional<pb::PinState> {
    fleet::GetMachineResponse machine;
    if (!stub_->GetMachine(Context(viewer_).get(), get, &machine).ok()) return std::nullopt;
    for (const pb::PinState& p : machine.machine().pins()) {
      if (p.pin() == number) return p;
    }
    return std::nullopt;
  };
  ASSERT_TRUE(PollUntil(5s, [&] { return pin_of(4).has_value() && pin_of(4)->irq(); }));

  fleet::SetPinRequest press;
  press.set_board("b01");
  press.set_pin(4);
  press.set_value(1);
  fleet::SetPinResponse pressed;
  EXPECT_EQ(stub_->SetPin(Context(viewer_).get(), press, &pressed).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status status = stub_->SetPin(Context(operator_).get(), press, &pressed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(pressed.pin().lab_driven());
  EXPECT_TRUE(PollUntil(5s, [&] { return pin_of(2).has_value() && pin_of(2)->value() == 1; }))
      << "the IRQ handler drove the LED";

  // The program's output is not the lab's to drive; a pin past the limit
  // never reaches the board.
  fleet::SetPinRequest led = press;
  led.set_pin(2);
  status = stub_->SetPin(Context(operator_).get(), led, &pressed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("board b01"));
  fleet::SetPinRequest far = press;
  far.set_pin(300);
  status = stub_->SetPin(Context(operator_).get(), far, &pressed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("pin 300 is out of range: pins are 0..255"));

  fleet::SetAdcRequest adc;
  adc.set_board("b02");
  adc.set_channel(0);
  adc.set_value_u16(40000);
  fleet::SetAdcResponse set;
  status = stub_->SetAdc(Context(operator_).get(), adc, &set);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(set.adc().value_u16(), 40000u);

  std::vector<AuditRecord> drives = AuditOf("Fleet.SetPin", "b01/pin 4");
  ASSERT_EQ(drives.size(), 2u);
  EXPECT_EQ(drives[0].actor, "watcher");
  EXPECT_EQ(drives[0].result_code, absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(drives[1].actor, "ci");
  EXPECT_EQ(drives[1].result_code, absl::StatusCode::kOk);
  EXPECT_EQ(drives[1].result_message, "driven to 1");
  EXPECT_EQ(AuditOf("Fleet.SetPin", "b01/pin 2").at(0).result_code, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(AuditOf("Fleet.SetAdc", "b02/adc 0").size(), 1u);
}

TEST_F(FleetServiceTest, KillingAThreadOnOneBoardLeavesTheOtherBoardsThreadRunning) {
  ASSERT_NO_FATAL_FAILURE(AddTwoBoards());
  grpc::Status pushed;
  Push({"b01", "b02"}, "/loop.py", kLoopScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  fleet::RunProgramResponse run = Run({"b01", "b02"}, "/loop.py");
  ASSERT_EQ(run.results_size(), 2);
  const uint32_t t1 = run.results(0).main_thread_id();
  const uint32_t t2 = run.results(1).main_thread_id();

  // Both boards' threads show in ListThreads once their snapshots do.
  ASSERT_TRUE(PollUntil(5s, [&] { return LiveThread("b01", t1) && LiveThread("b02", t2); }));

  fleet::KillThreadRequest kill;
  kill.set_board("b01");
  kill.set_thread_id(t1);
  kill.set_grace_ms(1000);
  fleet::KillThreadResponse killed;
  grpc::Status status = stub_->KillThread(Context(operator_).get(), kill, &killed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(killed.thread().state(), pb::THREAD_STATE_KILLED);

  EXPECT_TRUE(PollUntil(5s, [&] { return !LiveThread("b01", t1); }));
  std::this_thread::sleep_for(600ms);  // a snapshot period or so
  EXPECT_TRUE(LiveThread("b02", t2));

  // include_finished keeps the killed thread.
  fleet::ListThreadsRequest all;
  all.set_include_finished(true);
  all.mutable_selector()->add_boards("b01");
  fleet::ListThreadsResponse listed;
  ASSERT_TRUE(stub_->ListThreads(Context(viewer_).get(), all, &listed).ok());
  ASSERT_EQ(listed.boards_size(), 1);
  bool found = false;
  for (const pb::ThreadInfo& t : listed.boards(0).threads()) found |= t.id() == t1;
  EXPECT_TRUE(found);

  // Unknown board and thread.
  kill.set_board("b77");
  EXPECT_EQ(stub_->KillThread(Context(operator_).get(), kill, &killed).error_code(),
            grpc::StatusCode::NOT_FOUND);
  kill.set_board("b02");
  kill.set_thread_id(4242);
  EXPECT_EQ(stub_->KillThread(Context(operator_).get(), kill, &killed).error_code(),
            grpc::StatusCode::NOT_FOUND);

  fleet::KillProgramRequest kill_program;
  kill_program.set_board("b02");
  kill_program.set_program_id(run.results(1).program_id());
  fleet::KillProgramResponse program_killed;
  ASSERT_TRUE(stub_->KillProgram(Context(operator_).get(), kill_program, &program_killed).ok());
  EXPECT_EQ(program_killed.program().state(), pb::PROGRAM_STATE_KILLED);

  std::vector<std::string> targets;
  for (const AuditRecord& r : Audit()) {
    if (absl::StartsWith(r.action, "Fleet.Kill")) targets.push_back(r.target);
  }
  EXPECT_THAT(targets, ElementsAre("b01/" + std::to_string(t1), "b77/" + std::to_string(t1), "b02/4242",
                                   "b02/program/" + std::to_string(run.results(1).program_id())));
}

TEST_F(FleetServiceTest, KilledThreadAndKilledProgramShowInListThreadsRightAfterTheKill) {
  ASSERT_NO_FATAL_FAILURE(AddTwoBoards());
  grpc::Status pushed;
  Push({"b02", "b01"}, "/loops.py", kTwoLoopsScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  const fleet::RunProgramResponse first = Run({"b01"}, "/loops.py");
  const fleet::RunProgramResponse second = Run({"b01"}, "/loops.py");
  ASSERT_EQ(first.results_size(), 1);
  ASSERT_EQ(second.results_size(), 1);
  const uint32_t thread = first.results(0).main_thread_id();
  const uint32_t program = second.results(0).program_id();
  // Both programs' two threads show once a snapshot lists them.
  ASSERT_TRUE(PollUntil(5s, [&] {
    const fleet::BoardThreads b01 = AllThreads("b01");
    return ThreadsOf(b01, first.results(0).program_id()).size() == 2 && ThreadsOf(b01, program).size() == 2;
  }));

  fleet::KillThreadRequest kill;
  kill.set_board("b01");
  kill.set_thread_id(thread);
  kill.set_grace_ms(1000);
  fleet::KillThreadResponse killed;
  grpc::Status status = stub_->KillThread(Context(operator_).get(), kill, &killed);
  ASSERT_TRUE(status.ok()) << status.error_message();

  // No wait for the next snapshot.
  std::map<uint32_t, pb::ThreadInfo> threads = ThreadsOf(AllThreads("b01"), first.results(0).program_id());
  ASSERT_TRUE(threads.contains(thread));
  EXPECT_EQ(threads[thread].state(), pb::THREAD_STATE_KILLED);
  EXPECT_FALSE(LiveThread("b01", thread));

  fleet::KillProgramRequest kill_program;
  kill_program.set_board("b01");
  kill_program.set_program_id(program);
  kill_program.set_grace_ms(1000);
  fleet::KillProgramResponse program_killed;
  status = stub_->KillProgram(Context(operator_).get(), kill_program, &program_killed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(program_killed.program().state(), pb::PROGRAM_STATE_KILLED);

  const fleet::BoardThreads b01 = AllThreads("b01");
  threads = ThreadsOf(b01, program);
  ASSERT_EQ(threads.size(), 2u);
  for (const auto& [id, t] : threads) {
    EXPECT_EQ(t.state(), pb::THREAD_STATE_KILLED) << "thread " << id;
    EXPECT_FALSE(LiveThread("b01", id)) << "thread " << id;
  }
  bool program_listed = false;
  for (const pb::ProgramInfo& p : b01.programs()) {
    if (p.id() != program) continue;
    program_listed = true;
    EXPECT_EQ(p.state(), pb::PROGRAM_STATE_KILLED);
  }
  EXPECT_TRUE(program_listed);

  // A fan-out's audit target names its boards sorted, whatever their order.
  bool push_audited = false;
  for (const AuditRecord& r : Audit()) {
    if (r.action != "Fleet.PushFile") continue;
    push_audited = true;
    EXPECT_EQ(r.target, "selector boards=b01,b02 /loops.py");
  }
  EXPECT_TRUE(push_audited);
}

TEST_F(FleetServiceTest, AResetEndsTheBoardsProgramsShownRightAfterAndLeavesTheOtherBoardRunning) {
  ASSERT_NO_FATAL_FAILURE(AddTwoBoards());
  grpc::Status pushed;
  Push({"b01", "b02"}, "/loops.py", kTwoLoopsScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  const fleet::RunProgramResponse on_b01 = Run({"b01"}, "/loops.py");
  const fleet::RunProgramResponse on_b02 = Run({"b02"}, "/loops.py");
  ASSERT_EQ(on_b01.results_size(), 1);
  ASSERT_EQ(on_b02.results_size(), 1);
  const uint32_t program = on_b01.results(0).program_id();
  const uint32_t other = on_b02.results(0).main_thread_id();
  ASSERT_TRUE(PollUntil(
      5s, [&] { return ThreadsOf(AllThreads("b01"), program).size() == 2 && LiveThread("b02", other); }));

  fleet::ResetBoardRequest reset;
  reset.set_board("b01");
  fleet::ResetBoardResponse answer;
  grpc::Status status = stub_->ResetBoard(Context(viewer_).get(), reset, &answer);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  status = stub_->ResetBoard(Context(operator_).get(), reset, &answer);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(answer.hard());

  // No wait for the next snapshot: the program and both its threads ended.
  const fleet::BoardThreads b01 = AllThreads("b01");
  const std::map<uint32_t, pb::ThreadInfo> threads = ThreadsOf(b01, program);
  ASSERT_EQ(threads.size(), 2u);
  for (const auto& [id, t] : threads) EXPECT_EQ(t.state(), pb::THREAD_STATE_KILLED) << "thread " << id;
  bool program_listed = false;
  for (const pb::ProgramInfo& p : b01.programs()) {
    if (p.id() != program) continue;
    program_listed = true;
    EXPECT_EQ(p.state(), pb::PROGRAM_STATE_KILLED);
  }
  EXPECT_TRUE(program_listed);
  EXPECT_TRUE(LiveThread("b02", other)) << "another board's program goes on";

  // The fresh VM takes programs at once, and a safe boot is told apart in
  // the audit log.
  const fleet::RunProgramResponse again = Run({"b01"}, "/loops.py");
  ASSERT_EQ(again.results_size(), 1);
  EXPECT_FALSE(again.results(0).has_error()) << again.results(0).error().message();
  reset.set_safe_boot(true);
  status = stub_->ResetBoard(Context(operator_).get(), reset, &answer);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::vector<AuditRecord> resets = AuditOf("Fleet.ResetBoard", "b01");
  ASSERT_EQ(resets.size(), 2u);
  EXPECT_EQ(resets[0].result_code, absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(resets[1].result_code, absl::StatusCode::kOk);
  EXPECT_EQ(resets[1].result_message, "fresh VM");
  EXPECT_EQ(AuditOf("Fleet.ResetBoard", "b01 (safe boot)").size(), 1u);
}

TEST_F(FleetServiceTest, DeadlockShowsAsAnErrorEventInListEventsAndWatchEvents) {
  ASSERT_NO_FATAL_FAILURE(AddTwoBoards());

  // Watch b01's errors from now on.
  fleet::WatchEventsRequest watch;
  watch.mutable_selector()->add_boards("b01");
  watch.set_min_severity(fleet::SEVERITY_ERROR);
  auto watch_context = Context(viewer_);
  std::unique_ptr<grpc::ClientReader<fleet::WatchEventsResponse>> watcher =
      stub_->WatchEvents(watch_context.get(), watch);

  grpc::Status pushed;
  Push({"b01"}, "/deadlock.py", kDeadlockScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  Run({"b01"}, "/deadlock.py");

  fleet::WatchEventsResponse seen;
  ASSERT_TRUE(watcher->Read(&seen));  // bounded by the 30 s deadline
  EXPECT_EQ(seen.event().board(), "b01");
  EXPECT_EQ(seen.event().severity(), fleet::SEVERITY_ERROR);
  EXPECT_EQ(seen.event().kind(), fleet::EVENT_KIND_BOARD_EVENT);
  EXPECT_EQ(seen.event().board_event().kind(), pb::EVENT_KIND_DEADLOCK);
  EXPECT_EQ(seen.event().board_event().cycle_thread_ids_size(), 2);

  fleet::ListEventsRequest list;
  list.set_min_severity(fleet::SEVERITY_ERROR);
  list.mutable_selector()->set_labels("half=a");
  fleet::ListEventsResponse events;
  ASSERT_TRUE(stub_->ListEvents(Context(viewer_).get(), list, &events).ok());
  ASSERT_GE(events.events_size(), 1);
  EXPECT_EQ(events.events(0).id(), seen.event().id());
  EXPECT_EQ(events.next_after_id(), events.events(events.events_size() - 1).id());

  // A watch from a cursor replays what was stored after it.
  fleet::WatchEventsRequest replay;
  replay.set_after_id(seen.event().id() - 1);
  replay.set_min_severity(fleet::SEVERITY_ERROR);
  auto replay_context = Context(viewer_);
  std::unique_ptr<grpc::ClientReader<fleet::WatchEventsResponse>> replayer =
      stub_->WatchEvents(replay_context.get(), replay);
  fleet::WatchEventsResponse replayed;
  ASSERT_TRUE(replayer->Read(&replayed));
  EXPECT_EQ(replayed.event().id(), seen.event().id());

  // b02 picked alone sees none of it; a negative limit is refused.
  list.mutable_selector()->set_labels("half=b");
  ASSERT_TRUE(stub_->ListEvents(Context(viewer_).get(), list, &events).ok());
  for (const fleet::Event& e : events.events()) EXPECT_EQ(e.board(), "b02");
  list.set_limit(-1);
  EXPECT_EQ(stub_->ListEvents(Context(viewer_).get(), list, &events).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // GetHealth lists the deadlock among b01's open anomalies.
  fleet::GetHealthRequest health_request;
  health_request.mutable_selector()->add_boards("b01");
  fleet::GetHealthResponse health;
  ASSERT_TRUE(stub_->GetHealth(Context(viewer_).get(), health_request, &health).ok());
  ASSERT_EQ(health.boards_size(), 1);
  EXPECT_TRUE(health.boards(0).has_snapshot());
  bool deadlock = false;
  for (const fleet::Event& e : health.boards(0).anomalies()) {
    deadlock |= e.board_event().kind() == pb::EVENT_KIND_DEADLOCK;
  }
  EXPECT_TRUE(deadlock);

  watch_context->TryCancel();
  replay_context->TryCancel();
  EXPECT_EQ(watcher->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(replayer->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(FleetServiceTest, WatchHealthSendsLatestSnapshotsThenUpdatesAndShutdownEndsIt) {
  ASSERT_NO_FATAL_FAILURE(AddTwoBoards());
  ASSERT_TRUE(PollUntil(5s, [&] { return health_.Latest("b02").has_value(); }));

  fleet::WatchHealthRequest request;
  request.mutable_selector()->set_labels("half=b");
  auto context = Context(viewer_);
  std::unique_ptr<grpc::ClientReader<fleet::WatchHealthResponse>> reader =
      stub_->WatchHealth(context.get(), request);
  fleet::WatchHealthResponse m;
  ASSERT_TRUE(reader->Read(&m));
  EXPECT_EQ(m.board(), "b02");
  EXPECT_EQ(m.state(), fleet::BOARD_STATE_ONLINE);
  ASSERT_TRUE(reader->Read(&m));
  EXPECT_TRUE(m.has_snapshot());
  // A few live snapshots, all of b02.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(reader->Read(&m));
    EXPECT_EQ(m.board(), "b02");
  }

  service_->Shutdown();
  while (reader->Read(&m)) {
  }
  grpc::Status ended = reader->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ended.error_message(), "fleetd is shutting down");
}

// ---- Files

// The SHA-256 needs the board's ListFiles with_sha256 (the fw-channel branch
// of issue 11); it is checked last.
TEST_F(FleetServiceTest, FilesAreListedWithSizeAndSha256AndDeletedOnTheBoard) {
  ASSERT_NO_FATAL_FAILURE(AddBoard("b01", {}));
  ASSERT_TRUE(WaitOnline("b01"));
  grpc::Status pushed;
  const std::vector<fleet::PushFileResponse> progress = Push({"b01"}, "/app/count.py", kCountScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();

  fleet::ListFilesRequest list;
  list.set_board("b01");
  list.set_path("/app");
  fleet::ListFilesResponse listed;
  grpc::Status status = stub_->ListFiles(Context(viewer_).get(), list, &listed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(listed.entries_size(), 1);
  EXPECT_EQ(listed.entries(0).name(), "count.py");
  EXPECT_EQ(listed.entries(0).size_bytes(), sizeof(kCountScript) - 1);
  const std::string listed_sha = listed.entries(0).sha256_hex();

  fleet::DeleteFileRequest remove;
  remove.set_board("b01");
  remove.set_path("/app/count.py");
  fleet::DeleteFileResponse removed;
  status = stub_->DeleteFile(Context(operator_).get(), remove, &removed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(stub_->ListFiles(Context(viewer_).get(), list, &listed).ok());
  EXPECT_EQ(listed.entries_size(), 0);
  status = stub_->DeleteFile(Context(operator_).get(), remove, &removed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  list.set_path("/no/such/dir");
  EXPECT_EQ(stub_->ListFiles(Context(viewer_).get(), list, &listed).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(AuditOf("Fleet.DeleteFile", "b01 /app/count.py").size(), 2u);
  EXPECT_EQ(listed_sha, progress.back().sha256_hex());
}

// Needs the board's skip_if_sha256_hex (the fw-channel branch of issue 11).
TEST_F(FleetServiceTest, PushingTheSameContentAgainLeavesTheBoardsFileUnchangedUnlessForced) {
  ASSERT_NO_FATAL_FAILURE(AddBoard("b01", {}));
  ASSERT_TRUE(WaitOnline("b01"));
  grpc::Status pushed;
  Push({"b01"}, "/count.py", kCountScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();

  std::vector<fleet::PushFileResponse> again = Push({"b01"}, "/count.py", kCountScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(again.back().stage(), fleet::PUSH_STAGE_UNCHANGED);

  fleet::PushFileRequest forced;
  forced.mutable_selector()->add_boards("b01");
  forced.set_path("/count.py");
  forced.set_content(kCountScript);
  forced.set_force(true);
  auto context = Context(operator_);
  std::unique_ptr<grpc::ClientReader<fleet::PushFileResponse>> reader =
      stub_->PushFile(context.get(), forced);
  fleet::PushFileResponse m;
  fleet::PushStage last = fleet::PUSH_STAGE_UNSPECIFIED;
  while (reader->Read(&m)) last = m.stage();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(last, fleet::PUSH_STAGE_DONE);
}

// ---- Board calls never hold up the service (defect 3 of issue 11)

// Tight per-board limits, so the test reaches them with a few kills.
class FleetServiceBusyBoardTest : public FleetServiceTest {
 protected:
  LinkOptions MakeLinkOptions() override {
    LinkOptions options;
    options.max_calls_in_flight = 4;
    options.max_queued_calls = 4;
    return options;
  }
};

TEST_F(FleetServiceBusyBoardTest, LongKillsOnOneBoardHoldUpNoOtherCallAndOverTheLimitsAreRefusedNamingThem) {
  ASSERT_NO_FATAL_FAILURE(AddTwoBoards());
  const std::vector<uint32_t> swallowers = RunSwallowers("b01");
  ASSERT_EQ(swallowers.size(), 12u);
  grpc::Status pushed;
  Push({"b02"}, "/loop.py", kLoopScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  const fleet::RunProgramResponse b02_run = Run({"b02"}, "/loop.py");
  ASSERT_EQ(b02_run.results_size(), 1);

  // A grace over the cap is refused at once, naming the cap.
  const grpc::Status too_long = Kill("b01", swallowers[0], 60000, 5s);
  EXPECT_EQ(too_long.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << too_long.error_message();
  EXPECT_THAT(too_long.error_message(), HasSubstr("grace_ms is 60000, over fleetd's limit of 10000"));

  // A long kill, then a short one of the same thread: the short one goes to
  // the board at once, not behind the long one on fleetd's side, and the
  // board brings the pending kill forward (the thread ends within the short
  // grace), so both answer long before the first one's grace.
  std::unique_ptr<PendingKill> first = StartKill("b01", swallowers[0], 10000, 8s);
  ASSERT_TRUE(PollUntil(5s, [&] { return links_->OpenCalls() >= 3; }));  // two health streams + the kill
  const grpc::Status second = Kill("b01", swallowers[0], 200, 10s);
  EXPECT_TRUE(second.ok()) << second.error_message();
  ASSERT_EQ(first->status.wait_for(5s), std::future_status::ready) << "the long kill still waits its grace";
  EXPECT_TRUE(first->status.get().ok());
  EXPECT_EQ(first->response.thread().state(), pb::THREAD_STATE_KILLED);

  // More long kills: four run, four wait, the next is refused naming the
  // board and both limits.
  std::vector<std::unique_ptr<PendingKill>> long_kills;
  for (size_t i = 1; i < 9; ++i) long_kills.push_back(StartKill("b01", swallowers[i], 10000, 4s));
  ASSERT_TRUE(PollUntil(5s, [&] { return links_->OpenCalls() >= 2 + 8; })) << links_->OpenCalls();
  const grpc::Status refused = Kill("b01", swallowers[9], 10000, 5s);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("board b01: KillThread: "));
  EXPECT_THAT(refused.error_message(), HasSubstr("max_calls_in_flight 4, max_queued_calls 4"));

  // Meanwhile everything else answers: admin and viewer reads, a refusal of
  // a caller without a token, and a kill on the other board.
  const auto soon = [] { return std::chrono::system_clock::now() + 1s; };
  auto admin = Context(admin_);
  admin->set_deadline(soon());
  fleet::ListBoardsResponse boards;
  const grpc::Status listed = stub_->ListBoards(admin.get(), fleet::ListBoardsRequest(), &boards);
  EXPECT_TRUE(listed.ok()) << listed.error_message();
  EXPECT_EQ(boards.boards_size(), 2);
  auto anonymous = Context("");
  anonymous->set_deadline(soon());
  EXPECT_EQ(stub_->ListBoards(anonymous.get(), fleet::ListBoardsRequest(), &boards).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto viewer = Context(viewer_);
  viewer->set_deadline(soon());
  fleet::ListThreadsResponse threads;
  EXPECT_TRUE(stub_->ListThreads(viewer.get(), fleet::ListThreadsRequest(), &threads).ok());
  const grpc::Status other = Kill("b02", b02_run.results(0).main_thread_id(), 1000, 5s);
  EXPECT_TRUE(other.ok()) << other.error_message();

  // The long kills end by their callers' deadline: the board answers the
  // running ones just before it with the thread's record (alive, its kill
  // going on); the ones still queued in fleetd at the deadline fail
  // DEADLINE_EXCEEDED.
  for (auto& kill : long_kills) {
    ASSERT_EQ(kill->status.wait_for(15s), std::future_status::ready);
    const grpc::StatusCode code = kill->status.get().error_code();
    EXPECT_TRUE(code == grpc::StatusCode::OK || code == grpc::StatusCode::DEADLINE_EXCEEDED) << code;
  }
}

TEST_F(FleetServiceTest, TheCallersDeadlineReachesTheBoardWhichAnswersBeforeItAndTheKillIsAuditedOk) {
  ASSERT_NO_FATAL_FAILURE(AddBoard("b01", {}));
  ASSERT_TRUE(WaitOnline("b01"));
  const std::vector<uint32_t> swallowers = RunSwallowers("b01");
  ASSERT_FALSE(swallowers.empty());

  // The board would wait 2 x 5 s for the thread; the caller waits 2 s. The
  // board knows the caller's deadline, so it answers before it with the
  // thread's record (still alive, its kill going on) instead of the caller
  // getting DEADLINE_EXCEEDED.
  std::unique_ptr<PendingKill> kill = StartKill("b01", swallowers[0], 5000, 2s);
  const grpc::Status status = kill->status.get();
  ASSERT_TRUE(status.ok()) << status.error_message();
  const pb::ThreadState state = kill->response.thread().state();
  EXPECT_TRUE(state == pb::THREAD_STATE_RUNNING || state == pb::THREAD_STATE_SLEEPING)
      << kill->response.thread().ShortDebugString();
  const std::string target = "b01/" + std::to_string(swallowers[0]);
  std::vector<AuditRecord> rows;
  ASSERT_TRUE(PollUntil(5s, [&] {
    rows = AuditOf("Fleet.KillThread", target);
    return !rows.empty() && rows.back().state == fleet::AUDIT_STATE_DONE;
  })) << "no finished kill in the audit log";
  EXPECT_EQ(rows.back().result_code, absl::StatusCode::kOk);
}

TEST_F(FleetServiceTest, AKillOnABoardThatDiesFailsAtOnceSayingTheConnectionIsLost) {
  ASSERT_NO_FATAL_FAILURE(AddBoard("b01", {}));
  ASSERT_TRUE(WaitOnline("b01"));
  const std::vector<uint32_t> swallowers = RunSwallowers("b01");
  ASSERT_FALSE(swallowers.empty());

  std::unique_ptr<PendingKill> kill = StartKill("b01", swallowers[0], 5000, 30s);
  ASSERT_TRUE(PollUntil(5s, [&] { return links_->OpenCalls() >= 2; }));  // health + the kill
  const auto killed = std::chrono::steady_clock::now();
  lab_.board("b01").Kill9();
  ASSERT_EQ(kill->status.wait_for(10s), std::future_status::ready) << "still waiting 10 s after kill -9";
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  const grpc::Status status = kill->status.get();
  std::printf("kill failed %.3f s after kill -9: %s\n", took, status.error_message().c_str());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("board b01: KillThread: connection lost: "));

  // The next call is refused at once with the reason.
  const grpc::Status next = Kill("b01", swallowers[1], 100, 30s);
  EXPECT_EQ(next.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(next.error_message(), HasSubstr("board b01 is offline: "));
}

TEST_F(FleetServiceTest, AKillOnAFrozenBoardFailsWhenItStopsAnsweringNotAtTheDeadline) {
  ASSERT_NO_FATAL_FAILURE(AddBoard("b01", {}));
  ASSERT_TRUE(WaitOnline("b01"));
  grpc::Status pushed;
  Push({"b01"}, "/loop.py", kLoopScript, &pushed);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  const fleet::RunProgramResponse run = Run({"b01"}, "/loop.py");
  ASSERT_EQ(run.results_size(), 1);

  lab_.board("b01").Signal(SIGSTOP);
  const auto frozen = std::chrono::steady_clock::now();
  std::unique_ptr<PendingKill> kill = StartKill("b01", run.results(0).main_thread_id(), 1000, 30s);
  const std::future_status ended = kill->status.wait_for(15s);
  lab_.board("b01").Signal(SIGCONT);
  ASSERT_EQ(ended, std::future_status::ready) << "still waiting 15 s after the board froze";
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - frozen).count();
  const grpc::Status status = kill->status.get();
  std::printf("kill failed %.3f s after SIGSTOP: %s\n", took, status.error_message().c_str());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("stopped answering: no health snapshot for 3s"));
}

}  // namespace
}  // namespace threadfleet::fleetd
