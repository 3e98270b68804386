// libFuzzer: one BoardControl request, as a real gRPC client would send it,
// into the real handlers of a real board (VM, supervisor, flash) booted once.
//
// Input: byte 0 picks the method (modulo board_service.method_count, in
// board.proto's order: 0 GetInfo, 1 ListFiles, 2 WriteFile, ...); the rest is
// the request message. The harness wraps it in an HTTP/2 client byte stream
// (preface, SETTINGS, HPACK-encoded HEADERS for POST /<service>/<method>,
// DATA with the 5-byte gRPC prefix and END_STREAM) and feeds it to a fresh
// connection, which it frees afterwards.
//
// Bounded work: the board runs no code from fuzz bytes. A few fixture
// programs run to their end at start-up (so ids, records, output and
// tracebacks exist for KillThread, ListThreads, StreamOutput...); then the
// live-thread limit drops to 0, so StartProgram, StartThread and Exec decode,
// validate and compile their request and end in RESOURCE_EXHAUSTED. Reset
// only asks: nothing serves the VM host thread here.
//
// State kept across inputs: fixture files a WriteFile or DeleteFile changed
// are restored, and a file WriteFile created goes again, with the parent
// directories it made.
//
// Seeds (fuzz-corpus/board_request/, one file per method and case): the
// method byte followed by protoc's encoding, e.g.
//   printf '\x01' > ListFiles-root.bin
//   echo 'path: "/"' | protoc -I proto --encode=threadfleet.board.v1.ListFilesRequest \
//       threadfleet/board/v1/board.proto >> ListFiles-root.bin
#include <nghttp2/nghttp2.h>
#include <pb_decode.h>
#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "firmware/rpc/control/board_service.h"
#include "firmware/rpc/transport/h2server.h"
#include "firmware/storage/lfsdev.h"
#include "firmware/supervisor/files.h"
#include "firmware/supervisor/supervisor.h"
#include "threadfleet/board/v1/board.pb.h"
extern "C" {
#include "firmware/runtime/mpthreadport.h"
}

namespace {

// ---- The board's fixtures --------------------------------------------------------------

struct FixtureFile {
  const char *path;
  std::string content;
};

// Files the seeds name; /x spans two ReadFile chunks (4096 bytes each).
const std::vector<FixtureFile> &FixtureFiles() {
  static const std::vector<FixtureFile> files = {
      {"/x", std::string(5000, 'x')},
      {"/app/main.py", "print('main')\n"},
      {"/app/lib/util.py", "def f(n):\n    return n + 1\n"},
      {"/empty", ""},
  };
  return files;
}

// Programs that end on their own: finished with output, failed with a
// traceback, sys.exit(3), and a program of two threads.
const char *const kFixturePrograms[] = {
    "print('hello from the fixture')\n",
    "def f():\n    raise ValueError('fixture')\nf()\n",
    "import sys\nsys.exit(3)\n",
    "import _thread, time\n_thread.start_new_thread(print, ('child',))\ntime.sleep_ms(50)\n",
};

bool FixtureFileIntact(const FixtureFile &f) {
  bool is_dir = false;
  uint64_t size = 0;
  return sup_file_stat(f.path, &is_dir, &size) == 0 && !is_dir && size == f.content.size();
}

bool WriteFixtureFile(const FixtureFile &f) {
  if (sup_file_create(f.path) != 0) return false;
  return f.content.empty() || sup_file_append(f.path, f.content.data(), f.content.size()) == 0;
}

bool IsFixtureDir(const std::string &dir) { return dir == "/app" || dir == "/app/lib"; }

// Undoes what a WriteFile of `written` (may be empty) or a DeleteFile did.
void RestoreFlash(const std::string &written) {
  if (!written.empty() && written[0] == '/') {
    bool fixture = false;
    for (const auto &f : FixtureFiles()) fixture = fixture || written == f.path;
    if (!fixture) sup_file_remove(written.c_str());
    // Parents the write made: each goes if empty (a failed write may have
    // made only the upper ones); fixture dirs stay.
    std::string dir = written;
    for (size_t slash = dir.rfind('/'); slash != std::string::npos && slash > 0; slash = dir.rfind('/')) {
      dir.resize(slash);
      if (IsFixtureDir(dir)) break;
      sup_file_remove(dir.c_str());
    }
  }
  for (const auto &f : FixtureFiles()) {
    if (!FixtureFileIntact(f)) WriteFixtureFile(f);
  }
}

void MountFlash(void *) {
  char err[128];
  if (!lfsdev_mount(err, sizeof err)) fprintf(stderr, "board_request_fuzz: mount: %s\n", err);
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

bool BootBoard() {
  char err[160] = "";
  if (!lfsdev_open(nullptr, LFSDEV_DEFAULT_BYTES, err, sizeof err)) {
    fprintf(stderr, "board_request_fuzz: flash: %s\n", err);
    return false;
  }
  static sup_config_t config = sup_default_config();
  config.board_name = "fuzzboard";
  config.heap_bytes = 128 * 1024;
  config.max_threads = 4;
  config.output_buffer_bytes = 4096;
  config.on_vm_start = MountFlash;
  if (!sup_init(&config, StackTop())) return false;
  board_service_config_t service = {};
  service.board = &config;
  board_service_configure(&service);

  for (const auto &f : FixtureFiles()) {
    if (!WriteFixtureFile(f)) {
      fprintf(stderr, "board_request_fuzz: cannot write fixture %s\n", f.path);
      return false;
    }
  }
  for (const char *source : kFixturePrograms) {
    uint32_t program_id = 0, thread_id = 0;
    sup_program_spec_t spec = {"fixture.py", source, strlen(source), nullptr, 0};
    if (sup_program_start(&spec, &program_id, &thread_id, err, sizeof err) != 0 ||
        sup_program_wait(program_id, 5000) != 0) {
      fprintf(stderr, "board_request_fuzz: fixture program did not run to its end: %s\n", err);
      return false;
    }
  }
  // From here on no request can start a thread: fuzz bytes never run.
  rt_threads_set_limit(0);
  return true;
}

// ---- An HTTP/2 client's bytes ----------------------------------------------------------

constexpr uint8_t kFrameData = 0x0, kFrameHeaders = 0x1, kFrameSettings = 0x4;
constexpr uint8_t kFlagEndStream = 0x1, kFlagEndHeaders = 0x4;
constexpr size_t kMaxFramePayload = 16384;  // SETTINGS_MAX_FRAME_SIZE's default
constexpr size_t kGrpcPrefix = 5;
// Every request message of board.options fits (StartProgram's is ~9.3 KiB);
// one DATA frame carries it, well inside the initial flow-control window.
constexpr size_t kMaxPayload = kMaxFramePayload - kGrpcPrefix;

void AppendFrame(std::vector<uint8_t> *out, uint8_t type, uint8_t flags, uint32_t stream,
                 const uint8_t *payload, size_t len) {
  const uint8_t header[9] = {static_cast<uint8_t>(len >> 16),
                             static_cast<uint8_t>(len >> 8),
                             static_cast<uint8_t>(len),
                             type,
                             flags,
                             static_cast<uint8_t>((stream >> 24) & 0x7f),
                             static_cast<uint8_t>(stream >> 16),
                             static_cast<uint8_t>(stream >> 8),
                             static_cast<uint8_t>(stream)};
  out->insert(out->end(), header, header + sizeof header);
  out->insert(out->end(), payload, payload + len);
}

nghttp2_nv Header(const char *name, const std::string &value) {
  return {reinterpret_cast<uint8_t *>(const_cast<char *>(name)),
          reinterpret_cast<uint8_t *>(const_cast<char *>(value.c_str())), strlen(name), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

// The HPACK block of a gRPC request's headers; empty on an encoder failure.
std::vector<uint8_t> RequestHeaderBlock(const std::string &path) {
  const std::string method = "POST", scheme = "http", authority = "board", content_type = "application/grpc",
                    te = "trailers";
  const nghttp2_nv nva[] = {Header(":method", method),
                            Header(":scheme", scheme),
                            Header(":path", path),
                            Header(":authority", authority),
                            Header("content-type", content_type),
                            Header("te", te)};
  const size_t nvlen = sizeof nva / sizeof nva[0];
  std::vector<uint8_t> block;
  nghttp2_hd_deflater *deflater = nullptr;
  if (nghttp2_hd_deflate_new(&deflater, 4096) != 0) return block;
  block.resize(nghttp2_hd_deflate_bound(deflater, nva, nvlen));
  ssize_t n = nghttp2_hd_deflate_hd(deflater, block.data(), block.size(), nva, nvlen);
  nghttp2_hd_deflate_del(deflater);
  block.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return block;
}

// Preface, an empty SETTINGS, then stream 1: HEADERS and one DATA frame with
// the length-prefixed message and END_STREAM.
std::vector<uint8_t> ClientStream(const char *method, const uint8_t *msg, size_t len) {
  static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::vector<uint8_t> out(kPreface, kPreface + sizeof kPreface - 1);
  AppendFrame(&out, kFrameSettings, 0, 0, nullptr, 0);
  std::vector<uint8_t> block = RequestHeaderBlock(std::string("/") + board_service.name + "/" + method);
  if (block.empty()) return {};
  AppendFrame(&out, kFrameHeaders, kFlagEndHeaders, 1, block.data(), block.size());
  std::vector<uint8_t> data(kGrpcPrefix + len);
  data[0] = 0;  // not compressed
  data[1] = static_cast<uint8_t>(len >> 24);
  data[2] = static_cast<uint8_t>(len >> 16);
  data[3] = static_cast<uint8_t>(len >> 8);
  data[4] = static_cast<uint8_t>(len);
  if (len > 0) memcpy(data.data() + kGrpcPrefix, msg, len);
  AppendFrame(&out, kFrameData, kFlagEndStream, 1, data.data(), data.size());
  return out;
}

// The path of a WriteFile header, "" if the message is not one.
std::string WrittenPath(const uint8_t *msg, size_t len) {
  static threadfleet_board_v1_WriteFileRequest req;  // 4 KiB of data: not on the stack
  req = threadfleet_board_v1_WriteFileRequest{};
  pb_istream_t in = pb_istream_from_buffer(msg, len);
  if (!pb_decode(&in, threadfleet_board_v1_WriteFileRequest_fields, &req)) return "";
  if (req.which_part != threadfleet_board_v1_WriteFileRequest_header_tag) return "";
  return req.part.header.path;
}

// Empty feeds run the polls a handler asked for "as soon as possible"
// (ReadFile's next chunks, StreamOutput's next messages).
constexpr int kExtraPolls = 4;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  if (!BootBoard()) abort();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const rpc_method_t &method = board_service.methods[data[0] % board_service.method_count];
  const uint8_t *msg = data + 1;
  size_t len = size - 1 < kMaxPayload ? size - 1 : kMaxPayload;
  std::vector<uint8_t> stream = ClientStream(method.name, msg, len);
  if (stream.empty()) return 0;

  // The board's handlers charge the channel's budget (WriteFile's batch): all
  // of it must be back once the connection is gone.
  static rpc_channel_budget_t *budget = rpc_channel_budget_new(256 * 1024, nullptr, nullptr);
  rpc_h2_limits_t limits = {};
  limits.budget = budget;
  rpc_h2_conn_t *conn = rpc_h2_conn_new(&board_service, rpc_transport_t{}, "fuzz", &limits);
  if (conn == nullptr) return 0;
  const uint8_t none = 0;
  if (rpc_h2_conn_feed(conn, stream.data(), stream.size())) {
    for (int i = 0; i < kExtraPolls && rpc_h2_conn_feed(conn, &none, 0); i++) {
    }
  }
  rpc_h2_conn_free(conn);
  if (rpc_channel_budget_used(budget) != 0) abort();  // a byte taken and never given back

  if (strcmp(method.name, "WriteFile") == 0) RestoreFlash(WrittenPath(msg, len));
  if (strcmp(method.name, "DeleteFile") == 0) RestoreFlash("");
  return 0;
}
