// BoardControl as a client sees it: a real board (VM, supervisor, flash)
// serves board_service through the HTTP/2 gRPC engine over loopback TCP, and
// gRPC C++ calls it through the generic stub with nanopb-encoded requests.
//
// There is one VM per process, so ctest runs each test in a process of its
// own (gtest_discover_tests in firmware/rpc/control/CMakeLists.txt).
#include "firmware/rpc/control/board_service.h"

#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <mbedtls/sha256.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pb_common.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "firmware/rpc/transport/h2server.h"
#include "firmware/rpc/transport/os_socket.h"
#include "firmware/storage/lfsdev.h"
#include "threadfleet/board/v1/board.pb.h"

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kDeadline{5000};  // every wait gives up after this

// ---- The board's control channel: accept loop, one I/O thread per connection

class BoardServer {
 public:
  BoardServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
        listen(listen_fd_, 16) != 0) {
      ADD_FAILURE() << "bind/listen: " << strerror(errno);
    }
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~BoardServer() {
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
      int id = next_id_++;
      conn_threads_.emplace_back([this, fd, id] { Serve(fd, id); });
    }
  }

  void Serve(int fd, int id) {
    rpc_h2_conn_t *conn = rpc_h2_conn_new(&board_service, rpc_os_socket_transport(fd), "test-peer", nullptr);
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_[id] = conn;
      if (stopping_) rpc_h2_conn_stop(conn);
    }
    rpc_h2_conn_run(conn);
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_.erase(id);
    }
    rpc_h2_conn_free(conn);
    close(fd);
    sup_vm_detach();  // the handlers entered the VM from this thread
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  int next_id_ = 0;
  std::thread accept_thread_;
  std::vector<std::thread> conn_threads_;  // only the accept thread adds
  std::mutex mu_;
  std::map<int, rpc_h2_conn_t *> live_;
};

// ---- nanopb on the client side

template <typename T>
std::string Encode(const pb_msgdesc_t *fields, const T &msg) {
  std::string out(RPC_MAX_MESSAGE, '\0');
  pb_ostream_t stream = pb_ostream_from_buffer(reinterpret_cast<pb_byte_t *>(out.data()), out.size());
  EXPECT_TRUE(pb_encode(&stream, fields, &msg)) << PB_GET_ERROR(&stream);
  out.resize(stream.bytes_written);
  return out;
}

// Messages go on the heap: some are ~50 KiB.
template <typename T>
std::unique_ptr<T> Decode(const pb_msgdesc_t *fields, const std::string &bytes) {
  auto msg = std::make_unique<T>();
  pb_istream_t stream =
      pb_istream_from_buffer(reinterpret_cast<const pb_byte_t *>(bytes.data()), bytes.size());
  EXPECT_TRUE(pb_decode(&stream, fields, msg.get())) << PB_GET_ERROR(&stream);
  return msg;
}

#define PB(name) threadfleet_board_v1_##name

// ---- gRPC C++ generic client

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

std::string Method(const std::string &name) { return "/threadfleet.board.v1.BoardControl/" + name; }

struct CallResult {
  grpc::Status status;
  std::vector<std::string> responses;
};

// Any call shape as a bidi stream: write every request, half-close, read
// every response (handing each to on_response, which may return false to
// cancel), finish.
CallResult Call(grpc::Channel *channel, const std::string &method, const std::vector<std::string> &requests,
                grpc::ClientContext *ctx = nullptr,
                const std::function<bool(const std::string &)> &on_response = nullptr) {
  grpc::ClientContext own;
  if (ctx == nullptr) {
    own.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ctx = &own;
  }
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel *) {}));
  grpc::CompletionQueue cq;
  CallResult result;
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
    if (on_response && !on_response(result.responses.back())) {
      ctx->TryCancel();
    }
  }
  call->Finish(&result.status, reinterpret_cast<void *>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

std::string Describe(const grpc::Status &status) {
  return std::to_string(status.error_code()) + " " + status.error_message();
}

std::string ReadSeedScript(const std::string &name) {
  std::ifstream in(std::string(THREADFLEET_SEED_SCRIPTS) + "/" + name, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Sha256Hex(const std::string &data) {
  unsigned char digest[32];
  mbedtls_sha256_ret(reinterpret_cast<const unsigned char *>(data.data()), data.size(), digest, 0);
  char hex[65];
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  return hex;
}

// Hand-made protobuf, for what nanopb cannot encode from its fixed structs
// (a string with a NUL in it, more elements than a field's capacity).
std::string Varint(uint64_t v) {
  std::string out;
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    out.push_back(static_cast<char>(v ? byte | 0x80 : byte));
  } while (v);
  return out;
}

// A length-delimited field: a string, bytes or a sub-message.
std::string Field(uint32_t tag, const std::string &value) {
  return Varint(tag << 3 | 2) + Varint(value.size()) + value;
}

void *StackTop() {
  pthread_attr_t attr;
  void *addr = nullptr;
  size_t size = 0;
  pthread_getattr_np(pthread_self(), &attr);
  pthread_attr_getstack(&attr, &addr, &size);
  pthread_attr_destroy(&attr);
  return static_cast<char *>(addr) + size;
}

// ---- The fixture: a booted board serving BoardControl

class BoardServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char err[160] = "";
    ASSERT_TRUE(lfsdev_open(nullptr, LFSDEV_DEFAULT_BYTES, err, sizeof(err))) << err;
    config_ = sup_default_config();
    config_.board_name = "testboard";
    config_.on_vm_start = &BoardServiceTest::MountFlash;
    ASSERT_TRUE(sup_init(&config_, StackTop()));
    board_service_config_t service = {};
    service.board = &config_;
    board_service_configure(&service);
    server_ = std::make_unique<BoardServer>();
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(server_->target(), grpc::InsecureChannelCredentials(), args);
  }

  void TearDown() override {
    channel_.reset();
    server_.reset();
    sup_deinit();
    lfsdev_close();
  }

  static void MountFlash(void *ctx) {
    char err[128];
    if (!lfsdev_mount(err, sizeof(err))) ADD_FAILURE() << err;
  }

  // ---- One helper per RPC; each asserts nothing, callers do.

  CallResult Unary(const std::string &method, const std::string &request,
                   grpc::ClientContext *ctx = nullptr) {
    return Call(channel_.get(), Method(method), {request}, ctx);
  }

  CallResult WriteFile(const std::string &path, const std::vector<std::string> &chunks,
                       std::optional<uint64_t> expected_size = std::nullopt,
                       const std::string &skip_if_sha256_hex = "") {
    std::vector<std::string> requests;
    PB(WriteFileRequest) header = {};
    header.which_part = PB(WriteFileRequest_header_tag);
    snprintf(header.part.header.path, sizeof(header.part.header.path), "%s", path.c_str());
    snprintf(header.part.header.skip_if_sha256_hex, sizeof(header.part.header.skip_if_sha256_hex), "%s",
             skip_if_sha256_hex.c_str());
    if (expected_size) {
      header.part.header.has_expected_size_bytes = true;
      header.part.header.expected_size_bytes = *expected_size;
    }
    requests.push_back(Encode(PB(WriteFileRequest_fields), header));
    for (const auto &chunk : chunks) {
      auto data = std::make_unique<PB(WriteFileRequest)>();
      data->which_part = PB(WriteFileRequest_data_tag);
      memcpy(data->part.data.bytes, chunk.data(), chunk.size());
      data->part.data.size = static_cast<pb_size_t>(chunk.size());
      requests.push_back(Encode(PB(WriteFileRequest_fields), *data));
    }
    return Call(channel_.get(), Method("WriteFile"), requests);
  }

  CallResult PathCall(const std::string &method, const std::string &path) {
    PB(ReadFileRequest) req = {};  // ReadFile, DeleteFile, ListFiles: field 1 is the path
    snprintf(req.path, sizeof(req.path), "%s", path.c_str());
    return Unary(method, Encode(PB(ReadFileRequest_fields), req));
  }

  std::string ReadFile(const std::string &path, grpc::Status *status, size_t *messages = nullptr) {
    CallResult r = PathCall("ReadFile", path);
    *status = r.status;
    std::string content;
    for (const auto &m : r.responses) {
      content += [&] {
        auto chunk = Decode<PB(ReadFileResponse)>(PB(ReadFileResponse_fields), m);
        return std::string(reinterpret_cast<const char *>(chunk->data.bytes), chunk->data.size);
      }();
    }
    if (messages) *messages = r.responses.size();
    return content;
  }

  CallResult StartProgramSource(const std::string &source, const std::string &name = "") {
    auto req = std::make_unique<PB(StartProgramRequest)>();
    req->which_code = PB(StartProgramRequest_source_tag);
    snprintf(req->code.source, sizeof(req->code.source), "%s", source.c_str());
    snprintf(req->name, sizeof(req->name), "%s", name.c_str());
    return Unary("StartProgram", Encode(PB(StartProgramRequest_fields), *req));
  }

  // Starts a program from source; returns {program id, main thread id}.
  std::pair<uint32_t, uint32_t> MustStart(const std::string &source) {
    CallResult r = StartProgramSource(source);
    EXPECT_TRUE(r.status.ok()) << Describe(r.status);
    if (!r.status.ok() || r.responses.size() != 1) return {0, 0};
    auto resp = Decode<PB(StartProgramResponse)>(PB(StartProgramResponse_fields), r.responses[0]);
    return {resp->program_id, resp->main_thread_id};
  }

  std::unique_ptr<PB(ListThreadsResponse)> ListThreads(uint32_t program_id = 0,
                                                       bool include_finished = false) {
    PB(ListThreadsRequest) req = {program_id, include_finished};
    CallResult r = Unary("ListThreads", Encode(PB(ListThreadsRequest_fields), req));
    EXPECT_TRUE(r.status.ok()) << Describe(r.status);
    if (r.responses.size() != 1) return std::make_unique<PB(ListThreadsResponse)>();
    return Decode<PB(ListThreadsResponse)>(PB(ListThreadsResponse_fields), r.responses[0]);
  }

  // The thread's record from ListThreads (id 0 if unknown).
  PB(ThreadInfo) Thread(uint32_t thread_id) {
    auto list = ListThreads(0, true);
    for (size_t i = 0; i < list->threads_count; i++) {
      if (list->threads[i].id == thread_id) return list->threads[i];
    }
    return PB(ThreadInfo){};
  }

  bool WaitForThreadState(uint32_t thread_id, PB(ThreadState) state) {
    const auto deadline = Clock::now() + kDeadline;
    while (Clock::now() < deadline) {
      if (Thread(thread_id).state == state) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }

  // All of a program's output, following it until it ends.
  std::string FollowOutput(uint32_t program_id, grpc::Status *status) {
    PB(StreamOutputRequest) req = {program_id, 0, true};
    CallResult r =
        Call(channel_.get(), Method("StreamOutput"), {Encode(PB(StreamOutputRequest_fields), req)});
    *status = r.status;
    std::string out;
    for (const auto &m : r.responses) {
      auto resp = Decode<PB(StreamOutputResponse)>(PB(StreamOutputResponse_fields), m);
      out.append(reinterpret_cast<const char *>(resp->chunk.data.bytes), resp->chunk.data.size);
    }
    return out;
  }

  std::unique_ptr<PB(ExecResponse)> Exec(const std::string &source, grpc::Status *status,
                                         grpc::ClientContext *ctx = nullptr) {
    PB(ExecRequest) req = {};
    snprintf(req.source, sizeof(req.source), "%s", source.c_str());
    CallResult r = Unary("Exec", Encode(PB(ExecRequest_fields), req), ctx);
    *status = r.status;
    if (r.responses.size() != 1) return nullptr;
    return Decode<PB(ExecResponse)>(PB(ExecResponse_fields), r.responses[0]);
  }

  grpc::Status GetInfo(PB(BoardInfo) * info) {
    CallResult r = Unary("GetInfo", "");
    if (r.status.ok() && r.responses.size() == 1)
      *info = Decode<PB(GetInfoResponse)>(PB(GetInfoResponse_fields), r.responses[0])->info;
    return r.status;
  }

  sup_config_t config_{};
  std::unique_ptr<BoardServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// ---- GetInfo

TEST_F(BoardServiceTest, GetInfoDescribesTheBoard) {
  PB(BoardInfo) info = {};
  grpc::Status status = GetInfo(&info);
  ASSERT_TRUE(status.ok()) << Describe(status);
  EXPECT_STREQ(info.name, "testboard");
  EXPECT_STREQ(info.firmware_version, "0.1.0");
  EXPECT_STREQ(info.micropython_version, "1.25.0");
  EXPECT_GT(info.uptime_us, 0u);
  EXPECT_EQ(info.heap_size_bytes, config_.heap_bytes);
  EXPECT_EQ(info.max_threads, config_.max_threads);
  EXPECT_EQ(info.flash_size_bytes, static_cast<uint64_t>(LFSDEV_DEFAULT_BYTES));
  EXPECT_GT(info.flash_used_bytes, 0u);
  EXPECT_EQ(info.output_buffer_bytes, config_.output_buffer_bytes);
}

TEST_F(BoardServiceTest, MalformedRequestIsInvalidArgument) {
  CallResult r = Unary("GetInfo", std::string("\xff\xff\xff", 3));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.error_message().rfind("malformed request: ", 0), 0u) << r.status.error_message();

  // A string longer than board.options allows is malformed too.
  PB(ExecRequest) long_path = {};
  memset(long_path.source, 'x', 200);
  r = Unary("ReadFile", Encode(PB(ExecRequest_fields), long_path));  // field 1, 200 bytes > 128
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(r.status);
}

// ---- Files

TEST_F(BoardServiceTest, WriteFileInThreeChunksStoresItWithItsSha256) {
  std::vector<std::string> chunks = {std::string(4000, 'a'), std::string(4096, 'b'), "tail\n"};
  std::string content = chunks[0] + chunks[1] + chunks[2];

  CallResult w = WriteFile("/data/blob.bin", chunks, content.size());

  ASSERT_TRUE(w.status.ok()) << Describe(w.status);
  ASSERT_EQ(w.responses.size(), 1u);
  auto resp = Decode<PB(WriteFileResponse)>(PB(WriteFileResponse_fields), w.responses[0]);
  EXPECT_EQ(resp->size_bytes, content.size());
  EXPECT_EQ(resp->sha256_hex, Sha256Hex(content));

  CallResult list = PathCall("ListFiles", "/data");
  ASSERT_TRUE(list.status.ok()) << Describe(list.status);
  auto entries = Decode<PB(ListFilesResponse)>(PB(ListFilesResponse_fields), list.responses.at(0));
  ASSERT_EQ(entries->entries_count, 1) << "the temporary file is gone after the rename";
  EXPECT_STREQ(entries->entries[0].name, "blob.bin");
  EXPECT_FALSE(entries->entries[0].is_dir);
  EXPECT_EQ(entries->entries[0].size_bytes, content.size());

  CallResult root = PathCall("ListFiles", "");
  auto root_entries = Decode<PB(ListFilesResponse)>(PB(ListFilesResponse_fields), root.responses.at(0));
  ASSERT_GE(root_entries->entries_count, 1);
  EXPECT_STREQ(root_entries->entries[0].name, "data");
  EXPECT_TRUE(root_entries->entries[0].is_dir);

  grpc::Status status;
  size_t messages = 0;
  EXPECT_EQ(ReadFile("/data/blob.bin", &status, &messages), content);
  EXPECT_TRUE(status.ok()) << Describe(status);
  EXPECT_EQ(messages, 2u) << "8101 bytes in chunks of at most 4096 bytes";
}

TEST_F(BoardServiceTest, ListFilesWithSha256ReportsEachFilesDigest) {
  std::string big(70000, 'q');  // more than one read of the board's 64 KiB buffer
  ASSERT_TRUE(WriteFile("/lib/a.py", {"print('a')\n"}).status.ok());
  std::vector<std::string> chunks;
  for (size_t off = 0; off < big.size(); off += 4096) chunks.push_back(big.substr(off, 4096));
  ASSERT_TRUE(WriteFile("/lib/big.bin", chunks).status.ok());
  ASSERT_TRUE(WriteFile("/lib/sub/c.py", {""}).status.ok());
  PB(ListFilesRequest) req = {};
  snprintf(req.path, sizeof(req.path), "/lib");
  req.with_sha256 = true;

  CallResult r = Unary("ListFiles", Encode(PB(ListFilesRequest_fields), req));

  ASSERT_TRUE(r.status.ok()) << Describe(r.status);
  auto list = Decode<PB(ListFilesResponse)>(PB(ListFilesResponse_fields), r.responses.at(0));
  ASSERT_EQ(list->entries_count, 3);
  EXPECT_STREQ(list->entries[0].name, "a.py");
  EXPECT_EQ(list->entries[0].sha256_hex, Sha256Hex("print('a')\n"));
  EXPECT_STREQ(list->entries[1].name, "big.bin");
  EXPECT_EQ(list->entries[1].size_bytes, big.size());
  EXPECT_EQ(list->entries[1].sha256_hex, Sha256Hex(big));
  EXPECT_STREQ(list->entries[2].name, "sub");
  EXPECT_STREQ(list->entries[2].sha256_hex, "") << "directories have no digest";

  req.with_sha256 = false;
  r = Unary("ListFiles", Encode(PB(ListFilesRequest_fields), req));
  list = Decode<PB(ListFilesResponse)>(PB(ListFilesResponse_fields), r.responses.at(0));
  EXPECT_STREQ(list->entries[0].sha256_hex, "") << "only asked for";
}

TEST_F(BoardServiceTest, WriteFileWhoseContentIsAlreadyThereAnswersUnchangedAndWritesNothing) {
  ASSERT_TRUE(WriteFile("/app.py", {"print('v1')\n"}).status.ok());
  uint64_t used_before = 0;
  PB(BoardInfo) info = {};
  ASSERT_TRUE(GetInfo(&info).ok());
  used_before = info.flash_used_bytes;

  // The client already streams different data: the board answers from the
  // header alone and ignores the rest.
  CallResult w = WriteFile("/app.py", {std::string(4096, 'v'), "print('v2')\n"}, std::nullopt,
                           Sha256Hex("print('v1')\n"));

  ASSERT_TRUE(w.status.ok()) << Describe(w.status);
  auto resp = Decode<PB(WriteFileResponse)>(PB(WriteFileResponse_fields), w.responses.at(0));
  EXPECT_TRUE(resp->unchanged);
  EXPECT_EQ(resp->sha256_hex, Sha256Hex("print('v1')\n"));
  EXPECT_EQ(resp->size_bytes, 12u);
  grpc::Status status;
  EXPECT_EQ(ReadFile("/app.py", &status), "print('v1')\n");
  ASSERT_TRUE(GetInfo(&info).ok());
  EXPECT_EQ(info.flash_used_bytes, used_before);

  // Another digest (or none, or a file not there yet) writes as usual.
  w = WriteFile("/app.py", {"print('v2')\n"}, std::nullopt, Sha256Hex("print('v0')\n"));
  ASSERT_TRUE(w.status.ok()) << Describe(w.status);
  EXPECT_FALSE(Decode<PB(WriteFileResponse)>(PB(WriteFileResponse_fields), w.responses.at(0))->unchanged);
  EXPECT_EQ(ReadFile("/app.py", &status), "print('v2')\n");
  w = WriteFile("/new.py", {"n"}, std::nullopt, Sha256Hex("n"));
  ASSERT_TRUE(w.status.ok()) << Describe(w.status);
  EXPECT_FALSE(Decode<PB(WriteFileResponse)>(PB(WriteFileResponse_fields), w.responses.at(0))->unchanged);
}

TEST_F(BoardServiceTest, WriteFileWithAMalformedDigestToSkipIsInvalidArgument) {
  CallResult w = WriteFile("/app.py", {"x"}, std::nullopt, "ABCDEF");
  EXPECT_EQ(w.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(w.status.error_message(), "skip_if_sha256_hex must be 64 lowercase hex digits, not \"ABCDEF\"");
}

TEST_F(BoardServiceTest, ReadFileStreamsALargeFileInOrder) {
  // 300 KB: more than HTTP/2's initial window and the transport's send queue.
  std::vector<std::string> chunks;
  std::string content;
  for (int i = 0; i < 75; i++) {
    char fill[4096];
    for (size_t k = 0; k < sizeof fill; k++) fill[k] = static_cast<char>('A' + (i + k / 97) % 26);
    chunks.emplace_back(fill, sizeof fill);
    content += chunks.back();
  }
  ASSERT_TRUE(WriteFile("/large.bin", chunks).status.ok());

  grpc::Status status;
  std::string read = ReadFile("/large.bin", &status);

  EXPECT_TRUE(status.ok()) << Describe(status);
  EXPECT_EQ(read.size(), content.size());
  EXPECT_TRUE(read == content);
}

TEST_F(BoardServiceTest, WriteFileInUnevenChunksAcrossFlashBatchesKeepsEveryByteInOrder) {
  // The board appends to flash in 16 KB batches; these chunks end inside
  // batches and one straddles a boundary.
  std::vector<std::string> chunks;
  std::string content;
  for (size_t size : {3000u, 4096u, 4096u, 4096u, 1000u, 4096u, 7u}) {
    std::string chunk;
    for (size_t k = 0; k < size; k++) chunk += static_cast<char>('a' + (content.size() + k) % 23);
    content += chunk;
    chunks.push_back(std::move(chunk));
  }

  CallResult w = WriteFile("/uneven.bin", chunks, content.size());

  ASSERT_TRUE(w.status.ok()) << Describe(w.status);
  auto resp = Decode<PB(WriteFileResponse)>(PB(WriteFileResponse_fields), w.responses.at(0));
  EXPECT_EQ(resp->sha256_hex, Sha256Hex(content));
  grpc::Status status;
  EXPECT_TRUE(ReadFile("/uneven.bin", &status) == content);
  EXPECT_TRUE(status.ok()) << Describe(status);
}

TEST_F(BoardServiceTest, WriteFileOfTheWrongSizeLeavesTheOldFile) {
  ASSERT_TRUE(WriteFile("/keep.txt", {"old"}).status.ok());

  CallResult w = WriteFile("/keep.txt", {"new content"}, 4);

  EXPECT_EQ(w.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(w.status);
  grpc::Status status;
  EXPECT_EQ(ReadFile("/keep.txt", &status), "old");
  CallResult list = PathCall("ListFiles", "/");
  auto entries = Decode<PB(ListFilesResponse)>(PB(ListFilesResponse_fields), list.responses.at(0));
  EXPECT_EQ(entries->entries_count, 1) << "no temporary file left behind";
}

TEST_F(BoardServiceTest, WriteFileWithoutHeaderIsInvalidArgument) {
  PB(WriteFileRequest) data = {};
  data.which_part = PB(WriteFileRequest_data_tag);
  data.part.data.size = 1;
  CallResult w = Call(channel_.get(), Method("WriteFile"), {Encode(PB(WriteFileRequest_fields), data)});
  EXPECT_EQ(w.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(w.status);
}

TEST_F(BoardServiceTest, PathTraversalIsInvalidArgument) {
  EXPECT_EQ(WriteFile("/../etc/passwd", {"x"}).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(WriteFile("relative.py", {"x"}).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PathCall("ReadFile", "/a/../b").status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PathCall("DeleteFile", "/..").status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PathCall("ListFiles", "/x/..").status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(BoardServiceTest, PathWithANulIsRefusedAndLeavesTheFileItStartsWithAlone) {
  ASSERT_TRUE(WriteFile("/app.py", {"print('original')\n"}).status.ok());
  const std::string nul_path("/app.py\0.bak", 12);
  std::string header = Field(PB(WriteFileRequest_header_tag), Field(PB(WriteFileHeader_path_tag), nul_path));
  std::string data = Field(PB(WriteFileRequest_data_tag), "print('replaced')\n");

  CallResult w = Call(channel_.get(), Method("WriteFile"), {header, data});

  EXPECT_EQ(w.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(w.status);
  EXPECT_EQ(w.status.error_message(), "path \"/app.py\\x00.bak\" contains a NUL byte");
  grpc::Status status;
  EXPECT_EQ(ReadFile("/app.py", &status), "print('original')\n");
  CallResult list = PathCall("ListFiles", "/");
  auto entries = Decode<PB(ListFilesResponse)>(PB(ListFilesResponse_fields), list.responses.at(0));
  EXPECT_EQ(entries->entries_count, 1) << "nothing else was written";

  // Every other request that carries a path refuses it too.
  for (const char *method : {"ReadFile", "DeleteFile", "ListFiles"}) {
    CallResult r = Unary(method, Field(1, nul_path));  // field 1 is the path in all three
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method;
    EXPECT_EQ(r.status.error_message(), "path \"/app.py\\x00.bak\" contains a NUL byte") << method;
  }
  CallResult start = Unary("StartProgram", Field(PB(StartProgramRequest_path_tag), nul_path));
  EXPECT_EQ(start.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(start.status.error_message(), "path \"/app.py\\x00.bak\" contains a NUL byte");
  EXPECT_EQ(ReadFile("/app.py", &status), "print('original')\n") << "DeleteFile did not remove it";
}

TEST_F(BoardServiceTest, PathWithAControlCharacterIsRefusedWithThePathEscaped) {
  CallResult w = WriteFile("/log\n.txt", {"x"});
  EXPECT_EQ(w.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(w.status.error_message().rfind("bad path \"/log\\x0a.txt\": paths may not contain control", 0),
            0u)
      << w.status.error_message();
  EXPECT_EQ(PathCall("ReadFile", "/\x1b[2J").status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PathCall("DeleteFile", "/a\x7f").status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(BoardServiceTest, WriteFileToANameOfTheBoardsOwnPartialFilesIsRefused) {
  // Partial files are removed at boot: a user's file must never look like one.
  CallResult w = WriteFile("/app.py.tf-partial-0000002a", {"x"});
  EXPECT_EQ(w.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(w.status);
  EXPECT_NE(w.status.error_message().find("writes in progress"), std::string::npos) << Describe(w.status);
  EXPECT_TRUE(WriteFile("/app.py.tf-partial-notes", {"x"}).status.ok())
      << "only the exact pattern is reserved";
}

TEST_F(BoardServiceTest, StartProgramOverTheBoardsLimitsNamesTheFieldAndTheLimit) {
  std::string source = Field(PB(StartProgramRequest_source_tag), "print(1)\n");

  CallResult r =
      Unary("StartProgram", source + Field(PB(StartProgramRequest_name_tag), std::string(33, 'n')));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.error_message(), "name is longer than 32 bytes");

  std::string nine_args;
  for (int i = 0; i < 9; i++) nine_args += Field(PB(StartProgramRequest_args_tag), "a");
  r = Unary("StartProgram", source + nine_args);
  EXPECT_EQ(r.status.error_message(), "args has more than 8 entries");

  r = Unary("StartProgram", source + Field(PB(StartProgramRequest_args_tag), "ok") +
                                Field(PB(StartProgramRequest_args_tag), std::string(129, 'a')));
  EXPECT_EQ(r.status.error_message(), "args[1] is longer than 128 bytes");
}

// Every string, bytes and repeated field of every request, one over its
// board.options limit, is refused with its name and its limit, never as
// "malformed request: string overflow".
TEST_F(BoardServiceTest, EveryRequestFieldOverItsLimitIsNamed) {
  struct Request {
    const char *method;
    const pb_msgdesc_t *fields;
    uint32_t wrapped_in;  // the field of the method's request that holds this message, 0 if it is it
  };
  const Request requests[] = {
      {"ListFiles", PB(ListFilesRequest_fields), 0},
      {"WriteFile", PB(WriteFileRequest_fields), 0},
      {"WriteFile", PB(WriteFileHeader_fields), 1},
      {"ReadFile", PB(ReadFileRequest_fields), 0},
      {"DeleteFile", PB(DeleteFileRequest_fields), 0},
      {"StartProgram", PB(StartProgramRequest_fields), 0},
      {"StartThread", PB(StartThreadRequest_fields), 0},
      {"Exec", PB(ExecRequest_fields), 0},
      {"KillThread", PB(KillThreadRequest_fields), 0},
      {"KillProgram", PB(KillProgramRequest_fields), 0},
      {"ListThreads", PB(ListThreadsRequest_fields), 0},
      {"WatchHealth", PB(WatchHealthRequest_fields), 0},
      {"StreamOutput", PB(StreamOutputRequest_fields), 0},
  };
  static char scratch[64 * 1024];  // field iteration computes addresses in a message; never written
  int checked = 0;
  for (const Request &req : requests) {
    pb_field_iter_t it;
    if (!pb_field_iter_begin(&it, req.fields, scratch)) continue;
    do {
      uint8_t ltype = PB_LTYPE(it.type);
      bool repeated = PB_HTYPE(it.type) == PB_HTYPE_REPEATED;
      if (PB_LTYPE_IS_SUBMSG(it.type) || (!repeated && ltype != PB_LTYPE_STRING && ltype != PB_LTYPE_BYTES))
        continue;
      size_t capacity = ltype == PB_LTYPE_STRING  ? it.data_size - 1
                        : ltype == PB_LTYPE_BYTES ? it.data_size - offsetof(pb_bytes_array_t, bytes)
                                                  : 0;
      std::string encoded;
      std::string limit;
      if (repeated) {
        for (size_t i = 0; i <= it.array_size; i++) encoded += Field(it.tag, "x");
        limit = std::to_string(it.array_size);
      } else {
        encoded = Field(it.tag, std::string(capacity + 1, 'x'));
        limit = std::to_string(capacity);
      }
      if (req.wrapped_in) encoded = Field(req.wrapped_in, encoded);

      CallResult r = Unary(req.method, encoded);

      std::string what =
          std::string(req.method) + " field " + std::to_string(it.tag) + ": " + Describe(r.status);
      EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what;
      EXPECT_EQ(r.status.error_message().find("malformed"), std::string::npos) << what;
      EXPECT_EQ(r.status.error_message().find("field "), std::string::npos) << what << " (unnamed)";
      EXPECT_NE(r.status.error_message().find(" " + limit + " "), std::string::npos) << what;
      checked++;
    } while (pb_field_iter_next(&it));
  }
  EXPECT_EQ(checked, 14);
}

TEST_F(BoardServiceTest, DeleteFileRemovesItAndMissingFilesAreNotFound) {
  ASSERT_TRUE(WriteFile("/dir/gone.txt", {"bye"}).status.ok());
  EXPECT_EQ(PathCall("DeleteFile", "/dir").status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << "a directory that is not empty";

  EXPECT_TRUE(PathCall("DeleteFile", "/dir/gone.txt").status.ok());

  EXPECT_EQ(PathCall("DeleteFile", "/dir/gone.txt").status.error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::Status status;
  ReadFile("/dir/gone.txt", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(PathCall("ListFiles", "/nope").status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(PathCall("DeleteFile", "/dir").status.ok()) << "now empty";
}

TEST_F(BoardServiceTest, WriteFileToAFullFlashIsResourceExhaustedAndLeavesNothing) {
  std::vector<std::string> chunks(400, std::string(4096, 'z'));  // 1.6 MB > the 1 MB flash
  CallResult w = WriteFile("/big.bin", chunks);
  EXPECT_EQ(w.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << Describe(w.status);
  CallResult list = PathCall("ListFiles", "/");
  auto entries = Decode<PB(ListFilesResponse)>(PB(ListFilesResponse_fields), list.responses.at(0));
  EXPECT_EQ(entries->entries_count, 0) << "the temporary file was removed";
}

// ---- Programs

TEST_F(BoardServiceTest, StartProgramByPathRunsTheSeedScriptAndStreamsAllItsOutput) {
  std::string script = ReadSeedScript("thread_lock.py");
  ASSERT_FALSE(script.empty());
  ASSERT_TRUE(WriteFile("/thread_lock.py", {script}).status.ok());
  PB(StartProgramRequest) req = {};
  req.which_code = PB(StartProgramRequest_path_tag);
  snprintf(req.code.path, sizeof(req.code.path), "/thread_lock.py");

  CallResult r = Unary("StartProgram", Encode(PB(StartProgramRequest_fields), req));

  ASSERT_TRUE(r.status.ok()) << Describe(r.status);
  auto started = Decode<PB(StartProgramResponse)>(PB(StartProgramResponse_fields), r.responses.at(0));
  EXPECT_GT(started->program_id, 0u);
  EXPECT_GT(started->main_thread_id, 0u);

  // Both of its threads are listed while it runs.
  std::unique_ptr<PB(ListThreadsResponse)> list;
  const auto deadline = Clock::now() + kDeadline;
  do {
    list = ListThreads(started->program_id);
  } while (list->threads_count < 2 && Clock::now() < deadline);
  ASSERT_EQ(list->threads_count, 2);
  EXPECT_EQ(list->threads[0].id, started->main_thread_id);
  EXPECT_STREQ(list->threads[1].name, "increment_variable");
  ASSERT_EQ(list->programs_count, 1);
  EXPECT_STREQ(list->programs[0].name, "thread_lock.py");
  EXPECT_EQ(list->programs[0].state, PB(ProgramState_PROGRAM_STATE_RUNNING));
  EXPECT_EQ(list->programs[0].thread_ids_count, 2);

  grpc::Status status;
  std::string output = FollowOutput(started->program_id, &status);

  EXPECT_TRUE(status.ok()) << Describe(status);
  for (int i = 1; i <= 8; i++) {
    EXPECT_NE(output.find("Shared variable is  " + std::to_string(i) + "\n"), std::string::npos)
        << i << " in:\n"
        << output;
  }
  auto after = ListThreads(started->program_id, true);
  ASSERT_EQ(after->programs_count, 1);
  EXPECT_EQ(after->programs[0].state, PB(ProgramState_PROGRAM_STATE_FINISHED));
}

TEST_F(BoardServiceTest, StartProgramErrors) {
  PB(StartProgramRequest) req = {};
  req.which_code = PB(StartProgramRequest_path_tag);
  snprintf(req.code.path, sizeof(req.code.path), "/missing.py");
  EXPECT_EQ(Unary("StartProgram", Encode(PB(StartProgramRequest_fields), req)).status.error_code(),
            grpc::StatusCode::NOT_FOUND);

  CallResult bad = StartProgramSource("def broken(:\n", "broken.py");
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.status.error_message().find("SyntaxError"), std::string::npos) << Describe(bad.status);
  EXPECT_NE(bad.status.error_message().find("broken.py, line 1"), std::string::npos) << Describe(bad.status);
}

TEST_F(BoardServiceTest, StartProgramAtTheThreadLimitIsResourceExhaustedWithTheSupervisorsMessage) {
  for (size_t i = 0; i < config_.max_threads; i++) MustStart("import time\ntime.sleep(30)\n");
  CallResult r = StartProgramSource("print('one too many')\n");
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(r.status.error_message().find("limit"), std::string::npos) << Describe(r.status);
}

TEST_F(BoardServiceTest, StartThreadRunsAFunctionWithLiteralArguments) {
  ASSERT_TRUE(
      WriteFile("/blink.py", {"def run(n, word, opts=None):\n    print(word * n, opts)\n"}).status.ok());
  PB(StartThreadRequest) req = {};
  snprintf(req.module, sizeof(req.module), "blink");
  snprintf(req.function, sizeof(req.function), "run");
  req.args_count = 3;
  snprintf(req.args[0], sizeof(req.args[0]), "3");
  snprintf(req.args[1], sizeof(req.args[1]), "'ab'");
  snprintf(req.args[2], sizeof(req.args[2]), "{'on': [1, 2.5, -3e2], 'x': (True, None)}");

  CallResult r = Unary("StartThread", Encode(PB(StartThreadRequest_fields), req));

  ASSERT_TRUE(r.status.ok()) << Describe(r.status);
  auto started = Decode<PB(StartThreadResponse)>(PB(StartThreadResponse_fields), r.responses.at(0));
  grpc::Status status;
  std::string output = FollowOutput(started->program_id, &status);
  EXPECT_NE(output.find("ababab {"), std::string::npos) << output;
  PB(ThreadInfo) thread = Thread(started->thread_id);
  EXPECT_STREQ(thread.name, "run");
  EXPECT_EQ(thread.state, PB(ThreadState_THREAD_STATE_FINISHED));
  auto programs = ListThreads(started->program_id, true);
  ASSERT_EQ(programs->programs_count, 1);
  EXPECT_STREQ(programs->programs[0].name, "blink.run");
}

TEST_F(BoardServiceTest, StartThreadRejectsCodeAsArgumentsAndMissingFunctions) {
  ASSERT_TRUE(WriteFile("/blink.py", {"def run(x):\n    print(x)\n"}).status.ok());
  auto start = [&](const char *module, const char *function, const char *arg) {
    PB(StartThreadRequest) req = {};
    snprintf(req.module, sizeof(req.module), "%s", module);
    snprintf(req.function, sizeof(req.function), "%s", function);
    req.args_count = 1;
    snprintf(req.args[0], sizeof(req.args[0]), "%s", arg);
    return Unary("StartThread", Encode(PB(StartThreadRequest_fields), req)).status;
  };
  for (const char *arg : {"__import__('os').remove('/blink.py')", "1), print('x'", "1, 2", "f'{x}'", "x", "",
                          "'''a'''", "[1, 2"}) {
    grpc::Status status = start("blink", "run", arg);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << arg << ": " << Describe(status);
  }
  EXPECT_EQ(start("blink; import os", "run", "1").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(start("nosuchmodule", "run", "1").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(start("blink", "nosuchfunction", "1").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(start("blink", "run", "-0x1F").ok());
}

// ---- Kill

TEST_F(BoardServiceTest, KillThreadOnASleepingThreadEndsItKilled) {
  auto [program_id, thread_id] = MustStart("import time\ntime.sleep(60)\n");
  ASSERT_TRUE(WaitForThreadState(thread_id, PB(ThreadState_THREAD_STATE_SLEEPING)));
  PB(KillThreadRequest) req = {thread_id, 500};

  const auto start = Clock::now();
  CallResult r = Unary("KillThread", Encode(PB(KillThreadRequest_fields), req));

  ASSERT_TRUE(r.status.ok()) << Describe(r.status);
  EXPECT_LT(Clock::now() - start, milliseconds(500)) << "a kill wakes a sleeper at once";
  auto resp = Decode<PB(KillThreadResponse)>(PB(KillThreadResponse_fields), r.responses.at(0));
  EXPECT_EQ(resp->thread.id, thread_id);
  EXPECT_EQ(resp->thread.state, PB(ThreadState_THREAD_STATE_KILLED));
  EXPECT_FALSE(resp->thread.unkillable);

  // Killing it again returns the same record; an unknown id is NOT_FOUND.
  CallResult again = Unary("KillThread", Encode(PB(KillThreadRequest_fields), req));
  ASSERT_TRUE(again.status.ok()) << Describe(again.status);
  EXPECT_EQ(
      Decode<PB(KillThreadResponse)>(PB(KillThreadResponse_fields), again.responses.at(0))->thread.state,
      PB(ThreadState_THREAD_STATE_KILLED));
  PB(KillThreadRequest) unknown = {999, 0};
  EXPECT_EQ(Unary("KillThread", Encode(PB(KillThreadRequest_fields), unknown)).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(BoardServiceTest, KillProgramEndsAllItsThreads) {
  auto [program_id, thread_id] = MustStart(
      "import _thread, time\n"
      "_thread.start_new_thread(time.sleep, (60,))\n"
      "time.sleep(60)\n");
  ASSERT_TRUE(WaitForThreadState(thread_id, PB(ThreadState_THREAD_STATE_SLEEPING)));
  PB(KillProgramRequest) req = {program_id, 0};

  CallResult r = Unary("KillProgram", Encode(PB(KillProgramRequest_fields), req));

  ASSERT_TRUE(r.status.ok()) << Describe(r.status);
  auto resp = Decode<PB(KillProgramResponse)>(PB(KillProgramResponse_fields), r.responses.at(0));
  EXPECT_EQ(resp->program.state, PB(ProgramState_PROGRAM_STATE_KILLED));
  EXPECT_EQ(resp->program.thread_ids_count, 2);
  EXPECT_EQ(resp->unkillable_thread_ids_count, 0);
  PB(KillProgramRequest) unknown = {999, 0};
  EXPECT_EQ(Unary("KillProgram", Encode(PB(KillProgramRequest_fields), unknown)).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// ---- WatchHealth

TEST_F(BoardServiceTest, WatchHealthDeliversSnapshotsAndThreadEvents) {
  PB(WatchHealthRequest) req = {100};
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  int snapshots = 0;
  std::set<uint32_t> started_threads;  // from THREAD_STARTED events
  std::thread starter;
  std::atomic<uint32_t> new_thread{0};
  const auto begin = Clock::now();

  CallResult r = Call(channel_.get(), Method("WatchHealth"), {Encode(PB(WatchHealthRequest_fields), req)},
                      &ctx, [&](const std::string &m) {
                        auto update = Decode<PB(WatchHealthResponse)>(PB(WatchHealthResponse_fields), m);
                        if (update->which_update == PB(WatchHealthResponse_snapshot_tag)) {
                          const auto &snap = update->update.snapshot;
                          EXPECT_STREQ(snap.board_name, "testboard");
                          EXPECT_GT(snap.heap.total_bytes, 0u);
                          // Once the stream is up, a program starts.
                          if (++snapshots == 1)
                            starter = std::thread([&] { new_thread = MustStart("print('hello')\n").second; });
                        } else if (update->update.event.kind == PB(EventKind_EVENT_KIND_THREAD_STARTED)) {
                          started_threads.insert(update->update.event.thread_id);
                        }
                        bool seen = new_thread != 0 && started_threads.count(new_thread) > 0;
                        return !(snapshots >= 2 && seen);  // false: cancel
                      });
  if (starter.joinable()) starter.join();

  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::CANCELLED) << Describe(r.status);
  EXPECT_GE(snapshots, 2);
  EXPECT_EQ(started_threads.count(new_thread), 1u);
  EXPECT_LT(Clock::now() - begin, milliseconds(3000));
}

// ---- Exec

TEST_F(BoardServiceTest, ExecReturnsOutputAndException) {
  grpc::Status status;
  auto resp = Exec("print('hi', 6 * 7)\nraise ValueError('bad value')\n", &status);

  ASSERT_TRUE(status.ok()) << Describe(status);
  ASSERT_NE(resp, nullptr);
  std::string output(reinterpret_cast<const char *>(resp->output.bytes), resp->output.size);
  EXPECT_EQ(output.rfind("hi 42\n", 0), 0u) << output;
  EXPECT_FALSE(resp->output_truncated);
  ASSERT_TRUE(resp->has_exception);
  EXPECT_STREQ(resp->exception.type, "ValueError");
  EXPECT_STREQ(resp->exception.message, "bad value");
  EXPECT_NE(std::string(resp->exception.traceback).find("line 2"), std::string::npos)
      << resp->exception.traceback;

  auto clean = Exec("x = 1\n", &status);
  ASSERT_TRUE(status.ok()) << Describe(status);
  EXPECT_FALSE(clean->has_exception);
  EXPECT_EQ(clean->output.size, 0);

  auto syntax = Exec("print(\n", &status);
  ASSERT_TRUE(status.ok()) << Describe(status);
  EXPECT_STREQ(syntax->exception.type, "SyntaxError");
}

TEST_F(BoardServiceTest, ExecPastItsDeadlineIsKilledAndTheBoardStillAnswers) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(200));
  grpc::Status status;
  const auto start = Clock::now();

  Exec("while True:\n    pass\n", &status, &ctx);

  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << Describe(status);
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  PB(BoardInfo) info = {};
  EXPECT_TRUE(GetInfo(&info).ok());
  // The busy snippet was killed, not left spinning.
  const auto deadline = Clock::now() + kDeadline;
  bool killed = false;
  while (!killed && Clock::now() < deadline) {
    auto list = ListThreads(0, true);
    for (size_t i = 0; i < list->programs_count; i++) {
      killed |= strcmp(list->programs[i].name, "<exec>") == 0 &&
                list->programs[i].state == PB(ProgramState_PROGRAM_STATE_KILLED);
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(killed);
}

// ---- Reset

TEST_F(BoardServiceTest, ResetEndsEveryProgramAndKeepsFiles) {
  ASSERT_TRUE(WriteFile("/kept.txt", {"still here"}).status.ok());
  auto [program_id, thread_id] = MustStart("import time\ntime.sleep(60)\n");
  ASSERT_TRUE(WaitForThreadState(thread_id, PB(ThreadState_THREAD_STATE_SLEEPING)));
  volatile int stop = 0;
  grpc::Status reset_status;
  std::thread client([&] {
    reset_status = Unary("Reset", "").status;
    // GetInfo answers again once the VM is back.
    PB(BoardInfo) info = {};
    const auto deadline = Clock::now() + kDeadline;
    while (!GetInfo(&info).ok() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(10));
    while (ListThreads()->threads_count > 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(milliseconds(10));
    stop = 1;
  });
  sup_host_serve(&stop);  // this test's thread is the VM host thread
  client.join();

  EXPECT_TRUE(reset_status.ok()) << Describe(reset_status);
  EXPECT_EQ(ListThreads()->threads_count, 0);
  grpc::Status status;
  EXPECT_EQ(ReadFile("/kept.txt", &status), "still here");
}

}  // namespace
