// BoardLink and LinkManager against real boards: `fleetboard serve` processes
// on loopback ports with a fresh lab PKI (deploy/pki) in a temporary
// directory. Covers connect, the health stream, offline detection after a
// kill -9, reconnection after a restart, the calls and a TLS refusal; one
// connection per board for health and calls; calls that fail at once when
// their board dies or hangs, the caller's deadline ending a call on the
// board, the per-board limits; a peer that never answers the handshake (timed
// out, no socket leaked), the cap on attempts in flight, and add/remove while
// boards die (for ASan).
#include "server/fleetd/links/board_link.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/fleetd/testing/lab_processes.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;
using testing::BoardProcess;
using testing::PollUntil;
using testing::RunPki;
using testing::SilentPeer;
using namespace std::chrono_literals;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A BoardClient call's outcome, waited for (60 s at most) on the test's
// thread: `start` makes the call with the `done` it is given.
template <typename T>
absl::StatusOr<T> Wait(const std::function<void(BoardClient::Done<T>)>& start) {
  struct Box {
    absl::Mutex mu;
    std::optional<absl::StatusOr<T>> result ABSL_GUARDED_BY(mu);
  };
  auto box = std::make_shared<Box>();
  start([box](absl::StatusOr<T> r) {
    absl::MutexLock lock(&box->mu);
    box->result = std::move(r);
  });
  absl::MutexLock lock(&box->mu);
  const auto answered = [&box]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(box->mu) { return box->result.has_value(); };
  if (!box->mu.AwaitWithTimeout(absl::Condition(&answered), absl::Seconds(60))) {
    return absl::DeadlineExceededError("the test waited 60 s for the call's outcome");
  }
  return *std::move(box->result);
}

absl::StatusOr<pb::BoardInfo> GetInfo(BoardLink& link, CallOptions options = {}) {
  return Wait<pb::BoardInfo>([&](auto done) { link.GetInfo(options, std::move(done)); });
}

// Sockets this process holds open (TCP connections, listeners, socketpairs).
int OpenSockets() {
  int n = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    std::error_code link_ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), link_ec).string();
    if (!link_ec && target.rfind("socket:", 0) == 0) ++n;
  }
  return n;
}

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::ostringstream out;
  for (unsigned int i = 0; i < len; i++) out << std::hex << std::setw(2) << std::setfill('0') << int{md[i]};
  return out.str();
}

class Recorder : public LinkListener {
 public:
  struct Change {
    Clock::time_point time;
    BoardState state;
    std::string message;
  };

  void OnSnapshot(absl::string_view board, const pb::HealthSnapshot& snapshot) override {
    absl::MutexLock lock(&mu_);
    ++snapshots_[std::string(board)];
    snapshot_names_[std::string(board)] = snapshot.board_name();
  }
  void OnStateChange(absl::string_view board, const LinkStatus& status) override {
    absl::MutexLock lock(&mu_);
    changes_[std::string(board)].push_back({Clock::now(), status.state, status.message});
  }

  int Snapshots(const std::string& board) {
    absl::MutexLock lock(&mu_);
    return snapshots_[board];
  }
  std::string SnapshotName(const std::string& board) {
    absl::MutexLock lock(&mu_);
    return snapshot_names_[board];
  }
  // The first change of `board` to `state` at or after `after`.
  std::optional<Change> ChangeTo(const std::string& board, BoardState state, Clock::time_point after) {
    absl::MutexLock lock(&mu_);
    for (const Change& c : changes_[board]) {
      if (c.state == state && c.time >= after) return c;
    }
    return std::nullopt;
  }
  std::vector<Change> Changes(const std::string& board) {
    absl::MutexLock lock(&mu_);
    return changes_[board];
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> snapshots_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> snapshot_names_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<Change>> changes_ ABSL_GUARDED_BY(mu_);
};

class BoardLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(lab_.Init());
    absl::StatusOr<LinkCredentials> creds =
        LinkCredentials::FromFiles(lab_.path("ca.pem"), lab_.path("fleetd.pem"), lab_.path("fleetd.key"));
    ASSERT_TRUE(creds.ok()) << creds.status();
    links_ = std::make_unique<LinkManager>(*creds, LinkOptions{}, &recorder_);
  }

  // Links go first: the boards they talk to are killed when lab_ ends.
  void TearDown() override { links_.reset(); }

  BoardProcess& StartBoard(const std::string& name, const std::string& pki_dir = "") {
    return lab_.StartBoard(name, pki_dir);
  }

  BoardState StateOf(const std::string& name) {
    std::optional<LinkStatus> s = links_->Status(name);
    return s ? s->state : BoardState::kOffline;
  }

  bool WaitOnline(const std::string& name, Clock::duration timeout) {
    return PollUntil(timeout, [&] { return StateOf(name) == BoardState::kOnline; });
  }

  testing::TestLab lab_;
  Recorder recorder_;
  std::unique_ptr<LinkManager> links_;
};

TEST_F(BoardLinkTest, TwoBoardsComeOnlineWithinTwoSecondsAndStreamSnapshots) {
  ASSERT_NO_FATAL_FAILURE(StartBoard("b01"));
  ASSERT_NO_FATAL_FAILURE(StartBoard("b02"));

  const auto added = Clock::now();
  ASSERT_TRUE(links_->Add("b01", lab_.board("b01").address()).ok());
  ASSERT_TRUE(links_->Add("b02", lab_.board("b02").address()).ok());
  EXPECT_TRUE(WaitOnline("b01", 2s)) << links_->Status("b01")->message;
  EXPECT_TRUE(WaitOnline("b02", 2s)) << links_->Status("b02")->message;
  std::printf("both boards online %.3f s after Add\n", Seconds(Clock::now() - added));

  // 500 ms period: a few more snapshots within 1.6 s.
  const int b01_before = recorder_.Snapshots("b01");
  const int b02_before = recorder_.Snapshots("b02");
  std::this_thread::sleep_for(1600ms);
  EXPECT_GE(recorder_.Snapshots("b01") - b01_before, 3);
  EXPECT_GE(recorder_.Snapshots("b02") - b02_before, 3);
  EXPECT_EQ(recorder_.SnapshotName("b01"), "b01");
  EXPECT_EQ(recorder_.SnapshotName("b02"), "b02");
  EXPECT_EQ(links_->Status("b01")->connections, 1u);
  EXPECT_NE(links_->Status("b01")->last_snapshot, absl::InfinitePast());
  // The board's info comes with the connection: readers never call the board.
  ASSERT_NE(links_->Status("b02")->info, nullptr);
  EXPECT_EQ(links_->Status("b02")->info->name(), "b02");
  EXPECT_TRUE(links_->Add("b01", lab_.board("b01").address()).code() == absl::StatusCode::kAlreadyExists);

  EXPECT_EQ(lab_.board("b01").Stop(), 0);
  EXPECT_EQ(lab_.board("b02").Stop(), 0);
}

TEST_F(BoardLinkTest, KilledBoardIsOfflineWithinThreeSecondsAndOnlineAgainAfterRestart) {
  BoardProcess& b01 = StartBoard("b01");
  ASSERT_NO_FATAL_FAILURE(StartBoard("b02"));
  ASSERT_TRUE(links_->Add("b01", b01.address()).ok());
  ASSERT_TRUE(links_->Add("b02", lab_.board("b02").address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 2s));
  ASSERT_TRUE(WaitOnline("b02", 2s));

  const auto killed = Clock::now();
  b01.Kill9();
  ASSERT_TRUE(
      PollUntil(5s, [&] { return recorder_.ChangeTo("b01", BoardState::kOffline, killed).has_value(); }));
  const Recorder::Change offline = *recorder_.ChangeTo("b01", BoardState::kOffline, killed);
  const double detection_s = Seconds(offline.time - killed);
  std::printf("offline detected %.3f s after kill -9: %s\n", detection_s, offline.message.c_str());
  EXPECT_LT(detection_s, 3.0);
  EXPECT_EQ(StateOf("b02"), BoardState::kOnline);

  // Let the backoff grow a little, then bring the board back on its port and
  // flash: the link finds it with no help.
  std::this_thread::sleep_for(1s);
  const auto restarted = Clock::now();
  ASSERT_NO_FATAL_FAILURE(b01.Start());
  EXPECT_TRUE(WaitOnline("b01", 10s)) << links_->Status("b01")->message;
  std::printf("online again %.3f s after the restarted board began (incl. its start-up)\n",
              Seconds(Clock::now() - restarted));
  EXPECT_EQ(links_->Status("b01")->connections, 2u);
  absl::StatusOr<pb::BoardInfo> info = GetInfo(*links_->Get("b01"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name(), "b01");
}

TEST_F(BoardLinkTest, FrozenBoardIsOfflineWithinThreeSecondsAndOnlineWhenItResumes) {
  BoardProcess& b01 = StartBoard("b01");
  ASSERT_TRUE(links_->Add("b01", b01.address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 2s));

  // SIGSTOP: the connection stays open, nothing answers; the watchdog (no
  // snapshot for 3 s) notices.
  const auto frozen = Clock::now();
  b01.Signal(SIGSTOP);
  ASSERT_TRUE(
      PollUntil(5s, [&] { return recorder_.ChangeTo("b01", BoardState::kOffline, frozen).has_value(); }));
  const Recorder::Change offline = *recorder_.ChangeTo("b01", BoardState::kOffline, frozen);
  const double detection_s = Seconds(offline.time - frozen);
  std::printf("frozen board offline %.3f s after SIGSTOP: %s\n", detection_s, offline.message.c_str());
  EXPECT_LE(detection_s, 3.2);  // 3 s plus one watchdog tick and scheduling

  const auto resumed = Clock::now();
  b01.Signal(SIGCONT);
  EXPECT_TRUE(WaitOnline("b01", 10s)) << links_->Status("b01")->message;
  std::printf("online again %.3f s after SIGCONT\n", Seconds(Clock::now() - resumed));
}

TEST_F(BoardLinkTest, UnaryHelpersReachTheBoardAndKeepItsErrors) {
  ASSERT_NO_FATAL_FAILURE(StartBoard("b01"));
  ASSERT_TRUE(links_->Add("b01", lab_.board("b01").address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 2s));
  std::shared_ptr<BoardLink> b01 = links_->Get("b01");
  ASSERT_NE(b01, nullptr);

  absl::StatusOr<pb::BoardInfo> info = GetInfo(*b01);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name(), "b01");

  // Three chunks and a bit.
  std::string content = "import time\n";
  while (content.size() < 3 * 4096 + 100) content += "# filler line for a multi-chunk write\n";
  content += "while True:\n    print('tick')\n    time.sleep(0.05)\n";
  pb::WriteFileHeader header;
  header.set_path("/app/loop.py");
  absl::StatusOr<pb::WriteFileResponse> written = Wait<pb::WriteFileResponse>([&](auto done) {
    b01->WriteFile(header, std::make_shared<const std::string>(content), {}, std::move(done));
  });
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->sha256_hex(), Sha256Hex(content));
  EXPECT_EQ(written->size_bytes(), content.size());
  absl::StatusOr<std::string> read =
      Wait<std::string>([&](auto done) { b01->ReadFile("/app/loop.py", {}, std::move(done)); });
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, content);
  pb::ListFilesRequest list_files;
  list_files.set_path("/app");
  absl::StatusOr<pb::ListFilesResponse> files =
      Wait<pb::ListFilesResponse>([&](auto done) { b01->ListFiles(list_files, {}, std::move(done)); });
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->entries_size(), 1);
  EXPECT_EQ(files->entries(0).name(), "loop.py");

  pb::StartProgramRequest start;
  start.set_path("/app/loop.py");
  absl::StatusOr<pb::StartProgramResponse> program =
      Wait<pb::StartProgramResponse>([&](auto done) { b01->StartProgram(start, {}, std::move(done)); });
  ASSERT_TRUE(program.ok()) << program.status();

  pb::ListThreadsRequest list;
  list.set_program_id(program->program_id());
  absl::StatusOr<pb::ListThreadsResponse> threads =
      Wait<pb::ListThreadsResponse>([&](auto done) { b01->ListThreads(list, {}, std::move(done)); });
  ASSERT_TRUE(threads.ok()) << threads.status();
  ASSERT_EQ(threads->threads_size(), 1);
  EXPECT_EQ(threads->threads(0).id(), program->main_thread_id());

  // Its output, through the callback stream, until we cancel it.
  absl::Mutex mu;
  std::string output;
  absl::Notification done;
  absl::Status done_status;
  pb::StreamOutputRequest stream;
  stream.set_program_id(program->program_id());
  stream.set_follow(true);
  std::shared_ptr<OutputStream> handle = b01->StreamOutput(
      stream, {},
      [&](const pb::OutputChunk& chunk) {
        absl::MutexLock lock(&mu);
        output += chunk.data();
      },
      [&](absl::Status s) {
        done_status = s;
        done.Notify();
      });
  EXPECT_TRUE(PollUntil(5s, [&] {
    absl::MutexLock lock(&mu);
    return output.find("tick\ntick\n") != std::string::npos;
  }));
  handle->Cancel();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(done_status.code(), absl::StatusCode::kCancelled) << done_status;

  absl::StatusOr<pb::ThreadInfo> killed = Wait<pb::ThreadInfo>(
      [&](auto done) { b01->KillThread(program->main_thread_id(), absl::Seconds(1), {}, std::move(done)); });
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_EQ(killed->state(), pb::THREAD_STATE_KILLED);

  absl::StatusOr<pb::ExecResponse> exec =
      Wait<pb::ExecResponse>([&](auto done) { b01->Exec("print(6 * 7)", {}, std::move(done)); });
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(exec->output(), "42\n");

  // The board's own code and message, under the board's name.
  start.set_path("/no/such/script.py");
  absl::StatusOr<pb::StartProgramResponse> missing =
      Wait<pb::StartProgramResponse>([&](auto done) { b01->StartProgram(start, {}, std::move(done)); });
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), StartsWith("board b01: StartProgram: "));
  std::printf("error kept: %s\n", missing.status().ToString().c_str());
}

TEST_F(BoardLinkTest, BoardWithItsHeapNearlyFullIsDegradedAndSaysWhy) {
  ASSERT_NO_FATAL_FAILURE(StartBoard("b01"));
  ASSERT_TRUE(links_->Add("b01", lab_.board("b01").address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 2s));

  // Fills the heap until MemoryError, keeps it full, and waits.
  pb::StartProgramRequest hog;
  hog.set_source(
      "import time\n"
      "held = []\n"
      "try:\n"
      "    while True:\n"
      "        held.append(bytearray(256))\n"
      "except MemoryError:\n"
      "    pass\n"
      "while True:\n"
      "    time.sleep(0.1)\n");
  absl::StatusOr<pb::StartProgramResponse> program = Wait<pb::StartProgramResponse>(
      [&](auto done) { links_->Get("b01")->StartProgram(hog, {}, std::move(done)); });
  ASSERT_TRUE(program.ok()) << program.status();

  EXPECT_TRUE(PollUntil(5s, [&] { return StateOf("b01") == BoardState::kDegraded; }))
      << links_->Status("b01")->message;
  std::printf("b01: %s\n", links_->Status("b01")->message.c_str());
  EXPECT_THAT(links_->Status("b01")->message, HasSubstr("heap free"));
}

TEST_F(BoardLinkTest, BoardOfAnotherCaStaysOfflineWithATlsError) {
  const std::string other = lab_.path("other");
  ASSERT_NO_FATAL_FAILURE(RunPki({"init", other}));
  ASSERT_NO_FATAL_FAILURE(RunPki({"issue", other, "board", "--server"}));
  ASSERT_NO_FATAL_FAILURE(StartBoard("b09", other));
  ASSERT_TRUE(links_->Add("b09", lab_.board("b09").address()).ok());

  std::this_thread::sleep_for(3s);
  const LinkStatus status = *links_->Status("b09");
  std::printf("b09: %s: %s\n", std::string(BoardStateName(status.state)).c_str(), status.message.c_str());
  EXPECT_EQ(status.state, BoardState::kOffline);
  EXPECT_THAT(status.message, HasSubstr("TLS handshake with the board failed"));
  EXPECT_EQ(recorder_.Snapshots("b09"), 0);
  for (const Recorder::Change& c : recorder_.Changes("b09")) EXPECT_EQ(c.state, BoardState::kOffline);

  absl::StatusOr<pb::BoardInfo> info = GetInfo(*links_->Get("b09"));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(info.status().message()), StartsWith("board b09: GetInfo: "));
}

TEST_F(BoardLinkTest, RemovedBoardIsForgottenAndReportsNothingMore) {
  ASSERT_NO_FATAL_FAILURE(StartBoard("b01"));
  ASSERT_TRUE(links_->Add("b01", lab_.board("b01").address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 2s));

  ASSERT_TRUE(links_->Remove("b01").ok());
  EXPECT_FALSE(links_->Status("b01").has_value());
  EXPECT_EQ(links_->Remove("b01").code(), absl::StatusCode::kNotFound);
  const int snapshots = recorder_.Snapshots("b01");
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(recorder_.Snapshots("b01"), snapshots);
}

// A snippet that sleeps until killed; the VM stays free for snapshots.
constexpr char kSleepForever[] = "import time\nwhile True:\n    time.sleep(0.01)\n";

// Starts Exec(kSleepForever) on `link`; its outcome lands in the returned box.
struct PendingCall {
  absl::Mutex mu;
  std::optional<absl::Status> end ABSL_GUARDED_BY(mu);
  Clock::time_point ended_at ABSL_GUARDED_BY(mu);

  std::optional<absl::Status> Get() {
    absl::MutexLock lock(&mu);
    return end;
  }
  // The end, waited for up to `timeout`.
  std::optional<absl::Status> Wait(Clock::duration timeout) {
    PollUntil(timeout, [&] { return Get().has_value(); });
    return Get();
  }
};
std::shared_ptr<PendingCall> ExecForever(BoardLink& link, CallOptions options = {}) {
  auto call = std::make_shared<PendingCall>();
  link.Exec(kSleepForever, options, [call](absl::StatusOr<pb::ExecResponse> r) {
    absl::MutexLock lock(&call->mu);
    call->end = r.status();
    call->ended_at = Clock::now();
  });
  return call;
}

TEST_F(BoardLinkTest, EachBoardHasOneConnectionCarryingHealthAndEveryCall) {
  ASSERT_NO_FATAL_FAILURE(StartBoard("b01"));
  const int before = OpenSockets();
  ASSERT_TRUE(links_->Add("b01", lab_.board("b01").address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 5s));
  std::shared_ptr<BoardLink> b01 = links_->Get("b01");
  ASSERT_TRUE(GetInfo(*b01).ok());
  std::shared_ptr<PendingCall> running = ExecForever(*b01);
  ASSERT_TRUE(GetInfo(*b01).ok());

  EXPECT_EQ(OpenSockets() - before, 1) << "one TLS connection for the health stream and every call";
  EXPECT_EQ(links_->OpenConnections(), 1u);
  EXPECT_FALSE(running->Get().has_value());
}

TEST_F(BoardLinkTest, ACallToABoardKilledMidCallFailsAtOnceSayingTheConnectionIsLost) {
  BoardProcess& b01 = StartBoard("b01");
  ASSERT_TRUE(links_->Add("b01", b01.address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 5s));
  std::shared_ptr<PendingCall> call =
      ExecForever(*links_->Get("b01"), {.deadline = absl::Now() + absl::Seconds(30)});
  ASSERT_TRUE(GetInfo(*links_->Get("b01")).ok());  // the Exec is running by now

  const auto killed = Clock::now();
  b01.Kill9();
  const std::optional<absl::Status> end = call->Wait(10s);
  ASSERT_TRUE(end.has_value()) << "still waiting 10 s after the board died";
  std::printf("failed %.3f s after kill -9: %s\n", Seconds(call->ended_at - killed), end->ToString().c_str());
  EXPECT_EQ(end->code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(end->message()), StartsWith("board b01: Exec: connection lost: "));
  // And a call right after fails at once, with the reason.
  absl::StatusOr<pb::BoardInfo> after = GetInfo(*links_->Get("b01"));
  EXPECT_EQ(after.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(after.status().message()), HasSubstr("board b01: GetInfo: the board is offline: "));
}

TEST_F(BoardLinkTest, ACallToAFrozenBoardFailsWhenItStopsAnsweringNotAtItsDeadline) {
  BoardProcess& b01 = StartBoard("b01");
  ASSERT_TRUE(links_->Add("b01", b01.address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 5s));
  std::shared_ptr<PendingCall> call =
      ExecForever(*links_->Get("b01"), {.deadline = absl::Now() + absl::Seconds(60)});
  ASSERT_TRUE(GetInfo(*links_->Get("b01")).ok());

  const auto frozen = Clock::now();
  b01.Signal(SIGSTOP);
  const std::optional<absl::Status> end = call->Wait(15s);
  b01.Signal(SIGCONT);
  ASSERT_TRUE(end.has_value()) << "still waiting 15 s after the board froze";
  std::printf("failed %.3f s after SIGSTOP: %s\n", Seconds(call->ended_at - frozen), end->ToString().c_str());
  EXPECT_EQ(end->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(end->message(), "board b01: Exec: the board stopped answering: no health snapshot for 3s");
}

TEST(AnswerReturnMargin, IsATenthOfTheCallersTimeBetween20And250Ms) {
  EXPECT_EQ(AnswerReturnMargin(absl::Milliseconds(100)), absl::Milliseconds(20));
  EXPECT_EQ(AnswerReturnMargin(absl::Seconds(1)), absl::Milliseconds(100));
  EXPECT_EQ(AnswerReturnMargin(absl::Seconds(2)), absl::Milliseconds(200));
  EXPECT_EQ(AnswerReturnMargin(absl::Seconds(60)), absl::Milliseconds(250));
}

TEST_F(BoardLinkTest, TheCallersDeadlineEndsTheCallOnTheBoardAndTheErrorSaysWhoWaitedHowLong) {
  ASSERT_NO_FATAL_FAILURE(StartBoard("b01"));
  ASSERT_TRUE(links_->Add("b01", lab_.board("b01").address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 5s));
  std::shared_ptr<BoardLink> b01 = links_->Get("b01");

  std::shared_ptr<PendingCall> call = ExecForever(*b01, {.deadline = absl::Now() + absl::Milliseconds(800)});
  const std::optional<absl::Status> end = call->Wait(10s);
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(end->message()), StartsWith("board b01: Exec: no answer within "));
  EXPECT_THAT(std::string(end->message()), HasSubstr("(the caller's deadline)"));
  // The board ended the snippet with the call.
  pb::ListThreadsRequest all;
  all.set_include_finished(true);
  EXPECT_TRUE(PollUntil(5s, [&] {
    absl::StatusOr<pb::ListThreadsResponse> listed =
        Wait<pb::ListThreadsResponse>([&](auto done) { b01->ListThreads(all, {}, std::move(done)); });
    if (!listed.ok()) return false;
    for (const pb::ProgramInfo& p : listed->programs()) {
      if (p.state() == pb::PROGRAM_STATE_RUNNING) return false;
    }
    return listed->programs_size() > 0;
  }));
}

TEST_F(BoardLinkTest, CallsBeyondABoardsLimitsAreRefusedNamingThemWhileOtherBoardsAnswer) {
  ASSERT_NO_FATAL_FAILURE(StartBoard("b01"));
  ASSERT_NO_FATAL_FAILURE(StartBoard("b02"));
  absl::StatusOr<LinkCredentials> creds =
      LinkCredentials::FromFiles(lab_.path("ca.pem"), lab_.path("fleetd.pem"), lab_.path("fleetd.key"));
  ASSERT_TRUE(creds.ok());
  LinkOptions options;
  options.max_calls_in_flight = 2;
  options.max_queued_calls = 1;
  LinkManager links(*creds, options, nullptr);
  ASSERT_TRUE(links.Add("b01", lab_.board("b01").address()).ok());
  ASSERT_TRUE(links.Add("b02", lab_.board("b02").address()).ok());
  ASSERT_TRUE(PollUntil(5s, [&] {
    return links.Status("b01")->state == BoardState::kOnline &&
           links.Status("b02")->state == BoardState::kOnline;
  }));
  std::shared_ptr<BoardLink> b01 = links.Get("b01");

  std::vector<std::shared_ptr<PendingCall>> busy;
  for (int i = 0; i < 3; ++i) busy.push_back(ExecForever(*b01));  // two run, one waits
  std::shared_ptr<PendingCall> refused = ExecForever(*b01);
  const std::optional<absl::Status> over = refused->Wait(5s);
  ASSERT_TRUE(over.has_value());
  EXPECT_EQ(over->code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over->message()), StartsWith("board b01: Exec: "));
  EXPECT_THAT(std::string(over->message()), HasSubstr("max_calls_in_flight 2, max_queued_calls 1"));

  // Another board is not held up by b01's.
  EXPECT_TRUE(GetInfo(*links.Get("b02")).ok());
  for (const auto& call : busy) EXPECT_FALSE(call->Get().has_value());
  // The calls end with the link.
  ASSERT_TRUE(links.Remove("b01").ok());
  for (const auto& call : busy) {
    ASSERT_TRUE(call->Get().has_value());
    EXPECT_EQ(call->Get()->code(), absl::StatusCode::kCancelled) << *call->Get();
  }
}

// A leak of one socket per connection attempt shows after this many attempts.
constexpr int kLeakAttempts = 8;
// Sockets one link may hold while it connects (its connection plus gRPC's
// wakeup descriptors and an attempt being torn down).
constexpr int kSocketsPerLink = 4;

TEST_F(BoardLinkTest, ConnectionAttemptsToAPeerThatNeverAnswersLeakNoSockets) {
  SilentPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Start());
  const int before = OpenSockets();

  ASSERT_TRUE(links_->Add("mute", peer.address()).ok());
  ASSERT_TRUE(PollUntil(90s, [&] { return peer.Accepted() >= kLeakAttempts; }))
      << "attempts: " << peer.Accepted() << "; " << links_->Status("mute")->message;
  const int during = OpenSockets();
  std::printf("%d attempts; sockets before %d, after %d\n", peer.Accepted(), before, during);
  EXPECT_LE(during - before, kSocketsPerLink);

  ASSERT_TRUE(links_->Remove("mute").ok());
  EXPECT_TRUE(PollUntil(10s, [&] { return OpenSockets() <= before; }))
      << "sockets after Remove: " << OpenSockets() << ", before Add: " << before;
}

TEST_F(BoardLinkTest, PeerThatNeverCompletesTheHandshakeIsReportedAsATimeout) {
  SilentPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Start());
  ASSERT_TRUE(links_->Add("mute", peer.address()).ok());

  ASSERT_TRUE(PollUntil(30s, [&] {
    return recorder_.ChangeTo("mute", BoardState::kOffline, Clock::time_point()).has_value() &&
           links_->Status("mute")->message != "connecting" && peer.Accepted() >= 2;
  }));
  const LinkStatus status = *links_->Status("mute");
  std::printf("mute: %s\n", status.message.c_str());
  EXPECT_EQ(status.state, BoardState::kOffline);
  EXPECT_THAT(status.message, HasSubstr("timed out"));
  EXPECT_THAT(status.message, ::testing::Not(HasSubstr("certificate")));
  for (const Recorder::Change& c : recorder_.Changes("mute")) {
    EXPECT_THAT(c.message, ::testing::Not(HasSubstr("certificate")));
  }
}

TEST_F(BoardLinkTest, FreezingAndKillingABoardOverAndOverLeaksNoSockets) {
  BoardProcess& b01 = StartBoard("b01");
  ASSERT_TRUE(links_->Add("b01", b01.address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 5s));
  const int before = OpenSockets();

  constexpr int kCycles = 4;
  for (int i = 0; i < kCycles; ++i) {
    // Frozen: connections to it are accepted by the kernel but never served.
    auto since = Clock::now();
    b01.Signal(SIGSTOP);
    ASSERT_TRUE(
        PollUntil(10s, [&] { return recorder_.ChangeTo("b01", BoardState::kOffline, since).has_value(); }));
    std::this_thread::sleep_for(3s);  // a few attempts against the frozen board
    b01.Signal(SIGCONT);
    ASSERT_TRUE(WaitOnline("b01", 20s)) << "cycle " << i << ": " << links_->Status("b01")->message;
    // Killed and restarted on the same port.
    since = Clock::now();
    b01.Kill9();
    ASSERT_TRUE(
        PollUntil(10s, [&] { return recorder_.ChangeTo("b01", BoardState::kOffline, since).has_value(); }));
    ASSERT_NO_FATAL_FAILURE(b01.Start());
    ASSERT_TRUE(WaitOnline("b01", 20s)) << "cycle " << i << ": " << links_->Status("b01")->message;
  }
  const int after = OpenSockets();
  std::printf("%d freeze and kill cycles; sockets before %d, after %d, connections %llu\n", kCycles, before,
              after, static_cast<unsigned long long>(links_->Status("b01")->connections));
  EXPECT_LE(after - before, kSocketsPerLink);
}

TEST_F(BoardLinkTest, AttemptsBeyondTheConnectCapWaitTheirTurnAndEveryLinkGetsOne) {
  SilentPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Start());
  absl::StatusOr<LinkCredentials> creds =
      LinkCredentials::FromFiles(lab_.path("ca.pem"), lab_.path("fleetd.pem"), lab_.path("fleetd.key"));
  ASSERT_TRUE(creds.ok());
  LinkOptions options;
  options.max_connecting = 2;
  Recorder recorder;
  LinkManager links(*creds, options, &recorder);

  constexpr int kLinks = 6;
  const auto added = Clock::now();
  for (int i = 0; i < kLinks; ++i) ASSERT_TRUE(links.Add(absl::StrCat("m", i), peer.address()).ok());
  // No attempt can end before the 2 s connect timeout: until then only the
  // first two links may have connected.
  int max_in_flight = 0;
  while (Clock::now() - added < 1500ms) {
    max_in_flight = std::max(max_in_flight, links.ConnectsInFlight());
    std::this_thread::sleep_for(10ms);
  }
  const int early = peer.Accepted();
  std::printf("connections accepted in the first 1.5 s: %d; most attempts in flight: %d\n", early,
              max_in_flight);
  EXPECT_LE(early, options.max_connecting);
  EXPECT_GE(early, 1);
  EXPECT_LE(max_in_flight, options.max_connecting);

  // Every link gets its turn.
  EXPECT_TRUE(PollUntil(60s, [&] {
    for (int i = 0; i < kLinks; ++i) {
      if (links.Status(absl::StrCat("m", i))->message == "connecting") return false;
    }
    return true;
  }));
  for (int i = 0; i < kLinks; ++i) {
    EXPECT_THAT(links.Status(absl::StrCat("m", i))->message, HasSubstr("timed out")) << "m" << i;
  }
}

TEST_F(BoardLinkTest, AddingHundredsOfBoardsReturnsWithoutWaitingForAnyConnection) {
  SilentPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Start());
  constexpr int kBoards = 500;
  const auto start = Clock::now();
  for (int i = 0; i < kBoards; ++i) ASSERT_TRUE(links_->Add(absl::StrCat("s", i), peer.address()).ok());
  const double add_s = Seconds(Clock::now() - start);
  std::printf("%d boards added in %.3f s; attempts in flight %d\n", kBoards, add_s,
              links_->ConnectsInFlight());
  EXPECT_LT(add_s, 5.0);
  EXPECT_EQ(links_->Statuses().size(), static_cast<size_t>(kBoards));
  EXPECT_LE(links_->ConnectsInFlight(), LinkOptions{}.max_connecting);
}

// For the sanitizers: links added and removed while their boards die, come
// back and freeze, with output streams open, a link held past its removal
// and the manager destroyed while attempts are pending.
TEST_F(BoardLinkTest, AddingAndRemovingLinksWhileBoardsDieAndReturnIsSafe) {
  SilentPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Start());
  constexpr int kBoards = 3;
  std::vector<BoardProcess*> boards;
  for (int i = 0; i < kBoards; ++i) boards.push_back(&StartBoard(absl::StrCat("b", i)));
  for (BoardProcess* b : boards) ASSERT_TRUE(links_->Add(b->name(), b->address()).ok());
  ASSERT_TRUE(links_->Add("mute", peer.address()).ok());
  ASSERT_TRUE(WaitOnline("b0", 10s));

  constexpr int kRounds = 12;
  std::vector<std::shared_ptr<BoardLink>> held;
  std::vector<std::shared_ptr<OutputStream>> streams;
  for (int round = 0; round < kRounds; ++round) {
    BoardProcess& victim = *boards[round % kBoards];
    std::shared_ptr<BoardLink> link = links_->Get(victim.name());
    if (link != nullptr && round % 2 == 0) {
      // An output stream of a program that does not exist ends on its own;
      // one that follows stays open until the link goes.
      pb::StreamOutputRequest request;
      request.set_program_id(1);
      request.set_follow(true);
      streams.push_back(link->StreamOutput(request, {}, nullptr, nullptr));
      held.push_back(link);
    }
    const int action = round % 3;
    if (action == 0) {
      victim.Kill9();
      ASSERT_NO_FATAL_FAILURE(victim.Start());
    } else if (action == 1) {
      victim.Signal(SIGSTOP);
      std::this_thread::sleep_for(200ms);
      victim.Signal(SIGCONT);
    } else {
      victim.Kill9();
    }
    ASSERT_TRUE(links_->Remove(victim.name()).ok());
    ASSERT_TRUE(links_->Add(victim.name(), victim.address()).ok());
    ASSERT_TRUE(links_->Remove("mute").ok());
    ASSERT_TRUE(links_->Add("mute", peer.address()).ok());
    if (action == 2) {
      std::this_thread::sleep_for(300ms);  // a refused attempt or two
      ASSERT_NO_FATAL_FAILURE(victim.Start());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * (round % 5)));
  }
  // A link held past its removal is dropped off the links' thread; its calls ended with the removal.
  std::thread drop([held = std::move(held)]() mutable { held.clear(); });
  drop.join();
  for (const auto& s : streams) s->Cancel();
  for (BoardProcess* b : boards)
    EXPECT_TRUE(WaitOnline(b->name(), 20s)) << links_->Status(b->name())->message;
  // Killed while the links are connected: they reconnect when the manager goes.
  boards[0]->Kill9();
  links_.reset();  // while "mute" and the killed board reconnect
}

}  // namespace
}  // namespace threadfleet::fleetd
