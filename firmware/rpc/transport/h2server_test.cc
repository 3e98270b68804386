// The HTTP/2 gRPC server against gRPC C++ as an independent client: a small
// test service (Echo, Count, Sum, Sleep) served over loopback TCP, called
// through grpc::GenericStub with raw bytes (no codegen).
//
// THREADFLEET_H2_RECORD=DIR writes every byte stream the server receives to
// DIR/conn-N.bin (how firmware/rpc/fuzz-corpus/h2server/ was made).
#include "firmware/rpc/transport/h2server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "firmware/rpc/transport/grpc_frame.h"
#include "firmware/rpc/transport/grpc_timeout.h"
#include "firmware/rpc/transport/os_socket.h"

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// ---- The test service

// What the handlers saw, for assertions; handlers run on connection threads.
struct ServiceLog {
  std::mutex mu;
  std::condition_variable cv;
  int sleep_started = 0;
  int sleep_done = 0;
  int done = 0;

  void Bump(int ServiceLog::*counter) {
    std::lock_guard<std::mutex> lock(mu);
    ++(this->*counter);
    cv.notify_all();
  }
  int Get(int ServiceLog::*counter) {
    std::lock_guard<std::mutex> lock(mu);
    return this->*counter;
  }
  bool WaitFor(int ServiceLog::*counter, int at_least, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return this->*counter >= at_least; });
  }
};
ServiceLog g_log;

long long ParseNumber(const uint8_t *msg, size_t len) {
  if (len == 0 || len > 18) return 0;
  long long n = 0;
  for (size_t i = 0; i < len; i++) {
    if (msg[i] < '0' || msg[i] > '9') return 0;
    n = n * 10 + (msg[i] - '0');
  }
  return n;
}

bool SendString(rpc_call_t *call, const std::string &s) {
  return rpc_call_send(call, reinterpret_cast<const uint8_t *>(s.data()), s.size());
}

void CountDone(rpc_call_t *call) { g_log.Bump(&ServiceLog::done); }

// Echo (unary): answers the request unchanged.
void EchoMessage(rpc_call_t *call, const uint8_t *msg, size_t len) {
  rpc_call_send(call, msg, len);
  rpc_call_finish(call, RPC_STATUS_OK, nullptr);
}

// Count (server streaming): request "N" -> messages "0" .. "N-1".
struct CountState {
  long long next = 0;
  long long n = 0;
};
void CountPump(rpc_call_t *call) {
  auto *s = static_cast<CountState *>(rpc_call_user(call));
  while (s->next < s->n) {
    if (!SendString(call, std::to_string(s->next))) return;  // polled when the queue drains
    s->next++;
  }
  rpc_call_finish(call, RPC_STATUS_OK, nullptr);
}
void CountMessage(rpc_call_t *call, const uint8_t *msg, size_t len) {
  auto *s = new CountState;
  s->n = ParseNumber(msg, len);
  rpc_call_set_user(call, s);
  CountPump(call);
}
void CountFree(rpc_call_t *call) {
  delete static_cast<CountState *>(rpc_call_user(call));
  CountDone(call);
}

// Sum (client streaming): "messages=M bytes=B sum=S" over decimal requests.
struct SumState {
  long long messages = 0, bytes = 0, sum = 0;
};
SumState *SumOf(rpc_call_t *call) {
  if (rpc_call_user(call) == nullptr) rpc_call_set_user(call, new SumState);
  return static_cast<SumState *>(rpc_call_user(call));
}
void SumMessage(rpc_call_t *call, const uint8_t *msg, size_t len) {
  SumState *s = SumOf(call);
  s->messages++;
  s->bytes += static_cast<long long>(len);
  s->sum += ParseNumber(msg, len);
}
void SumHalfClose(rpc_call_t *call) {
  SumState *s = SumOf(call);
  SendString(call, "messages=" + std::to_string(s->messages) + " bytes=" + std::to_string(s->bytes) +
                       " sum=" + std::to_string(s->sum));
  rpc_call_finish(call, RPC_STATUS_OK, nullptr);
}
void SumFree(rpc_call_t *call) {
  delete static_cast<SumState *>(rpc_call_user(call));
  CountDone(call);
}

// Sleep (unary): request "MS" -> "slept" after MS milliseconds.
void SleepMessage(rpc_call_t *call, const uint8_t *msg, size_t len) {
  g_log.Bump(&ServiceLog::sleep_started);
  rpc_call_poll_in(call, static_cast<int>(ParseNumber(msg, len)));
}
void SleepPoll(rpc_call_t *call) {
  SendString(call, "slept");
  rpc_call_finish(call, RPC_STATUS_OK, nullptr);
}
void SleepDone(rpc_call_t *call) {
  g_log.Bump(&ServiceLog::sleep_done);
  CountDone(call);
}

// Fail (unary): a status with a message that needs percent-encoding.
void FailMessage(rpc_call_t *call, const uint8_t *msg, size_t len) {
  rpc_call_finish(call, RPC_STATUS_NOT_FOUND, "no such thing: 100% \xc3\xa9t\xc3\xa9\n");
}

const rpc_method_t kMethods[] = {
    {"Echo", false, false, EchoMessage, nullptr, nullptr, CountDone},
    {"Count", false, true, CountMessage, nullptr, CountPump, CountFree},
    {"Sum", true, false, SumMessage, SumHalfClose, nullptr, SumFree},
    {"Sleep", false, false, SleepMessage, nullptr, SleepPoll, SleepDone},
    {"Fail", false, false, FailMessage, nullptr, nullptr, CountDone},
};
const rpc_service_t kService = {"threadfleet.test.v1.Test", kMethods, sizeof kMethods / sizeof kMethods[0]};

// ---- The server: one thread accepting, one I/O thread per connection

// Counts (and optionally records) what a connection receives.
struct TapTransport {
  rpc_transport_t lower;
  std::atomic<long long> *received;
  FILE *record;

  static int Send(void *ctx, const uint8_t *data, size_t len, int timeout_ms) {
    auto *t = static_cast<TapTransport *>(ctx);
    return t->lower.send(t->lower.ctx, data, len, timeout_ms);
  }
  static int Recv(void *ctx, uint8_t *buf, size_t cap, int timeout_ms) {
    auto *t = static_cast<TapTransport *>(ctx);
    int n = t->lower.recv(t->lower.ctx, buf, cap, timeout_ms);
    if (n > 0) {
      *t->received += n;
      if (t->record != nullptr) fwrite(buf, 1, static_cast<size_t>(n), t->record);
    }
    return n;
  }
};

class TestServer {
 public:
  // sndbuf > 0: the kernel send buffer of accepted sockets (small ones make
  // a peer that does not read block the server quickly).
  explicit TestServer(rpc_h2_limits_t limits = {}, int sndbuf = 0) : limits_(limits), sndbuf_(sndbuf) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
        listen(listen_fd_, 64) != 0) {
      ADD_FAILURE() << "bind/listen: " << strerror(errno);
    }
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~TestServer() {
    stopping_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    accept_thread_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto &entry : live_) rpc_h2_conn_stop(entry.second);
    }
    for (auto &t : conn_threads_) t.join();
    close(listen_fd_);
  }

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  int accepted() const { return accepted_; }
  long long received() const { return received_; }
  // Results of finished rpc_h2_conn_run calls.
  std::vector<rpc_h2_end_t> run_results() {
    std::lock_guard<std::mutex> lock(mu_);
    return run_results_;
  }
  // Waits until `n` connections have ended; false after `timeout`.
  bool WaitForEnds(size_t n, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return ended_.wait_for(lock, timeout, [&] { return run_results_.size() >= n; });
  }

 private:
  void AcceptLoop() {
    for (;;) {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (sndbuf_ > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf_, sizeof sndbuf_);
      int id = accepted_++;
      conn_threads_.emplace_back([this, fd, id] { Serve(fd, id); });
    }
  }

  void Serve(int fd, int id) {
    FILE *record = nullptr;
    if (const char *dir = getenv("THREADFLEET_H2_RECORD")) {
      record = fopen((std::string(dir) + "/conn-" + std::to_string(id) + ".bin").c_str(), "wb");
    }
    TapTransport tap{rpc_os_socket_transport(fd), &received_, record};
    rpc_transport_t io{&tap, TapTransport::Send, TapTransport::Recv};
    rpc_h2_conn_t *conn = rpc_h2_conn_new(&kService, io, "test-peer", &limits_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_[id] = conn;
      if (stopping_) rpc_h2_conn_stop(conn);
    }
    rpc_h2_end_t end = rpc_h2_conn_run(conn);
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_.erase(id);
      run_results_.push_back(end);
      ended_.notify_all();
    }
    rpc_h2_conn_free(conn);
    close(fd);
    if (record != nullptr) fclose(record);
  }

  const rpc_h2_limits_t limits_;
  const int sndbuf_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::atomic<long long> received_{0};
  std::thread accept_thread_;
  std::vector<std::thread> conn_threads_;  // only the accept thread adds
  std::mutex mu_;
  std::map<int, rpc_h2_conn_t *> live_;
  std::vector<rpc_h2_end_t> run_results_;
  std::condition_variable ended_;
};

// ---- The client: gRPC C++ generic stub, one completion queue per call

grpc::ByteBuffer ToBuffer(const std::string &s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromBuffer(const grpc::ByteBuffer &bb) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(bb.Dump(&slices).ok());
  std::string out;
  for (const auto &s : slices) out.append(reinterpret_cast<const char *>(s.begin()), s.size());
  return out;
}

std::shared_ptr<grpc::Channel> NewChannel(const TestServer &server, grpc::ChannelArguments args = {}) {
  // A connection of its own, not one shared with earlier channels.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(server.target(), grpc::InsecureChannelCredentials(), args);
}

std::string Method(const std::string &name) { return "/threadfleet.test.v1.Test/" + name; }

// A unary call the way generated stubs make one (one batch).
grpc::Status Unary(grpc::Channel *channel, const std::string &method, const std::string &request,
                   std::string *response, grpc::ClientContext *ctx = nullptr) {
  grpc::ClientContext own;
  if (ctx == nullptr) ctx = &own;
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel *) {}));
  grpc::CompletionQueue cq;
  grpc::ByteBuffer out;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(ctx, method, ToBuffer(request), &cq);
  call->StartCall();
  call->Finish(&out, &status, reinterpret_cast<void *>(1));
  void *tag;
  bool ok;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  if (status.ok() && response != nullptr) *response = FromBuffer(out);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

struct StreamResult {
  grpc::Status status;
  std::vector<std::string> responses;
};

// Any call shape as a bidi stream: write every request, half-close, read
// every response, finish.
StreamResult Stream(grpc::Channel *channel, const std::string &method,
                    const std::vector<std::string> &requests, grpc::ClientContext *ctx = nullptr) {
  grpc::ClientContext own;
  if (ctx == nullptr) ctx = &own;
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel *) {}));
  grpc::CompletionQueue cq;
  StreamResult result;
  void *tag;
  bool ok = false;
  auto call = stub.PrepareCall(ctx, method, &cq);
  call->StartCall(reinterpret_cast<void *>(1));
  cq.Next(&tag, &ok);
  bool writing = ok;
  for (const auto &r : requests) {
    if (!writing) break;
    call->Write(ToBuffer(r), reinterpret_cast<void *>(2));
    cq.Next(&tag, &ok);
    writing = ok;
  }
  if (writing) {
    call->WritesDone(reinterpret_cast<void *>(3));
    cq.Next(&tag, &ok);
  }
  for (;;) {
    grpc::ByteBuffer bb;
    call->Read(&bb, reinterpret_cast<void *>(4));
    cq.Next(&tag, &ok);
    if (!ok) break;
    result.responses.push_back(FromBuffer(bb));
  }
  call->Finish(&result.status, reinterpret_cast<void *>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

// A bare HTTP/2 client (nghttp2) for requests gRPC clients never make: sends
// one bodiless request and returns the response's :status and grpc-status.
struct RawResponse {
  std::string http_status;
  std::string grpc_status;
  bool closed = false;
};

RawResponse RawRequest(int port, const std::vector<std::pair<std::string, std::string>> &headers) {
  RawResponse response;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  nghttp2_session_callbacks *cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(
      cb, [](nghttp2_session *, const nghttp2_frame *, const uint8_t *name, size_t namelen,
             const uint8_t *value, size_t valuelen, uint8_t, void *user) {
        auto *r = static_cast<RawResponse *>(user);
        std::string n(reinterpret_cast<const char *>(name), namelen);
        std::string v(reinterpret_cast<const char *>(value), valuelen);
        if (n == ":status") r->http_status = v;
        if (n == "grpc-status") r->grpc_status = v;
        return 0;
      });
  nghttp2_session_callbacks_set_on_stream_close_callback(
      cb, [](nghttp2_session *, int32_t, uint32_t, void *user) {
        static_cast<RawResponse *>(user)->closed = true;
        return 0;
      });
  nghttp2_session *session;
  nghttp2_session_client_new(&session, cb, &response);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0);
  std::vector<nghttp2_nv> nva;
  for (const auto &h : headers) {
    nva.push_back({(uint8_t *)h.first.data(), (uint8_t *)h.second.data(), h.first.size(), h.second.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_submit_request(session, nullptr, nva.data(), nva.size(), nullptr, nullptr);
  rpc_transport_t io = rpc_os_socket_transport(fd);
  auto give_up = steady_clock::now() + milliseconds(2000);
  while (!response.closed && steady_clock::now() < give_up) {
    const uint8_t *out;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(session, &out)) > 0)
      io.send(io.ctx, out, static_cast<size_t>(n), 1000);
    uint8_t buf[4096];
    int got = io.recv(io.ctx, buf, sizeof buf, 100);
    if (got == RPC_IO_WOULD_BLOCK) continue;
    if (got < 0) break;
    nghttp2_session_mem_recv(session, buf, static_cast<size_t>(got));
  }
  nghttp2_session_del(session);
  close(fd);
  return response;
}

// A client that asks for a lot and then reads nothing, like a peer that hung
// or went away without closing: it announces the largest HTTP/2 windows (so
// flow control never holds the server back) over a socket with a small
// receive buffer, sends its requests, and never reads again.
class StalledClient {
 public:
  explicit StalledClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_client_new(&session_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry window = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, NGHTTP2_MAX_WINDOW_SIZE};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, &window, 1);
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_MAX_WINDOW_SIZE);
  }
  ~StalledClient() {
    nghttp2_session_del(session_);
    Close();
  }

  // Starts a call with one request message; grpc_timeout "" for none.
  void Start(const std::string &method, const std::string &request, const std::string &grpc_timeout = "") {
    auto body = std::make_unique<std::string>(5, '\0');
    grpc_frame_write_prefix(reinterpret_cast<uint8_t *>(body->data()), static_cast<uint32_t>(request.size()));
    *body += request;
    std::string path = Method(method);
    std::vector<std::pair<std::string, std::string>> headers = {
        {":method", "POST"}, {":scheme", "http"}, {":authority", "127.0.0.1"},
        {":path", path},     {"te", "trailers"},  {"content-type", "application/grpc"}};
    if (!grpc_timeout.empty()) headers.emplace_back("grpc-timeout", grpc_timeout);
    std::vector<nghttp2_nv> nva;
    for (const auto &h : headers) {
      nva.push_back({(uint8_t *)h.first.data(), (uint8_t *)h.second.data(), h.first.size(), h.second.size(),
                     NGHTTP2_NV_FLAG_NONE});
    }
    nghttp2_data_provider provider;
    provider.source.ptr = body.get();
    provider.read_callback = [](nghttp2_session *, int32_t, uint8_t *buf, size_t length, uint32_t *flags,
                                nghttp2_data_source *source, void *) -> ssize_t {
      auto *b = static_cast<std::string *>(source->ptr);
      size_t n = std::min(length, b->size());
      memcpy(buf, b->data(), n);
      b->erase(0, n);
      if (b->empty()) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    };
    nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &provider, nullptr);
    const uint8_t *out;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(session_, &out)) > 0) {
      ASSERT_EQ(send(fd_, out, static_cast<size_t>(n), MSG_NOSIGNAL), n);
    }
    bodies_.push_back(std::move(body));
  }
  // What a client process that dies does to its connection.
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  nghttp2_session *session_ = nullptr;
  std::vector<std::unique_ptr<std::string>> bodies_;
};

class H2ServerTest : public ::testing::Test {
 protected:
  TestServer server_;
};

// ---- Calls

TEST_F(H2ServerTest, UnaryEchoReturnsTheRequest) {
  auto channel = NewChannel(server_);
  std::string response;
  grpc::Status status = Unary(channel.get(), Method("Echo"), "hello board", &response);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(response, "hello board");
}

TEST_F(H2ServerTest, EmptyRequestMessageIsAMessage) {
  auto channel = NewChannel(server_);
  std::string response = "x";
  ASSERT_TRUE(Unary(channel.get(), Method("Echo"), "", &response).ok());
  EXPECT_EQ(response, "");
}

TEST_F(H2ServerTest, ThousandSequentialUnaryCallsOnOneConnection) {
  auto channel = NewChannel(server_);
  std::vector<double> micros;
  for (int i = 0; i < 1000; i++) {
    std::string request = "call " + std::to_string(i), response;
    auto start = steady_clock::now();
    grpc::Status status = Unary(channel.get(), Method("Echo"), request, &response);
    micros.push_back(std::chrono::duration<double, std::micro>(steady_clock::now() - start).count());
    ASSERT_TRUE(status.ok()) << i << ": " << status.error_message();
    ASSERT_EQ(response, request);
  }
  std::sort(micros.begin(), micros.end());
  printf("unary echo over loopback: p50 %.0f us, p99 %.0f us\n", micros[500], micros[990]);
  EXPECT_EQ(server_.accepted(), 1);
}

TEST_F(H2ServerTest, SixteenConcurrentChannels) {
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int c = 0; c < 16; c++) {
    clients.emplace_back([&, c] {
      auto channel = NewChannel(server_);
      for (int i = 0; i < 50; i++) {
        std::string request = std::to_string(c) + "/" + std::to_string(i), response;
        if (Unary(channel.get(), Method("Echo"), request, &response).ok() && response == request) ok++;
      }
    });
  }
  for (auto &t : clients) t.join();
  EXPECT_EQ(ok, 16 * 50);
  EXPECT_EQ(server_.accepted(), 16);
}

TEST_F(H2ServerTest, ServerStreamingSendsThousandMessagesInOrder) {
  auto channel = NewChannel(server_);
  StreamResult r = Stream(channel.get(), Method("Count"), {"1000"});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.responses.size(), 1000u);
  for (int i = 0; i < 1000; i++) ASSERT_EQ(r.responses[i], std::to_string(i));
}

TEST_F(H2ServerTest, ServerStreamingBeyondTheSendQueueIsPolledAsItDrains) {
  // 100k small messages are ~1 MB of frames: far past the 128 KiB queue.
  auto channel = NewChannel(server_);
  StreamResult r = Stream(channel.get(), Method("Count"), {"100000"});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.responses.size(), 100000u);
  EXPECT_EQ(r.responses.back(), "99999");
}

TEST_F(H2ServerTest, ClientStreamingSumsThousandMessages) {
  auto channel = NewChannel(server_);
  std::vector<std::string> requests;
  for (int i = 1; i <= 1000; i++) requests.push_back(std::to_string(i));
  StreamResult r = Stream(channel.get(), Method("Sum"), requests);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.responses.size(), 1u);
  EXPECT_THAT(r.responses[0], ::testing::StartsWith("messages=1000 "));
  EXPECT_THAT(r.responses[0], ::testing::EndsWith(" sum=500500"));
}

TEST_F(H2ServerTest, ClientStreamingTakesOneMegabyte) {
  auto channel = NewChannel(server_);
  std::vector<std::string> requests(16, std::string(RPC_MAX_MESSAGE, 'x'));  // 16 x 64 KiB
  auto start = steady_clock::now();
  StreamResult r = Stream(channel.get(), Method("Sum"), requests);
  double ms = std::chrono::duration<double, std::milli>(steady_clock::now() - start).count();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.responses.size(), 1u);
  EXPECT_EQ(r.responses[0], "messages=16 bytes=1048576 sum=0");
  printf("1 MiB client-streaming upload: %.1f ms\n", ms);
  EXPECT_LT(ms, 2000);
}

TEST_F(H2ServerTest, LargestAllowedMessageRoundTrips) {
  auto channel = NewChannel(server_);
  std::string big(RPC_MAX_MESSAGE, 'b'), response;
  ASSERT_TRUE(Unary(channel.get(), Method("Echo"), big, &response).ok());
  EXPECT_EQ(response, big);
}

TEST_F(H2ServerTest, StatusMessageIsPercentEncodedAndDecodedByTheClient) {
  auto channel = NewChannel(server_);
  grpc::Status status = Unary(channel.get(), Method("Fail"), "", nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "no such thing: 100% \xc3\xa9t\xc3\xa9\n");
}

// ---- Errors

TEST_F(H2ServerTest, UnknownMethodIsUnimplemented) {
  auto channel = NewChannel(server_);
  grpc::Status status = Unary(channel.get(), Method("Nope"), "x", nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("Nope"));
}

TEST_F(H2ServerTest, UnknownServiceIsUnimplemented) {
  auto channel = NewChannel(server_);
  grpc::Status status = Unary(channel.get(), "/other.Service/Echo", "x", nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("other.Service"));
}

TEST_F(H2ServerTest, RequestOverMaxMessageIsResourceExhausted) {
  auto channel = NewChannel(server_);
  grpc::Status status = Unary(channel.get(), Method("Echo"), std::string(RPC_MAX_MESSAGE + 1, 'x'), nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  // The connection is still good.
  std::string response;
  EXPECT_TRUE(Unary(channel.get(), Method("Echo"), "after", &response).ok());
  EXPECT_EQ(server_.accepted(), 1);
}

TEST_F(H2ServerTest, HugeClientStreamIsCutOffNotBuffered) {
  // 8 MiB announced as one message: refused at the prefix.
  auto channel = NewChannel(server_);
  StreamResult r = Stream(channel.get(), Method("Sum"), {std::string(8 << 20, 'z')});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(H2ServerTest, CompressedRequestIsUnimplemented) {
  auto channel = NewChannel(server_);
  grpc::ClientContext ctx;
  ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  grpc::Status status = Unary(channel.get(), Method("Echo"), std::string(1000, 'c'), nullptr, &ctx);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("compression not supported"));
}

TEST_F(H2ServerTest, NonGrpcContentTypeIsHttp415) {
  RawResponse r = RawRequest(server_.port(), {{":method", "POST"},
                                              {":scheme", "http"},
                                              {":authority", "127.0.0.1"},
                                              {":path", "/threadfleet.test.v1.Test/Echo"},
                                              {"content-type", "text/plain"}});
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.http_status, "415");
}

TEST_F(H2ServerTest, NonPostIsHttp405) {
  RawResponse r = RawRequest(server_.port(), {{":method", "GET"},
                                              {":scheme", "http"},
                                              {":authority", "127.0.0.1"},
                                              {":path", "/threadfleet.test.v1.Test/Echo"},
                                              {"content-type", "application/grpc"}});
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.http_status, "405");
}

TEST_F(H2ServerTest, UnknownMethodIsTrailersOnly) {
  RawResponse r = RawRequest(server_.port(), {{":method", "POST"},
                                              {":scheme", "http"},
                                              {":authority", "127.0.0.1"},
                                              {":path", "/threadfleet.test.v1.Test/Nope"},
                                              {"content-type", "application/grpc+proto"},
                                              {"te", "trailers"}});
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.http_status, "200");
  EXPECT_EQ(r.grpc_status, "12");
}

TEST_F(H2ServerTest, UnaryWithoutRequestIsInternal) {
  auto channel = NewChannel(server_);
  StreamResult r = Stream(channel.get(), Method("Echo"), {});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INTERNAL);
}

TEST_F(H2ServerTest, UnaryWithTwoRequestsIsInternal) {
  auto channel = NewChannel(server_);
  StreamResult r = Stream(channel.get(), Method("Sleep"), {"200", "200"});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INTERNAL);
}

// ---- Deadlines, cancellation, keepalive, shutdown

TEST_F(H2ServerTest, DeadlineEndsSleepingCallAndRunsOnDone) {
  auto channel = NewChannel(server_);
  int done_before = g_log.Get(&ServiceLog::sleep_done);
  grpc::ClientContext ctx;
  auto start = steady_clock::now();
  ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(50));
  grpc::Status status = Unary(channel.get(), Method("Sleep"), "1000", nullptr, &ctx);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(g_log.WaitFor(&ServiceLog::sleep_done, done_before + 1, milliseconds(500)));
  EXPECT_LT(steady_clock::now() - start, milliseconds(500));
}

TEST_F(H2ServerTest, ServerEnforcesGrpcTimeoutItself) {
  // A deadline the client does not act on first: the server's trailers win.
  auto channel = NewChannel(server_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(100));
  auto start = steady_clock::now();
  StreamResult r = Stream(channel.get(), Method("Sleep"), {"5000"}, &ctx);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));
}

TEST_F(H2ServerTest, ClientCancelRunsOnDone) {
  auto channel = NewChannel(server_);
  int started_before = g_log.Get(&ServiceLog::sleep_started);
  int done_before = g_log.Get(&ServiceLog::sleep_done);
  grpc::ClientContext ctx;
  grpc::Status status;
  std::thread caller([&] { status = Unary(channel.get(), Method("Sleep"), "10000", nullptr, &ctx); });
  ASSERT_TRUE(g_log.WaitFor(&ServiceLog::sleep_started, started_before + 1, milliseconds(2000)));
  ctx.TryCancel();
  caller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(g_log.WaitFor(&ServiceLog::sleep_done, done_before + 1, milliseconds(1000)));
}

TEST_F(H2ServerTest, KeepalivePingsKeepTheConnectionUp) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 100);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  auto channel = NewChannel(server_, args);
  std::string response;
  ASSERT_TRUE(Unary(channel.get(), Method("Echo"), "before", &response).ok());
  long long received_before = server_.received();
  // Idle, the channel staying READY (waiting also lets gRPC's poller run the
  // client's I/O, which sends the pings and reads the acks). gRPC C++ spaces
  // its pings at least 1 s apart whatever the keepalive time, so 1.5 s.
  EXPECT_FALSE(
      channel->WaitForStateChange(GRPC_CHANNEL_READY, std::chrono::system_clock::now() + milliseconds(1500)));
  // At least one ping (a 17-byte frame) arrived while no call ran.
  EXPECT_GE(server_.received() - received_before, 17);
  ASSERT_TRUE(Unary(channel.get(), Method("Echo"), "after", &response).ok());
  EXPECT_EQ(server_.accepted(), 1);
}

TEST(H2ServerShutdown, StopSendsGoawayAndEveryCallGetsOnDone) {
  int done_before = g_log.Get(&ServiceLog::sleep_done);
  int started_before = g_log.Get(&ServiceLog::sleep_started);
  auto server = std::make_unique<TestServer>();
  auto channel = NewChannel(*server);
  grpc::Status status;
  std::thread caller([&] { status = Unary(channel.get(), Method("Sleep"), "60000", nullptr); });
  ASSERT_TRUE(g_log.WaitFor(&ServiceLog::sleep_started, started_before + 1, milliseconds(2000)));
  auto start = steady_clock::now();
  server.reset();  // rpc_h2_conn_stop on every connection, then joins them
  EXPECT_LT(steady_clock::now() - start, milliseconds(3000));
  EXPECT_GE(g_log.Get(&ServiceLog::sleep_done), done_before + 1);
  caller.join();
  EXPECT_FALSE(status.ok());
}

TEST(H2ServerShutdown, ConnectionLossRunsOnDone) {
  TestServer server;
  int started_before = g_log.Get(&ServiceLog::sleep_started);
  int done_before = g_log.Get(&ServiceLog::sleep_done);
  {
    auto channel = NewChannel(server);
    grpc::ClientContext ctx;
    std::thread caller([&] { Unary(channel.get(), Method("Sleep"), "60000", nullptr, &ctx); });
    ASSERT_TRUE(g_log.WaitFor(&ServiceLog::sleep_started, started_before + 1, milliseconds(2000)));
    // A client process dying looks like this to the server: the socket closes.
    for (int fd = 3; fd < 1024; fd++) {
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      if (getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len) == 0 &&
          ntohs(peer.sin_port) == server.port()) {
        shutdown(fd, SHUT_RDWR);
      }
    }
    EXPECT_TRUE(g_log.WaitFor(&ServiceLog::sleep_done, done_before + 1, milliseconds(2000)));
    ctx.TryCancel();
    caller.join();
  }
}

// ---- Limits: a peer that stops reading, idle connections, the byte budget

// The kernel buffers between a server and a client that stopped reading fill
// with at most a few hundred KB; 10^6 small messages are ~9 MB of frames.
constexpr const char *kEndless = "1000000";
constexpr int kSmallSendBuffer = 4096;

TEST(H2ServerLimits, PeerThatStopsReadingIsDroppedAfterTheSendTimeout) {
  rpc_h2_limits_t limits = {};
  limits.send_timeout_ms = 300;
  TestServer server(limits, kSmallSendBuffer);
  StalledClient client(server.port());
  client.Start("Count", kEndless);

  ASSERT_TRUE(server.WaitForEnds(1, milliseconds(10000))) << "the connection is still up";
  EXPECT_EQ(server.run_results()[0], RPC_H2_END_SEND_TIMEOUT);
}

TEST(H2ServerLimits, DeadlinesFireWhileThePeerDoesNotRead) {
  rpc_h2_limits_t limits = {};
  limits.send_timeout_ms = 60000;
  TestServer server(limits, kSmallSendBuffer);
  int done_before = g_log.Get(&ServiceLog::sleep_done);
  StalledClient client(server.port());
  client.Start("Count", kEndless);
  client.Start("Sleep", "60000", "200m");

  // The Sleep call's deadline ends it (on_done runs) though the connection
  // cannot send its status: the peer reads nothing.
  EXPECT_TRUE(g_log.WaitFor(&ServiceLog::sleep_done, done_before + 1, milliseconds(5000)));
  EXPECT_TRUE(server.run_results().empty()) << "the connection is still up (the send timeout is 60 s)";
  client.Close();
}

TEST(H2ServerLimits, StopEndsAConnectionWhosePeerDoesNotRead) {
  rpc_h2_limits_t limits = {};  // no send timeout at all
  auto server = std::make_unique<TestServer>(limits, kSmallSendBuffer);
  StalledClient client(server->port());
  client.Start("Count", kEndless);
  ASSERT_FALSE(server->WaitForEnds(1, milliseconds(300)));

  // The destructor asks every connection to stop and joins its thread.
  auto stopped = std::async(std::launch::async, [&] { server.reset(); });
  bool returned = stopped.wait_for(milliseconds(5000)) == std::future_status::ready;
  client.Close();  // unblocks a server that does not give up by itself
  stopped.wait();
  EXPECT_TRUE(returned) << "stopping waited for a peer that reads nothing";
}

TEST(H2ServerLimits, IdleConnectionIsClosedWithGoawayAndTheClientReconnects) {
  rpc_h2_limits_t limits = {};
  limits.idle_timeout_ms = 200;
  TestServer server(limits);
  auto channel = NewChannel(server);
  std::string response;
  ASSERT_TRUE(Unary(channel.get(), Method("Echo"), "before", &response).ok());

  ASSERT_TRUE(server.WaitForEnds(1, milliseconds(5000)));
  EXPECT_EQ(server.run_results()[0], RPC_H2_END_IDLE);
  // GOAWAY(NO_ERROR) is a clean end to gRPC: the next call connects again.
  ASSERT_TRUE(Unary(channel.get(), Method("Echo"), "after", &response).ok());
  EXPECT_EQ(response, "after");
  EXPECT_EQ(server.accepted(), 2);
}

TEST(H2ServerLimits, ConnectionWithAnOpenStreamIsNotIdle) {
  rpc_h2_limits_t limits = {};
  limits.idle_timeout_ms = 100;
  TestServer server(limits);
  auto channel = NewChannel(server);
  std::string response;

  grpc::Status status = Unary(channel.get(), Method("Sleep"), "600", &response);

  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response, "slept");
  EXPECT_EQ(server.accepted(), 1);
}

TEST(H2ServerLimits, ResponsesBeyondTheByteBudgetEndTheCallNamingTheBudget) {
  rpc_channel_budget_t *budget = rpc_channel_budget_new(40 * 1024, nullptr, nullptr);
  rpc_h2_limits_t limits = {};
  limits.budget = budget;
  {
    TestServer server(limits);
    auto channel = NewChannel(server);
    // Count queues as many messages as its call may (128 KiB) in one poll:
    // more than the whole channel's 40 KiB.
    StreamResult r = Stream(channel.get(), Method("Count"), {"100000"});
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(r.status.error_message(), ::testing::HasSubstr("byte budget of 40960 bytes"));
    std::string response;
    EXPECT_TRUE(Unary(channel.get(), Method("Echo"), "small", &response).ok()) << "the connection is fine";
    EXPECT_EQ(rpc_channel_budget_refusals(budget), 1u);
  }
  EXPECT_EQ(rpc_channel_budget_used(budget), 0u) << "every byte taken was given back";
  rpc_channel_budget_free(budget);
}

TEST(H2ServerLimits, RequestBeyondTheByteBudgetIsRefusedNamingTheBudget) {
  rpc_channel_budget_t *budget = rpc_channel_budget_new(16 * 1024, nullptr, nullptr);
  rpc_h2_limits_t limits = {};
  limits.budget = budget;
  {
    TestServer server(limits);
    auto channel = NewChannel(server);
    // 32 KiB arrive in two DATA frames: reassembling it would take 32 KiB.
    grpc::Status status = Unary(channel.get(), Method("Echo"), std::string(32 * 1024, 'r'), nullptr);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), ::testing::HasSubstr("byte budget of 16384 bytes"));
  }
  EXPECT_EQ(rpc_channel_budget_used(budget), 0u);
  rpc_channel_budget_free(budget);
}

TEST(ChannelBudget, TakesUpToTheLimitAndCountsRefusals) {
  struct Refusal {
    size_t wanted = 0, used = 0, limit = 0;
  } last;
  rpc_channel_budget_t *b = rpc_channel_budget_new(
      100,
      [](void *ctx, size_t wanted, size_t used, size_t limit) {
        *static_cast<Refusal *>(ctx) = {wanted, used, limit};
      },
      &last);
  EXPECT_TRUE(rpc_channel_budget_take(b, 60));
  EXPECT_TRUE(rpc_channel_budget_take(b, 40));
  EXPECT_FALSE(rpc_channel_budget_take(b, 1));
  EXPECT_EQ(last.wanted, 1u);
  EXPECT_EQ(last.used, 100u);
  EXPECT_EQ(last.limit, 100u);
  rpc_channel_budget_give(b, 60);
  EXPECT_TRUE(rpc_channel_budget_take(b, 60));
  EXPECT_FALSE(rpc_channel_budget_take(b, SIZE_MAX)) << "no overflow past the limit";
  EXPECT_EQ(rpc_channel_budget_used(b), 100u);
  EXPECT_EQ(rpc_channel_budget_refusals(b), 2u);
  rpc_channel_budget_give(b, 100);
  rpc_channel_budget_free(b);
}

TEST(H2ServerFeed, GarbageIsRefusedWithoutACrash) {
  rpc_h2_conn_t *conn = rpc_h2_conn_new(&kService, rpc_transport_t{}, "", nullptr);
  ASSERT_NE(conn, nullptr);
  const uint8_t garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  EXPECT_FALSE(rpc_h2_conn_feed(conn, garbage, sizeof garbage - 1));
  EXPECT_FALSE(rpc_h2_conn_feed(conn, garbage, sizeof garbage - 1));
  rpc_h2_conn_free(conn);
}

// ---- Internals: message framing and grpc-timeout

TEST(GrpcFrame, MessagesSpanningReadsAndSeveralPerRead) {
  grpc_frame_reader_t r;
  grpc_frame_reader_init(&r, 100, nullptr);
  const uint8_t bytes[] = {0, 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 'x', 'y'};
  std::vector<std::string> got;
  // Feed one byte at a time, then all at once.
  for (int pass = 0; pass < 2; pass++) {
    size_t step = pass == 0 ? 1 : sizeof bytes;
    for (size_t off = 0; off < sizeof bytes; off += step) {
      const uint8_t *p = bytes + off;
      size_t len = std::min(step, sizeof bytes - off);
      while (len > 0) {
        grpc_frame_msg_t m;
        size_t used = grpc_frame_read(&r, p, len, &m);
        p += used;
        len -= used;
        if (m.result == GRPC_FRAME_MESSAGE) got.emplace_back(reinterpret_cast<const char *>(m.data), m.len);
        ASSERT_TRUE(m.result == GRPC_FRAME_MESSAGE || m.result == GRPC_FRAME_NEED_MORE);
      }
    }
    EXPECT_FALSE(grpc_frame_reader_partial(&r));
  }
  grpc_frame_reader_reset(&r);
  EXPECT_EQ(got, (std::vector<std::string>{"abc", "", "xy", "abc", "", "xy"}));
}

TEST(GrpcFrame, CompressedAndOversizeAreRefusedAtThePrefix) {
  grpc_frame_reader_t r;
  grpc_frame_reader_init(&r, 100, nullptr);
  grpc_frame_msg_t m;
  const uint8_t compressed[] = {1, 0, 0, 0, 1, 'z'};
  grpc_frame_read(&r, compressed, sizeof compressed, &m);
  EXPECT_EQ(m.result, GRPC_FRAME_COMPRESSED);
  grpc_frame_reader_reset(&r);
  const uint8_t big[] = {0, 0x7f, 0xff, 0xff, 0xff};
  grpc_frame_read(&r, big, sizeof big, &m);
  EXPECT_EQ(m.result, GRPC_FRAME_TOO_LARGE);
  EXPECT_EQ(m.announced, 0x7fffffffu);
  EXPECT_EQ(grpc_frame_read(&r, big, sizeof big, &m), 0u);
  grpc_frame_reader_reset(&r);
}

TEST(GrpcFrame, AMessageSpanningReadsTakesItsBufferFromTheBudget) {
  rpc_channel_budget_t *budget = rpc_channel_budget_new(64, nullptr, nullptr);
  grpc_frame_reader_t r;
  grpc_frame_reader_init(&r, 1000, budget);
  grpc_frame_msg_t m;
  const uint8_t small[] = {0, 0, 0, 0, 40, 'a'};  // 40 bytes announced, 1 here
  grpc_frame_read(&r, small, sizeof small, &m);
  EXPECT_EQ(m.result, GRPC_FRAME_NEED_MORE);
  EXPECT_EQ(rpc_channel_budget_used(budget), 40u);
  grpc_frame_reader_reset(&r);
  EXPECT_EQ(rpc_channel_budget_used(budget), 0u);

  const uint8_t big[] = {0, 0, 0, 0, 65, 'b'};  // 65 bytes: more than the budget
  grpc_frame_read(&r, big, sizeof big, &m);
  EXPECT_EQ(m.result, GRPC_FRAME_OVER_BUDGET);
  EXPECT_EQ(m.announced, 65u);
  grpc_frame_reader_reset(&r);
  EXPECT_EQ(rpc_channel_budget_used(budget), 0u);
  rpc_channel_budget_free(budget);
}

TEST(GrpcTimeout, ParsesEveryUnitAndRejectsMalformedValues) {
  int64_t ns = 0;
  EXPECT_TRUE(grpc_timeout_parse("50m", 3, &ns));
  EXPECT_EQ(ns, 50000000);
  EXPECT_TRUE(grpc_timeout_parse("2H", 2, &ns));
  EXPECT_EQ(ns, 7200LL * 1000000000LL);
  EXPECT_TRUE(grpc_timeout_parse("1M", 2, &ns));
  EXPECT_EQ(ns, 60LL * 1000000000LL);
  EXPECT_TRUE(grpc_timeout_parse("3S", 2, &ns));
  EXPECT_EQ(ns, 3000000000LL);
  EXPECT_TRUE(grpc_timeout_parse("7u", 2, &ns));
  EXPECT_EQ(ns, 7000);
  EXPECT_TRUE(grpc_timeout_parse("99999999n", 9, &ns));
  EXPECT_EQ(ns, 99999999);
  EXPECT_TRUE(grpc_timeout_parse("99999999H", 9, &ns));
  EXPECT_GT(ns, 0);
  EXPECT_FALSE(grpc_timeout_parse("100000000S", 10, &ns));  // 9 digits
  EXPECT_FALSE(grpc_timeout_parse("S", 1, &ns));
  EXPECT_FALSE(grpc_timeout_parse("10x", 3, &ns));
  EXPECT_FALSE(grpc_timeout_parse("-1S", 3, &ns));
}

}  // namespace
