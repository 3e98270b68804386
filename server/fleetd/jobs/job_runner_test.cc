#include "server/fleetd/jobs/job_runner.h"

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/fleetd/testing/temp_store.h"

namespace threadfleet::fleetd::jobs {
namespace {

namespace fleet = ::threadfleet::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// 2023-11-14 22:13:20 UTC; a test's clock starts here and moves only when the
// test moves it.
const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
// Every wait of a test for the runner's threads is bounded by this.
constexpr absl::Duration kPatience = absl::Seconds(20);

class FakeClock final : public Clock {
 public:
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ = kT0;
};

// The boards as the runner sees them: only reachability matters here (the
// attempts are fake and never call a board).
class FakeBoards final : public JobBoards {
 public:
  bool Reachable(absl::string_view board) const override {
    absl::MutexLock lock(&mu_);
    return !offline_.contains(std::string(board));
  }
  void SetOffline(std::string board) {
    absl::MutexLock lock(&mu_);
    offline_.insert(std::move(board));
  }
  absl::StatusOr<board::v1::WriteFileResponse> WriteFile(absl::string_view, absl::string_view,
                                                         std::shared_ptr<const std::string>,
                                                         absl::string_view, absl::Time,
                                                         const StopSignal&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<board::v1::StartProgramResponse> StartProgram(absl::string_view,
                                                               const board::v1::StartProgramRequest&,
                                                               absl::Time, const StopSignal&) override {
    return absl::UnimplementedError("fake");
  }
  absl::Status FollowOutput(absl::string_view, uint32_t, uint64_t, absl::Time, const StopSignal&,
                            OutputFn) override {
    return absl::UnimplementedError("fake");
  }
  absl::Status ReadOutput(absl::string_view, uint32_t, uint64_t, absl::Time, const StopSignal&,
                          OutputFn) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<board::v1::ListThreadsResponse> ListThreads(absl::string_view, absl::Time) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<board::v1::KillProgramResponse> KillProgram(absl::string_view, uint32_t, absl::Duration,
                                                             absl::Time) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<board::v1::MachineState> GetMachine(absl::string_view, absl::Time,
                                                     const StopSignal&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<board::v1::PinState> SetPin(absl::string_view, const board::v1::SetPinRequest&, absl::Time,
                                             const StopSignal&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<board::v1::AdcState> SetAdc(absl::string_view, const board::v1::SetAdcRequest&, absl::Time,
                                             const StopSignal&) override {
    return absl::UnimplementedError("fake");
  }
  std::optional<board::v1::HealthSnapshot> LatestSnapshot(absl::string_view) const override {
    return std::nullopt;
  }
  uint64_t WatchSnapshots(absl::string_view, SnapshotFn) override { return 1; }
  void RemoveSnapshotWatch(uint64_t) override {}
  std::vector<Anomaly> AnomaliesSince(absl::string_view, absl::Time, size_t) const override { return {}; }

 private:
  mutable absl::Mutex mu_;
  std::set<std::string> offline_;
};

// Board attempts the test scripts: each board's outcomes in order (PASSED
// once the script is used up); attempts may be held until released or
// stopped. Records what the runner asked for.
class FakeAttempts {
 public:
  void Script(const std::string& board, std::vector<fleet::RunState> outcomes) {
    absl::MutexLock lock(&mu_);
    outcomes_[board].assign(outcomes.begin(), outcomes.end());
  }
  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }

  fleet::BoardResult Run(const BoardAttempt& attempt) {
    fleet::RunState outcome = fleet::RUN_STATE_PASSED;
    {
      absl::MutexLock lock(&mu_);
      started_.push_back(attempt.board);
      max_running_ = std::max(max_running_, ++running_);
      std::deque<fleet::RunState>& script = outcomes_[attempt.board];
      if (!script.empty()) {
        outcome = script.front();
        script.pop_front();
      }
    }
    fleet::BoardResult result;
    result.set_board(attempt.board);
    result.set_state(fleet::RUN_STATE_RUNNING);
    if (attempt.on_progress) attempt.on_progress(result);
    // Held attempts end when released, or when the run stops them (as a
    // real attempt would, killing its programs).
    const absl::Time give_up = absl::Now() + kPatience;
    bool stopped = false;
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (!held_) break;
      }
      if (attempt.stop->SleepFor(absl::Milliseconds(5)) || absl::Now() > give_up) {
        stopped = true;
        break;
      }
    }
    {
      absl::MutexLock lock(&mu_);
      --running_;
    }
    if (stopped) {
      result.set_state(fleet::RUN_STATE_CANCELLED);
      result.set_message(attempt.stop->reason());
      return result;
    }
    result.set_state(outcome);
    if (outcome == fleet::RUN_STATE_FAILED) result.set_message("step 1 (expect): output did not match");
    if (outcome == fleet::RUN_STATE_ERROR) result.set_message("connection lost");
    return result;
  }

  std::vector<std::string> started() const {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  int running() const {
    absl::MutexLock lock(&mu_);
    return running_;
  }
  int max_running() const {
    absl::MutexLock lock(&mu_);
    return max_running_;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::deque<fleet::RunState>> outcomes_;
  bool held_ = false;
  int running_ = 0;
  int max_running_ = 0;
  std::vector<std::string> started_;
};

std::string Spec(absl::string_view name, absl::string_view extra = "") {
  return absl::StrCat("name: ", name, "\nboards: {selector: \"lab=local\", count: all}\ntimeout: 2m\n", extra,
                      "steps:\n  - push: {file: app.py}\n  - run: {file: app.py}\n");
}

fleet::ApplyJobRequest Request(std::string spec, std::string content = "print(1)\n") {
  fleet::ApplyJobRequest request;
  request.set_spec_yaml(std::move(spec));
  request.set_spec_file("jobs/smoke.yaml");
  fleet::JobFile* file = request.add_files();
  file->set_path("app.py");
  file->set_content(std::move(content));
  return request;
}

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(temp_.Init("job_runner_test"));
    OpenComponents();
  }

  void OpenComponents() {
    std::vector<BoardRecord> lab;
    for (const char* name : {"b01", "b02", "b03", "b04"}) {
      lab.push_back(BoardRecord{.name = name,
                                .address = "127.0.0.1:7001",
                                .labels = {{"lab", "local"}},
                                .origin = fleet::BOARD_ORIGIN_LAB_FILE});
    }
    lab.push_back(BoardRecord{.name = "spare",
                              .address = "127.0.0.1:7009",
                              .labels = {{"lab", "spare"}},
                              .origin = fleet::BOARD_ORIGIN_LAB_FILE});
    absl::StatusOr<std::unique_ptr<Inventory>> inventory = Inventory::Open(temp_.store(), lab, kT0);
    ASSERT_TRUE(inventory.ok()) << inventory.status();
    inventory_ = *std::move(inventory);
    hub_ = std::make_unique<EventHub>(temp_.store());
  }

  std::unique_ptr<JobRunner> MakeRunner(JobRunnerOptions options = {}) {
    return std::make_unique<JobRunner>(
        JobRunnerDeps{
            .store = &temp_.store(),
            .inventory = inventory_.get(),
            .boards = &boards_,
            .hub = hub_.get(),
            .clock = &clock_,
            .attempt = [this](JobBoards&, const BoardAttempt& attempt) { return attempts_.Run(attempt); },
            .notify =
                [this](const NotifySpec& spec, const fleet::Run& run) {
                  absl::MutexLock lock(&notified_mu_);
                  notified_.push_back(run);
                }},
        options);
  }

  // Waits (bounded) until the run has ended, and returns it.
  fleet::Run AwaitEnd(JobRunner& runner, uint64_t id) {
    const absl::Time give_up = absl::Now() + kPatience;
    for (;;) {
      absl::StatusOr<fleet::Run> run = runner.GetRun(id, false, "");
      EXPECT_TRUE(run.ok()) << run.status();
      if (!run.ok()) return {};
      if (run->has_end_time() &&
          runner.ReservedBy(run->results_size() > 0 ? run->results(0).board() : "") != id) {
        return *run;
      }
      if (absl::Now() > give_up) {
        ADD_FAILURE() << "run " << id << " did not end: " << run->DebugString();
        return *run;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  // Waits (bounded) until `done` holds.
  template <typename Fn>
  bool Eventually(Fn done) {
    const absl::Time give_up = absl::Now() + kPatience;
    while (!done()) {
      if (absl::Now() > give_up) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

  std::vector<fleet::Event> Events(fleet::EventKind kind) {
    std::vector<fleet::Event> out;
    std::vector<fleet::Event> all = temp_.store().ListEvents(EventQuery{.limit = 1000}).value();
    for (fleet::Event& event : all) {
      if (event.kind() == kind) out.push_back(std::move(event));
    }
    return out;
  }

  testing::TempStore temp_;
  std::unique_ptr<Inventory> inventory_;
  std::unique_ptr<EventHub> hub_;
  FakeClock clock_;
  FakeBoards boards_;
  FakeAttempts attempts_;
  absl::Mutex notified_mu_;
  std::vector<fleet::Run> notified_;
};

// ---- ApplyJob

TEST_F(JobRunnerTest, ApplyStoresTheJobAndBumpsTheVersionOnlyOnAChange) {
  std::unique_ptr<JobRunner> runner = MakeRunner();

  JobRunner::Applied first = runner->ApplyJob(Request(Spec("smoke"))).value();
  JobRunner::Applied same = runner->ApplyJob(Request(Spec("smoke"))).value();
  JobRunner::Applied new_file = runner->ApplyJob(Request(Spec("smoke"), "print(2)\n")).value();

  EXPECT_TRUE(first.changed);
  EXPECT_EQ(first.job.version(), 1);
  EXPECT_FALSE(same.changed);
  EXPECT_EQ(same.job.version(), 1);
  EXPECT_TRUE(new_file.changed);
  EXPECT_EQ(new_file.job.version(), 2);
  ASSERT_THAT(new_file.job.files(), SizeIs(1));
  EXPECT_EQ(new_file.job.files(0).path(), "app.py");
  EXPECT_EQ(new_file.job.files(0).size_bytes(), 9u);
}

TEST_F(JobRunnerTest, ApplyRefusesAMissingFileAtThePushStepThatNamesIt) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  fleet::ApplyJobRequest request = Request(Spec("smoke"));
  request.clear_files();

  absl::StatusOr<JobRunner::Applied> applied = runner->ApplyJob(request);

  EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(applied.status().message(), HasSubstr("jobs/smoke.yaml:5:"));
  EXPECT_THAT(applied.status().message(), HasSubstr("app.py was not uploaded"));
}

TEST_F(JobRunnerTest, ApplyRefusesAFileNoStepNames) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  fleet::ApplyJobRequest request = Request(Spec("smoke"));
  fleet::JobFile* extra = request.add_files();
  extra->set_path("other.py");
  extra->set_content("x");

  absl::StatusOr<JobRunner::Applied> applied = runner->ApplyJob(request);

  EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(applied.status().message(), HasSubstr("other.py is uploaded but no push step names it"));
}

TEST_F(JobRunnerTest, ApplyRefusesASelectorThatPicksNoBoardAtTheBoardsKey) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  std::string spec = Spec("smoke");
  spec.replace(spec.find("lab=local"), 9, "lab=nowhere");

  absl::StatusOr<JobRunner::Applied> applied = runner->ApplyJob(Request(spec));

  EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(applied.status().message(), HasSubstr("jobs/smoke.yaml:2:"));
  EXPECT_THAT(applied.status().message(), HasSubstr("picks no board"));
}

TEST_F(JobRunnerTest, ApplyRefusesACountAboveTheBoardsTheSelectorPicks) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  std::string spec = Spec("smoke");
  spec.replace(spec.find("count: all"), 10, "count: 5");

  absl::StatusOr<JobRunner::Applied> applied = runner->ApplyJob(Request(spec));

  EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(applied.status().message(), HasSubstr("count is 5 but the selector picks only 4"));
}

// ---- Runs

TEST_F(JobRunnerTest, RunPassesOnEveryBoardAndReportsTheEnd) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke", "notify: {url: \"http://127.0.0.1:9/hook\"}\n"))).ok());

  fleet::Run started = runner->StartRun("smoke", "manual:alice").value();
  fleet::Run run = AwaitEnd(*runner, started.id());

  EXPECT_EQ(run.state(), fleet::RUN_STATE_PASSED);
  EXPECT_EQ(run.message(), "4 of 4 boards passed");
  EXPECT_EQ(run.trigger(), "manual:alice");
  EXPECT_EQ(run.counts().passed(), 4);
  EXPECT_EQ(run.deadline().seconds(), absl::ToUnixSeconds(kT0 + absl::Minutes(2)));
  ASSERT_THAT(run.results(), SizeIs(4));
  EXPECT_EQ(run.results(0).board(), "b01");
  EXPECT_EQ(run.results(0).attempts(), 1);
  EXPECT_EQ(runner->ReservedBy("b01"), 0u);
  ASSERT_TRUE(Eventually([&] { return !Events(fleet::EVENT_KIND_RUN_ENDED).empty(); }));
  EXPECT_EQ(Events(fleet::EVENT_KIND_RUN_ENDED)[0].message(),
            absl::StrCat("run ", run.id(), " of smoke PASSED: 4 of 4 boards passed"));
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&notified_mu_);
    return !notified_.empty();
  }));
}

TEST_F(JobRunnerTest, TwoRunsOnTheSameBoardsRunOneAfterTheOther) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("first"))).ok());
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("second"))).ok());
  attempts_.Hold();

  fleet::Run first = runner->StartRun("first", "manual:alice").value();
  fleet::Run second = runner->StartRun("second", "manual:bob").value();

  EXPECT_EQ(first.state(), fleet::RUN_STATE_RUNNING);
  EXPECT_EQ(second.state(), fleet::RUN_STATE_QUEUED);
  ASSERT_TRUE(Eventually([&] { return attempts_.running() == 4; }));
  EXPECT_EQ(runner->ReservedBy("b03"), first.id());
  attempts_.Release();
  EXPECT_EQ(AwaitEnd(*runner, first.id()).state(), fleet::RUN_STATE_PASSED);
  EXPECT_EQ(AwaitEnd(*runner, second.id()).state(), fleet::RUN_STATE_PASSED);
  EXPECT_EQ(attempts_.max_running(), 4);
  EXPECT_THAT(attempts_.started(), SizeIs(8));
}

TEST_F(JobRunnerTest, OnBusyFailEndsTheRunAtOnceNamingTheHolder) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("first"))).ok());
  std::string spec = Spec("impatient");
  spec.replace(spec.find("count: all"), 10, "count: all, on_busy: fail");
  ASSERT_TRUE(runner->ApplyJob(Request(spec)).ok());
  attempts_.Hold();
  fleet::Run first = runner->StartRun("first", "manual:alice").value();

  fleet::Run busy = runner->StartRun("impatient", "manual:bob").value();

  EXPECT_EQ(busy.state(), fleet::RUN_STATE_ERROR);
  EXPECT_THAT(busy.message(), HasSubstr(absl::StrCat("boards busy: b01 (run ", first.id(), ")")));
  ASSERT_THAT(Events(fleet::EVENT_KIND_RUN_ENDED), SizeIs(1));
  EXPECT_THAT(Events(fleet::EVENT_KIND_RUN_ENDED)[0].message(), HasSubstr("of impatient ERROR: boards busy"));
  attempts_.Release();
  AwaitEnd(*runner, first.id());
}

TEST_F(JobRunnerTest, QueuedRunTimesOutWaitingForItsBoards) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("first", ""))).ok());
  std::string spec = Spec("second");
  spec.replace(spec.find("timeout: 2m"), 11, "timeout: 1m");
  ASSERT_TRUE(runner->ApplyJob(Request(spec)).ok());
  attempts_.Hold();
  fleet::Run first = runner->StartRun("first", "manual:alice").value();
  fleet::Run second = runner->StartRun("second", "manual:bob").value();

  clock_.Advance(absl::Seconds(61));
  fleet::Run ended = AwaitEnd(*runner, second.id());

  EXPECT_EQ(ended.state(), fleet::RUN_STATE_ERROR);
  EXPECT_THAT(ended.message(),
              HasSubstr(absl::StrCat("timed out waiting for boards b01 (run ", first.id(), ")")));
  attempts_.Release();
  AwaitEnd(*runner, first.id());
}

TEST_F(JobRunnerTest, RolloutLimitBoundsTheBoardsRunningAtOnce) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke", "rollout: {max_boards_at_once: 2}\n"))).ok());
  attempts_.Hold();

  fleet::Run run = runner->StartRun("smoke", "manual:alice").value();
  ASSERT_TRUE(Eventually([&] { return attempts_.running() == 2; }));
  absl::SleepFor(absl::Milliseconds(50));  // room for a wrongly started third
  EXPECT_EQ(attempts_.running(), 2);
  attempts_.Release();
  AwaitEnd(*runner, run.id());

  EXPECT_EQ(attempts_.max_running(), 2);
  EXPECT_THAT(attempts_.started(), SizeIs(4));
}

TEST_F(JobRunnerTest, AbortRuleSkipsTheBoardsNotStartedYet) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner
                  ->ApplyJob(Request(Spec("smoke",
                                          "rollout: {max_boards_at_once: 1}\n"
                                          "abort: {failed_percent: 50, min_boards: 2}\n")))
                  .ok());
  attempts_.Script("b01", {fleet::RUN_STATE_FAILED});
  attempts_.Script("b02", {fleet::RUN_STATE_FAILED});

  fleet::Run run = AwaitEnd(*runner, runner->StartRun("smoke", "manual:alice").value().id());

  EXPECT_EQ(run.state(), fleet::RUN_STATE_FAILED);
  EXPECT_THAT(run.message(), HasSubstr("aborted: 2 of 2 ended boards failed"));
  EXPECT_THAT(run.message(), HasSubstr("failed_percent 50, min_boards 2"));
  EXPECT_EQ(run.counts().failed(), 2);
  EXPECT_EQ(run.counts().skipped(), 2);
  EXPECT_EQ(run.results(3).state(), fleet::RUN_STATE_SKIPPED);
  EXPECT_THAT(attempts_.started(), ElementsAre("b01", "b02"));
}

TEST_F(JobRunnerTest, RetryThatPassesMarksTheBoardFlaky) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke", "retries: 1\n"))).ok());
  attempts_.Script("b02", {fleet::RUN_STATE_FAILED});
  attempts_.Script("b03", {fleet::RUN_STATE_ERROR, fleet::RUN_STATE_ERROR});

  fleet::Run run = AwaitEnd(*runner, runner->StartRun("smoke", "manual:alice").value().id());

  EXPECT_EQ(run.results(1).state(), fleet::RUN_STATE_PASSED);
  EXPECT_TRUE(run.results(1).flaky());
  EXPECT_EQ(run.results(1).attempts(), 2);
  EXPECT_EQ(run.results(1).retried_because(), "step 1 (expect): output did not match");
  EXPECT_EQ(run.results(2).state(), fleet::RUN_STATE_ERROR);
  EXPECT_EQ(run.results(2).attempts(), 2);
  EXPECT_FALSE(run.results(2).flaky());
  EXPECT_EQ(run.counts().flaky(), 1);
  EXPECT_EQ(run.state(), fleet::RUN_STATE_ERROR);
}

TEST_F(JobRunnerTest, RunPastItsTimeoutIsStoppedAndEndsError) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke"))).ok());
  attempts_.Hold();
  fleet::Run started = runner->StartRun("smoke", "manual:alice").value();
  ASSERT_TRUE(Eventually([&] { return attempts_.running() == 4; }));

  clock_.Advance(absl::Minutes(2));
  fleet::Run run = AwaitEnd(*runner, started.id());

  EXPECT_EQ(run.state(), fleet::RUN_STATE_ERROR);
  EXPECT_EQ(run.message(), "timed out after 2m");
  EXPECT_EQ(run.results(0).state(), fleet::RUN_STATE_ERROR);
  EXPECT_EQ(run.results(0).message(), "timed out after 2m");
  EXPECT_EQ(attempts_.running(), 0);
  EXPECT_EQ(runner->ReservedBy("b01"), 0u);
  attempts_.Release();
}

TEST_F(JobRunnerTest, CancelStopsTheRunAndAnswersOnceItEnded) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke", "rollout: {max_boards_at_once: 2}\n"))).ok());
  attempts_.Hold();
  fleet::Run started = runner->StartRun("smoke", "manual:alice").value();
  ASSERT_TRUE(Eventually([&] { return attempts_.running() == 2; }));
  std::vector<fleet::RunState> watched;
  absl::Mutex watched_mu;
  uint64_t watch = runner
                       ->WatchRun(started.id(),
                                  [&](const fleet::Run& run, bool ended) {
                                    absl::MutexLock lock(&watched_mu);
                                    watched.push_back(run.state());
                                  })
                       .value();

  absl::Mutex mu;
  std::optional<absl::StatusOr<fleet::Run>> answer;
  runner->CancelRun(started.id(), "bob", [&](absl::StatusOr<fleet::Run> run) {
    absl::MutexLock lock(&mu);
    answer = std::move(run);
  });
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return answer.has_value();
  }));

  ASSERT_TRUE(answer->ok()) << answer->status();
  const fleet::Run& run = **answer;
  EXPECT_EQ(run.state(), fleet::RUN_STATE_CANCELLED);
  EXPECT_EQ(run.message(), "cancelled by bob");
  EXPECT_EQ(run.counts().cancelled(), 2);
  EXPECT_EQ(run.counts().skipped(), 2);
  EXPECT_EQ(attempts_.running(), 0);
  EXPECT_EQ(runner->ReservedBy("b01"), 0u);
  runner->Unwatch(watch);
  absl::MutexLock lock(&watched_mu);
  ASSERT_FALSE(watched.empty());
  EXPECT_EQ(watched.front(), fleet::RUN_STATE_RUNNING);
  EXPECT_EQ(watched.back(), fleet::RUN_STATE_CANCELLED);
}

TEST_F(JobRunnerTest, MaxActiveRunsRefusesOneMore) {
  std::unique_ptr<JobRunner> runner = MakeRunner(JobRunnerOptions{.max_active_runs = 1});
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke"))).ok());
  attempts_.Hold();
  fleet::Run first = runner->StartRun("smoke", "manual:alice").value();

  absl::StatusOr<fleet::Run> second = runner->StartRun("smoke", "manual:alice");

  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(second.status().message(), HasSubstr("jobs.max_active_runs"));
  attempts_.Release();
  AwaitEnd(*runner, first.id());
}

TEST_F(JobRunnerTest, BoardEndingErrorInThreeRunsInARowIsQuarantinedUntilReleased) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke"))).ok());
  attempts_.Script("b02", {fleet::RUN_STATE_ERROR, fleet::RUN_STATE_ERROR, fleet::RUN_STATE_ERROR});
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(AwaitEnd(*runner, runner->StartRun("smoke", "schedule").value().id()).id());

  std::optional<fleet::Quarantine> quarantine = runner->QuarantineOf("b02");
  ASSERT_TRUE(quarantine.has_value());
  EXPECT_EQ(quarantine->reason(), absl::StrCat("ended ERROR in 3 runs in a row (runs ", ids[0], ", ", ids[1],
                                               ", ", ids[2], "): connection lost"));
  EXPECT_FALSE(runner->QuarantineOf("b01").has_value());
  ASSERT_THAT(Events(fleet::EVENT_KIND_BOARD_QUARANTINE), SizeIs(1));
  fleet::Run without = AwaitEnd(*runner, runner->StartRun("smoke", "schedule").value().id());
  ASSERT_THAT(without.results(), SizeIs(3));
  EXPECT_EQ(without.results(1).board(), "b03");

  ASSERT_TRUE(runner->ReleaseBoard("b02", "alice").ok());

  EXPECT_FALSE(runner->QuarantineOf("b02").has_value());
  EXPECT_THAT(Events(fleet::EVENT_KIND_BOARD_QUARANTINE), SizeIs(2));
  fleet::Run with = AwaitEnd(*runner, runner->StartRun("smoke", "schedule").value().id());
  EXPECT_THAT(with.results(), SizeIs(4));
  EXPECT_EQ(runner->ReleaseBoard("ghost", "alice").code(), absl::StatusCode::kNotFound);
}

TEST_F(JobRunnerTest, PassedOrFailedResultBreaksTheErrorStreak) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke"))).ok());
  attempts_.Script("b02", {fleet::RUN_STATE_ERROR, fleet::RUN_STATE_ERROR, fleet::RUN_STATE_FAILED,
                           fleet::RUN_STATE_ERROR});

  for (int i = 0; i < 4; ++i) AwaitEnd(*runner, runner->StartRun("smoke", "schedule").value().id());

  EXPECT_FALSE(runner->QuarantineOf("b02").has_value());
}

TEST_F(JobRunnerTest, CountPicksReachableBoardsFirst) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  std::string spec = Spec("smoke");
  spec.replace(spec.find("count: all"), 10, "count: 2");
  ASSERT_TRUE(runner->ApplyJob(Request(spec)).ok());
  boards_.SetOffline("b01");

  fleet::Run run = AwaitEnd(*runner, runner->StartRun("smoke", "manual:alice").value().id());

  ASSERT_THAT(run.results(), SizeIs(2));
  EXPECT_EQ(run.results(0).board(), "b02");
  EXPECT_EQ(run.results(1).board(), "b03");
}

TEST_F(JobRunnerTest, DeleteRefusesAJobWithARunGoingAndKeepsItsRuns) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke"))).ok());
  attempts_.Hold();
  fleet::Run run = runner->StartRun("smoke", "manual:alice").value();

  EXPECT_EQ(runner->DeleteJob("smoke").code(), absl::StatusCode::kFailedPrecondition);
  attempts_.Release();
  AwaitEnd(*runner, run.id());
  ASSERT_TRUE(runner->DeleteJob("smoke").ok());

  EXPECT_EQ(runner->DeleteJob("smoke").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(runner->StartRun("smoke", "manual:alice").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(runner->GetRun(run.id(), false, "").value().state(), fleet::RUN_STATE_PASSED);
}

TEST_F(JobRunnerTest, ListRunsPagesNewestFirst) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke"))).ok());
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(AwaitEnd(*runner, runner->StartRun("smoke", "schedule").value().id()).id());
  fleet::ListRunsRequest request;
  request.set_job_name("smoke");
  request.set_limit(2);

  fleet::ListRunsResponse first = runner->ListRuns(request).value();
  request.set_before_id(first.next_before_id());
  fleet::ListRunsResponse second = runner->ListRuns(request).value();

  ASSERT_THAT(first.runs(), SizeIs(2));
  EXPECT_EQ(first.runs(0).id(), ids[2]);
  EXPECT_EQ(first.next_before_id(), ids[1]);
  ASSERT_THAT(second.runs(), SizeIs(1));
  EXPECT_EQ(second.runs(0).id(), ids[0]);
  EXPECT_EQ(second.next_before_id(), 0u);
  request.set_job_name("ghost");
  request.set_before_id(0);
  EXPECT_EQ(runner->ListRuns(request).status().code(), absl::StatusCode::kNotFound);
}

// ---- Scheduler and restarts

TEST_F(JobRunnerTest, CronFiresAtTheRightMinuteOnceAndNotTwice) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  clock_.Set(absl::FromCivil(absl::CivilMinute(2024, 5, 1, 10, 2), absl::UTCTimeZone()));
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke", "schedule: \"*/5 * * * *\"\n"))).ok());
  const absl::Time fire = absl::FromCivil(absl::CivilMinute(2024, 5, 1, 10, 5), absl::UTCTimeZone());

  runner->SchedulerTick(fire - absl::Seconds(1));
  EXPECT_THAT(temp_.store().ListRuns(RunQuery{}).value(), SizeIs(0));
  runner->SchedulerTick(fire);
  runner->SchedulerTick(fire + absl::Seconds(1));
  runner->SchedulerTick(fire + absl::Seconds(30));

  std::vector<RunRecord> runs = temp_.store().ListRuns(RunQuery{}).value();
  ASSERT_THAT(runs, SizeIs(1));
  EXPECT_EQ(runs[0].trigger, "schedule");
  EXPECT_EQ(temp_.store().GetJob("smoke").value().last_fire_time, fire);
  AwaitEnd(*runner, runs[0].id);
  runner->SchedulerTick(fire + absl::Minutes(5));
  EXPECT_THAT(temp_.store().ListRuns(RunQuery{}).value(), SizeIs(2));
  AwaitEnd(*runner, temp_.store().ListRuns(RunQuery{}).value()[0].id);
}

TEST_F(JobRunnerTest, RestartMarksDeadRunsInterruptedAndCatchesUpOnceNotTwice) {
  clock_.Set(absl::FromCivil(absl::CivilMinute(2024, 5, 1, 10, 2), absl::UTCTimeZone()));
  int64_t dead_run = 0;
  {
    std::unique_ptr<JobRunner> runner = MakeRunner();
    ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke", "schedule: \"*/5 * * * *\"\n"))).ok());
  }
  // What a fleetd killed mid-run leaves: a RUNNING run with a running board.
  dead_run =
      temp_.store().CreateRun("smoke", "schedule", clock_.Now(), clock_.Now() + absl::Minutes(2)).value().id;
  ASSERT_TRUE(temp_.store().UpdateRun(dead_run, fleet::RUN_STATE_RUNNING, "", {}, clock_.Now()).ok());
  fleet::BoardResult running;
  running.set_board("b01");
  running.set_state(fleet::RUN_STATE_RUNNING);
  ASSERT_TRUE(temp_.store().PutBoardResult(dead_run, running).ok());
  // fleetd comes back 20 minutes later: four fire times were missed.
  clock_.Advance(absl::Minutes(20));
  ASSERT_NO_FATAL_FAILURE(OpenComponents());
  std::unique_ptr<JobRunner> runner = MakeRunner();

  ASSERT_TRUE(runner->Start().ok());

  fleet::Run interrupted = runner->GetRun(dead_run, false, "").value();
  EXPECT_EQ(interrupted.state(), fleet::RUN_STATE_ERROR);
  EXPECT_EQ(interrupted.message(), "interrupted: fleetd stopped during the run");
  EXPECT_EQ(interrupted.results(0).state(), fleet::RUN_STATE_ERROR);
  EXPECT_NE(runner->ReservedBy("b01"), static_cast<uint64_t>(dead_run));
  std::vector<RunRecord> runs = temp_.store().ListRuns(RunQuery{}).value();
  ASSERT_THAT(runs, SizeIs(2));
  EXPECT_EQ(runs[0].trigger, "schedule (catch-up)");
  AwaitEnd(*runner, runs[0].id);
  runner->SchedulerTick(clock_.Now());
  runner.reset();
  std::unique_ptr<JobRunner> again = MakeRunner();
  ASSERT_TRUE(again->Start().ok());
  EXPECT_THAT(temp_.store().ListRuns(RunQuery{}).value(), SizeIs(2));
}

TEST_F(JobRunnerTest, MissedFireWithoutCatchUpIsSkipped) {
  clock_.Set(absl::FromCivil(absl::CivilMinute(2024, 5, 1, 10, 2), absl::UTCTimeZone()));
  {
    std::unique_ptr<JobRunner> runner = MakeRunner();
    ASSERT_TRUE(
        runner->ApplyJob(Request(Spec("smoke", "schedule: \"*/5 * * * *\"\ncatch_up: false\n"))).ok());
  }
  clock_.Advance(absl::Minutes(20));
  std::unique_ptr<JobRunner> runner = MakeRunner();

  ASSERT_TRUE(runner->Start().ok());
  runner->SchedulerTick(clock_.Now());

  EXPECT_THAT(temp_.store().ListRuns(RunQuery{}).value(), SizeIs(0));
  EXPECT_EQ(temp_.store().GetJob("smoke").value().last_fire_time,
            absl::FromCivil(absl::CivilMinute(2024, 5, 1, 10, 20), absl::UTCTimeZone()));
}

TEST_F(JobRunnerTest, ShutdownStopsRunsAsInterrupted) {
  std::unique_ptr<JobRunner> runner = MakeRunner();
  ASSERT_TRUE(runner->ApplyJob(Request(Spec("smoke"))).ok());
  attempts_.Hold();
  fleet::Run started = runner->StartRun("smoke", "manual:alice").value();
  ASSERT_TRUE(Eventually([&] { return attempts_.running() == 4; }));

  runner->Shutdown();

  EXPECT_EQ(attempts_.running(), 0);
  RunRecord run = temp_.store().GetRun(static_cast<int64_t>(started.id())).value();
  EXPECT_EQ(run.state, fleet::RUN_STATE_ERROR);
  EXPECT_EQ(run.message, "interrupted: fleetd is shutting down");
  EXPECT_EQ(runner->StartRun("smoke", "manual:alice").status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace threadfleet::fleetd::jobs
