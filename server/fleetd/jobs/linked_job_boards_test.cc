// LinkedJobBoards against real `fleetboard serve` processes: real links
// (mutual TLS), fleetd's LabMonitor feeding the health aggregator and the
// event hub over a real SqliteStore. One board's steps (RunBoardAttempt) run
// through it as a job's run does.
#include "server/fleetd/jobs/linked_job_boards.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "server/fleetd/health/lab_monitor.h"
#include "server/fleetd/jobs/board_run.h"
#include "server/fleetd/links/board_link.h"
#include "server/fleetd/links/link_credentials.h"
#include "server/fleetd/testing/lab_processes.h"
#include "server/fleetd/testing/temp_store.h"

namespace threadfleet::fleetd::jobs {
namespace {

namespace pb = ::threadfleet::board::v1;
namespace fv1 = ::threadfleet::fleet::v1;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using namespace std::chrono_literals;

// Prints the shared counter as thread_lock.py does, and ends.
constexpr char kCountScript[] =
    "import _thread, time\n"
    "shared = 0\n"
    "lock = _thread.allocate_lock()\n"
    "def worker():\n"
    "    global shared\n"
    "    for i in range(4):\n"
    "        with lock:\n"
    "            shared += 1\n"
    "_thread.start_new_thread(worker, ())\n"
    "for i in range(4):\n"
    "    with lock:\n"
    "        shared += 1\n"
    "time.sleep(0.3)\n"
    "print('Shared variable is ', shared)\n";

// A worker thread that raises; the main thread waits for it.
constexpr char kRaiseScript[] =
    "import _thread, time\n"
    "def worker():\n"
    "    time.sleep(0.05)\n"
    "    raise ValueError('boom')\n"
    "_thread.start_new_thread(worker, ())\n"
    "print('started')\n"
    "time.sleep(0.5)\n";

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
    "_thread.start_new_thread(two, ())\n"
    "time.sleep(3600)\n";

// Prints a tick every 50 ms until killed.
constexpr char kLoopScript[] =
    "import time\n"
    "i = 0\n"
    "while True:\n"
    "    print('tick', i)\n"
    "    i += 1\n"
    "    time.sleep(0.05)\n";

// Reports a value for longer than a snapshot period, then ends (its value
// leaves the snapshots with its thread).
constexpr char kReportScript[] =
    "import fleet, time\n"
    "fleet.report(temp=21.5)\n"
    "time.sleep(1.2)\n";

std::string Sha256Hex(const std::string& content) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(content.data(), content.size(), digest, &size, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), size));
}

Step Push(const std::string& file) {
  Step step;
  step.kind = Step::Kind::kPush;
  step.push.file = file;
  step.push.to = "/" + file;
  return step;
}

Step RunScript(const std::string& file, bool wait = true, absl::Duration timeout = absl::Seconds(30)) {
  Step step;
  step.kind = Step::Kind::kRun;
  step.run.path = "/" + file;
  step.run.name = file.substr(0, file.find('.'));
  step.run.wait = wait;
  step.run.timeout = timeout;
  return step;
}

Step Expect(ExpectStep expect) {
  Step step;
  step.kind = Step::Kind::kExpect;
  step.expect = std::move(expect);
  return step;
}

Step Kill(const std::string& program) {
  Step step;
  step.kind = Step::Kind::kKill;
  step.kill.program = program;
  return step;
}

Step Sleep(absl::Duration d) {
  Step step;
  step.kind = Step::Kind::kSleep;
  step.sleep.duration = d;
  return step;
}

class LinkedJobBoardsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(lab_.Init());
    ASSERT_NO_FATAL_FAILURE(temp_.Init("linked_job_boards_test"));
    hub_ = std::make_unique<EventHub>(temp_.store());
    monitor_ = std::make_unique<LabMonitor>(temp_.store(), health_, *hub_);
    absl::StatusOr<LinkCredentials> creds =
        LinkCredentials::FromFiles(lab_.path("ca.pem"), lab_.path("fleetd.pem"), lab_.path("fleetd.key"));
    ASSERT_TRUE(creds.ok()) << creds.status();
    links_ = std::make_unique<LinkManager>(*creds, LinkOptions{}, monitor_.get());
    boards_ = std::make_unique<LinkedJobBoards>(*links_, health_, *hub_);
  }

  // The adapter and the links go first, then the monitor they feed; the
  // boards are killed when lab_ ends.
  void TearDown() override {
    boards_.reset();
    links_.reset();
    monitor_.reset();
  }

  void StartOnlineBoard(const std::string& name) {
    ASSERT_NO_FATAL_FAILURE(lab_.StartBoard(name));
    ASSERT_TRUE(links_->Add(name, lab_.board(name).address()).ok());
    ASSERT_TRUE(testing::PollUntil(10s, [&] { return boards_->Reachable(name); }))
        << links_->Status(name)->message;
  }

  void AddFile(const std::string& path, const std::string& content) {
    files_[path] = {std::make_shared<const std::string>(content), Sha256Hex(content)};
  }

  fv1::BoardResult Attempt(const std::string& board, std::vector<Step> steps,
                           std::function<void(const fv1::BoardResult&)> on_progress = {}) {
    spec_.name = "smoke";
    spec_.timeout = absl::Minutes(1);
    spec_.steps = std::move(steps);
    BoardAttempt attempt{.board = board,
                         .spec = &spec_,
                         .files = &files_,
                         .deadline = absl::Now() + spec_.timeout,
                         .stop = &stop_,
                         .on_progress = std::move(on_progress)};
    return RunBoardAttempt(*boards_, attempt);
  }

  // The board's record of a program.
  std::optional<pb::ProgramInfo> Program(const std::string& board, uint32_t id) {
    absl::StatusOr<pb::ListThreadsResponse> listed =
        boards_->ListThreads(board, absl::Now() + absl::Seconds(5));
    if (!listed.ok()) return std::nullopt;
    for (const pb::ProgramInfo& p : listed->programs()) {
      if (p.id() == id) return p;
    }
    return std::nullopt;
  }

  // The board's latest snapshot shows the program running.
  bool ProgramRunning(const std::string& board, const std::string& name) {
    std::optional<pb::HealthSnapshot> latest = health_.Latest(board);
    if (!latest.has_value()) return false;
    for (const pb::ProgramInfo& p : latest->programs()) {
      if (p.name() == name && p.state() == pb::PROGRAM_STATE_RUNNING) return true;
    }
    return false;
  }

  testing::TestLab lab_;
  testing::TempStore temp_;
  HealthAggregator health_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<LabMonitor> monitor_;
  std::unique_ptr<LinkManager> links_;
  std::unique_ptr<LinkedJobBoards> boards_;
  JobSpec spec_;
  std::map<std::string, JobFileContent> files_;
  StopSignal stop_;
};

TEST_F(LinkedJobBoardsTest, PushRunAndExpectPassAndASecondPushLeavesTheFileUnchanged) {
  ASSERT_NO_FATAL_FAILURE(StartOnlineBoard("b01"));
  AddFile("count.py", kCountScript);
  ExpectStep expect;
  expect.output = std::make_shared<re2::RE2>("Shared variable is\\s+8");
  expect.output_pattern = "Shared variable is\\s+8";
  expect.no_failed_threads = true;
  expect.no_anomalies = {"deadlock", "stall", "unkillable"};
  expect.max_stack_percent = 80;
  expect.min_heap_free_bytes = 16 * 1024;

  fv1::BoardResult first = Attempt("b01", {Push("count.py"), RunScript("count.py"), Expect(expect)});
  fv1::BoardResult second = Attempt("b01", {Push("count.py")});

  EXPECT_EQ(first.state(), fv1::RUN_STATE_PASSED) << first.DebugString();
  EXPECT_EQ(first.steps(0).message(), absl::StrCat("wrote ", strlen(kCountScript), " bytes to /count.py"));
  EXPECT_THAT(first.steps(1).message(), HasSubstr("program count finished in"));
  EXPECT_EQ(first.steps(1).output(), "Shared variable is  8\n");
  EXPECT_GT(first.steps(1).program_id(), 0u);
  EXPECT_EQ(second.state(), fv1::RUN_STATE_PASSED);
  EXPECT_THAT(second.steps(0).message(), HasSubstr("unchanged"));
}

TEST_F(LinkedJobBoardsTest, ThreadThatRaisesFailsTheRunWithItsTracebackAsEvidence) {
  ASSERT_NO_FATAL_FAILURE(StartOnlineBoard("b01"));
  AddFile("raise.py", kRaiseScript);

  fv1::BoardResult result = Attempt("b01", {Push("raise.py"), RunScript("raise.py")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED) << result.DebugString();
  EXPECT_THAT(result.message(), AllOf(HasSubstr("program raise ended FAILED: ValueError: boom (thread "),
                                      HasSubstr(" worker)")));
  const fv1::Evidence& evidence = result.steps(1).evidence();
  ASSERT_THAT(evidence.failed_threads(), SizeIs(1));
  EXPECT_EQ(evidence.failed_threads(0).name(), "worker");
  EXPECT_THAT(evidence.failed_threads(0).exception().traceback(), HasSubstr("ValueError"));
  EXPECT_THAT(evidence.output_excerpt(), HasSubstr("started"));
  EXPECT_FALSE(evidence.threads().empty());
  EXPECT_GT(evidence.heap().total_bytes(), 0u);
}

TEST_F(LinkedJobBoardsTest, DeadlockIsSeenByExpectAndTheProgramIsKilledAfterwards) {
  ASSERT_NO_FATAL_FAILURE(StartOnlineBoard("b01"));
  AddFile("deadlock.py", kDeadlockScript);
  ExpectStep expect;
  expect.no_anomalies = {"deadlock"};

  fv1::BoardResult result = Attempt("b01", {Push("deadlock.py"), RunScript("deadlock.py", /*wait=*/false),
                                            Sleep(absl::Seconds(1)), Expect(expect)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_THAT(result.steps(3).message(), HasSubstr("no_anomalies: deadlock: "));
  EXPECT_FALSE(result.steps(3).evidence().anomalies().empty());
  std::optional<pb::ProgramInfo> program = Program("b01", result.steps(1).program_id());
  ASSERT_TRUE(program.has_value());
  EXPECT_EQ(program->state(), pb::PROGRAM_STATE_KILLED);
}

TEST_F(LinkedJobBoardsTest, KillStepEndsAProgramLeftRunningWhoseOutputExpectRead) {
  ASSERT_NO_FATAL_FAILURE(StartOnlineBoard("b01"));
  AddFile("loop.py", kLoopScript);

  fv1::BoardResult result = Attempt("b01", {Push("loop.py"), RunScript("loop.py", /*wait=*/false),
                                            Sleep(absl::Milliseconds(300)), Expect([] {
                                              ExpectStep e;
                                              e.output = std::make_shared<re2::RE2>("tick 3\\n");
                                              e.output_pattern = "tick 3\\n";
                                              return e;
                                            }()),
                                            Kill("loop")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED) << result.DebugString();
  EXPECT_THAT(result.steps(4).message(), HasSubstr("killed program loop"));
  EXPECT_THAT(result.steps(1).output(), HasSubstr("tick 0\ntick 1\ntick 2\ntick 3\n"));
  std::optional<pb::ProgramInfo> program = Program("b01", result.steps(1).program_id());
  ASSERT_TRUE(program.has_value());
  EXPECT_EQ(program->state(), pb::PROGRAM_STATE_KILLED);
}

TEST_F(LinkedJobBoardsTest, MetricReportedByAThreadThatEndedIsChecked) {
  ASSERT_NO_FATAL_FAILURE(StartOnlineBoard("b01"));
  AddFile("report.py", kReportScript);
  ExpectStep expect;
  expect.metrics = {{.name = "temp", .min = 0, .max = 20}};

  fv1::BoardResult result = Attempt("b01", {Push("report.py"), RunScript("report.py"), Expect(expect)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(result.steps(2).message(), "metric temp = 21.5, above max 20");
}

TEST_F(LinkedJobBoardsTest, StopCancelsAFollowedRunAndKillsItsProgram) {
  ASSERT_NO_FATAL_FAILURE(StartOnlineBoard("b01"));
  AddFile("loop.py", kLoopScript);

  std::thread canceller([this] {
    EXPECT_TRUE(testing::PollUntil(20s, [this] { return ProgramRunning("b01", "loop"); }));
    stop_.Stop("cancelled by alice");
  });
  fv1::BoardResult result = Attempt("b01", {Push("loop.py"), RunScript("loop.py", true, absl::Minutes(1))});
  canceller.join();

  EXPECT_EQ(result.state(), fv1::RUN_STATE_CANCELLED);
  EXPECT_EQ(result.message(), "steps[1] run: cancelled by alice");
  std::optional<pb::ProgramInfo> program = Program("b01", result.steps(1).program_id());
  ASSERT_TRUE(program.has_value());
  EXPECT_EQ(program->state(), pb::PROGRAM_STATE_KILLED);
}

TEST_F(LinkedJobBoardsTest, BoardKilledMidRunEndsErrorWithTheLinksMessageNotAtTheDeadline) {
  ASSERT_NO_FATAL_FAILURE(StartOnlineBoard("b01"));
  ASSERT_NO_FATAL_FAILURE(StartOnlineBoard("b02"));
  AddFile("loop.py", kLoopScript);
  // kill -9 once b01's program runs (its snapshot shows it), while the
  // attempt follows its output.
  std::thread killer([this] {
    EXPECT_TRUE(testing::PollUntil(20s, [this] { return ProgramRunning("b01", "loop"); }));
    lab_.board("b01").Kill9();
  });
  fv1::BoardResult lost = Attempt("b01", {Push("loop.py"), RunScript("loop.py", true, absl::Minutes(1))});
  killer.join();
  fv1::BoardResult other = Attempt("b02", {Push("loop.py"), RunScript("loop.py", false), Kill("loop")});

  EXPECT_EQ(lost.state(), fv1::RUN_STATE_ERROR);
  // The link's reason, not the run's deadline (a minute away).
  EXPECT_THAT(lost.message(), HasSubstr("board b01: "));
  EXPECT_THAT(lost.message(), ::testing::Not(HasSubstr("timed out")));
  EXPECT_THAT(lost.message(), HasSubstr("could not kill program loop"));
  EXPECT_EQ(other.state(), fv1::RUN_STATE_PASSED) << other.DebugString();
}

TEST(RaisedAnomalyKindTest, NamesTheAnomalyOfEachStoredEventKind) {
  fv1::Event deadlock;
  deadlock.set_kind(fv1::EVENT_KIND_BOARD_EVENT);
  deadlock.set_severity(fv1::SEVERITY_ERROR);
  deadlock.mutable_board_event()->set_kind(pb::EVENT_KIND_DEADLOCK);
  fv1::Event unkillable;
  unkillable.set_kind(fv1::EVENT_KIND_BOARD_STATE);
  unkillable.set_severity(fv1::SEVERITY_ERROR);
  unkillable.set_thread_id(4);
  fv1::Event offline;
  offline.set_kind(fv1::EVENT_KIND_BOARD_STATE);
  offline.set_severity(fv1::SEVERITY_ERROR);
  fv1::Event degraded = offline;
  degraded.set_severity(fv1::SEVERITY_WARNING);
  fv1::Event stack_cleared;
  stack_cleared.set_kind(fv1::EVENT_KIND_STACK_HIGH);
  stack_cleared.set_severity(fv1::SEVERITY_INFO);
  fv1::Event started;
  started.set_kind(fv1::EVENT_KIND_BOARD_EVENT);
  started.set_severity(fv1::SEVERITY_INFO);
  started.mutable_board_event()->set_kind(pb::EVENT_KIND_THREAD_STARTED);

  EXPECT_EQ(RaisedAnomalyKind(deadlock), "deadlock");
  EXPECT_EQ(RaisedAnomalyKind(unkillable), "thread_unkillable");
  EXPECT_EQ(RaisedAnomalyKind(offline), "board_offline");
  EXPECT_EQ(RaisedAnomalyKind(degraded), std::nullopt);
  EXPECT_EQ(RaisedAnomalyKind(stack_cleared), std::nullopt);
  EXPECT_EQ(RaisedAnomalyKind(started), std::nullopt);
}

}  // namespace
}  // namespace threadfleet::fleetd::jobs
