// BoardLink and LinkManager against real boards: `fleetboard serve` processes
// on loopback ports with a fresh lab PKI (deploy/pki) in a temporary
// directory. Covers connect, the health stream, offline detection after a
// kill -9, reconnection after a restart, the unary helpers and a TLS refusal.
#include "server/fleetd/board_link.h"

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

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kServingTimeout = 20s;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::ostringstream out;
  for (unsigned int i = 0; i < len; i++) out << std::hex << std::setw(2) << std::setfill('0') << int{md[i]};
  return out.str();
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// Polls `fn` every 10 ms until it returns true or `timeout` passes.
bool PollUntil(Clock::duration timeout, const std::function<bool()>& fn) {
  const auto end = Clock::now() + timeout;
  while (!fn()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

void RunPki(const std::vector<std::string>& args) {
  std::string cmd = std::string(THREADFLEET_SOURCE_DIR) + "/deploy/pki";
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// One `fleetboard serve` process; its output is echoed to stderr, prefixed
// with the board's name.
class BoardProcess {
 public:
  BoardProcess(std::string name, int port, std::string flash, std::string cert, std::string key,
               std::string ca)
      : name_(std::move(name)),
        address_("127.0.0.1:" + std::to_string(port)),
        args_{THREADFLEET_FLEETBOARD,
              "serve",
              "--name",
              name_,
              "--listen",
              address_,
              "--flash",
              flash,
              "--cert",
              cert,
              "--key",
              key,
              "--ca",
              ca} {}

  ~BoardProcess() { Kill9(); }

  const std::string& address() const { return address_; }

  // Starts the process and waits for its "serving" line.
  void Start() {
    serving_ = std::make_unique<absl::Notification>();
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    std::vector<char*> argv;
    for (std::string& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] { ReadOutput(fd); });
    ASSERT_TRUE(serving_->WaitForNotificationWithTimeout(absl::FromChrono(kServingTimeout)))
        << name_ << ": no 'serving' line within " << Seconds(kServingTimeout) << " s";
  }

  // kill -9: no chance to close anything cleanly.
  void Kill9() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    reader_.join();
  }

  // Sends a signal (e.g. SIGSTOP to freeze the board without closing anything).
  void Signal(int sig) { ASSERT_EQ(kill(pid_, sig), 0); }

  // SIGTERM; returns the exit status.
  int Stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    reader_.join();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  void ReadOutput(int fd) {
    const std::string serving = "fleetboard: serving " + name_ + " on " + address_;
    FILE* in = fdopen(fd, "r");
    char line[1024];
    while (fgets(line, sizeof(line), in) != nullptr) {
      std::string text(line);
      while (!text.empty() && text.back() == '\n') text.pop_back();
      std::fprintf(stderr, "[%s] %s\n", name_.c_str(), text.c_str());
      if (text == serving && !serving_->HasBeenNotified()) serving_->Notify();
    }
    fclose(in);
  }

  const std::string name_;
  const std::string address_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  std::thread reader_;
  std::unique_ptr<absl::Notification> serving_;
};

// Records what the links report.
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
    char tmpl[] = "/tmp/threadfleet-links-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_NO_FATAL_FAILURE(RunPki({"init", dir_}));
    ASSERT_NO_FATAL_FAILURE(RunPki({"issue", dir_, "board", "--server"}));
    ASSERT_NO_FATAL_FAILURE(RunPki({"issue", dir_, "fleetd", "--client"}));
    absl::StatusOr<LinkCredentials> creds =
        LinkCredentials::FromFiles(dir_ + "/ca.pem", dir_ + "/fleetd.pem", dir_ + "/fleetd.key");
    ASSERT_TRUE(creds.ok()) << creds.status();
    links_ = std::make_unique<LinkManager>(*creds, LinkOptions{}, &recorder_);
  }

  void TearDown() override {
    links_.reset();
    for (auto& [name, board] : boards_) board->Kill9();
    std::filesystem::remove_all(dir_);
  }

  // Starts a board signed by the lab CA (or by another CA when `pki_dir` is
  // another directory) on a free port.
  BoardProcess& StartBoard(const std::string& name, const std::string& pki_dir = "") {
    const std::string pki = pki_dir.empty() ? dir_ : pki_dir;
    auto board = std::make_unique<BoardProcess>(name, FreePort(), dir_ + "/" + name + ".lfs",
                                                pki + "/board.pem", pki + "/board.key", pki + "/ca.pem");
    board->Start();
    return *(boards_[name] = std::move(board));
  }

  BoardState StateOf(const std::string& name) {
    std::optional<LinkStatus> s = links_->Status(name);
    return s ? s->state : BoardState::kOffline;
  }

  bool WaitOnline(const std::string& name, Clock::duration timeout) {
    return PollUntil(timeout, [&] { return StateOf(name) == BoardState::kOnline; });
  }

  std::string dir_;
  Recorder recorder_;
  std::map<std::string, std::unique_ptr<BoardProcess>> boards_;
  std::unique_ptr<LinkManager> links_;
};

TEST_F(BoardLinkTest, TwoBoardsComeOnlineWithinTwoSecondsAndStreamSnapshots) {
  ASSERT_NO_FATAL_FAILURE(StartBoard("b01"));
  ASSERT_NO_FATAL_FAILURE(StartBoard("b02"));

  const auto added = Clock::now();
  ASSERT_TRUE(links_->Add("b01", boards_["b01"]->address()).ok());
  ASSERT_TRUE(links_->Add("b02", boards_["b02"]->address()).ok());
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
  EXPECT_TRUE(links_->Add("b01", boards_["b01"]->address()).code() == absl::StatusCode::kAlreadyExists);

  EXPECT_EQ(boards_["b01"]->Stop(), 0);
  EXPECT_EQ(boards_["b02"]->Stop(), 0);
}

TEST_F(BoardLinkTest, KilledBoardIsOfflineWithinThreeSecondsAndOnlineAgainAfterRestart) {
  BoardProcess& b01 = StartBoard("b01");
  ASSERT_NO_FATAL_FAILURE(StartBoard("b02"));
  ASSERT_TRUE(links_->Add("b01", b01.address()).ok());
  ASSERT_TRUE(links_->Add("b02", boards_["b02"]->address()).ok());
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
  absl::StatusOr<pb::BoardInfo> info = links_->Get("b01")->GetInfo();
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
  ASSERT_TRUE(links_->Add("b01", boards_["b01"]->address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 2s));
  std::shared_ptr<BoardLink> b01 = links_->Get("b01");
  ASSERT_NE(b01, nullptr);

  absl::StatusOr<pb::BoardInfo> info = b01->GetInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name(), "b01");

  // Three chunks and a bit.
  std::string content = "import time\n";
  while (content.size() < 3 * 4096 + 100) content += "# filler line for a multi-chunk write\n";
  content += "while True:\n    print('tick')\n    time.sleep(0.05)\n";
  absl::StatusOr<pb::WriteFileResponse> written = b01->WriteFile("/app/loop.py", content);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->sha256_hex(), Sha256Hex(content));
  EXPECT_EQ(written->size_bytes(), content.size());
  absl::StatusOr<std::string> read = b01->ReadFile("/app/loop.py");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, content);
  absl::StatusOr<pb::ListFilesResponse> files = b01->ListFiles("/app");
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->entries_size(), 1);
  EXPECT_EQ(files->entries(0).name(), "loop.py");

  pb::StartProgramRequest start;
  start.set_path("/app/loop.py");
  absl::StatusOr<pb::StartProgramResponse> program = b01->StartProgram(start);
  ASSERT_TRUE(program.ok()) << program.status();

  pb::ListThreadsRequest list;
  list.set_program_id(program->program_id());
  absl::StatusOr<pb::ListThreadsResponse> threads = b01->ListThreads(list);
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
      stream,
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

  absl::StatusOr<pb::ThreadInfo> killed = b01->KillThread(program->main_thread_id(), absl::Seconds(1));
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_EQ(killed->state(), pb::THREAD_STATE_KILLED);

  absl::StatusOr<pb::ExecResponse> exec = b01->Exec("print(6 * 7)", absl::Seconds(10));
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(exec->output(), "42\n");

  // The board's own code and message, under the board's name.
  start.set_path("/no/such/script.py");
  absl::StatusOr<pb::StartProgramResponse> missing = b01->StartProgram(start);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), StartsWith("board b01: StartProgram: "));
  std::printf("error kept: %s\n", missing.status().ToString().c_str());
}

TEST_F(BoardLinkTest, BoardWithItsHeapNearlyFullIsDegradedAndSaysWhy) {
  ASSERT_NO_FATAL_FAILURE(StartBoard("b01"));
  ASSERT_TRUE(links_->Add("b01", boards_["b01"]->address()).ok());
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
  absl::StatusOr<pb::StartProgramResponse> program = links_->Get("b01")->StartProgram(hog);
  ASSERT_TRUE(program.ok()) << program.status();

  EXPECT_TRUE(PollUntil(5s, [&] { return StateOf("b01") == BoardState::kDegraded; }))
      << links_->Status("b01")->message;
  std::printf("b01: %s\n", links_->Status("b01")->message.c_str());
  EXPECT_THAT(links_->Status("b01")->message, HasSubstr("heap free"));
}

TEST_F(BoardLinkTest, BoardOfAnotherCaStaysOfflineWithATlsError) {
  const std::string other = dir_ + "/other";
  ASSERT_NO_FATAL_FAILURE(RunPki({"init", other}));
  ASSERT_NO_FATAL_FAILURE(RunPki({"issue", other, "board", "--server"}));
  ASSERT_NO_FATAL_FAILURE(StartBoard("b09", other));
  ASSERT_TRUE(links_->Add("b09", boards_["b09"]->address()).ok());

  std::this_thread::sleep_for(3s);
  const LinkStatus status = *links_->Status("b09");
  std::printf("b09: %s: %s\n", std::string(BoardStateName(status.state)).c_str(), status.message.c_str());
  EXPECT_EQ(status.state, BoardState::kOffline);
  EXPECT_THAT(status.message, HasSubstr("TLS handshake with the board failed"));
  EXPECT_EQ(recorder_.Snapshots("b09"), 0);
  for (const Recorder::Change& c : recorder_.Changes("b09")) EXPECT_EQ(c.state, BoardState::kOffline);

  absl::StatusOr<pb::BoardInfo> info = links_->Get("b09")->GetInfo();
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(info.status().message()), StartsWith("board b09: GetInfo: "));
}

TEST_F(BoardLinkTest, RemovedBoardIsForgottenAndReportsNothingMore) {
  ASSERT_NO_FATAL_FAILURE(StartBoard("b01"));
  ASSERT_TRUE(links_->Add("b01", boards_["b01"]->address()).ok());
  ASSERT_TRUE(WaitOnline("b01", 2s));

  ASSERT_TRUE(links_->Remove("b01").ok());
  EXPECT_FALSE(links_->Status("b01").has_value());
  EXPECT_EQ(links_->Remove("b01").code(), absl::StatusCode::kNotFound);
  const int snapshots = recorder_.Snapshots("b01");
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(recorder_.Snapshots("b01"), snapshots);
}

}  // namespace
}  // namespace threadfleet::fleetd
