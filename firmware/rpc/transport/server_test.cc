// The control channel's listener on the board's own network stack: lwIP over
// slirp, real mutual TLS (a PKI made by deploy/pki) and gRPC C++ as the
// client, through the port forward on 127.0.0.1. A small test service stands
// in for BoardControl (the listener knows nothing of the board).
//
// lwIP's thread lives as long as the process: ctest runs each test in a
// process of its own (gtest_discover_tests in CMakeLists.txt).
#include "firmware/rpc/transport/server.h"

#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "firmware/net/netstack.h"

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// ---- The test service: Echo answers at once, Hold never (until cancelled).

std::mutex g_mu;
std::condition_variable g_cv;
int g_held = 0;       // Hold calls started
int g_held_done = 0;  // Hold calls gone (on_done)

void Bump(int *counter) {
  std::lock_guard<std::mutex> lock(g_mu);
  ++*counter;
  g_cv.notify_all();
}

bool WaitFor(int *counter, int at_least, milliseconds timeout) {
  std::unique_lock<std::mutex> lock(g_mu);
  return g_cv.wait_for(lock, timeout, [&] { return *counter >= at_least; });
}

void EchoMessage(rpc_call_t *call, const uint8_t *msg, size_t len) {
  rpc_call_send(call, msg, len);
  rpc_call_finish(call, RPC_STATUS_OK, nullptr);
}
void HoldMessage(rpc_call_t *call, const uint8_t *, size_t) { Bump(&g_held); }
void HoldDone(rpc_call_t *) { Bump(&g_held_done); }

const rpc_method_t kMethods[] = {
    {"Echo", false, false, EchoMessage, nullptr, nullptr, nullptr},
    {"Hold", false, true, HoldMessage, nullptr, nullptr, HoldDone},
};
const rpc_service_t kService = {"threadfleet.test.v1.Test", kMethods, 2};

// ---- Fixture: a PKI, the network, the listener

std::string Slurp(const std::string &path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A plain TCP connection to 127.0.0.1:port (the board's port forward), or -1.
int ConnectTcp(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/server_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const std::string &args :
         {"init " + dir_, "issue " + dir_ + " board --server", "issue " + dir_ + " fleetd --client"}) {
      std::string cmd =
          std::string(THREADFLEET_SOURCE_DIR "/deploy/pki ") + args + " 2>>" + dir_ + "/pki.log";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << Slurp(dir_ + "/pki.log");
    }
    char err[256] = "";
    tls_ = rpc_tls_config_new((dir_ + "/board.pem").c_str(), (dir_ + "/board.key").c_str(),
                              (dir_ + "/ca.pem").c_str(), err, sizeof err);
    ASSERT_NE(tls_, nullptr) << err;
    port_ = FreePort();
    net_config_t net = {"127.0.0.1", static_cast<uint16_t>(port_)};
    ASSERT_TRUE(net_start(&net, err, sizeof err)) << err;
    net_up_ = true;
  }

  void TearDown() override {
    if (serving_) rpc_server_stop();
    if (net_up_) net_stop();
    rpc_tls_config_free(tls_);
    EXPECT_EQ(std::system(("rm -rf '" + dir_ + "'").c_str()), 0);
  }

  void Serve(rpc_server_config_t config) {
    config.port = static_cast<uint16_t>(port_);
    config.tls = tls_;
    config.service = &kService;
    char err[256] = "";
    ASSERT_TRUE(rpc_server_start(&config, err, sizeof err)) << err;
    serving_ = true;
  }

  std::shared_ptr<grpc::Channel> NewChannel() {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = Slurp(dir_ + "/ca.pem");
    tls.pem_cert_chain = Slurp(dir_ + "/fleetd.pem");
    tls.pem_private_key = Slurp(dir_ + "/fleetd.key");
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_), grpc::SslCredentials(tls), args);
  }

  static grpc::Status Echo(grpc::Channel *channel, const std::string &text) {
    grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel *) {}));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::CompletionQueue cq;
    grpc::Slice slice(text);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::Status status;
    auto call = stub.PrepareUnaryCall(&ctx, "/threadfleet.test.v1.Test/Echo", request, &cq);
    call->StartCall();
    call->Finish(&response, &status, reinterpret_cast<void *>(1));
    void *tag;
    bool ok;
    cq.Next(&tag, &ok);
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    return status;
  }

  // A Hold call that stays open (its stream keeps the connection from idling)
  // until `ctx` is cancelled; runs on its own thread.
  std::thread HoldOpen(grpc::Channel *channel, grpc::ClientContext *ctx) {
    return std::thread([channel, ctx] {
      grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel *) {}));
      grpc::CompletionQueue cq;
      grpc::Slice slice(std::string("x"));
      auto call = stub.PrepareCall(ctx, "/threadfleet.test.v1.Test/Hold", &cq);
      void *tag;
      bool ok;
      call->StartCall(reinterpret_cast<void *>(1));
      cq.Next(&tag, &ok);
      call->Write(grpc::ByteBuffer(&slice, 1), reinterpret_cast<void *>(2));
      cq.Next(&tag, &ok);
      call->WritesDone(reinterpret_cast<void *>(3));
      cq.Next(&tag, &ok);
      grpc::ByteBuffer response;
      call->Read(&response, reinterpret_cast<void *>(4));
      cq.Next(&tag, &ok);
      grpc::Status status;
      call->Finish(&status, reinterpret_cast<void *>(5));
      cq.Next(&tag, &ok);
      cq.Shutdown();
      while (cq.Next(&tag, &ok)) {
      }
    });
  }

  // Polls the listener's figures until pred holds; false after `timeout`.
  template <typename Pred>
  static bool WaitForStats(Pred pred, milliseconds timeout) {
    const auto give_up = Clock::now() + timeout;
    for (;;) {
      rpc_server_stats_t s;
      rpc_server_stats(&s);
      if (pred(s)) return true;
      if (Clock::now() > give_up) return false;
      std::this_thread::sleep_for(milliseconds(20));
    }
  }

  std::string dir_;
  rpc_tls_config_t *tls_ = nullptr;
  int port_ = 0;
  bool net_up_ = false;
  bool serving_ = false;
};

TEST_F(ServerTest, EveryConnectionThreadRunsTheExitHookOnItsWayOut) {
  static std::atomic<int> exits{0};
  rpc_server_config_t config = rpc_server_default_config();
  config.on_thread_exit = [](void *ctx) { static_cast<std::atomic<int> *>(ctx)->fetch_add(1); };
  config.on_thread_exit_ctx = &exits;
  Serve(config);
  for (int i = 0; i < 3; i++) {
    auto channel = NewChannel();
    ASSERT_TRUE(Echo(channel.get(), "hi").ok());
  }
  EXPECT_TRUE(
      WaitForStats([](const rpc_server_stats_t &s) { return s.connections == 0; }, milliseconds(10000)));
  EXPECT_EQ(exits.load(), 3);
}

TEST_F(ServerTest, APeerThatVanishedIsDroppedByKeepalive) {
  rpc_server_config_t config = rpc_server_default_config();
  config.keepalive_ms = 1000;  // probes from 1 s of silence, 3 of them 1 s apart (lwIP's whole seconds)
  Serve(config);
  auto channel = NewChannel();
  grpc::ClientContext ctx;
  std::thread holder = HoldOpen(channel.get(), &ctx);
  ASSERT_TRUE(WaitFor(&g_held, 1, milliseconds(10000)));

  // The network goes away under the board without a FIN or RST (slirp
  // stops: lwIP's frames go nowhere), as when a cable is cut.
  net_stop();
  net_up_ = false;

  EXPECT_TRUE(
      WaitForStats([](const rpc_server_stats_t &s) { return s.idle_closed == 1 && s.connections == 0; },
                   milliseconds(20000)))
      << "the half-open connection still holds its slot";
  EXPECT_TRUE(WaitFor(&g_held_done, 1, milliseconds(1000))) << "its call got on_done";
  ctx.TryCancel();
  holder.join();
}

TEST_F(ServerTest, StatsReportTheLimitsAndTheBudget) {
  rpc_server_config_t config = rpc_server_default_config();
  config.max_connections = 3;
  config.budget_bytes = 256 * 1024;
  Serve(config);
  auto channel = NewChannel();
  ASSERT_TRUE(Echo(channel.get(), "hi").ok());
  rpc_server_stats_t s;
  rpc_server_stats(&s);
  EXPECT_EQ(s.max_connections, 3u);
  EXPECT_EQ(s.connections, 1u);
  EXPECT_EQ(s.budget_bytes, 256u * 1024);
  EXPECT_EQ(s.buffered_bytes, 0u);
  EXPECT_EQ(s.refused_connections + s.failed_handshakes + s.idle_closed + s.send_timeouts + s.refused_calls,
            0u);
}

// gRPC C++ as python-grpcio: once a connect failed, calls fail fast while the
// channel reconnects, and only gRPC's backup poller (a pass every 5 s) moves
// the new connection's handshake on (server.h, RPC_SERVER_HANDSHAKE_TIMEOUT_MS).
TEST_F(ServerTest, AChannelWhoseConnectFailedAnswersFailFastCallsOnceTheBoardListens) {
  auto channel = NewChannel();
  // slirp's forward takes the connection, lwIP refuses it: the connect fails.
  ASSERT_FALSE(Echo(channel.get(), "too early").ok());
  Serve(rpc_server_default_config());

  const auto give_up = Clock::now() + std::chrono::seconds(30);
  grpc::Status status = Echo(channel.get(), "hi");
  while (!status.ok() && Clock::now() < give_up) {
    std::this_thread::sleep_for(milliseconds(100));
    status = Echo(channel.get(), "hi");
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
  rpc_server_stats_t s;
  rpc_server_stats(&s);
  EXPECT_EQ(s.failed_handshakes, 0u) << "a reconnect's handshake timed out on the board";
}

TEST_F(ServerTest, AStopAbandonsAHandshakeInProgressWithoutCountingItAsFailed) {
  rpc_server_config_t config = rpc_server_default_config();
  config.handshake_timeout_ms = 20000;  // far longer than a stop takes
  Serve(config);
  int silent = ConnectTcp(port_);  // never starts TLS
  ASSERT_GE(silent, 0);
  ASSERT_TRUE(
      WaitForStats([](const rpc_server_stats_t &s) { return s.connections == 1; }, milliseconds(10000)));

  const auto asked = Clock::now();
  rpc_server_stop();
  const auto stopped = Clock::now();
  serving_ = false;

  // A loose bound: a stop that waits for the handshake takes all 20 s.
  EXPECT_LT(stopped - asked, milliseconds(config.handshake_timeout_ms / 2))
      << "the stop waited for the handshake";
  rpc_server_stats_t s;
  rpc_server_stats(&s);
  EXPECT_EQ(s.connections, 0u);
  EXPECT_EQ(s.failed_handshakes, 0u) << "a handshake cut short by a stop was refused by nobody";
  close(silent);
}

}  // namespace
