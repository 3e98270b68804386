// The interop scenario with gRPC C++ (Debian's 1.51) as the client, through the
// stubs generated from board.proto.
//
// Run by tests/interop/board_fixture.py, which provides the board and these
// variables: BOARD_ADDR, BOARD_CA, CLIENT_CERT, CLIENT_KEY, BOARD_NAME; plus
// SEED_SCRIPT (path of thread_basic.py).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "threadfleet/board/v1/board.grpc.pb.h"

namespace {

namespace pb = threadfleet::board::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kRpcTimeout = 10s;
constexpr char kRemotePath[] = "/thread_basic.py";
constexpr char kExpectedOutput[] = "Main thread is running:  0";

std::string Env(const char *name) {
  const char *v = std::getenv(name);
  return v ? v : "";
}

std::string ReadAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Sha256Hex(const std::string &data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) return "";
  std::ostringstream out;
  for (unsigned int i = 0; i < len; i++) out << std::hex << std::setw(2) << std::setfill('0') << int{md[i]};
  return out.str();
}

std::string StatusText(const grpc::Status &s) {
  return "gRPC status " + std::to_string(s.error_code()) + ": " + s.error_message();
}

void SetDeadline(grpc::ClientContext &ctx, std::chrono::milliseconds timeout = kRpcTimeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

bool IsLive(pb::ThreadState s) {
  return s == pb::THREAD_STATE_RUNNING || s == pb::THREAD_STATE_SLEEPING ||
         s == pb::THREAD_STATE_WAITING_LOCK;
}

// Calls fn every 50 ms until it returns true or the timeout passes.
bool PollUntil(std::chrono::milliseconds timeout, const std::function<bool()> &fn) {
  const auto end = Clock::now() + timeout;
  for (;;) {
    if (fn()) return true;
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(50ms);
  }
}

// A WatchHealth stream read on its own thread: counts snapshots, remembers
// THREAD_KILLED events by thread id.
class HealthWatch {
 public:
  HealthWatch(pb::BoardControl::Stub &stub, const std::string &board_name) : board_name_(board_name) {
    SetDeadline(ctx_, 60s);
    pb::WatchHealthRequest req;
    req.set_period_ms(100);
    reader_ = stub.WatchHealth(&ctx_, req);
    thread_ = std::thread([this] { Pump(); });
  }
  ~HealthWatch() { Cancel(); }

  int snapshots() const { return snapshots_.load(); }
  bool ended() const { return ended_.load(); }
  std::string bad_name() {
    std::lock_guard<std::mutex> l(mu_);
    return bad_name_;
  }
  std::optional<pb::Event> killed_event(uint32_t thread_id) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = killed_.find(thread_id);
    if (it == killed_.end()) return std::nullopt;
    return it->second;
  }
  // Cancels the stream and joins the reader; returns the stream's status.
  grpc::Status Cancel() {
    if (thread_.joinable()) {
      ctx_.TryCancel();
      thread_.join();
    }
    return status_;
  }

 private:
  void Pump() {
    pb::WatchHealthResponse u;
    while (reader_->Read(&u)) {
      if (u.has_snapshot()) {
        if (u.snapshot().board_name() != board_name_) {
          std::lock_guard<std::mutex> l(mu_);
          bad_name_ = u.snapshot().board_name();
        }
        snapshots_++;
      } else if (u.has_event() && u.event().kind() == pb::EVENT_KIND_THREAD_KILLED) {
        std::lock_guard<std::mutex> l(mu_);
        killed_.emplace(u.event().thread_id(), u.event());
      }
    }
    status_ = reader_->Finish();
    ended_ = true;
  }

  const std::string board_name_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<pb::WatchHealthResponse>> reader_;
  std::thread thread_;
  std::atomic<int> snapshots_{0};
  std::atomic<bool> ended_{false};
  grpc::Status status_;
  std::mutex mu_;
  std::string bad_name_;
  std::map<uint32_t, pb::Event> killed_;
};

class InteropCpp : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char *v :
         {"BOARD_ADDR", "BOARD_CA", "CLIENT_CERT", "CLIENT_KEY", "BOARD_NAME", "SEED_SCRIPT"}) {
      ASSERT_FALSE(Env(v).empty()) << v << " is not set (run through tests/interop/board_fixture.py)";
    }
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ReadAll(Env("BOARD_CA"));
    tls.pem_private_key = ReadAll(Env("CLIENT_KEY"));
    tls.pem_cert_chain = ReadAll(Env("CLIENT_CERT"));
    ASSERT_FALSE(tls.pem_root_certs.empty() || tls.pem_private_key.empty() || tls.pem_cert_chain.empty())
        << "could not read the PKI files";
    channel_ = grpc::CreateChannel(Env("BOARD_ADDR"), grpc::SslCredentials(tls));
    ASSERT_TRUE(channel_->WaitForConnected(std::chrono::system_clock::now() + kRpcTimeout))
        << "no TLS/HTTP2 connection to " << Env("BOARD_ADDR");
    stub_ = pb::BoardControl::NewStub(channel_);
  }

  std::vector<pb::ThreadInfo> ProgramThreads(uint32_t program_id, bool include_finished) {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    pb::ListThreadsRequest req;
    req.set_program_id(program_id);
    req.set_include_finished(include_finished);
    pb::ListThreadsResponse resp;
    grpc::Status s = stub_->ListThreads(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << "ListThreads: " << StatusText(s);
    std::vector<pb::ThreadInfo> out;
    for (const auto &t : resp.threads())
      if (t.program_id() == program_id) out.push_back(t);
    return out;
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::BoardControl::Stub> stub_;
};

TEST_F(InteropCpp, Scenario) {
  const std::string board_name = Env("BOARD_NAME");

  // GetInfo
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    pb::GetInfoResponse resp;
    grpc::Status s = stub_->GetInfo(&ctx, pb::GetInfoRequest(), &resp);
    ASSERT_TRUE(s.ok()) << "GetInfo: " << StatusText(s);
    EXPECT_EQ(resp.info().name(), board_name);
  }

  // WriteFile: the header, then the script in three chunks.
  const std::string content = ReadAll(Env("SEED_SCRIPT"));
  ASSERT_GE(content.size(), 2u) << "cannot read " << Env("SEED_SCRIPT");
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    pb::WriteFileResponse resp;
    auto writer = stub_->WriteFile(&ctx, &resp);
    pb::WriteFileRequest header;
    header.mutable_header()->set_path(kRemotePath);
    header.mutable_header()->set_expected_size_bytes(content.size());
    ASSERT_TRUE(writer->Write(header)) << "WriteFile: stream broke on the header";
    const size_t chunk = (content.size() + 2) / 3;
    int chunks = 0;
    for (size_t off = 0; off < content.size(); off += chunk, chunks++) {
      pb::WriteFileRequest data;
      data.set_data(content.substr(off, chunk));
      if (!writer->Write(data)) break;  // Finish() tells why
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << "WriteFile: " << StatusText(s);
    ASSERT_GE(chunks, 2);
    EXPECT_EQ(resp.sha256_hex(), Sha256Hex(content));
    EXPECT_EQ(resp.size_bytes(), content.size());
  }

  // ListFiles
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    pb::ListFilesRequest req;
    req.set_path("/");
    pb::ListFilesResponse resp;
    grpc::Status s = stub_->ListFiles(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << "ListFiles: " << StatusText(s);
    auto it = std::find_if(resp.entries().begin(), resp.entries().end(),
                           [](const pb::FileEntry &e) { return e.name() == "thread_basic.py"; });
    ASSERT_NE(it, resp.entries().end()) << "ListFiles / lacks thread_basic.py: " << resp.ShortDebugString();
    EXPECT_FALSE(it->is_dir());
    EXPECT_EQ(it->size_bytes(), content.size());
  }

  // StartProgram
  uint32_t program_id = 0, main_thread_id = 0;
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    pb::StartProgramRequest req;
    req.set_path(kRemotePath);
    pb::StartProgramResponse resp;
    grpc::Status s = stub_->StartProgram(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << "StartProgram: " << StatusText(s);
    program_id = resp.program_id();
    main_thread_id = resp.main_thread_id();
    ASSERT_NE(program_id, 0u);
    ASSERT_NE(main_thread_id, 0u);
  }

  // ListThreads: 2+ threads of the program within 2 s.
  std::vector<pb::ThreadInfo> threads;
  const bool two_threads = PollUntil(2s, [&] {
    threads = ProgramThreads(program_id, false);
    return threads.size() >= 2;
  });
  ASSERT_TRUE(two_threads) << "fewer than 2 threads of program " << program_id
                           << " within 2 s (last: " << threads.size() << ")";
  auto victim_it = std::find_if(threads.begin(), threads.end(),
                                [&](const pb::ThreadInfo &t) { return t.id() != main_thread_id; });
  ASSERT_NE(victim_it, threads.end());
  const pb::ThreadInfo victim = *victim_it;
  ASSERT_TRUE(IsLive(victim.state())) << "not alive before the kill: " << victim.ShortDebugString();

  // WatchHealth, opened before the kill so that its event arrives on it.
  HealthWatch watch(*stub_, board_name);
  ASSERT_TRUE(PollUntil(5s, [&] { return watch.snapshots() > 0 || watch.ended(); }));
  ASSERT_GT(watch.snapshots(), 0) << "WatchHealth: no snapshot within 5 s; " << StatusText(watch.Cancel());

  // KillThread (grace 200 ms) -> KILLED in ListThreads within 2 s.
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    pb::KillThreadRequest req;
    req.set_thread_id(victim.id());
    req.set_grace_ms(200);
    pb::KillThreadResponse resp;
    grpc::Status s = stub_->KillThread(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << "KillThread: " << StatusText(s);
    EXPECT_EQ(resp.thread().id(), victim.id());
    EXPECT_FALSE(resp.thread().unkillable());
  }
  pb::ThreadInfo last;
  const bool killed = PollUntil(2s, [&] {
    for (const auto &t : ProgramThreads(program_id, true))
      if (t.id() == victim.id()) last = t;
    return last.state() == pb::THREAD_STATE_KILLED;
  });
  EXPECT_TRUE(killed) << "thread " << victim.id() << " not KILLED within 2 s: " << last.ShortDebugString();

  // WatchHealth: 2+ snapshots and the THREAD_KILLED event, then cancel.
  const bool watched = PollUntil(5s, [&] {
    return watch.ended() || (watch.snapshots() >= 2 && watch.killed_event(victim.id()).has_value());
  });
  EXPECT_TRUE(watched) << "WatchHealth: not 2+ snapshots and the THREAD_KILLED event within 5 s";
  EXPECT_FALSE(watch.ended()) << "WatchHealth ended by itself: " << StatusText(watch.Cancel());
  EXPECT_GE(watch.snapshots(), 2);
  EXPECT_TRUE(watch.killed_event(victim.id()).has_value())
      << "no THREAD_KILLED event for thread " << victim.id();
  EXPECT_EQ(watch.bad_name(), "") << "a snapshot named another board";
  grpc::Status watch_status = watch.Cancel();
  EXPECT_EQ(watch_status.error_code(), grpc::StatusCode::CANCELLED) << StatusText(watch_status);

  // StreamOutput (follow=false, from 0)
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    pb::StreamOutputRequest req;
    req.set_program_id(program_id);
    req.set_from_offset(0);
    req.set_follow(false);
    auto reader = stub_->StreamOutput(&ctx, req);
    std::string out;
    pb::StreamOutputResponse r;
    while (reader->Read(&r)) out += r.chunk().data();
    grpc::Status s = reader->Finish();
    ASSERT_TRUE(s.ok()) << "StreamOutput: " << StatusText(s);
    EXPECT_NE(out.find(kExpectedOutput), std::string::npos)
        << "StreamOutput lacks '" << kExpectedOutput << "'; got: " << out;
  }
}

}  // namespace
