// HealthStreams against real boards (`fleetboard serve` processes with a
// fresh lab PKI): messages arrive until a cancel, every way a call can end
// has its code and message, one thread serves many streams, and destroying
// the HealthStreams ends what runs. Host-name lookups go through a resolver
// the tests can hold up (GatedResolver), to show that a slow one stalls only
// its own call.
#include "server/fleetd/links/health_streams.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/fleetd/testing/lab_processes.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;
using ::testing::HasSubstr;
using testing::PollUntil;
using testing::ReadFileOrEmpty;
using namespace std::chrono_literals;

// What one call delivered, filled on the stream thread.
class CallLog {
 public:
  HealthStreams::MessageFn OnMessage() {
    return [this](const pb::WatchHealthResponse& m) {
      absl::MutexLock lock(&mu_);
      EXPECT_FALSE(end_.has_value()) << "message after the end";
      if (m.has_snapshot()) {
        ++snapshots_;
        board_ = m.snapshot().board_name();
      }
    };
  }
  HealthStreams::DoneFn OnDone() {
    return [this](const absl::Status& status) {
      absl::MutexLock lock(&mu_);
      EXPECT_FALSE(end_.has_value()) << "on_done twice";
      end_ = status;
    };
  }
  int snapshots() {
    absl::MutexLock lock(&mu_);
    return snapshots_;
  }
  std::string board() {
    absl::MutexLock lock(&mu_);
    return board_;
  }
  std::optional<absl::Status> end() {
    absl::MutexLock lock(&mu_);
    return end_;
  }
  // The end, waited for up to `timeout`; UNKNOWN "no end" if none came.
  absl::Status WaitEnd(std::chrono::milliseconds timeout) {
    PollUntil(timeout, [&] { return end().has_value(); });
    return end().value_or(absl::UnknownError("no end"));
  }

 private:
  absl::Mutex mu_;
  int snapshots_ ABSL_GUARDED_BY(mu_) = 0;
  std::string board_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> end_ ABSL_GUARDED_BY(mu_);
};

pb::WatchHealthRequest Every(std::chrono::milliseconds period) {
  pb::WatchHealthRequest request;
  request.set_period_ms(static_cast<uint32_t>(period.count()));
  return request;
}

// A host-name lookup that waits until the test opens the gate, then resolves
// to `answer` (an IP literal: no DNS). Its state is shared with the lookup
// thread, which may still be in Fn() when the test ends.
class GatedResolver {
 public:
  explicit GatedResolver(std::string answer) : state_(std::make_shared<State>()) { state_->answer = answer; }
  ResolveFn Fn() {
    return [state = state_](const std::string&, const std::string& port) -> absl::StatusOr<SocketAddress> {
      absl::MutexLock lock(&state->mu);
      ++state->lookups;
      state->mu.Await(absl::Condition(&state->open));
      return SystemResolve(state->answer, port);
    };
  }
  void Open() {
    absl::MutexLock lock(&state_->mu);
    state_->open = true;
  }
  bool WaitForLookup() {
    return PollUntil(5s, [this] {
      absl::MutexLock lock(&state_->mu);
      return state_->lookups > 0;
    });
  }

 private:
  struct State {
    absl::Mutex mu;
    bool open = false;
    int lookups = 0;
    std::string answer;
  };
  std::shared_ptr<State> state_;
};

// A loopback port nothing listens on.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof addr;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), size);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size);
  close(fd);
  return ntohs(addr.sin_port);
}

class HealthStreamsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(lab_.Init());
    ASSERT_NO_FATAL_FAILURE(UseResolver(SystemResolve));
  }
  void UseResolver(ResolveFn resolve) {
    streams_.reset();
    streams_ = std::make_unique<HealthStreams>(
        LinkCredentials{ReadFileOrEmpty(lab_.path("ca.pem")), ReadFileOrEmpty(lab_.path("fleetd.pem")),
                        ReadFileOrEmpty(lab_.path("fleetd.key"))},
        std::move(resolve));
    ASSERT_TRUE(streams_->setup_status().ok()) << streams_->setup_status();
  }
  std::string Port(const std::string& address) { return address.substr(address.rfind(':') + 1); }
  void TearDown() override { streams_.reset(); }

  uint64_t Watch(const std::string& address, CallLog& log, std::chrono::milliseconds period = 100ms) {
    return streams_->Watch(address, Every(period), absl::Seconds(2), log.OnMessage(), log.OnDone());
  }

  testing::TestLab lab_;
  std::unique_ptr<HealthStreams> streams_;
};

TEST_F(HealthStreamsTest, SnapshotsArriveEveryPeriodUntilCancelled) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  CallLog log;
  const uint64_t id = Watch(lab_.board("b01").address(), log);
  EXPECT_NE(id, 0u);
  ASSERT_TRUE(PollUntil(5s, [&] { return log.snapshots() >= 5; })) << log.snapshots();
  EXPECT_EQ(log.board(), "b01");

  streams_->Cancel(id);
  const absl::Status end = log.WaitEnd(2000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kCancelled) << end;
  const int after_cancel = log.snapshots();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(log.snapshots(), after_cancel);
  streams_->Cancel(id);  // ended: ignored
}

TEST_F(HealthStreamsTest, BoardNamedByHostNameIsReachedAndVerified) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  const std::string address = lab_.board("b01").address();
  CallLog log;
  Watch(absl::StrCat("localhost", address.substr(address.rfind(':'))),
        log);  // the certificate names localhost
  EXPECT_TRUE(PollUntil(5s, [&] { return log.snapshots() >= 1; })) << log.end().value_or(absl::OkStatus());
  streams_.reset();  // ends the call before its log goes
}

TEST_F(HealthStreamsTest, SlowHostNameLookupHoldsUpNoOtherBoard) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  GatedResolver resolver("127.0.0.1");
  ASSERT_NO_FATAL_FAILURE(UseResolver(resolver.Fn()));
  const std::string address = lab_.board("b01").address();
  CallLog by_name;
  CallLog by_ip;
  streams_->Watch("localhost:" + Port(address), Every(100ms), absl::Seconds(60), by_name.OnMessage(),
                  by_name.OnDone());
  ASSERT_TRUE(resolver.WaitForLookup());
  Watch(address, by_ip);
  // The lookup still waits; the board dialled by address streams anyway.
  EXPECT_TRUE(PollUntil(10s, [&] { return by_ip.snapshots() >= 2; }))
      << by_ip.end().value_or(absl::OkStatus());
  EXPECT_EQ(by_name.snapshots(), 0);
  EXPECT_FALSE(by_name.end().has_value());
  resolver.Open();
  EXPECT_TRUE(PollUntil(10s, [&] { return by_name.snapshots() >= 1; }))
      << by_name.end().value_or(absl::OkStatus());
  streams_.reset();  // ends the calls before their logs go
}

TEST_F(HealthStreamsTest, LookupLongerThanTheConnectTimeoutEndsTheCall) {
  GatedResolver resolver("127.0.0.1");
  ASSERT_NO_FATAL_FAILURE(UseResolver(resolver.Fn()));
  CallLog log;
  streams_->Watch("slow.test:7001", Every(100ms), absl::Milliseconds(300), log.OnMessage(), log.OnDone());
  const absl::Status end = log.WaitEnd(5000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kDeadlineExceeded) << end;
  EXPECT_THAT(std::string(end.message()),
              HasSubstr("looking up the host of slow.test:7001 timed out after 300ms"));
  resolver.Open();  // its late answer goes nowhere
  streams_.reset();
}

TEST_F(HealthStreamsTest, DestroyingDoesNotWaitForALookup) {
  GatedResolver resolver("127.0.0.1");
  ASSERT_NO_FATAL_FAILURE(UseResolver(resolver.Fn()));
  CallLog log;
  streams_->Watch("slow.test:7001", Every(100ms), absl::Seconds(60), log.OnMessage(), log.OnDone());
  ASSERT_TRUE(resolver.WaitForLookup());
  streams_.reset();  // with the lookup still blocked
  ASSERT_TRUE(log.end().has_value());
  EXPECT_EQ(log.end()->code(), absl::StatusCode::kCancelled);
  resolver.Open();
}

TEST_F(HealthStreamsTest, CertificateThatNamesAnotherHostIsRefused) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  GatedResolver resolver("127.0.0.1");  // the board's address, under a name its certificate lacks
  resolver.Open();
  ASSERT_NO_FATAL_FAILURE(UseResolver(resolver.Fn()));
  CallLog log;
  Watch("board-elsewhere.test:" + Port(lab_.board("b01").address()), log);
  const absl::Status end = log.WaitEnd(3000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kUnavailable) << end;
  EXPECT_THAT(std::string(end.message()),
              HasSubstr("TLS handshake failed: the board's certificate is refused: hostname mismatch"));
  EXPECT_EQ(log.snapshots(), 0);
}

TEST_F(HealthStreamsTest, OneThreadServesManyStreamsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b02"));
  std::vector<std::unique_ptr<CallLog>> logs;
  for (int i = 0; i < 12; ++i) {
    logs.push_back(std::make_unique<CallLog>());
    Watch(lab_.board(i % 2 == 0 ? "b01" : "b02").address(), *logs.back());
  }
  EXPECT_TRUE(PollUntil(10s, [&] {
    for (auto& log : logs) {
      if (log->snapshots() < 3) return false;
    }
    return true;
  }));
  for (auto& log : logs) EXPECT_FALSE(log->end().has_value()) << *log->end();
  streams_.reset();  // ends the calls before their logs go
}

TEST_F(HealthStreamsTest, KilledBoardEndsTheCallAsAClosedConnection) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  CallLog log;
  Watch(lab_.board("b01").address(), log);
  ASSERT_TRUE(PollUntil(5s, [&] { return log.snapshots() >= 1; }));
  lab_.board("b01").Kill9();
  const absl::Status end = log.WaitEnd(3000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kUnavailable) << end;
  EXPECT_THAT(std::string(end.message()), HasSubstr("closed the connection"));
}

TEST_F(HealthStreamsTest, PortWithNobodyListeningEndsWithConnectRefused) {
  CallLog log;
  Watch(absl::StrCat("127.0.0.1:", ClosedPort()), log);
  const absl::Status end = log.WaitEnd(3000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kUnavailable) << end;
  EXPECT_THAT(std::string(end.message()), HasSubstr("TCP connect to 127.0.0.1:"));
  EXPECT_THAT(std::string(end.message()), HasSubstr("refused"));
}

TEST_F(HealthStreamsTest, PeerThatNeverAnswersTheHandshakeTimesOut) {
  testing::SilentPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Start());
  CallLog log;
  const auto started = std::chrono::steady_clock::now();
  streams_->Watch(peer.address(), Every(100ms), absl::Milliseconds(500), log.OnMessage(), log.OnDone());
  const absl::Status end = log.WaitEnd(3000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kDeadlineExceeded) << end;
  EXPECT_THAT(std::string(end.message()), HasSubstr("TLS handshake with 127.0.0.1:"));
  EXPECT_THAT(std::string(end.message()), HasSubstr("timed out after 500ms"));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 490ms);
}

TEST_F(HealthStreamsTest, BoardOfAnotherCaIsRefusedWithTheReason) {
  const std::string other = lab_.path("other");
  ASSERT_NO_FATAL_FAILURE(testing::RunPki({"init", other}));
  ASSERT_NO_FATAL_FAILURE(testing::RunPki({"issue", other, "board", "--server"}));
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b09", other));
  CallLog log;
  Watch(lab_.board("b09").address(), log);
  const absl::Status end = log.WaitEnd(3000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kUnavailable) << end;
  EXPECT_THAT(std::string(end.message()),
              HasSubstr("TLS handshake failed: the board's certificate is refused"));
  EXPECT_EQ(log.snapshots(), 0);
}

TEST_F(HealthStreamsTest, BadAddressesEndWithInvalidArgument) {
  for (const std::string address : {"no-port", "[::1:80", "127.0.0.1:0", "127.0.0.1:http", "[::1]"}) {
    CallLog log;
    Watch(address, log);
    EXPECT_EQ(log.WaitEnd(2000ms).code(), absl::StatusCode::kInvalidArgument) << address;
  }
}

TEST_F(HealthStreamsTest, CredentialsThatDoNotLoadEndEveryCallWithTheReason) {
  HealthStreams broken(LinkCredentials{ReadFileOrEmpty(lab_.path("ca.pem")), "not a certificate",
                                       ReadFileOrEmpty(lab_.path("fleetd.key"))});
  EXPECT_EQ(broken.setup_status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(broken.setup_status().message()), HasSubstr("certificate"));
  CallLog log;
  broken.Watch("127.0.0.1:1", Every(100ms), absl::Seconds(1), log.OnMessage(), log.OnDone());
  EXPECT_EQ(log.WaitEnd(2000ms), broken.setup_status());
}

TEST_F(HealthStreamsTest, DestroyingEndsRunningCallsBeforeItReturns) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  CallLog running;
  CallLog connecting;
  Watch(lab_.board("b01").address(), running);
  ASSERT_TRUE(PollUntil(5s, [&] { return running.snapshots() >= 1; }));
  testing::SilentPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Start());
  Watch(peer.address(), connecting);

  streams_.reset();
  ASSERT_TRUE(running.end().has_value());
  EXPECT_EQ(running.end()->code(), absl::StatusCode::kCancelled);
  ASSERT_TRUE(connecting.end().has_value());
  EXPECT_EQ(connecting.end()->code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace threadfleet::fleetd
