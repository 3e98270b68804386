// Test support for fleetd's integration tests: a fresh lab PKI (deploy/pki)
// in a temporary directory and real `fleetboard serve` processes on free
// loopback ports. Built only for tests (target fleetd_testing_lab), with the
// fleetboard binary and the source tree compiled in.
//
// Example (in a GoogleTest fixture):
//
//   TestLab lab;                               // temp dir + CA + fleetd client cert
//   ASSERT_NO_FATAL_FAILURE(lab.Init());
//   ASSERT_NO_FATAL_FAILURE(lab.IssueServer("fleetd-api"));  // lab.dir() + "/fleetd-api.pem"
//   BoardProcess& b01 = lab.StartBoard("b01");                // waits for "serving"
//   links.Add("b01", b01.address());
//   // ~TestLab kills the boards (SIGKILL) and removes the directory.
#ifndef THREADFLEET_SERVER_FLEETD_TESTING_LAB_PROCESSES_H_
#define THREADFLEET_SERVER_FLEETD_TESTING_LAB_PROCESSES_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"

namespace threadfleet::fleetd::testing {

// A free TCP port on 127.0.0.1 right now (another process may take it
// before it is used); -1 if none could be found.
int FreePort();

// Calls `fn` every 10 ms until it returns true (then true) or `timeout`
// passes (then false).
bool PollUntil(std::chrono::steady_clock::duration timeout, const std::function<bool()>& fn);

// Runs `deploy/pki ARGS...` of the source tree; a failure is a fatal test
// failure (use ASSERT_NO_FATAL_FAILURE).
void RunPki(const std::vector<std::string>& args);

// Reads a whole file; empty if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// One `fleetboard serve` process; its output is echoed to stderr prefixed with
// the board's name. Killed (SIGKILL) when destroyed.
class BoardProcess {
 public:
  BoardProcess(std::string name, int port, std::string flash, std::string cert, std::string key,
               std::string ca);
  ~BoardProcess();

  BoardProcess(const BoardProcess&) = delete;
  BoardProcess& operator=(const BoardProcess&) = delete;

  const std::string& name() const { return name_; }
  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }

  // Starts the process and waits (20 s at most) for its "serving" line; a
  // failure is a fatal test failure.
  void Start();
  // kill -9: no chance to close anything cleanly. Idempotent.
  void Kill9();
  // Sends `sig` (e.g. SIGSTOP / SIGCONT to freeze and resume the board);
  // returns after a SIGSTOP once the board has stopped.
  void Signal(int sig);
  // SIGTERM and wait; returns the exit status (128 + signal if killed).
  int Stop();

 private:
  void ReadOutput(int fd);

  const std::string name_;
  const std::string address_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  std::thread reader_;
  std::unique_ptr<absl::Notification> serving_;
};

// A TCP listener on 127.0.0.1 that accepts every connection and never says a
// word: a board whose TLS handshake never completes. It runs in a child
// process so that the connections it holds are not counted among the test's
// own descriptors. Killed (SIGKILL) when destroyed.
//
//   SilentPeer peer;
//   ASSERT_NO_FATAL_FAILURE(peer.Start());
//   links.Add("mute", peer.address());        // stays OFFLINE: timed out
//   int attempts = peer.Accepted();           // connections accepted so far
class SilentPeer {
 public:
  SilentPeer() = default;
  ~SilentPeer();

  SilentPeer(const SilentPeer&) = delete;
  SilentPeer& operator=(const SilentPeer&) = delete;

  // Listens on a free port and forks the accepting process; a failure is a
  // fatal test failure.
  void Start();
  // "127.0.0.1:PORT"; empty before Start().
  const std::string& address() const { return address_; }
  // Connections accepted so far (each is one connection attempt of a client).
  int Accepted();

 private:
  std::string address_;
  pid_t pid_ = -1;
  int report_fd_ = -1;  // one byte from the child per accepted connection
  int accepted_ = 0;
};

// A temporary directory with a lab PKI and the boards started in it.
class TestLab {
 public:
  TestLab() = default;
  // Kills every board and removes the directory.
  ~TestLab();

  TestLab(const TestLab&) = delete;
  TestLab& operator=(const TestLab&) = delete;

  // Creates the directory, the lab CA (ca.pem), a board server certificate
  // (board.pem/.key) and fleetd's client certificate (fleetd.pem/.key).
  void Init();
  // Issues a server certificate NAME.pem/NAME.key for 127.0.0.1.
  void IssueServer(const std::string& name);

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& file) const { return dir_ + "/" + file; }

  // Starts a board on a free port with its flash in dir(); see BoardProcess.
  // Its certificate and CA come from `pki_dir` (board.pem, board.key,
  // ca.pem) when given: another lab's, to test a refusal; else from dir().
  BoardProcess& StartBoard(const std::string& name, const std::string& pki_dir = "");
  BoardProcess& board(const std::string& name) { return *boards_.at(name); }

 private:
  std::string dir_;
  std::map<std::string, std::unique_ptr<BoardProcess>> boards_;
};

}  // namespace threadfleet::fleetd::testing

#endif  // THREADFLEET_SERVER_FLEETD_TESTING_LAB_PROCESSES_H_
