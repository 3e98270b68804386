// BoardConnections against real boards (`fleetboard serve` processes with a
// fresh lab PKI): health messages arrive until a cancel, other calls ride the
// same connection, every way a connection or call can end has its code and
// message, the per-connection limits hold, one thread serves many
// connections, and destroying the BoardConnections ends what runs. Host-name
// lookups go through a resolver the tests can hold up (GatedResolver), to
// show that a slow one stalls only its own connection.
#include "server/fleetd/links/board_connections.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
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
#include "server/fleetd/links/grpc_response.h"
#include "server/fleetd/testing/lab_processes.h"
#include "threadfleet/board/v1/board.pb.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;
using ::testing::HasSubstr;
using testing::PollUntil;
using testing::ReadFileOrEmpty;
using CallKind = BoardConnections::CallKind;
using namespace std::chrono_literals;

// What one call delivered, filled on the connections' thread: health
// snapshots, or the messages of any other call. Its record is shared with
// the callbacks, so a call may outlive the log (a test that stops early).
class CallLog {
 public:
  BoardConnections::MessageFn OnMessage() {
    return [r = record_](absl::string_view bytes) {
      absl::MutexLock lock(&r->mu);
      EXPECT_FALSE(r->end.has_value()) << "message after the end";
      r->messages.emplace_back(bytes);
      pb::WatchHealthResponse m;
      if (m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) && m.has_snapshot()) {
        ++r->snapshots;
        r->board = m.snapshot().board_name();
      }
      return absl::OkStatus();
    };
  }
  BoardConnections::DoneFn OnDone() {
    return [r = record_](const absl::Status& status) {
      absl::MutexLock lock(&r->mu);
      EXPECT_FALSE(r->end.has_value()) << "on_done twice";
      r->end = status;
    };
  }
  int snapshots() {
    absl::MutexLock lock(&record_->mu);
    return record_->snapshots;
  }
  std::vector<std::string> messages() {
    absl::MutexLock lock(&record_->mu);
    return record_->messages;
  }
  std::string board() {
    absl::MutexLock lock(&record_->mu);
    return record_->board;
  }
  std::optional<absl::Status> end() {
    absl::MutexLock lock(&record_->mu);
    return record_->end;
  }
  // The end, waited for up to `timeout`; UNKNOWN "no end" if none came.
  absl::Status WaitEnd(std::chrono::milliseconds timeout) {
    PollUntil(timeout, [&] { return end().has_value(); });
    return end().value_or(absl::UnknownError("no end"));
  }

 private:
  struct Record {
    absl::Mutex mu;
    int snapshots ABSL_GUARDED_BY(mu) = 0;
    std::vector<std::string> messages ABSL_GUARDED_BY(mu);
    std::string board ABSL_GUARDED_BY(mu);
    std::optional<absl::Status> end ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<Record> record_ = std::make_shared<Record>();
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

// Opens a connection to `address` and starts WatchHealth on it; returns
// the call's id. The connection's end is the call's (it is its only call).
uint64_t StartWatch(BoardConnections& connections, const std::string& address,
                    std::chrono::milliseconds period, absl::Duration connect_timeout, CallLog& log) {
  const uint64_t connection =
      connections.Connect({.address = address, .connect_timeout = connect_timeout}, nullptr);
  return connections.Call(connection,
                          {.method = "WatchHealth",
                           .body = FrameGrpcMessage(Every(period).SerializeAsString()),
                           .kind = CallKind::kControl},
                          log.OnMessage(), log.OnDone());
}

class BoardConnectionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(lab_.Init());
    ASSERT_NO_FATAL_FAILURE(UseResolver(SystemResolve));
  }
  void UseResolver(ResolveFn resolve) {
    connections_.reset();
    connections_ = std::make_unique<BoardConnections>(Credentials(), std::move(resolve));
    ASSERT_TRUE(connections_->setup_status().ok()) << connections_->setup_status();
  }
  LinkCredentials Credentials() const {
    return LinkCredentials{ReadFileOrEmpty(lab_.path("ca.pem")), ReadFileOrEmpty(lab_.path("fleetd.pem")),
                           ReadFileOrEmpty(lab_.path("fleetd.key"))};
  }
  std::string Port(const std::string& address) { return address.substr(address.rfind(':') + 1); }
  void TearDown() override { connections_.reset(); }

  uint64_t Watch(const std::string& address, CallLog& log, std::chrono::milliseconds period = 100ms) {
    return StartWatch(*connections_, address, period, absl::Seconds(2), log);
  }

  testing::TestLab lab_;
  std::unique_ptr<BoardConnections> connections_;
};

TEST_F(BoardConnectionsTest, SnapshotsArriveEveryPeriodUntilCancelled) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  CallLog log;
  const uint64_t id = Watch(lab_.board("b01").address(), log);
  EXPECT_NE(id, 0u);
  ASSERT_TRUE(PollUntil(5s, [&] { return log.snapshots() >= 5; })) << log.snapshots();
  EXPECT_EQ(log.board(), "b01");

  connections_->Cancel(id);
  const absl::Status end = log.WaitEnd(2000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kCancelled) << end;
  const int after_cancel = log.snapshots();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(log.snapshots(), after_cancel);
  connections_->Cancel(id);  // ended: ignored
}

TEST_F(BoardConnectionsTest, BoardNamedByHostNameIsReachedAndVerified) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  const std::string address = lab_.board("b01").address();
  CallLog log;
  Watch(absl::StrCat("localhost", address.substr(address.rfind(':'))),
        log);  // the certificate names localhost
  EXPECT_TRUE(PollUntil(5s, [&] { return log.snapshots() >= 1; })) << log.end().value_or(absl::OkStatus());
}

TEST_F(BoardConnectionsTest, SlowHostNameLookupHoldsUpNoOtherBoard) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  GatedResolver resolver("127.0.0.1");
  ASSERT_NO_FATAL_FAILURE(UseResolver(resolver.Fn()));
  const std::string address = lab_.board("b01").address();
  CallLog by_name;
  CallLog by_ip;
  StartWatch(*connections_, "localhost:" + Port(address), 100ms, absl::Seconds(60), by_name);
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
}

TEST_F(BoardConnectionsTest, LookupLongerThanTheConnectTimeoutEndsTheCall) {
  GatedResolver resolver("127.0.0.1");
  ASSERT_NO_FATAL_FAILURE(UseResolver(resolver.Fn()));
  CallLog log;
  StartWatch(*connections_, "slow.test:7001", 100ms, absl::Milliseconds(300), log);
  const absl::Status end = log.WaitEnd(5000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kDeadlineExceeded) << end;
  EXPECT_THAT(std::string(end.message()),
              HasSubstr("looking up the host of slow.test:7001 timed out after 300ms"));
  resolver.Open();  // its late answer goes nowhere
  connections_.reset();
}

TEST_F(BoardConnectionsTest, DestroyingDoesNotWaitForALookup) {
  GatedResolver resolver("127.0.0.1");
  ASSERT_NO_FATAL_FAILURE(UseResolver(resolver.Fn()));
  CallLog log;
  StartWatch(*connections_, "slow.test:7001", 100ms, absl::Seconds(60), log);
  ASSERT_TRUE(resolver.WaitForLookup());
  connections_.reset();  // with the lookup still blocked
  ASSERT_TRUE(log.end().has_value());
  EXPECT_EQ(log.end()->code(), absl::StatusCode::kCancelled);
  resolver.Open();
}

TEST_F(BoardConnectionsTest, CertificateThatNamesAnotherHostIsRefused) {
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

TEST_F(BoardConnectionsTest, OneThreadServesManyStreamsAtOnce) {
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
}

TEST_F(BoardConnectionsTest, KilledBoardEndsTheCallAsAClosedConnection) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  CallLog log;
  Watch(lab_.board("b01").address(), log);
  ASSERT_TRUE(PollUntil(5s, [&] { return log.snapshots() >= 1; }));
  lab_.board("b01").Kill9();
  const absl::Status end = log.WaitEnd(3000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kUnavailable) << end;
  EXPECT_THAT(std::string(end.message()), HasSubstr("closed the connection"));
}

TEST_F(BoardConnectionsTest, PortWithNobodyListeningEndsWithConnectRefused) {
  CallLog log;
  Watch(absl::StrCat("127.0.0.1:", ClosedPort()), log);
  const absl::Status end = log.WaitEnd(3000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kUnavailable) << end;
  EXPECT_THAT(std::string(end.message()), HasSubstr("TCP connect to 127.0.0.1:"));
  EXPECT_THAT(std::string(end.message()), HasSubstr("refused"));
}

TEST_F(BoardConnectionsTest, PeerThatNeverAnswersTheHandshakeTimesOut) {
  testing::SilentPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Start());
  CallLog log;
  const auto started = std::chrono::steady_clock::now();
  StartWatch(*connections_, peer.address(), 100ms, absl::Milliseconds(500), log);
  const absl::Status end = log.WaitEnd(3000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kDeadlineExceeded) << end;
  EXPECT_THAT(std::string(end.message()), HasSubstr("TLS handshake with 127.0.0.1:"));
  EXPECT_THAT(std::string(end.message()), HasSubstr("timed out after 500ms"));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 490ms);
}

TEST_F(BoardConnectionsTest, BoardOfAnotherCaIsRefusedWithTheReason) {
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

TEST_F(BoardConnectionsTest, BadAddressesEndWithInvalidArgument) {
  for (const std::string address : {"no-port", "[::1:80", "127.0.0.1:0", "127.0.0.1:http", "[::1]"}) {
    CallLog log;
    Watch(address, log);
    EXPECT_EQ(log.WaitEnd(2000ms).code(), absl::StatusCode::kInvalidArgument) << address;
  }
}

TEST_F(BoardConnectionsTest, CredentialsThatDoNotLoadEndEveryCallWithTheReason) {
  BoardConnections broken(LinkCredentials{ReadFileOrEmpty(lab_.path("ca.pem")), "not a certificate",
                                          ReadFileOrEmpty(lab_.path("fleetd.key"))});
  EXPECT_EQ(broken.setup_status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(broken.setup_status().message()), HasSubstr("certificate"));
  CallLog log;
  StartWatch(broken, "127.0.0.1:1", 100ms, absl::Seconds(1), log);
  EXPECT_EQ(log.WaitEnd(2000ms), broken.setup_status());
}

TEST_F(BoardConnectionsTest, DestroyingEndsRunningCallsBeforeItReturns) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  CallLog running;
  CallLog connecting;
  Watch(lab_.board("b01").address(), running);
  ASSERT_TRUE(PollUntil(5s, [&] { return running.snapshots() >= 1; }));
  testing::SilentPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Start());
  Watch(peer.address(), connecting);

  connections_.reset();
  ASSERT_TRUE(running.end().has_value());
  EXPECT_EQ(running.end()->code(), absl::StatusCode::kCancelled);
  ASSERT_TRUE(connecting.end().has_value());
  EXPECT_EQ(connecting.end()->code(), absl::StatusCode::kCancelled);
}

// ---- Calls beside the health stream, on its connection.

std::string Framed(const google::protobuf::Message& request) {
  return FrameGrpcMessage(request.SerializeAsString());
}

// An Exec of a snippet that sleeps forever (the VM stays free for snapshots).
BoardConnections::CallSpec SleepForever(absl::Time deadline = absl::InfiniteFuture(),
                                        absl::Time give_up = absl::InfiniteFuture()) {
  pb::ExecRequest exec;
  exec.set_source("import time\nwhile True:\n    time.sleep(0.01)\n");
  return {.method = "Exec", .body = Framed(exec), .deadline = deadline, .give_up = give_up};
}

TEST_F(BoardConnectionsTest, CallsRideTheConnectionOfTheHealthStream) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  const uint64_t connection = connections_->Connect({.address = lab_.board("b01").address()}, nullptr);
  CallLog health;
  connections_->Call(connection,
                     {.method = "WatchHealth", .body = Framed(Every(100ms)), .kind = CallKind::kControl},
                     health.OnMessage(), health.OnDone());
  CallLog info;
  connections_->Call(connection, {.method = "GetInfo", .body = FrameGrpcMessage("")}, info.OnMessage(),
                     info.OnDone());
  ASSERT_TRUE(info.WaitEnd(5000ms).ok()) << *info.end();
  ASSERT_EQ(info.messages().size(), 1u);
  pb::GetInfoResponse answer;
  ASSERT_TRUE(answer.ParseFromString(info.messages()[0]));
  EXPECT_EQ(answer.info().name(), "b01");

  CallLog threads;
  connections_->Call(connection, {.method = "ListThreads", .body = Framed(pb::ListThreadsRequest())},
                     threads.OnMessage(), threads.OnDone());
  EXPECT_TRUE(threads.WaitEnd(5000ms).ok()) << *threads.end();
  const int before = health.snapshots();
  EXPECT_TRUE(PollUntil(5s, [&] { return health.snapshots() >= before + 3; }));
  EXPECT_FALSE(health.end().has_value());
  EXPECT_EQ(connections_->connections(), 1u);
}

TEST_F(BoardConnectionsTest, ClosingAConnectionEndsEveryCallOnItWithTheGivenReason) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  absl::Mutex mu;
  std::optional<absl::Status> closed;
  const uint64_t connection =
      connections_->Connect({.address = lab_.board("b01").address()}, [&](const absl::Status& why) {
        absl::MutexLock lock(&mu);
        closed = why;
      });
  CallLog health;
  connections_->Call(connection,
                     {.method = "WatchHealth", .body = Framed(Every(100ms)), .kind = CallKind::kControl},
                     health.OnMessage(), health.OnDone());
  CallLog exec;
  connections_->Call(connection, SleepForever(), exec.OnMessage(), exec.OnDone());
  ASSERT_TRUE(PollUntil(5s, [&] { return health.snapshots() >= 1; }));

  const absl::Status why = absl::UnavailableError("the board stopped answering: no health snapshot for 3s");
  connections_->Close(connection, why);
  EXPECT_EQ(exec.WaitEnd(2000ms), why);
  EXPECT_EQ(health.WaitEnd(2000ms), why);
  ASSERT_TRUE(PollUntil(2s, [&] {
    absl::MutexLock lock(&mu);
    return closed.has_value();
  }));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(*closed, why);
}

TEST_F(BoardConnectionsTest, KilledBoardFailsTheCallsInFlightAtOnceAsALostConnection) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  const uint64_t connection = connections_->Connect({.address = lab_.board("b01").address()}, nullptr);
  CallLog exec;
  connections_->Call(connection,
                     SleepForever(absl::Now() + absl::Seconds(30), absl::Now() + absl::Seconds(31)),
                     exec.OnMessage(), exec.OnDone());
  CallLog info;
  connections_->Call(connection, {.method = "GetInfo", .body = FrameGrpcMessage("")}, info.OnMessage(),
                     info.OnDone());
  ASSERT_TRUE(info.WaitEnd(5000ms).ok());

  lab_.board("b01").Kill9();
  const absl::Status end = exec.WaitEnd(3000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kUnavailable) << end;
  EXPECT_THAT(std::string(end.message()), HasSubstr("connection lost: the board closed the connection"));
}

TEST_F(BoardConnectionsTest, CallsBeyondTheLimitsWaitTheirTurnOrAreRefusedNamingTheLimits) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  const uint64_t connection = connections_->Connect(
      {.address = lab_.board("b01").address(), .max_calls_in_flight = 1, .max_queued_calls = 1}, nullptr);
  CallLog running;
  const uint64_t first =
      connections_->Call(connection, SleepForever(), running.OnMessage(), running.OnDone());
  CallLog waiting;
  connections_->Call(connection, {.method = "GetInfo", .body = FrameGrpcMessage("")}, waiting.OnMessage(),
                     waiting.OnDone());
  CallLog refused;
  connections_->Call(connection, {.method = "GetInfo", .body = FrameGrpcMessage("")}, refused.OnMessage(),
                     refused.OnDone());
  const absl::Status over = refused.WaitEnd(2000ms);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted) << over;
  EXPECT_THAT(std::string(over.message()), HasSubstr("max_calls_in_flight 1"));
  EXPECT_THAT(std::string(over.message()), HasSubstr("max_queued_calls 1"));
  // The control calls (health, info) are not held back by the limit.
  CallLog health;
  connections_->Call(connection,
                     {.method = "WatchHealth", .body = Framed(Every(100ms)), .kind = CallKind::kControl},
                     health.OnMessage(), health.OnDone());
  EXPECT_TRUE(PollUntil(5s, [&] { return health.snapshots() >= 1; }));
  EXPECT_FALSE(waiting.end().has_value()) << "the second call waits behind the first";

  connections_->Cancel(first);
  EXPECT_EQ(running.WaitEnd(2000ms).code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(waiting.WaitEnd(5000ms).ok()) << *waiting.end();
}

TEST_F(BoardConnectionsTest, TheCallersDeadlineReachesTheBoardWhichEndsTheCall) {
  ASSERT_NO_FATAL_FAILURE(lab_.StartBoard("b01"));
  const uint64_t connection = connections_->Connect({.address = lab_.board("b01").address()}, nullptr);
  CallLog info;  // the connection is up once it answers
  connections_->Call(connection, {.method = "GetInfo", .body = FrameGrpcMessage("")}, info.OnMessage(),
                     info.OnDone());
  ASSERT_TRUE(info.WaitEnd(5000ms).ok());
  CallLog exec;
  // fleetd itself would give up only after 30 s: the end comes from the board.
  connections_->Call(connection,
                     SleepForever(absl::Now() + absl::Milliseconds(500), absl::Now() + absl::Seconds(30)),
                     exec.OnMessage(), exec.OnDone());
  const absl::Status end = exec.WaitEnd(5000ms);
  EXPECT_EQ(end.code(), absl::StatusCode::kDeadlineExceeded) << end;
  EXPECT_NE(end.message(), "") << "fleetd's own give-up has no words; this end is the board's";

  // And the snippet ended with the call on the board.
  EXPECT_TRUE(PollUntil(5s, [&] {
    CallLog list;
    pb::ListThreadsRequest request;
    request.set_include_finished(true);
    connections_->Call(connection, {.method = "ListThreads", .body = Framed(request)}, list.OnMessage(),
                       list.OnDone());
    if (!list.WaitEnd(5000ms).ok() || list.messages().size() != 1) return false;
    pb::ListThreadsResponse threads;
    if (!threads.ParseFromString(list.messages()[0])) return false;
    for (const pb::ProgramInfo& p : threads.programs()) {
      if (p.name() == "<exec>" && p.state() == pb::PROGRAM_STATE_RUNNING) return false;
    }
    return threads.programs_size() > 0;
  }));
}

TEST_F(BoardConnectionsTest, ABoardThatDoesNotAnswerByTheGiveUpTimeEndsTheCall) {
  testing::BoardProcess& b01 = lab_.StartBoard("b01");
  const uint64_t connection = connections_->Connect({.address = b01.address()}, nullptr);
  CallLog info;
  connections_->Call(connection, {.method = "GetInfo", .body = FrameGrpcMessage("")}, info.OnMessage(),
                     info.OnDone());
  ASSERT_TRUE(info.WaitEnd(5000ms).ok());
  b01.Signal(SIGSTOP);
  CallLog frozen;
  connections_->Call(connection,
                     {.method = "GetInfo",
                      .body = FrameGrpcMessage(""),
                      .deadline = absl::Now() + absl::Milliseconds(200),
                      .give_up = absl::Now() + absl::Milliseconds(400)},
                     frozen.OnMessage(), frozen.OnDone());
  const absl::Status end = frozen.WaitEnd(3000ms);
  b01.Signal(SIGCONT);
  EXPECT_EQ(end.code(), absl::StatusCode::kDeadlineExceeded) << end;
  EXPECT_EQ(end.message(), "");
}

TEST(GrpcTimeoutValueTest, MillisecondsRoundedUpOrSecondsWhenTooLong) {
  EXPECT_EQ(GrpcTimeoutValue(absl::Milliseconds(1500)), "1500m");
  EXPECT_EQ(GrpcTimeoutValue(absl::Microseconds(1)), "1m");
  EXPECT_EQ(GrpcTimeoutValue(absl::Microseconds(1001)), "2m");
  EXPECT_EQ(GrpcTimeoutValue(absl::Hours(100)), "360000S");
}

}  // namespace
}  // namespace threadfleet::fleetd
