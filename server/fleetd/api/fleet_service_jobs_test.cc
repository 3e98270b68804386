// FleetService's job RPCs without sockets: the service over gRPC's
// in-process channel, a real store in a temporary directory and a real
// JobRunner whose board attempts are held by the test (JobRunnerDeps::attempt)
// so a run is running, ended or cancelled exactly when a test wants. Covers
// the roles and audit of each call, RunJob's wait (the run's end, or the
// call's deadline while the run goes on), the WatchRun stream, CancelRun,
// reservations and quarantine as boards show them, and ReleaseBoard.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/fleetd/api/fleet_service.h"
#include "server/fleetd/jobs/job_runner.h"
#include "server/fleetd/testing/temp_store.h"

namespace threadfleet::fleetd {
namespace {

namespace fleet = ::threadfleet::fleet::v1;
namespace pb = ::threadfleet::board::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

// Asks `done` every 10 ms until it says yes (true) or `timeout` passes (false).
bool PollUntil(std::chrono::milliseconds timeout, const std::function<bool()>& done) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// The links as the service sees them: every board online, none ever called
// (the job RPCs reach boards only through the runner).
class OnlineBoards : public BoardDirectory {
 public:
  absl::Status Add(std::string name, std::string) override {
    absl::MutexLock lock(&mu_);
    names_.insert(std::move(name));
    return absl::OkStatus();
  }
  absl::Status Remove(absl::string_view name) override {
    absl::MutexLock lock(&mu_);
    names_.erase(std::string(name));
    return absl::OkStatus();
  }
  std::optional<LinkStatus> Status(absl::string_view name) const override {
    absl::MutexLock lock(&mu_);
    if (!names_.contains(std::string(name))) return std::nullopt;
    return LinkStatus{.state = BoardState::kOnline, .connections = 1};
  }
  std::map<std::string, LinkStatus> Statuses() const override {
    absl::MutexLock lock(&mu_);
    std::map<std::string, LinkStatus> out;
    for (const std::string& name : names_)
      out[name] = LinkStatus{.state = BoardState::kOnline, .connections = 1};
    return out;
  }
  std::shared_ptr<BoardClient> Client(absl::string_view) const override { return nullptr; }

 private:
  mutable absl::Mutex mu_;
  std::set<std::string> names_ ABSL_GUARDED_BY(mu_);
};

// Boards the runner may pick: all reachable. The attempts never call them
// (the test's attempt replaces RunBoardAttempt).
class ReachableBoards : public jobs::JobBoards {
 public:
  bool Reachable(absl::string_view) const override { return true; }
  absl::StatusOr<pb::WriteFileResponse> WriteFile(absl::string_view, absl::string_view,
                                                  std::shared_ptr<const std::string>, absl::string_view,
                                                  absl::Time, const jobs::StopSignal&) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::StatusOr<pb::StartProgramResponse> StartProgram(absl::string_view, const pb::StartProgramRequest&,
                                                        absl::Time, const jobs::StopSignal&) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::Status FollowOutput(absl::string_view, uint32_t, uint64_t, absl::Time, const jobs::StopSignal&,
                            OutputFn) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::Status ReadOutput(absl::string_view, uint32_t, uint64_t, absl::Time, const jobs::StopSignal&,
                          OutputFn) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::StatusOr<pb::ListThreadsResponse> ListThreads(absl::string_view, absl::Time) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::StatusOr<pb::KillProgramResponse> KillProgram(absl::string_view, uint32_t, absl::Duration,
                                                      absl::Time) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::StatusOr<pb::MachineState> GetMachine(absl::string_view, absl::Time,
                                              const jobs::StopSignal&) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::StatusOr<pb::PinState> SetPin(absl::string_view, const pb::SetPinRequest&, absl::Time,
                                      const jobs::StopSignal&) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::StatusOr<pb::AdcState> SetAdc(absl::string_view, const pb::SetAdcRequest&, absl::Time,
                                      const jobs::StopSignal&) override {
    return absl::UnimplementedError("not in this test");
  }
  std::optional<pb::HealthSnapshot> LatestSnapshot(absl::string_view) const override { return std::nullopt; }
  uint64_t WatchSnapshots(absl::string_view, SnapshotFn) override { return 1; }
  void RemoveSnapshotWatch(uint64_t) override {}
  std::vector<Anomaly> AnomaliesSince(absl::string_view, absl::Time, size_t) const override { return {}; }
};

// Board attempts that wait until the test opens the gate (then every step
// passes, or with Open(ERROR) the board ends ERROR) or their run is stopped
// (then they end CANCELLED). Bounded: an attempt gives up after 30 s and
// ends ERROR.
class AttemptGate {
 public:
  void Open(fleet::RunState outcome = fleet::RUN_STATE_PASSED) {
    absl::MutexLock lock(&mu_);
    open_ = true;
    outcome_ = outcome;
  }
  int started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }

  fleet::BoardResult Attempt(const jobs::BoardAttempt& attempt) {
    {
      absl::MutexLock lock(&mu_);
      ++started_;
    }
    fleet::BoardResult result;
    result.set_board(attempt.board);
    result.set_state(fleet::RUN_STATE_ERROR);
    result.set_message("the test never opened the gate");
    for (int i = 0; i < 3000; ++i) {
      if (std::optional<fleet::RunState> outcome = Outcome(); outcome.has_value()) {
        result.set_state(*outcome);
        result.set_message(*outcome == fleet::RUN_STATE_PASSED ? "" : "connection lost");
        break;
      }
      if (attempt.stop->SleepFor(absl::Milliseconds(10))) {
        result.set_state(fleet::RUN_STATE_CANCELLED);
        result.set_message(attempt.stop->reason());
        break;
      }
    }
    for (size_t i = 0; i < attempt.spec->steps.size(); ++i) {
      fleet::StepResult* step = result.add_steps();
      step->set_index(static_cast<int32_t>(i));
      step->set_kind(std::string(jobs::StepKindName(attempt.spec->steps[i].kind)));
      step->set_state(result.state() == fleet::RUN_STATE_PASSED ? fleet::RUN_STATE_PASSED
                                                                : fleet::RUN_STATE_SKIPPED);
    }
    return result;
  }

 private:
  // What attempts end with once the gate is open; nullopt while closed.
  std::optional<fleet::RunState> Outcome() {
    absl::MutexLock lock(&mu_);
    if (!open_) return std::nullopt;
    return outcome_;
  }
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  fleet::RunState outcome_ ABSL_GUARDED_BY(mu_) = fleet::RUN_STATE_PASSED;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
};

constexpr char kSpec[] = R"(name: smoke
boards: {selector: "lab=a"}
timeout: 1m
steps:
  - push: {file: app.py}
  - run: {file: app.py}
)";

class FleetServiceJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(temp_.Init("fleet_service_jobs_test"));
    absl::StatusOr<std::unique_ptr<Inventory>> inventory = Inventory::Open(temp_.store(), {}, absl::Now());
    ASSERT_TRUE(inventory.ok()) << inventory.status();
    inventory_ = *std::move(inventory);
    hub_ = std::make_unique<EventHub>(temp_.store());
    tokens_ = std::make_unique<TokenAuthority>(temp_.store());
    operator_ = Secret("ci", fleet::ROLE_OPERATOR);
    viewer_ = Secret("watcher", fleet::ROLE_VIEWER);
    for (const std::string name : {"b01", "b02"}) {
      ASSERT_TRUE(inventory_->Add(name, "127.0.0.1:1", {{"lab", "a"}}, absl::Now()).ok());
      ASSERT_TRUE(directory_.Add(name, "127.0.0.1:1").ok());
    }
    runner_ = std::make_unique<jobs::JobRunner>(
        jobs::JobRunnerDeps{
            .store = &temp_.store(),
            .inventory = inventory_.get(),
            .boards = &boards_,
            .hub = hub_.get(),
            .clock = &clock_,
            .attempt = [this](jobs::JobBoards&,
                              const jobs::BoardAttempt& attempt) { return gate_.Attempt(attempt); }},
        jobs::JobRunnerOptions{});
    ASSERT_TRUE(runner_->Start().ok());
    service_ = std::make_unique<FleetService>(FleetServiceDeps{.store = &temp_.store(),
                                                               .inventory = inventory_.get(),
                                                               .links = &directory_,
                                                               .health = &health_,
                                                               .tokens = tokens_.get(),
                                                               .hub = hub_.get(),
                                                               .jobs = runner_.get()});
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = fleet::Fleet::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }

  void TearDown() override {
    // fleetd's order: runs end (and what waits for them answers), streams
    // end, then the server and the service go.
    if (runner_ != nullptr) runner_->Shutdown();
    if (service_ != nullptr) service_->Shutdown();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + 5s);
    server_.reset();
    service_.reset();
    runner_.reset();
  }

  std::string Secret(const std::string& name, fleet::Role role) {
    absl::StatusOr<IssuedToken> t = tokens_->Create(name, role, "test", absl::Now());
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->secret : "";
  }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& secret,
                                                      std::chrono::milliseconds deadline = 30s) {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!secret.empty()) context->AddMetadata("authorization", "Bearer " + secret);
    context->set_deadline(std::chrono::system_clock::now() + deadline);
    return context;
  }

  grpc::Status Apply(const std::string& secret, const std::string& spec, fleet::ApplyJobResponse* response,
                     const std::string& spec_file = "jobs/smoke.yaml") {
    fleet::ApplyJobRequest request;
    request.set_spec_yaml(spec);
    request.set_spec_file(spec_file);
    fleet::JobFile* file = request.add_files();
    file->set_path("app.py");
    file->set_content("print('Shared variable is  8')\n");
    return stub_->ApplyJob(Context(secret).get(), request, response);
  }

  void ApplySmoke() {
    fleet::ApplyJobResponse response;
    const grpc::Status status = Apply(operator_, kSpec, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Starts a run of "smoke" without waiting; its id.
  uint64_t StartSmoke() {
    fleet::RunJobRequest request;
    request.set_name("smoke");
    fleet::RunJobResponse response;
    const grpc::Status status = stub_->RunJob(Context(operator_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.run().id();
  }

  std::optional<fleet::Run> GetRun(uint64_t id) {
    fleet::GetRunRequest request;
    request.set_id(id);
    fleet::GetRunResponse response;
    if (!stub_->GetRun(Context(viewer_).get(), request, &response).ok()) return std::nullopt;
    return response.run();
  }

  uint64_t ReservedBy(const std::string& board) {
    fleet::GetBoardRequest request;
    request.set_name(board);
    fleet::GetBoardResponse response;
    EXPECT_TRUE(stub_->GetBoard(Context(viewer_).get(), request, &response).ok());
    return response.board().reserved_by_run();
  }

  // The newest audit entry.
  AuditRecord LastAudit() {
    absl::StatusOr<std::vector<AuditRecord>> entries = temp_.store().ListAudit(AuditQuery{.limit = 1});
    EXPECT_TRUE(entries.ok() && !entries->empty());
    return entries.ok() && !entries->empty() ? entries->front() : AuditRecord{};
  }

  testing::TempStore temp_;  // first: destroyed after what uses its store
  std::unique_ptr<Inventory> inventory_;
  HealthAggregator health_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<TokenAuthority> tokens_;
  OnlineBoards directory_;
  ReachableBoards boards_;
  jobs::RealClock clock_;
  AttemptGate gate_;
  std::string operator_, viewer_;
  std::unique_ptr<jobs::JobRunner> runner_;
  std::unique_ptr<FleetService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<fleet::Fleet::Stub> stub_;
};

TEST_F(FleetServiceJobsTest, ApplyJobNeedsOperatorAndIsAuditedUnderTheJobsName) {
  fleet::ApplyJobResponse response;
  EXPECT_EQ(Apply(viewer_, kSpec, &response).error_code(), grpc::StatusCode::PERMISSION_DENIED);

  const grpc::Status status = Apply(operator_, kSpec, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.job().name(), "smoke");
  EXPECT_EQ(response.job().version(), 1);
  EXPECT_TRUE(response.changed());
  const AuditRecord audit = LastAudit();
  EXPECT_EQ(audit.action, "Fleet.ApplyJob");
  EXPECT_EQ(audit.target, "job smoke");
  EXPECT_EQ(audit.actor, "ci");
  EXPECT_EQ(audit.state, fleet::AUDIT_STATE_DONE);
  EXPECT_EQ(audit.result_code, absl::StatusCode::kOk);
  EXPECT_THAT(audit.result_message, HasSubstr("version 1"));

  fleet::ListJobsResponse jobs;
  ASSERT_TRUE(stub_->ListJobs(Context(viewer_).get(), {}, &jobs).ok());
  ASSERT_EQ(jobs.jobs_size(), 1);
  EXPECT_EQ(jobs.jobs(0).name(), "smoke");
}

TEST_F(FleetServiceJobsTest, ABadSpecIsRefusedPointingAtItsFileLineAndColumn) {
  fleet::ApplyJobResponse response;
  const grpc::Status status = Apply(operator_, "name: smoke\nstesp: []\n", &response, "jobs/bad.yaml");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("jobs/bad.yaml:"));
  EXPECT_EQ(LastAudit().target, "job spec jobs/bad.yaml");
}

TEST_F(FleetServiceJobsTest, RunJobWithWaitAnswersWithTheEndedRun) {
  ASSERT_NO_FATAL_FAILURE(ApplySmoke());
  gate_.Open();
  fleet::RunJobRequest request;
  request.set_name("smoke");
  request.set_wait(true);
  fleet::RunJobResponse response;
  const grpc::Status status = stub_->RunJob(Context(operator_).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.run().state(), fleet::RUN_STATE_PASSED);
  EXPECT_EQ(response.run().trigger(), "manual:ci");
  EXPECT_EQ(response.run().results_size(), 2);
  const AuditRecord audit = LastAudit();
  EXPECT_EQ(audit.target, "job smoke");
  EXPECT_EQ(audit.result_message, absl::StrCat("run ", response.run().id()));
}

TEST_F(FleetServiceJobsTest, RunJobWithWaitAnswersDeadlineExceededWhileTheRunGoesOn) {
  ASSERT_NO_FATAL_FAILURE(ApplySmoke());
  fleet::RunJobRequest request;
  request.set_name("smoke");
  request.set_wait(true);
  fleet::RunJobResponse response;
  const grpc::Status status = stub_->RunJob(Context(operator_, 300ms).get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);

  fleet::ListRunsRequest runs_request;
  runs_request.set_job_name("smoke");
  fleet::ListRunsResponse runs;
  ASSERT_TRUE(stub_->ListRuns(Context(viewer_).get(), runs_request, &runs).ok());
  ASSERT_EQ(runs.runs_size(), 1);
  const uint64_t id = runs.runs(0).id();
  EXPECT_EQ(runs.runs(0).state(), fleet::RUN_STATE_RUNNING);
  gate_.Open();
  EXPECT_TRUE(PollUntil(10s, [&] {
    std::optional<fleet::Run> run = GetRun(id);
    return run.has_value() && run->state() == fleet::RUN_STATE_PASSED;
  }));
}

TEST_F(FleetServiceJobsTest, GetRunGivesOutputOnlyForOneBoard) {
  ASSERT_NO_FATAL_FAILURE(ApplySmoke());
  const uint64_t id = StartSmoke();
  // The run names its boards once it has reserved them, a moment after it started.
  ASSERT_TRUE(PollUntil(10s, [&] {
    std::optional<fleet::Run> run = GetRun(id);
    return run.has_value() &&
           absl::c_any_of(run->results(), [](const fleet::BoardResult& r) { return r.board() == "b01"; });
  }));
  fleet::GetRunRequest request;
  request.set_id(id);
  request.set_with_output(true);
  fleet::GetRunResponse response;

  const grpc::Status every_board = stub_->GetRun(Context(viewer_).get(), request, &response);
  request.set_board("b01");
  const grpc::Status one_board = stub_->GetRun(Context(viewer_).get(), request, &response);

  EXPECT_EQ(every_board.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(every_board.error_message(), HasSubstr("with_output needs a board"));
  EXPECT_TRUE(one_board.ok()) << one_board.error_message();
  gate_.Open();
}

TEST_F(FleetServiceJobsTest, WatchRunSendsTheRunUntilItEndedWithTheFinalStateLast) {
  ASSERT_NO_FATAL_FAILURE(ApplySmoke());
  const uint64_t id = StartSmoke();
  fleet::WatchRunRequest request;
  request.set_id(id);
  auto context = Context(viewer_);
  std::unique_ptr<grpc::ClientReader<fleet::WatchRunResponse>> reader =
      stub_->WatchRun(context.get(), request);
  fleet::WatchRunResponse first;
  ASSERT_TRUE(reader->Read(&first));
  EXPECT_EQ(first.run().id(), id);
  EXPECT_FALSE(first.run().state() == fleet::RUN_STATE_PASSED);

  gate_.Open();
  fleet::WatchRunResponse last = first;
  fleet::WatchRunResponse m;
  int messages = 1;
  while (messages < 10000 && reader->Read(&m)) {
    last = m;
    ++messages;
  }
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(last.run().state(), fleet::RUN_STATE_PASSED);
}

TEST_F(FleetServiceJobsTest, WatchingOrGettingAnUnknownRunIsNotFound) {
  fleet::WatchRunRequest request;
  request.set_id(999);
  auto context = Context(viewer_);
  auto reader = stub_->WatchRun(context.get(), request);
  fleet::WatchRunResponse m;
  EXPECT_FALSE(reader->Read(&m));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(GetRun(999).has_value());
}

TEST_F(FleetServiceJobsTest, BoardsShowTheRunHoldingThemAndCancelRunFreesThem) {
  ASSERT_NO_FATAL_FAILURE(ApplySmoke());
  const uint64_t id = StartSmoke();
  ASSERT_TRUE(PollUntil(10s, [&] { return gate_.started() == 2; }));
  EXPECT_EQ(ReservedBy("b01"), id);
  EXPECT_EQ(ReservedBy("b02"), id);

  fleet::CancelRunRequest cancel;
  cancel.set_id(id);
  fleet::CancelRunResponse response;
  EXPECT_EQ(stub_->CancelRun(Context(viewer_).get(), cancel, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  const grpc::Status status = stub_->CancelRun(Context(operator_).get(), cancel, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.run().state(), fleet::RUN_STATE_CANCELLED);
  EXPECT_EQ(ReservedBy("b01"), 0u);
  EXPECT_EQ(ReservedBy("b02"), 0u);
  const AuditRecord audit = LastAudit();
  EXPECT_EQ(audit.action, "Fleet.CancelRun");
  EXPECT_EQ(audit.target, absl::StrCat("run ", id));
  EXPECT_EQ(audit.result_code, absl::StatusCode::kOk);
}

TEST_F(FleetServiceJobsTest, DeleteJobWaitsForItsRunsToEnd) {
  ASSERT_NO_FATAL_FAILURE(ApplySmoke());
  const uint64_t id = StartSmoke();
  fleet::DeleteJobRequest request;
  request.set_name("smoke");
  fleet::DeleteJobResponse response;
  EXPECT_EQ(stub_->DeleteJob(Context(operator_).get(), request, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  gate_.Open();
  ASSERT_TRUE(PollUntil(10s, [&] {
    std::optional<fleet::Run> run = GetRun(id);
    return run.has_value() && run->state() == fleet::RUN_STATE_PASSED;
  }));
  const grpc::Status deleted = stub_->DeleteJob(Context(operator_).get(), request, &response);
  EXPECT_TRUE(deleted.ok()) << deleted.error_message();
  fleet::ListJobsResponse jobs;
  ASSERT_TRUE(stub_->ListJobs(Context(viewer_).get(), {}, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 0);
  EXPECT_TRUE(GetRun(id).has_value()) << "its runs stay readable";
}

TEST_F(FleetServiceJobsTest, ReleaseBoardNeedsOperatorAndAKnownBoard) {
  fleet::ReleaseBoardRequest request;
  request.set_name("b01");
  fleet::ReleaseBoardResponse response;
  EXPECT_EQ(stub_->ReleaseBoard(Context(viewer_).get(), request, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  const grpc::Status status = stub_->ReleaseBoard(Context(operator_).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.board().name(), "b01");
  EXPECT_FALSE(response.board().has_quarantine());
  const AuditRecord audit = LastAudit();
  EXPECT_EQ(audit.action, "Fleet.ReleaseBoard");
  EXPECT_EQ(audit.target, "b01");
  EXPECT_EQ(audit.result_message, "was not quarantined");

  request.set_name("b99");
  EXPECT_EQ(stub_->ReleaseBoard(Context(operator_).get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(FleetServiceJobsTest, AQuarantinedBoardShowsItUntilReleased) {
  ASSERT_NO_FATAL_FAILURE(ApplySmoke());
  gate_.Open(fleet::RUN_STATE_ERROR);
  fleet::RunJobRequest run;
  run.set_name("smoke");
  run.set_wait(true);
  for (int i = 0; i < 3; ++i) {  // JobRunnerOptions::quarantine_after
    fleet::RunJobResponse response;
    const grpc::Status status = stub_->RunJob(Context(operator_).get(), run, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.run().state(), fleet::RUN_STATE_ERROR);
  }
  fleet::ListBoardsResponse boards;
  ASSERT_TRUE(stub_->ListBoards(Context(viewer_).get(), {}, &boards).ok());
  ASSERT_EQ(boards.boards_size(), 2);
  EXPECT_TRUE(boards.boards(0).has_quarantine());
  EXPECT_THAT(boards.boards(0).quarantine().reason(), HasSubstr("3 runs in a row"));
  EXPECT_EQ(boards.boards(0).reserved_by_run(), 0u);

  fleet::ReleaseBoardRequest release;
  release.set_name("b01");
  fleet::ReleaseBoardResponse released;
  ASSERT_TRUE(stub_->ReleaseBoard(Context(operator_).get(), release, &released).ok());
  EXPECT_FALSE(released.board().has_quarantine());
  EXPECT_EQ(LastAudit().result_message, "released from quarantine");
  fleet::GetBoardRequest get;
  get.set_name("b02");
  fleet::GetBoardResponse still;
  ASSERT_TRUE(stub_->GetBoard(Context(viewer_).get(), get, &still).ok());
  EXPECT_TRUE(still.board().has_quarantine());
}

TEST_F(FleetServiceJobsTest, ListRunsRefusesANegativeLimit) {
  fleet::ListRunsRequest request;
  request.set_limit(-1);
  fleet::ListRunsResponse response;
  const grpc::Status status = stub_->ListRuns(Context(viewer_).get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("limit -1 is negative"));
}

}  // namespace
}  // namespace threadfleet::fleetd
