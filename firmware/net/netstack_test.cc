// The board's network end to end: an lwIP echo server on the board side,
// ordinary OS sockets on the host side, real slirp in between (loopback only).
#include "firmware/net/netstack.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <lwip/netif.h>
#include <lwip/sockets.h>
#include <lwip/tcpip.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Bytes = std::vector<uint8_t>;

// A port the OS reports free right now (bind to 0, read it back, close).
uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A host (OS) socket listening on 127.0.0.1:port.
int OsListen(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  EXPECT_EQ(listen(fd, 8), 0);
  return fd;
}

Bytes Pattern(size_t n, uint32_t seed) {
  Bytes b(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto &c : b) {
    x = x * 1103515245u + 12345u;
    c = static_cast<uint8_t>(x >> 16);
  }
  return b;
}

// An echo server on the board's lwIP stack: one thread accepting on
// 0.0.0.0:port, one thread per connection echoing until the peer closes.
class LwipEchoServer {
 public:
  explicit LwipEchoServer(uint16_t port) {
    listen_fd_ = lwip_socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(listen_fd_, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(port);
    EXPECT_EQ(lwip_bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
    EXPECT_EQ(lwip_listen(listen_fd_, 16), 0);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~LwipEchoServer() {
    stop_ = true;
    acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto &t : connections_) t.join();
    lwip_close(listen_fd_);
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      // lwIP sockets may not be closed under a blocked accept: poll with a
      // short timeout and look at stop_ in between.
      pollfd p{listen_fd_, POLLIN, 0};
      if (lwip_poll(&p, 1, 50) <= 0) continue;
      int fd = lwip_accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      connections_.emplace_back([fd] { Echo(fd); });
    }
  }
  static void Echo(int fd) {
    timeval tv{20, 0};  // bounds a broken test, never reached when it passes
    lwip_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    lwip_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[4096];
    for (;;) {
      ssize_t n = lwip_recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = lwip_send(fd, buf + off, static_cast<size_t>(n - off), 0);
        if (w <= 0) goto done;
        off += w;
      }
    }
  done:
    lwip_close(fd);
  }

  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> connections_;
};

// Host side: an OS TCP connection to the board through the port forward.
int HostConnect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0) << strerror(errno);
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Sends `payload` on a connected host socket (from a second thread, so a
// large payload cannot deadlock on full buffers), half-closes, and returns
// everything read until the board closes. Closes fd.
Bytes EchoOver(int fd, const Bytes &payload) {
  std::thread writer([&] {
    for (size_t off = 0; off < payload.size();) {
      ssize_t w = send(fd, payload.data() + off, payload.size() - off, MSG_NOSIGNAL);
      if (w <= 0) break;
      off += static_cast<size_t>(w);
    }
    shutdown(fd, SHUT_WR);
  });
  Bytes got;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.insert(got.end(), buf, buf + n);
  }
  writer.join();
  close(fd);
  return got;
}

double Micros(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

class NetstackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = FreePort();
    net_config_t config{"127.0.0.1", port_};
    char err[256] = "";
    ASSERT_TRUE(net_start(&config, err, sizeof err)) << err;
    server_ = std::make_unique<LwipEchoServer>(port_);
  }
  void TearDown() override {
    server_.reset();
    net_stop();
  }

  uint16_t port_ = 0;
  std::unique_ptr<LwipEchoServer> server_;
};

TEST_F(NetstackTest, EchoesOneByteFromHostThroughPortForward) {
  Bytes payload{0x5a};
  EXPECT_EQ(EchoOver(HostConnect(port_), payload), payload);
}

TEST_F(NetstackTest, Echoes100KB) {
  Bytes payload = Pattern(100 * 1024, 1);
  Bytes got = EchoOver(HostConnect(port_), payload);
  ASSERT_EQ(got.size(), payload.size());
  EXPECT_TRUE(got == payload);
}

// Full-size (1514 B) frames in both directions. Received frames larger than
// ~592 B overflowed the heap when taken into PBUF_POOL pbufs (Debian liblwip's
// pool buffers are smaller than its headers say): under the asan preset this
// test fails on that overflow.
TEST_F(NetstackTest, Echoes1MBInFullSizeFrames) {
  net_stats_t before;
  net_stats(&before);
  Bytes payload = Pattern(1024 * 1024, 2);
  Bytes got = EchoOver(HostConnect(port_), payload);
  ASSERT_EQ(got.size(), payload.size());
  EXPECT_TRUE(got == payload);

  net_stats_t after;
  net_stats(&after);
  uint64_t rx_frames = after.rx_frames - before.rx_frames;
  uint64_t tx_frames = after.tx_frames - before.tx_frames;
  // 1 MB in frames of at most 1514 B needs at least ~720 frames each way;
  // average frames well above 592 B prove large frames crossed.
  EXPECT_GE(after.rx_bytes - before.rx_bytes, payload.size());
  EXPECT_GE(after.tx_bytes - before.tx_bytes, payload.size());
  EXPECT_GT((after.rx_bytes - before.rx_bytes) / rx_frames, 600u);
  EXPECT_GT((after.tx_bytes - before.tx_bytes) / tx_frames, 600u);
}

TEST_F(NetstackTest, ServesEightConcurrentConnections) {
  constexpr int kConnections = 8;
  std::vector<int> fds;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kConnections; i++) fds.push_back(HostConnect(port_));
  // A burst of connects must not overflow the forward's listen backlog
  // (slirp's is 1): a dropped SYN is retried only after 1 s.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));

  net_stats_t stats{};
  for (int i = 0; i < 200 && stats.tcp_active < kConnections; i++) {
    net_stats(&stats);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(stats.tcp_active, static_cast<uint32_t>(kConnections));

  std::vector<Bytes> payloads, results(kConnections);
  for (int i = 0; i < kConnections; i++) payloads.push_back(Pattern(256 * 1024 + i, 10 + i));
  std::vector<std::thread> clients;
  for (int i = 0; i < kConnections; i++) {
    clients.emplace_back([&, i] { results[i] = EchoOver(fds[i], payloads[i]); });
  }
  for (auto &t : clients) t.join();
  for (int i = 0; i < kConnections; i++) {
    EXPECT_EQ(results[i].size(), payloads[i].size()) << "connection " << i;
    EXPECT_TRUE(results[i] == payloads[i]) << "connection " << i;
  }
}

TEST_F(NetstackTest, SecondStartWhileRunningFails) {
  net_config_t config{"127.0.0.1", FreePort()};
  char err[256] = "";
  EXPECT_FALSE(net_start(&config, err, sizeof err));
  EXPECT_NE(std::string(err).find("already started"), std::string::npos) << err;
}

TEST_F(NetstackTest, StopReleasesThePortAndStartServesAgain) {
  server_.reset();
  net_stop();
  int fd = OsListen(port_);  // the port forward's listener is gone
  close(fd);

  net_config_t config{"127.0.0.1", port_};
  char err[256] = "";
  ASSERT_TRUE(net_start(&config, err, sizeof err)) << err;
  server_ = std::make_unique<LwipEchoServer>(port_);
  Bytes payload = Pattern(64 * 1024, 3);
  EXPECT_TRUE(EchoOver(HostConnect(port_), payload) == payload);
}

// Connects lwIP socket s to ip:port, waiting up to wait_ms; returns 0 or the
// errno the connect failed with (ETIMEDOUT when it did not finish).
int LwipConnect(int s, const char *ip, uint16_t port, int wait_ms) {
  lwip_fcntl(s, F_SETFL, O_NONBLOCK);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip, &addr.sin_addr);
  if (lwip_connect(s, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0) return 0;
  if (errno != EINPROGRESS) return errno;
  pollfd p{s, POLLOUT, 0};
  if (lwip_poll(&p, 1, wait_ms) <= 0) return ETIMEDOUT;
  int so_error = 0;
  socklen_t len = sizeof so_error;
  lwip_getsockopt(s, SOL_SOCKET, SO_ERROR, &so_error, &len);
  return so_error;
}

// A host server on 127.0.0.1 is what the board reaches at slirp's host
// address (the lab's loopback services).
TEST_F(NetstackTest, BoardReachesAHostLoopbackServerThroughTheHostAddress) {
  uint16_t host_port = FreePort();
  int host_server = OsListen(host_port);

  int s = lwip_socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  EXPECT_EQ(LwipConnect(s, NET_GATEWAY_IP, host_port, 10000), 0);
  int accepted = accept(host_server, nullptr, nullptr);
  EXPECT_GE(accepted, 0) << "the host server saw no connection from the board";
  lwip_close(s);
  if (accepted >= 0) close(accepted);
  close(host_server);
}

// No route beyond the board's LAN: lwIP refuses at once, no packet leaves.
TEST_F(NetstackTest, AddressesOutsideTheMachineAreUnreachableAtOnce) {
  for (const char *ip : {"8.8.8.8", "192.0.2.1", "1.1.1.1"}) {
    int s = lwip_socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(s, 0);
    EXPECT_EQ(LwipConnect(s, ip, 53, 10000), EHOSTUNREACH) << ip;
    lwip_close(s);
  }
}

// Runs fn on lwIP's tcpip thread (where lwIP's core may be changed) and
// waits for it.
void OnTcpipThread(const std::function<void()> &fn) {
  std::promise<void> done;
  struct Call {
    const std::function<void()> *fn;
    std::promise<void> *done;
  } call{&fn, &done};
  auto run = [](void *arg) {
    auto *c = static_cast<Call *>(arg);
    (*c->fn)();
    c->done->set_value();
  };
  ASSERT_EQ(tcpip_callback(run, &call), ERR_OK);
  done.get_future().wait();
}

// This host's first non-loopback IPv4 address, or "" when it has none.
std::string HostOutsideAddress() {
  ifaddrs *list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs *i = list; i != nullptr && found.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    const auto *in = reinterpret_cast<const sockaddr_in *>(i->ifa_addr);
    if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    found = text;
  }
  freeifaddrs(list);
  return found;
}

// Even if lwIP had a route out, the NIC hands slirp (which runs unrestricted
// and would connect anywhere the host can) no frame for another address: a
// server on this host's own outside address, which slirp would reach, sees
// nothing, and the frames are counted as filtered.
TEST_F(NetstackTest, ReachFilterDropsFramesForOtherAddressesEvenWithARoute) {
  std::string outside = HostOutsideAddress();
  if (outside.empty()) GTEST_SKIP() << "this host has no non-loopback IPv4 address";
  uint16_t host_port = FreePort();
  int host_server = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_port = htons(host_port);
  ASSERT_EQ(bind(host_server, reinterpret_cast<sockaddr *>(&any), sizeof any), 0);
  ASSERT_EQ(listen(host_server, 8), 0);
  fcntl(host_server, F_SETFL, O_NONBLOCK);

  ip4_addr_t gw;
  ip4addr_aton(NET_GATEWAY_IP, &gw);
  OnTcpipThread([&] {
    netif_set_gw(netif_list, &gw);
    netif_set_default(netif_list);
  });
  net_stats_t before;
  net_stats(&before);

  int s = lwip_socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  int connect_err = LwipConnect(s, outside.c_str(), host_port, 1500);
  net_stats_t after;
  net_stats(&after);
  lwip_close(s);
  OnTcpipThread([] {
    netif_set_default(nullptr);
    netif_set_gw(netif_list, IP4_ADDR_ANY4);
  });

  EXPECT_EQ(connect_err, ETIMEDOUT) << "to " << outside;
  EXPECT_LT(accept(host_server, nullptr, nullptr), 0)
      << "the host server accepted a connection from the board";
  EXPECT_GE(after.filtered_frames - before.filtered_frames, 1u);
  close(host_server);
}

TEST_F(NetstackTest, StatsCountFramesAndBytesBothWays) {
  net_stats_t before;
  net_stats(&before);
  Bytes payload(1000, 0x42);
  ASSERT_EQ(EchoOver(HostConnect(port_), payload), payload);

  net_stats_t after;
  net_stats(&after);
  // Handshake, data, acks and close: several frames each way, each at least
  // an Ethernet + IPv4 + TCP header (54 B).
  EXPECT_GE(after.rx_frames - before.rx_frames, 4u);
  EXPECT_GE(after.tx_frames - before.tx_frames, 4u);
  EXPECT_GE(after.rx_bytes - before.rx_bytes, payload.size() + 4 * 54);
  EXPECT_GE(after.tx_bytes - before.tx_bytes, payload.size() + 4 * 54);
  EXPECT_EQ(after.dropped_frames, 0u);
  EXPECT_EQ(after.filtered_frames, 0u);
}

TEST(NetstackStartTest, StartFailsWhenTheHostPortIsTaken) {
  uint16_t port = FreePort();
  int taken = OsListen(port);
  net_config_t config{"127.0.0.1", port};
  char err[256] = "";
  EXPECT_FALSE(net_start(&config, err, sizeof err));
  std::string message(err);
  EXPECT_NE(message.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << message;
  EXPECT_NE(message.find("in use"), std::string::npos) << message;
  close(taken);

  // Nothing was left half-started: the port can be used once it is free.
  ASSERT_TRUE(net_start(&config, err, sizeof err)) << err;
  net_stop();
}

TEST(NetstackStartTest, StartRejectsAnInvalidHostAddress) {
  net_config_t config{"localhost:1", 1234};
  char err[256] = "";
  EXPECT_FALSE(net_start(&config, err, sizeof err));
  EXPECT_NE(std::string(err).find("invalid host address"), std::string::npos) << err;
}

// Not a benchmark: a sanity bound on latency, with the measurement printed.
TEST_F(NetstackTest, OneByteRoundTripIsFast) {
  int fd = HostConnect(port_);
  constexpr int kRounds = 2000;
  std::vector<double> rtt;
  uint8_t b = 7;
  for (int i = 0; i < kRounds; i++) {
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(send(fd, &b, 1, 0), 1);
    ASSERT_EQ(recv(fd, &b, 1, 0), 1);
    rtt.push_back(Micros(std::chrono::steady_clock::now() - t0));
  }
  close(fd);
  std::sort(rtt.begin(), rtt.end());
  double p50 = rtt[kRounds / 2], p99 = rtt[kRounds * 99 / 100];
  std::printf("echo_rtt_us p50=%.1f p99=%.1f\n", p50, p99);
  RecordProperty("rtt_p50_us", std::to_string(p50));
  EXPECT_LT(p50, 5000.0);
}

// The slirp thread blocks in poll with slirp's timeout; lwIP's own timers
// tick a few times a second. An idle board must cost (almost) no CPU.
TEST_F(NetstackTest, IdleStackUsesAlmostNoCpu) {
  auto cpu = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
  };
  double start = cpu();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  double used_us = cpu() - start;
  std::printf("idle_cpu_us_per_s=%.0f\n", used_us);
  // The echo server's acceptor polls every 50 ms; allow that and lwIP's timers.
  EXPECT_LT(used_us, 50000.0);
}

}  // namespace
