#include "server/fleetd/testing/lab_processes.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/time/time.h"

namespace threadfleet::fleetd::testing {

namespace {
constexpr auto kServingTimeout = std::chrono::seconds(20);
// The most connections a SilentPeer holds; later ones are accepted and closed
// at once (still counted).
constexpr int kSilentPeerMaxHeld = 4096;
// A SilentPeer's process ends after this long even if nobody kills it.
constexpr unsigned kSilentPeerLifetimeS = 900;
}  // namespace

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
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

bool PollUntil(std::chrono::steady_clock::duration timeout, const std::function<bool()>& fn) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!fn()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void RunPki(const std::vector<std::string>& args) {
  std::string cmd = std::string(THREADFLEET_SOURCE_DIR) + "/deploy/pki";
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

BoardProcess::BoardProcess(std::string name, int port, std::string flash, std::string cert, std::string key,
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

BoardProcess::~BoardProcess() { Kill9(); }

void BoardProcess::Start() {
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
      << name_ << ": no 'serving' line within 20 s";
}

void BoardProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  reader_.join();
}

void BoardProcess::Signal(int sig) {
  ASSERT_EQ(kill(pid_, sig), 0) << name_;
  if (sig != SIGSTOP) return;
  // kill() returns before every thread of the board has stopped: on a loaded
  // host it answered a call sent right after. Frozen means stopped.
  int status = 0;
  ASSERT_EQ(waitpid(pid_, &status, WUNTRACED), pid_) << name_;
  ASSERT_TRUE(WIFSTOPPED(status)) << name_ << ": status " << status;
}

int BoardProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  reader_.join();
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void BoardProcess::ReadOutput(int fd) {
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

SilentPeer::~SilentPeer() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (report_fd_ >= 0) close(report_fd_);
}

void SilentPeer::Start() {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(listen(listener, 128), 0);
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  pid_ = fork();
  ASSERT_GE(pid_, 0);
  if (pid_ == 0) {
    // Only system calls from here: the parent has threads.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(kSilentPeerLifetimeS);
    close(fds[0]);
    int held = 0;
    for (;;) {
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) continue;
      if (held < kSilentPeerMaxHeld) {
        ++held;
      } else {
        close(fd);
      }
      const char one = 1;
      if (write(fds[1], &one, 1) != 1) _exit(0);
    }
  }
  close(fds[1]);
  close(listener);
  report_fd_ = fds[0];
  fcntl(report_fd_, F_SETFL, O_NONBLOCK);
  address_ = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
}

int SilentPeer::Accepted() {
  char buf[256];
  for (ssize_t n; report_fd_ >= 0 && (n = read(report_fd_, buf, sizeof(buf))) > 0;) accepted_ += n;
  return accepted_;
}

TestLab::~TestLab() {
  for (auto& [name, board] : boards_) board->Kill9();
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
}

void TestLab::Init() {
  std::string pattern = (std::filesystem::temp_directory_path() / "threadfleet-lab.XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  dir_ = pattern;
  ASSERT_NO_FATAL_FAILURE(RunPki({"init", dir_}));
  ASSERT_NO_FATAL_FAILURE(RunPki({"issue", dir_, "board", "--server"}));
  ASSERT_NO_FATAL_FAILURE(RunPki({"issue", dir_, "fleetd", "--client"}));
}

void TestLab::IssueServer(const std::string& name) { RunPki({"issue", dir_, name, "--server"}); }

BoardProcess& TestLab::StartBoard(const std::string& name, const std::string& pki_dir) {
  const std::string pki = pki_dir.empty() ? dir_ : pki_dir;
  auto board = std::make_unique<BoardProcess>(name, FreePort(), path(name + ".lfs"), pki + "/board.pem",
                                              pki + "/board.key", pki + "/ca.pem");
  BoardProcess& ref = *board;
  boards_[name] = std::move(board);
  ref.Start();
  return ref;
}

}  // namespace threadfleet::fleetd::testing
