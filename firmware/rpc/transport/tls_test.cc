// The TLS layer against real peers: a PKI made by deploy/pki, the server on a
// loopback TCP socket through rpc_os_socket_transport, and `openssl s_client`
// processes (or raw sockets) as clients.
#include "firmware/rpc/transport/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "firmware/rpc/transport/os_socket.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kHandshakeTimeoutMs = 10000;
constexpr int kIoTimeoutMs = 10000;
const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// ---- Clients

// `openssl s_client` with its stdin and (merged) stdout/stderr on pipes.
class SClient {
 public:
  SClient(const std::vector<std::string>& extra_args, int port) {
    std::vector<std::string> args = {
        OPENSSL_EXECUTABLE, "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
        // quiet sets ign_eof; undo it so closing stdin sends close_notify.
        "-quiet", "-no_ign_eof", "-verify_return_error", "-verify_ip", "127.0.0.1"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
  }
  ~SClient() {
    CloseInput();
    if (stdout_ >= 0) close(stdout_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool started() const { return pid_ > 0; }
  void Write(const std::string& s) { ASSERT_EQ(write(stdin_, s.data(), s.size()), (ssize_t)s.size()); }
  void CloseInput() {
    if (stdin_ >= 0) close(stdin_);
    stdin_ = -1;
  }
  // Reads output until it contains `needle` or timeout_ms pass.
  bool ReadUntil(const std::string& needle, int timeout_ms) {
    auto start = Clock::now();
    while (output_.find(needle) == std::string::npos) {
      int left = timeout_ms - (int)MsSince(start);
      if (left <= 0 || !ReadSome(left)) return false;
    }
    return true;
  }
  // Waits for the process to exit (reading its output); returns the exit
  // status, or -1 if it was still running after timeout_ms and was killed.
  int Wait(int timeout_ms) {
    auto start = Clock::now();
    while (ReadSome(timeout_ms - (int)MsSince(start))) {
    }
    int status = 0;
    for (;;) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) break;
      if (MsSince(start) > timeout_ms) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = -1;
        return -1;
      }
      usleep(5000);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  const std::string& output() const { return output_; }

 private:
  // Appends what arrives within timeout_ms; false on EOF or timeout.
  bool ReadSome(int timeout_ms) {
    if (timeout_ms <= 0) return false;
    pollfd p = {stdout_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[4096];
    ssize_t n = read(stdout_, buf, sizeof buf);
    if (n <= 0) return false;
    output_.append(buf, n);
    return true;
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  std::string output_;
};

// A plain TCP client on the loopback interface.
int ConnectTcp(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// A TLS 1.2 ClientHello (78 bytes) offering ECDHE with AES-128-GCM on P-256,
// ECDSA or RSA: the server answers it with its whole reply and then waits for
// the client's certificate, which a raw socket never sends.
std::string ClientHello() {
  std::string body("\x03\x03", 2);                     // TLS 1.2
  body += std::string(32, '\x2a');                     // client random
  body += std::string("\x00", 1);                      // no session id
  body += std::string("\x00\x04\xc0\x2b\xc0\x2f", 6);  // ECDHE-ECDSA/RSA-AES128-GCM-SHA256
  body += std::string("\x01\x00", 2);                  // compression: none
  body += std::string(
      "\x00\x18"                                   // extensions: 24 bytes
      "\x00\x0a\x00\x04\x00\x02\x00\x17"           // supported_groups: secp256r1
      "\x00\x0b\x00\x02\x01\x00"                   // ec_point_formats: uncompressed
      "\x00\x0d\x00\x06\x00\x04\x04\x03\x04\x01",  // signature_algorithms: ECDSA, RSA with SHA-256
      26);
  std::string handshake = std::string("\x01\x00\x00", 3) + static_cast<char>(body.size()) + body;
  return std::string("\x16\x03\x01\x00", 4) + static_cast<char>(handshake.size()) + handshake;
}

// ---- Server

struct Outcome {
  bool handshake_ok = false;
  std::string err;
  std::string peer_cn;
  double handshake_ms = 0;
  std::string received;  // application data up to and including the first '\n'
  int end = 0;           // what recv returned after that (RPC_IO_CLOSED when the client closed cleanly)
};

bool SendAll(rpc_transport_t t, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    int n =
        t.send(t.ctx, reinterpret_cast<const uint8_t*>(data.data()) + off, data.size() - off, kIoTimeoutMs);
    if (n == RPC_IO_WOULD_BLOCK) continue;  // mbedTLS wants the same bytes again
    if (n < 0) return false;
    off += n;
  }
  return true;
}

// Reads a line (up to '\n'), then waits for the end of the stream.
void EchoSession(rpc_transport_t t, Outcome& out, const std::string& reply) {
  uint8_t buf[1024];
  while (out.received.find('\n') == std::string::npos) {
    int n = t.recv(t.ctx, buf, sizeof buf, kIoTimeoutMs);
    if (n <= 0) {
      out.end = n;
      return;
    }
    out.received.append(reinterpret_cast<char*>(buf), n);
  }
  if (!SendAll(t, "echo:" + out.received + reply)) return;
  int n;
  while ((n = t.recv(t.ctx, buf, sizeof buf, kIoTimeoutMs)) > 0) {
  }
  out.end = n;
}

using Session = std::function<void(rpc_transport_t, Outcome&)>;

// rpc_tls_cancelled_fn over a flag the test sets.
bool FlagSet(void* flag) { return static_cast<std::atomic<bool>*>(flag)->load(); }

// Accepts one connection from `listener`, runs the handshake (cancelled once
// `cancel`, if given, is set) and `session`.
Outcome ServeOne(int listener, rpc_tls_config_t* config, int handshake_timeout_ms, Session session,
                 std::atomic<bool>* cancel) {
  Outcome out;
  int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    out.err = "accept failed";
    return out;
  }
  char err[512] = "";
  auto start = Clock::now();
  rpc_tls_conn_t* conn = rpc_tls_accept(config, rpc_os_socket_transport(fd), handshake_timeout_ms,
                                        cancel ? FlagSet : nullptr, cancel, err, sizeof err);
  out.handshake_ms = MsSince(start);
  out.err = err;
  if (conn != nullptr) {
    out.handshake_ok = true;
    out.peer_cn = rpc_tls_peer_cn(conn);
    session(rpc_tls_transport(conn), out);
    rpc_tls_close(conn);
  }
  close(fd);
  return out;
}

Session Echo(const std::string& reply = "") {
  return [reply](rpc_transport_t t, Outcome& out) { EchoSession(t, out, reply); };
}

class TlsTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    signal(SIGPIPE, SIG_IGN);  // a refused s_client may be gone before we close its stdin
    char tmpl[] = "/tmp/tls_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Pki("init " + dir_);
    Pki("issue " + dir_ + " board --server");
    Pki("issue " + dir_ + " fleetd --client");
    Pki("issue " + dir_ + " stale --client --expired");
    Pki("init " + dir_ + "/other");
    Pki("issue " + dir_ + "/other intruder --client");
  }
  static void TearDownTestSuite() { ASSERT_EQ(std::system(("rm -rf '" + dir_ + "'").c_str()), 0); }

  static void Pki(const std::string& args) {
    std::string cmd = std::string(THREADFLEET_SOURCE_DIR "/deploy/pki ") + args + " 2>>" + dir_ + "/pki.log";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << Slurp(dir_ + "/pki.log");
  }
  static std::string Slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  static std::string Path(const std::string& name) { return dir_ + "/" + name; }
  static std::vector<std::string> ClientCert(const std::string& name, const std::string& dir = dir_) {
    return {"-cert", dir + "/" + name + ".pem", "-key", dir + "/" + name + ".key"};
  }
  static std::vector<std::string> Args(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  void SetUp() override {
    char err[512] = "";
    config_ = rpc_tls_config_new(Path("board.pem").c_str(), Path("board.key").c_str(), Path("ca.pem").c_str(),
                                 err, sizeof err);
    ASSERT_NE(config_, nullptr) << err;
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(listen(listener_, 16), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
  }
  void TearDown() override {
    if (listener_ >= 0) close(listener_);
    rpc_tls_config_free(config_);
    EXPECT_EQ(rpc_tls_sessions(), 0);
  }

  std::future<Outcome> Serve(Session session = Echo(), int handshake_timeout_ms = kHandshakeTimeoutMs,
                             std::atomic<bool>* cancel = nullptr) {
    return std::async(std::launch::async, ServeOne, listener_, config_, handshake_timeout_ms, session,
                      cancel);
  }
  std::vector<std::string> Trusting() const { return {"-CAfile", Path("ca.pem")}; }

  // A client whose handshake the server refuses: returns the server's outcome.
  Outcome Refused(const std::vector<std::string>& client_args) {
    auto server = Serve();
    SClient client(Args(Trusting(), client_args), port_);
    EXPECT_TRUE(client.started());
    Outcome out = server.get();
    EXPECT_NE(client.Wait(kIoTimeoutMs), 0) << client.output();
    EXPECT_EQ(client.output().find("echo:"), std::string::npos);
    std::printf("refused: %s\n", out.err.c_str());
    return out;
  }

  static std::string dir_;
  rpc_tls_config_t* config_ = nullptr;
  int listener_ = -1;
  int port_ = 0;
};
std::string TlsTest::dir_;

// ---- Handshakes that succeed

TEST_F(TlsTest, ClientWithValidCertAndAlpnH2ExchangesDataBothWays) {
  const std::string bulk(40000, 'x');  // several TLS records
  auto server = Serve(Echo(bulk + "\nend\n"));
  SClient client(Args(Trusting(), Args(ClientCert("fleetd"), {"-alpn", "h2"})), port_);
  ASSERT_TRUE(client.started());

  client.Write("ping\n");
  ASSERT_TRUE(client.ReadUntil("\nend\n", kIoTimeoutMs)) << client.output().substr(0, 300);
  client.CloseInput();  // s_client sends close_notify
  Outcome out = server.get();

  EXPECT_TRUE(out.handshake_ok) << out.err;
  EXPECT_EQ(out.peer_cn, "fleetd");
  EXPECT_EQ(out.received, "ping\n");
  // s_client -quiet still reports verification on stderr, before the data.
  const std::string expected = "\necho:ping\n" + bulk + "\nend\n";
  const std::string& got = client.output();
  EXPECT_TRUE(got.size() >= expected.size() &&
              got.compare(got.size() - expected.size(), expected.size(), expected) == 0)
      << got.size() << " bytes, starting: " << got.substr(0, 300);
  EXPECT_EQ(out.end, RPC_IO_CLOSED);
  EXPECT_EQ(client.Wait(kIoTimeoutMs), 0) << client.output();
  std::printf("handshake took %.1f ms\n", out.handshake_ms);
  RecordProperty("handshake_ms", std::to_string(out.handshake_ms));
}

TEST_F(TlsTest, ClientOfferingNoAlpnIsServed) {
  auto server = Serve();
  SClient client(Args(Trusting(), ClientCert("fleetd")), port_);
  client.Write("ping\n");
  ASSERT_TRUE(client.ReadUntil("echo:ping\n", kIoTimeoutMs)) << client.output();
  client.CloseInput();
  Outcome out = server.get();
  EXPECT_TRUE(out.handshake_ok) << out.err;
  EXPECT_EQ(out.end, RPC_IO_CLOSED);
}

TEST_F(TlsTest, EightConcurrentHandshakesShareOneConfig) {
  constexpr int kClients = 8;
  std::vector<std::future<Outcome>> servers;
  std::vector<std::unique_ptr<SClient>> clients;
  for (int i = 0; i < kClients; i++) servers.push_back(Serve());
  for (int i = 0; i < kClients; i++) {
    clients.push_back(
        std::make_unique<SClient>(Args(Trusting(), Args(ClientCert("fleetd"), {"-alpn", "h2"})), port_));
  }
  for (auto& c : clients) c->Write("ping\n");
  for (auto& c : clients) ASSERT_TRUE(c->ReadUntil("echo:ping\n", kIoTimeoutMs)) << c->output();

  EXPECT_EQ(rpc_tls_sessions(), kClients);
  for (auto& c : clients) c->CloseInput();
  for (auto& s : servers) {
    Outcome out = s.get();
    EXPECT_TRUE(out.handshake_ok) << out.err;
    EXPECT_EQ(out.peer_cn, "fleetd");
    EXPECT_EQ(out.end, RPC_IO_CLOSED);
  }
  EXPECT_EQ(rpc_tls_sessions(), 0);
}

TEST_F(TlsTest, RecvReturnsWouldBlockAfterItsTimeoutWhenThePeerIsIdle) {
  double waited_ms = 0;
  int idle = 0;
  auto server = Serve([&](rpc_transport_t t, Outcome& out) {
    uint8_t buf[16];
    auto start = Clock::now();
    idle = t.recv(t.ctx, buf, sizeof buf, 200);
    waited_ms = MsSince(start);
    EchoSession(t, out, "");
  });
  SClient client(Args(Trusting(), ClientCert("fleetd")), port_);
  usleep(600 * 1000);  // idle past the server's 200 ms
  client.Write("ping\n");
  ASSERT_TRUE(client.ReadUntil("echo:ping\n", kIoTimeoutMs)) << client.output();
  client.CloseInput();
  Outcome out = server.get();

  ASSERT_TRUE(out.handshake_ok) << out.err;
  EXPECT_EQ(idle, RPC_IO_WOULD_BLOCK);
  EXPECT_GE(waited_ms, 190);
  EXPECT_LT(waited_ms, 1000);
  EXPECT_EQ(out.received, "ping\n");  // the session is still usable after a timeout
}

TEST_F(TlsTest, SendReturnsWouldBlockAfterItsTimeoutWhenThePeerDoesNotRead) {
  // s_client copies what it receives to its stdout, which nobody reads: once
  // that pipe and the socket buffers are full, it takes nothing more.
  int sends = 0, last = 0, again = 0;
  auto server = Serve([&](rpc_transport_t t, Outcome& out) {
    const std::string chunk(16384, 'z');
    const auto* bytes = reinterpret_cast<const uint8_t*>(chunk.data());
    for (sends = 0; sends < 20000; sends++) {  // 320 MB at most: far more than any buffer between
      last = t.send(t.ctx, bytes, chunk.size(), 200);
      if (last <= 0) break;
    }
    // The record is kept: the same bytes offered again go out once there is
    // room, or wait again; the stream is not broken.
    if (last == RPC_IO_WOULD_BLOCK) again = t.send(t.ctx, bytes, chunk.size(), 50);
  });
  SClient client(Args(Trusting(), ClientCert("fleetd")), port_);
  Outcome out = server.get();

  ASSERT_TRUE(out.handshake_ok) << out.err;
  EXPECT_EQ(last, RPC_IO_WOULD_BLOCK) << "after " << sends << " sends";
  EXPECT_TRUE(again == RPC_IO_WOULD_BLOCK || again == 16384) << again;
}

// ---- Handshakes that are refused

TEST_F(TlsTest, ClientWithoutCertIsRefused) {
  Outcome out = Refused({"-alpn", "h2"});
  EXPECT_FALSE(out.handshake_ok);
  EXPECT_NE(out.err.find("No client certification received"), std::string::npos) << out.err;
}

TEST_F(TlsTest, ClientCertFromAnotherCaIsRefused) {
  Outcome out = Refused(Args(ClientCert("intruder", Path("other")), {"-alpn", "h2"}));
  EXPECT_FALSE(out.handshake_ok);
  EXPECT_NE(out.err.find("not correctly signed by the trusted CA"), std::string::npos) << out.err;
}

TEST_F(TlsTest, ExpiredClientCertIsRefused) {
  Outcome out = Refused(Args(ClientCert("stale"), {"-alpn", "h2"}));
  EXPECT_FALSE(out.handshake_ok);
  EXPECT_NE(out.err.find("expired"), std::string::npos) << out.err;
}

TEST_F(TlsTest, ServerCertUsedAsClientCertIsRefused) {
  Outcome out = Refused(Args(ClientCert("board"), {"-alpn", "h2"}));
  EXPECT_FALSE(out.handshake_ok);
  EXPECT_NE(out.err.find("extendedKeyUsage"), std::string::npos) << out.err;
}

TEST_F(TlsTest, ClientOfferingAlpnWithoutH2IsRefused) {
  Outcome out = Refused(Args(ClientCert("fleetd"), {"-alpn", "http/1.1"}));
  EXPECT_FALSE(out.handshake_ok);
  EXPECT_NE(out.err.find("TLS handshake"), std::string::npos) << out.err;
}

TEST_F(TlsTest, PlaintextHttp2PrefaceIsRefused) {
  auto server = Serve();
  int fd = ConnectTcp(port_);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(send(fd, kPreface.data(), kPreface.size(), MSG_NOSIGNAL), (ssize_t)kPreface.size());
  Outcome out = server.get();
  close(fd);

  EXPECT_FALSE(out.handshake_ok);
  EXPECT_NE(out.err.find("plaintext HTTP/2 preface"), std::string::npos) << out.err;
}

TEST_F(TlsTest, SilentClientTimesOutTheHandshake) {
  auto server = Serve(Echo(), 300);
  int fd = ConnectTcp(port_);
  ASSERT_GE(fd, 0);
  Outcome out = server.get();
  close(fd);

  EXPECT_FALSE(out.handshake_ok);
  EXPECT_NE(out.err.find("timed out after 300 ms waiting for the ClientHello (0 bytes received)"),
            std::string::npos)
      << out.err;
  EXPECT_GE(out.handshake_ms, 290);
  EXPECT_LT(out.handshake_ms, 2000);
}

TEST_F(TlsTest, AClientSilentAfterItsHelloTimesOutNamingWhatTheServerWaitedFor) {
  auto server = Serve(Echo(), 300);
  int fd = ConnectTcp(port_);
  ASSERT_GE(fd, 0);
  const std::string hello = ClientHello();
  ASSERT_EQ(send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), (ssize_t)hello.size());
  Outcome out = server.get();
  close(fd);

  EXPECT_FALSE(out.handshake_ok);
  EXPECT_NE(out.err.find("waiting for the client's certificate and Finished, after the server's reply (78 "
                         "bytes received)"),
            std::string::npos)
      << out.err;
}

TEST_F(TlsTest, AHandshakeWaitingForItsPeerEndsOnceCancelled) {
  std::atomic<bool> cancel{false};
  auto server = Serve(Echo(), 20000, &cancel);  // far longer than a cancelled handshake lasts
  int fd = ConnectTcp(port_);                   // sends nothing: the handshake waits for a ClientHello
  ASSERT_GE(fd, 0);
  cancel = true;
  Outcome out = server.get();
  close(fd);

  EXPECT_FALSE(out.handshake_ok);
  EXPECT_EQ(out.err, "TLS handshake: cancelled");
}

// ---- Configuration errors

TEST_F(TlsTest, ConfigNamesTheMissingFile) {
  char err[512] = "";
  rpc_tls_config_t* c = rpc_tls_config_new(Path("nope.pem").c_str(), Path("board.key").c_str(),
                                           Path("ca.pem").c_str(), err, sizeof err);
  EXPECT_EQ(c, nullptr);
  EXPECT_NE(std::string(err).find("certificate " + Path("nope.pem")), std::string::npos) << err;
}

TEST_F(TlsTest, ConfigRefusesAKeyThatDoesNotMatchTheCertificate) {
  char err[512] = "";
  rpc_tls_config_t* c = rpc_tls_config_new(Path("board.pem").c_str(), Path("fleetd.key").c_str(),
                                           Path("ca.pem").c_str(), err, sizeof err);
  EXPECT_EQ(c, nullptr);
  EXPECT_NE(std::string(err).find("does not match"), std::string::npos) << err;
}

TEST_F(TlsTest, ConfigRefusesAnExpiredBoardCertificate) {
  char err[512] = "";
  rpc_tls_config_t* c = rpc_tls_config_new(Path("stale.pem").c_str(), Path("stale.key").c_str(),
                                           Path("ca.pem").c_str(), err, sizeof err);
  EXPECT_EQ(c, nullptr);
  EXPECT_NE(std::string(err).find("expired on"), std::string::npos) << err;
}

}  // namespace
