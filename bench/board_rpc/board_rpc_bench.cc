// bench/board_rpc: the board's control channel (a real `fleetboard serve`:
// gRPC on its own lwIP/slirp stack, mbedTLS) against a baseline run in the
// same process: a plain gRPC C++ server on host TCP 127.0.0.1 with the same
// mutual TLS (same CA, same server certificate, client certificates required)
// serving GetInfo and WriteFile the way the board does.
//
//   board_rpc_bench FLEETBOARD PKI_SCRIPT [--rounds N] [--calls N] [--warmup N]
//                   [--writes N] [--kills N]
//
// Prints, alternating board and baseline in rounds:
//   - GetInfo latency p50/p99 and the ratio board/baseline (target <= 1.5x);
//   - WriteFile throughput of 1 MiB (median) and the ratio board/baseline.
// And for the board alone (upstream has nothing to compare with):
//   - KillThread end to end: from sending KillThread until ListThreads shows
//     the thread KILLED, p50/p99 (target < 5 ms);
//   - VmRSS idle and with 16 threads alive at --heap 256k (target < 16 MB).
// Asserts nothing about timings: exits non-zero only when something fails to
// work (a call errs, a checksum differs, the board does not stop cleanly).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "threadfleet/board/v1/board.grpc.pb.h"

namespace {

namespace pb = threadfleet::board::v1;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kBoardName[] = "b01";
constexpr char kHeap[] = "256k";
constexpr int kMaxThreads = 16;
// Room for the benchmark file twice over: WriteFile keeps the old file until
// the new one is complete.
constexpr char kFlashSize[] = "4m";
constexpr auto kServingTimeout = 20s;
constexpr auto kRpcTimeout = 10s;
constexpr auto kStopTimeout = 10s;

constexpr size_t kWriteBytes = 1 << 20;
// The board's limit for one data chunk (WriteFileRequest.data max_size in
// proto/threadfleet/board/v1/board.options); a 16 KiB chunk is INVALID_ARGUMENT.
constexpr size_t kWriteChunkBytes = 4096;
constexpr char kWritePath[] = "/bench/board_rpc.bin";

constexpr double kLatencyRatioTarget = 1.5;
constexpr double kKillTargetUs = 5000;
constexpr double kRssTargetMb = 16;

constexpr char kVictimProgram[] =
    "import _thread, time\n"
    "def victim():\n"
    "    time.sleep(3600)\n"
    "_thread.start_new_thread(victim, ())\n"
    "time.sleep(3600)\n";
// The main thread and 15 sleepers: the board's default limit of 16 threads.
constexpr char kSixteenThreadsProgram[] =
    "import _thread, time\n"
    "def sleeper():\n"
    "    time.sleep(3600)\n"
    "for _ in range(15):\n"
    "    _thread.start_new_thread(sleeper, ())\n"
    "time.sleep(3600)\n";

struct Options {
  std::string fleetboard, pki_script;
  int rounds = 10;
  int calls = 2000;
  int warmup = 200;
  int writes = 10;
  int kills = 50;
};

[[noreturn]] void Fail(const std::string &what) { throw std::runtime_error(what); }

void Check(const grpc::Status &s, const std::string &what) {
  if (!s.ok()) Fail(what + ": gRPC status " + std::to_string(s.error_code()) + ": " + s.error_message());
}

Options ParseOptions(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: %s FLEETBOARD PKI_SCRIPT [--rounds N] [--calls N] [--warmup N] [--writes N] "
                 "[--kills N]\n",
                 argv[0]);
    std::exit(2);
  }
  Options o{argv[1], argv[2]};
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    int value = std::atoi(argv[i + 1]);
    int *field = flag == "--rounds"   ? &o.rounds
                 : flag == "--calls"  ? &o.calls
                 : flag == "--warmup" ? &o.warmup
                 : flag == "--writes" ? &o.writes
                 : flag == "--kills"  ? &o.kills
                                      : nullptr;
    if (field == nullptr || value < 1) Fail("bad option " + flag + " " + argv[i + 1]);
    *field = value;
  }
  o.rounds = std::min(o.rounds, o.calls);
  return o;
}

// ---- Processes, files, numbers ---------------------------------------------------------------

// In a forked child before exec: die with the benchmark.
void DieWithParent() { prctl(PR_SET_PDEATHSIG, SIGKILL); }

void RunChecked(const std::vector<std::string> &argv) {
  pid_t pid = fork();
  if (pid == 0) {
    DieWithParent();
    int null = open("/dev/null", O_WRONLY);
    dup2(null, STDERR_FILENO);
    std::vector<char *> args;
    for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Fail(argv[0] + " " + argv[1] + " failed");
  }
}

std::string ReadAll(const fs::path &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
    Fail("no free port on 127.0.0.1");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// VmRSS or VmHWM of a process, in MB (10^6 bytes).
double ProcStatusMb(pid_t pid, const std::string &field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atof(line.c_str() + field.size() + 1) * 1024 / 1e6;
  }
  Fail("no " + field + " for pid " + std::to_string(pid));
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// Incremental SHA-256 as lowercase hex, as the board reports it.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void Update(const std::string &data) { EVP_DigestUpdate(ctx_.get(), data.data(), data.size()); }
  std::string Hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &len);
    std::ostringstream out;
    for (unsigned int i = 0; i < len; i++) out << std::hex << std::setw(2) << std::setfill('0') << int{md[i]};
    return out.str();
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

// ---- The lab PKI (deploy/pki) in a temporary directory --------------------------------------

// Removed with everything in it when it goes out of scope.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/threadfleet-bench-board-rpc-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Fail("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const fs::path &path() const { return path_; }

 private:
  fs::path path_;
};

struct Pki {
  fs::path dir;
  std::string ca, server_cert, server_key, client_cert, client_key;
  fs::path Path(const std::string &file) const { return dir / file; }
};

Pki MakePki(const std::string &script, const fs::path &dir) {
  Pki pki;
  pki.dir = dir;
  RunChecked({script, "init", pki.dir});
  RunChecked({script, "issue", pki.dir, "board", "--server"});
  RunChecked({script, "issue", pki.dir, "client", "--client"});
  pki.ca = ReadAll(pki.Path("ca.pem"));
  pki.server_cert = ReadAll(pki.Path("board.pem"));
  pki.server_key = ReadAll(pki.Path("board.key"));
  pki.client_cert = ReadAll(pki.Path("client.pem"));
  pki.client_key = ReadAll(pki.Path("client.key"));
  return pki;
}

// ---- The board: a `fleetboard serve` process ------------------------------------------------

// Its output is echoed to stderr with a prefix; Start returns once it serves.
class BoardProcess {
 public:
  BoardProcess() : addr_("127.0.0.1:" + std::to_string(FreePort())) {}

  void Start(const Options &o, const Pki &pki) {
    const std::vector<std::string> argv = {o.fleetboard,    "serve",
                                           "--name",        kBoardName,
                                           "--listen",      addr_,
                                           "--flash",       pki.Path("board.lfs"),
                                           "--cert",        pki.Path("board.pem"),
                                           "--key",         pki.Path("board.key"),
                                           "--ca",          pki.Path("ca.pem"),
                                           "--heap",        kHeap,
                                           "--max-threads", std::to_string(kMaxThreads),
                                           "--flash-size",  kFlashSize};
    int out[2];
    if (pipe(out) != 0) Fail("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      DieWithParent();
      dup2(out[1], STDOUT_FILENO);
      dup2(out[1], STDERR_FILENO);
      close(out[0]);
      std::vector<char *> args;
      for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    if (pid_ < 0) Fail("fork failed");
    reader_ = std::thread([this, fd = out[0]] { Echo(fd); });
    WaitServing();
  }
  ~BoardProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (reader_.joinable()) reader_.join();
  }

  const std::string &addr() const { return addr_; }
  pid_t pid() const { return pid_; }

  // SIGTERM; returns the exit status, or -1 when it had to be killed.
  int Stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    for (auto end = Clock::now() + kStopTimeout; Clock::now() < end; std::this_thread::sleep_for(10ms)) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        reader_.join();
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    return -1;
  }

 private:
  void Echo(int fd) {
    FILE *in = fdopen(fd, "r");
    char line[1024];
    const std::string serving = std::string("fleetboard: serving ") + kBoardName + " on " + addr_;
    while (std::fgets(line, sizeof line, in) != nullptr) {
      std::fprintf(stderr, "[board] %s", line);
      if (serving == std::string(line, strcspn(line, "\n"))) {
        std::lock_guard<std::mutex> l(mu_);
        serving_ = true;
        cv_.notify_all();
      }
    }
    std::fclose(in);
    std::lock_guard<std::mutex> l(mu_);
    ended_ = true;
    cv_.notify_all();
  }

  void WaitServing() {
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, kServingTimeout, [this] { return serving_ || ended_; }) || !serving_) {
      Fail("fleetboard did not print its serving line within 20 s");
    }
  }

  std::string addr_;
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool serving_ = false, ended_ = false;
};

// ---- The baseline: gRPC C++ on host TCP, the board's GetInfo and WriteFile ----------------

class BaselineBoardControl final : public pb::BoardControl::Service {
 public:
  explicit BaselineBoardControl(pb::BoardInfo info) : info_(std::move(info)) {}

  grpc::Status GetInfo(grpc::ServerContext *, const pb::GetInfoRequest *,
                       pb::GetInfoResponse *resp) override {
    *resp->mutable_info() = info_;
    return grpc::Status::OK;
  }

  // Like the board: a header first, then data; the size checked at the end.
  grpc::Status WriteFile(grpc::ServerContext *, grpc::ServerReader<pb::WriteFileRequest> *reader,
                         pb::WriteFileResponse *resp) override {
    pb::WriteFileRequest req;
    if (!reader->Read(&req) || !req.has_header()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "the first message must be the header"};
    }
    const pb::WriteFileHeader header = req.header();
    Sha256 sha;
    uint64_t size = 0;
    while (reader->Read(&req)) {
      if (req.has_header()) return {grpc::StatusCode::INVALID_ARGUMENT, "a second header"};
      sha.Update(req.data());
      size += req.data().size();
    }
    if (header.has_expected_size_bytes() && header.expected_size_bytes() != size) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "size differs from expected_size_bytes"};
    }
    resp->set_sha256_hex(sha.Hex());
    resp->set_size_bytes(size);
    return grpc::Status::OK;
  }

 private:
  const pb::BoardInfo info_;
};

struct Baseline {
  std::unique_ptr<BaselineBoardControl> service;
  std::unique_ptr<grpc::Server> server;
  std::string addr;
};

Baseline StartBaseline(const Pki &pki, const pb::BoardInfo &info) {
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = pki.ca;
  ssl.pem_key_cert_pairs.push_back({pki.server_key, pki.server_cert});
  Baseline b;
  b.service = std::make_unique<BaselineBoardControl>(info);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &port);
  builder.RegisterService(b.service.get());
  b.server = builder.BuildAndStart();
  if (!b.server || port == 0) Fail("the baseline gRPC server did not start");
  b.addr = "127.0.0.1:" + std::to_string(port);
  return b;
}

// ---- Measurements ---------------------------------------------------------------------------

std::unique_ptr<pb::BoardControl::Stub> Connect(const std::string &addr, const Pki &pki) {
  grpc::SslCredentialsOptions ssl{pki.ca, pki.client_key, pki.client_cert};
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(addr, grpc::SslCredentials(ssl), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + kRpcTimeout)) {
    Fail("no TLS connection to " + addr);
  }
  return pb::BoardControl::NewStub(channel);
}

void SetDeadline(grpc::ClientContext &ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
}

pb::BoardInfo GetInfo(pb::BoardControl::Stub &stub) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  pb::GetInfoResponse resp;
  Check(stub.GetInfo(&ctx, {}, &resp), "GetInfo");
  return resp.info();
}

// Appends the latency of each of n GetInfo calls, in microseconds.
void TimeGetInfo(pb::BoardControl::Stub &stub, int n, std::vector<double> &us) {
  for (int i = 0; i < n; i++) {
    auto t0 = Clock::now();
    GetInfo(stub);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
}

// One WriteFile of content; returns MiB/s.
double TimeWriteFile(pb::BoardControl::Stub &stub, const std::string &content, const std::string &sha) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  pb::WriteFileResponse resp;
  auto t0 = Clock::now();
  auto writer = stub.WriteFile(&ctx, &resp);
  pb::WriteFileRequest req;
  req.mutable_header()->set_path(kWritePath);
  req.mutable_header()->set_expected_size_bytes(content.size());
  bool ok = writer->Write(req);
  for (size_t off = 0; ok && off < content.size(); off += kWriteChunkBytes) {
    req.set_data(content.substr(off, kWriteChunkBytes));
    ok = writer->Write(req);
  }
  writer->WritesDone();
  Check(writer->Finish(), "WriteFile");
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (resp.sha256_hex() != sha || resp.size_bytes() != content.size()) {
    Fail("WriteFile answered sha256 " + resp.sha256_hex() + ", size " + std::to_string(resp.size_bytes()));
  }
  return content.size() / (1024.0 * 1024.0) / seconds;
}

std::vector<pb::ThreadInfo> Threads(pb::BoardControl::Stub &stub, uint32_t program_id) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  pb::ListThreadsRequest req;
  req.set_program_id(program_id);
  req.set_include_finished(true);
  pb::ListThreadsResponse resp;
  Check(stub.ListThreads(&ctx, req, &resp), "ListThreads");
  return {resp.threads().begin(), resp.threads().end()};
}

// Polls ListThreads(program_id) every 200 us until pred holds for its threads.
std::vector<pb::ThreadInfo> WaitThreads(
    pb::BoardControl::Stub &stub, uint32_t program_id, const char *what,
    const std::function<bool(const std::vector<pb::ThreadInfo> &)> &pred) {
  for (auto end = Clock::now() + 5s; Clock::now() < end; std::this_thread::sleep_for(200us)) {
    auto threads = Threads(stub, program_id);
    if (pred(threads)) return threads;
  }
  Fail(std::string("not within 5 s: ") + what);
}

pb::StartProgramResponse StartProgram(pb::BoardControl::Stub &stub, const char *source) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  pb::StartProgramRequest req;
  req.set_source(source);
  pb::StartProgramResponse resp;
  Check(stub.StartProgram(&ctx, req, &resp), "StartProgram");
  return resp;
}

void KillProgram(pb::BoardControl::Stub &stub, uint32_t program_id) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  pb::KillProgramRequest req;
  req.set_program_id(program_id);
  req.set_grace_ms(1000);
  pb::KillProgramResponse resp;
  Check(stub.KillProgram(&ctx, req, &resp), "KillProgram");
}

int CountIn(const std::vector<pb::ThreadInfo> &threads, pb::ThreadState state) {
  return static_cast<int>(
      std::count_if(threads.begin(), threads.end(), [&](auto &t) { return t.state() == state; }));
}

// From sending KillThread to a sleeping thread until ListThreads shows it
// KILLED, in microseconds.
double TimeKill(pb::BoardControl::Stub &stub) {
  auto program = StartProgram(stub, kVictimProgram);
  auto threads = WaitThreads(stub, program.program_id(), "the victim asleep",
                             [&](auto &ts) { return CountIn(ts, pb::THREAD_STATE_SLEEPING) == 2; });
  uint32_t victim = threads[0].id() == program.main_thread_id() ? threads[1].id() : threads[0].id();

  auto t0 = Clock::now();
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  pb::KillThreadRequest req;
  req.set_thread_id(victim);
  req.set_grace_ms(1000);
  pb::KillThreadResponse resp;
  Check(stub.KillThread(&ctx, req, &resp), "KillThread");
  WaitThreads(stub, program.program_id(), "the victim KILLED in ListThreads", [&](auto &ts) {
    return std::any_of(ts.begin(), ts.end(),
                       [&](auto &t) { return t.id() == victim && t.state() == pb::THREAD_STATE_KILLED; });
  });
  double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  KillProgram(stub, program.program_id());
  return us;
}

// VmRSS of the board while a program keeps all 16 threads alive, in MB.
double RssWithSixteenThreads(pb::BoardControl::Stub &stub, pid_t pid) {
  auto program = StartProgram(stub, kSixteenThreadsProgram);
  WaitThreads(stub, program.program_id(), "16 threads asleep",
              [](auto &ts) { return CountIn(ts, pb::THREAD_STATE_SLEEPING) == kMaxThreads; });
  double mb = ProcStatusMb(pid, "VmRSS");
  KillProgram(stub, program.program_id());
  return mb;
}

const char *Verdict(bool within) { return within ? "within target" : "OVER TARGET"; }

int Run(const Options &o) {
  TempDir tmp;
  Pki pki = MakePki(o.pki_script, tmp.path());
  BoardProcess board;
  board.Start(o, pki);
  auto board_stub = Connect(board.addr(), pki);
  const pb::BoardInfo info = GetInfo(*board_stub);
  Baseline baseline = StartBaseline(pki, info);
  auto baseline_stub = Connect(baseline.addr, pki);
  pb::BoardControl::Stub *stubs[2] = {board_stub.get(), baseline_stub.get()};

  std::printf("bench/board_rpc: fleetboard %s (lwIP/slirp, mbedTLS) vs gRPC C++ %s on host TCP, same mTLS\n",
              info.firmware_version().c_str(), grpc::Version().c_str());
  std::vector<double> scratch;
  for (auto *stub : stubs) TimeGetInfo(*stub, o.warmup, scratch);
  const double rss_idle = ProcStatusMb(board.pid(), "VmRSS");

  // Alternating in rounds, the side that goes first alternating too.
  std::vector<double> latency_us[2];
  const int per_round = o.calls / o.rounds;
  for (int r = 0; r < o.rounds; r++) {
    for (int k = 0; k < 2; k++) TimeGetInfo(*stubs[(r + k) % 2], per_round, latency_us[(r + k) % 2]);
  }
  double p50[2], p99[2];
  for (int side = 0; side < 2; side++) {
    p50[side] = Percentile(latency_us[side], 0.5);
    p99[side] = Percentile(latency_us[side], 0.99);
  }
  std::printf("  GetInfo latency    board p50 %7.1f us p99 %7.1f us | baseline p50 %7.1f us p99 %7.1f us\n",
              p50[0], p99[0], p50[1], p99[1]);
  std::printf(
      "                     ratio board/baseline p50 %.2fx p99 %.2fx (%d calls each; target p50 <= %.1fx: "
      "%s)\n",
      p50[0] / p50[1], p99[0] / p99[1], per_round * o.rounds, kLatencyRatioTarget,
      Verdict(p50[0] / p50[1] <= kLatencyRatioTarget));

  std::string content(kWriteBytes, '\0');
  std::mt19937 rng(42);
  std::generate(content.begin(), content.end(), [&] { return static_cast<char>(rng()); });
  Sha256 sha;
  sha.Update(content);
  const std::string content_sha = sha.Hex();
  std::vector<double> mibps[2];
  for (int w = 0; w < o.writes; w++) {
    for (int k = 0; k < 2; k++)
      mibps[(w + k) % 2].push_back(TimeWriteFile(*stubs[(w + k) % 2], content, content_sha));
  }
  const double write_board = Percentile(mibps[0], 0.5), write_baseline = Percentile(mibps[1], 0.5);
  std::printf("  WriteFile 1 MiB    board %7.1f MiB/s | baseline %7.1f MiB/s | ratio board/baseline %.2fx\n",
              write_board, write_baseline, write_board / write_baseline);
  std::printf(
      "                     (median of %d, %zu-byte chunks: the board's limit; the board also writes "
      "its flash, the baseline only hashes)\n",
      o.writes, kWriteChunkBytes);

  std::vector<double> kill_us;
  for (int i = 0; i < o.kills; i++) kill_us.push_back(TimeKill(*board_stub));
  const double kill_p50 = Percentile(kill_us, 0.5), kill_p99 = Percentile(kill_us, 0.99);
  std::printf(
      "  KillThread e2e     p50 %7.1f us p99 %7.1f us (%d kills of a sleeping thread, until ListThreads "
      "shows KILLED; target < %.0f ms: %s)\n",
      kill_p50, kill_p99, o.kills, kKillTargetUs / 1000, Verdict(kill_p99 < kKillTargetUs));

  const double rss_threads = RssWithSixteenThreads(*board_stub, board.pid());
  const double rss_peak = ProcStatusMb(board.pid(), "VmHWM");
  std::printf(
      "  board RSS          idle %.1f MB, %d threads %.1f MB, VmHWM %.1f MB (heap %s; target < %.0f MB: "
      "%s)\n",
      rss_idle, kMaxThreads, rss_threads, rss_peak, kHeap, kRssTargetMb,
      Verdict(std::max({rss_idle, rss_threads, rss_peak}) < kRssTargetMb));

  baseline.server->Shutdown(std::chrono::system_clock::now() + 1s);
  const int rc = board.Stop();
  if (rc != 0) {
    std::fprintf(stderr, "board_rpc_bench: fleetboard exited %d after SIGTERM, expected 0\n", rc);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // results interleave with the board's lines
  try {
    return Run(ParseOptions(argc, argv));
  } catch (const std::exception &e) {
    std::fprintf(stderr, "board_rpc_bench: FAIL: %s\n", e.what());
    return 1;
  }
}
