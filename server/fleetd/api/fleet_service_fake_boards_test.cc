// FleetService's own logic without sockets: the service over gRPC's
// in-process channel, a real store in a temporary directory, and in-memory
// boards behind a fake BoardDirectory. Covers the fan-out (one result per
// board, each with its own error), the push's retry of an offline board and
// its skip of unchanged files, the checks made before any board call (board
// limits, the kill grace cap), the caller's deadline handed to the board,
// and that board calls waiting for an answer hold no worker thread.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/fleetd/api/fleet_service.h"
#include "server/fleetd/store/sha256.h"
#include "server/fleetd/testing/temp_store.h"

namespace threadfleet::fleetd {
namespace {

namespace fleet = ::threadfleet::fleet::v1;
namespace pb = ::threadfleet::board::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Asks `done` every 10 ms until it says yes (true) or `timeout` passes (false).
bool PollUntil(std::chrono::milliseconds timeout, const std::function<bool()>& done) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// One in-memory board. Every call is recorded; it is answered at once, or,
// for a method the test holds, when the test releases it (as a board busy
// with it would).
class FakeBoard : public BoardClient {
 public:
  struct Call {
    std::string method;
    CallOptions options;
    // What the call was about: a path, a thread id, a header's skip SHA-256.
    std::string detail;
  };

  explicit FakeBoard(std::string name) : name_(std::move(name)) {}

  const std::string& name() const override { return name_; }

  // Calls of `method` wait for Release() from now on.
  void Hold(const std::string& method) {
    absl::MutexLock lock(&mu_);
    held_methods_.insert(method);
  }
  // Answers every held call, in order, on the caller's thread.
  void Release() {
    std::deque<std::function<void()>> answers;
    {
      absl::MutexLock lock(&mu_);
      held_methods_.clear();
      answers.swap(held_);
    }
    for (auto& answer : answers) answer();
  }
  size_t held() {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }
  // The next call of `method` fails with `status`.
  void FailNext(const std::string& method, absl::Status status) {
    absl::MutexLock lock(&mu_);
    failures_[method] = std::move(status);
  }
  std::vector<Call> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // Resets answer `hard` (threads stuck in native code) from now on.
  void SetResetHard(bool hard) {
    absl::MutexLock lock(&mu_);
    reset_hard_ = hard;
  }
  void PutFile(const std::string& path, const std::string& content) {
    absl::MutexLock lock(&mu_);
    files_[path] = content;
  }
  std::optional<std::string> File(const std::string& path) {
    absl::MutexLock lock(&mu_);
    auto it = files_.find(path);
    return it == files_.end() ? std::nullopt : std::optional(it->second);
  }

  // BoardClient
  void GetInfo(CallOptions options, Done<pb::BoardInfo> done) override {
    Answer("GetInfo", options, "", std::move(done), [this] {
      pb::BoardInfo info;
      info.set_name(name_);
      return info;
    });
  }
  void ListFiles(const pb::ListFilesRequest& request, CallOptions options,
                 Done<pb::ListFilesResponse> done) override {
    Answer("ListFiles", options, request.path(), std::move(done), [this, request] {
      pb::ListFilesResponse response;
      absl::MutexLock lock(&mu_);
      for (const auto& [path, content] : files_) {
        pb::FileEntry* entry = response.add_entries();
        entry->set_name(path.substr(1));
        entry->set_size_bytes(content.size());
        if (request.with_sha256()) entry->set_sha256_hex(Sha256Hex(content));
      }
      return response;
    });
  }
  void WriteFile(const pb::WriteFileHeader& header, std::shared_ptr<const std::string> content,
                 CallOptions options, Done<pb::WriteFileResponse> done) override {
    Answer("WriteFile", options, header.skip_if_sha256_hex(), std::move(done), [this, header, content] {
      pb::WriteFileResponse response;
      absl::MutexLock lock(&mu_);
      auto it = files_.find(header.path());
      if (!header.skip_if_sha256_hex().empty() && it != files_.end() &&
          Sha256Hex(it->second) == header.skip_if_sha256_hex()) {
        response.set_unchanged(true);
      } else {
        files_[header.path()] = *content;
      }
      response.set_sha256_hex(Sha256Hex(files_[header.path()]));
      response.set_size_bytes(files_[header.path()].size());
      return response;
    });
  }
  void ReadFile(std::string path, CallOptions options, Done<std::string> done) override {
    Answer("ReadFile", options, path, std::move(done), [this, path] { return File(path).value_or(""); });
  }
  void DeleteFile(std::string path, CallOptions options, StatusDone done) override {
    Answer("DeleteFile", options, path, Unwrap(std::move(done)), [this, path] {
      absl::MutexLock lock(&mu_);
      files_.erase(path);
      return Empty();
    });
  }
  void StartProgram(const pb::StartProgramRequest& request, CallOptions options,
                    Done<pb::StartProgramResponse> done) override {
    Answer("StartProgram", options, request.path(), std::move(done), [this] {
      pb::StartProgramResponse response;
      absl::MutexLock lock(&mu_);
      response.set_program_id(++next_id_);
      response.set_main_thread_id(++next_id_);
      return response;
    });
  }
  void StartThread(const pb::StartThreadRequest& request, CallOptions options,
                   Done<pb::StartThreadResponse> done) override {
    Answer("StartThread", options, request.module(), std::move(done), [this] {
      pb::StartThreadResponse response;
      absl::MutexLock lock(&mu_);
      response.set_program_id(++next_id_);
      response.set_thread_id(++next_id_);
      return response;
    });
  }
  void KillThread(uint32_t thread_id, absl::Duration grace, CallOptions options,
                  Done<pb::ThreadInfo> done) override {
    Answer("KillThread", options, absl::StrCat(thread_id), std::move(done), [thread_id] {
      pb::ThreadInfo thread;
      thread.set_id(thread_id);
      thread.set_state(pb::THREAD_STATE_KILLED);
      return thread;
    });
  }
  void KillProgram(uint32_t program_id, absl::Duration grace, CallOptions options,
                   Done<pb::KillProgramResponse> done) override {
    Answer("KillProgram", options, absl::StrCat(program_id), std::move(done), [program_id] {
      pb::KillProgramResponse response;
      response.mutable_program()->set_id(program_id);
      response.mutable_program()->set_state(pb::PROGRAM_STATE_KILLED);
      return response;
    });
  }
  void ListThreads(const pb::ListThreadsRequest& request, CallOptions options,
                   Done<pb::ListThreadsResponse> done) override {
    Answer("ListThreads", options, "", std::move(done), [] { return pb::ListThreadsResponse(); });
  }
  void Exec(std::string source, CallOptions options, Done<pb::ExecResponse> done) override {
    Answer("Exec", options, source, std::move(done), [] { return pb::ExecResponse(); });
  }
  void Reset(const pb::ResetRequest& request, CallOptions options, Done<pb::ResetResponse> done) override {
    Answer("Reset", options, request.safe_boot() ? "safe boot" : "", std::move(done), [this] {
      pb::ResetResponse response;
      absl::MutexLock lock(&mu_);
      response.set_hard(reset_hard_);
      return response;
    });
  }
  void GetMachine(CallOptions options, Done<pb::MachineState> done) override {
    Answer("GetMachine", options, "", std::move(done), [this] {
      pb::MachineState machine;
      absl::MutexLock lock(&mu_);
      for (const auto& [number, pin] : pins_) *machine.add_pins() = pin;
      return machine;
    });
  }
  void SetPin(const pb::SetPinRequest& request, CallOptions options, Done<pb::PinState> done) override {
    Answer("SetPin", options, absl::StrCat(request.pin()), std::move(done), [this, request] {
      absl::MutexLock lock(&mu_);
      pb::PinState& pin = pins_[request.pin()];
      pin.set_pin(request.pin());
      pin.set_mode(pb::PIN_MODE_IN);
      pin.set_lab_driven(!request.release());
      pin.set_value(request.release() ? 0 : request.value());
      return pin;
    });
  }
  void SetAdc(const pb::SetAdcRequest& request, CallOptions options, Done<pb::AdcState> done) override {
    Answer("SetAdc", options, absl::StrCat(request.channel()), std::move(done), [request] {
      pb::AdcState adc;
      adc.set_channel(request.channel());
      adc.set_value_u16(request.value_u16());
      adc.set_lab_set(true);
      return adc;
    });
  }
  std::shared_ptr<OutputStream> StreamOutput(const pb::StreamOutputRequest& request, CallOptions options,
                                             OutputChunkFn on_chunk, StatusDone on_done) override {
    Answer("StreamOutput", options, "", Unwrap(std::move(on_done)), [] { return Empty(); });
    return std::make_shared<EndedStream>();
  }

 private:
  struct Empty {};
  // The handle of a stream that has ended: Cancel() changes nothing.
  class EndedStream : public OutputStream {
   public:
    void Cancel() override {}
  };
  static Done<Empty> Unwrap(StatusDone done) {
    return [done = std::move(done)](absl::StatusOr<Empty> r) { done(r.status()); };
  }

  // Records the call, then answers it with make() (or a scripted failure),
  // now or once released.
  template <typename T, typename Make>
  void Answer(const std::string& method, CallOptions options, std::string detail, Done<T> done, Make make) {
    std::function<void()> answer;
    bool hold = false;
    {
      absl::MutexLock lock(&mu_);
      calls_.push_back({method, options, std::move(detail)});
      std::optional<absl::Status> failure;
      if (auto it = failures_.find(method); it != failures_.end()) {
        failure = it->second;
        failures_.erase(it);
      }
      answer = [done = std::move(done), make, failure] {
        if (failure.has_value()) return done(*failure);
        done(make());
      };
      hold = held_methods_.contains(method);
      if (hold) held_.push_back(answer);
    }
    if (!hold) answer();
  }

  const std::string name_;
  absl::Mutex mu_;
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> held_methods_ ABSL_GUARDED_BY(mu_);
  std::deque<std::function<void()>> held_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> failures_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> files_ ABSL_GUARDED_BY(mu_);
  uint32_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint32_t, pb::PinState> pins_ ABSL_GUARDED_BY(mu_);
  bool reset_hard_ ABSL_GUARDED_BY(mu_) = false;
};

// The boards the service sees: each one's state and its FakeBoard.
class FakeDirectory : public BoardDirectory {
 public:
  absl::Status Add(std::string name, std::string address) override {
    absl::MutexLock lock(&mu_);
    if (boards_.contains(name)) return absl::AlreadyExistsError(name);
    Entry& entry = boards_[name];
    entry.board = std::make_shared<FakeBoard>(name);
    entry.status.state = BoardState::kOnline;
    entry.status.connections = 1;
    return absl::OkStatus();
  }
  absl::Status Remove(absl::string_view name) override {
    absl::MutexLock lock(&mu_);
    return boards_.erase(std::string(name)) == 1 ? absl::OkStatus() : absl::NotFoundError(name);
  }
  std::optional<LinkStatus> Status(absl::string_view name) const override {
    absl::MutexLock lock(&mu_);
    auto it = boards_.find(std::string(name));
    if (it == boards_.end()) return std::nullopt;
    ++it->second.status_queries;
    return it->second.status;
  }
  // How often the service asked for the board's state.
  int StatusQueries(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    auto it = boards_.find(name);
    return it == boards_.end() ? 0 : it->second.status_queries;
  }
  std::map<std::string, LinkStatus> Statuses() const override {
    absl::MutexLock lock(&mu_);
    std::map<std::string, LinkStatus> out;
    for (const auto& [name, entry] : boards_) out[name] = entry.status;
    return out;
  }
  std::shared_ptr<BoardClient> Client(absl::string_view name) const override { return Board(name); }

  std::shared_ptr<FakeBoard> Board(absl::string_view name) const {
    absl::MutexLock lock(&mu_);
    auto it = boards_.find(std::string(name));
    return it == boards_.end() ? nullptr : it->second.board;
  }
  void SetState(const std::string& name, BoardState state, std::string message) {
    absl::MutexLock lock(&mu_);
    boards_[name].status.state = state;
    boards_[name].status.message = std::move(message);
  }

 private:
  struct Entry {
    LinkStatus status;
    std::shared_ptr<FakeBoard> board;
    mutable int status_queries = 0;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> boards_ ABSL_GUARDED_BY(mu_);
};

class FleetServiceFakeBoardsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(temp_.Init("fleet_service_fake_boards_test"));
    absl::StatusOr<std::unique_ptr<Inventory>> inventory = Inventory::Open(temp_.store(), {}, absl::Now());
    ASSERT_TRUE(inventory.ok()) << inventory.status();
    inventory_ = *std::move(inventory);
    hub_ = std::make_unique<EventHub>(temp_.store());
    tokens_ = std::make_unique<TokenAuthority>(temp_.store());
    operator_ = Secret("ci", fleet::ROLE_OPERATOR);
    viewer_ = Secret("watcher", fleet::ROLE_VIEWER);
    for (const std::string name : {"b01", "b02", "b03"}) {
      ASSERT_TRUE(inventory_->Add(name, "127.0.0.1:1", {}, absl::Now()).ok());
      ASSERT_TRUE(directory_.Add(name, "127.0.0.1:1").ok());
    }
    service_ = std::make_unique<FleetService>(FleetServiceDeps{.store = &temp_.store(),
                                                               .inventory = inventory_.get(),
                                                               .links = &directory_,
                                                               .health = &health_,
                                                               .history = &history_,
                                                               .tokens = tokens_.get(),
                                                               .hub = hub_.get(),
                                                               .board_calls = BoardCallLimits{}});
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = fleet::Fleet::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }

  void TearDown() override {
    for (const std::string name : {"b01", "b02", "b03"}) {
      if (std::shared_ptr<FakeBoard> b = directory_.Board(name)) b->Release();
    }
    if (service_ != nullptr) service_->Shutdown();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + 5s);
    server_.reset();
    service_.reset();
  }

  std::string Secret(const std::string& name, fleet::Role role) {
    absl::StatusOr<IssuedToken> t = tokens_->Create(name, role, "test", absl::Now());
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->secret : "";
  }

  // A context carrying `secret` (none when empty) and, unless zero, a deadline.
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& secret,
                                                      std::chrono::milliseconds deadline = 30s) {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!secret.empty()) context->AddMetadata("authorization", "Bearer " + secret);
    if (deadline.count() > 0) context->set_deadline(std::chrono::system_clock::now() + deadline);
    return context;
  }

  FakeBoard& Board(const std::string& name) { return *directory_.Board(name); }

  // Every board call any fake board saw.
  size_t BoardCalls() {
    size_t n = 0;
    for (const std::string name : {"b01", "b02", "b03"}) n += Board(name).calls().size();
    return n;
  }

  std::vector<fleet::PushFileResponse> Push(fleet::PushFileRequest request, grpc::Status* status,
                                            std::chrono::milliseconds deadline = 30s) {
    auto context = Context(operator_, deadline);
    std::unique_ptr<grpc::ClientReader<fleet::PushFileResponse>> reader =
        stub_->PushFile(context.get(), request);
    std::vector<fleet::PushFileResponse> messages;
    fleet::PushFileResponse m;
    while (reader->Read(&m)) messages.push_back(m);
    *status = reader->Finish();
    return messages;
  }

  // The stages of `board` in a push's messages.
  static std::vector<fleet::PushStage> Stages(const std::vector<fleet::PushFileResponse>& messages,
                                              const std::string& board) {
    std::vector<fleet::PushStage> stages;
    for (const auto& m : messages) {
      if (m.board() == board) stages.push_back(m.stage());
    }
    return stages;
  }

  testing::TempStore temp_;  // first: destroyed after what uses its store
  std::unique_ptr<Inventory> inventory_;
  HealthAggregator health_;
  HealthHistory history_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<TokenAuthority> tokens_;
  FakeDirectory directory_;
  std::string operator_, viewer_;
  std::unique_ptr<FleetService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<fleet::Fleet::Stub> stub_;
};

TEST_F(FleetServiceFakeBoardsTest, RunProgramFansOutAndEachBoardReportsItsOwnOutcome) {
  directory_.SetState("b03", BoardState::kOffline, "connection failed: UNAVAILABLE: refused");
  Board("b02").FailNext("StartProgram", absl::NotFoundError("board b02: StartProgram: no such file"));
  fleet::RunProgramRequest request;
  request.set_path("/app.py");
  fleet::RunProgramResponse response;
  const grpc::Status status = stub_->RunProgram(Context(operator_).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  ASSERT_EQ(response.results_size(), 3);
  EXPECT_EQ(response.results(0).board(), "b01");
  EXPECT_FALSE(response.results(0).has_error());
  EXPECT_GT(response.results(0).program_id(), 0u);
  EXPECT_EQ(response.results(1).error().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(response.results(1).error().message(), "board b02: StartProgram: no such file");
  EXPECT_EQ(response.results(2).error().code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(response.results(2).error().message(), HasSubstr("board b03 is offline"));
  EXPECT_TRUE(Board("b03").calls().empty()) << "an offline board is not called";
  absl::StatusOr<std::vector<AuditRecord>> audit = temp_.store().ListAudit(AuditQuery{.limit = 10});
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_THAT(audit->front().result_message, HasSubstr("1 of 3 boards ok"));
}

TEST_F(FleetServiceFakeBoardsTest, PushRetriesAnOfflineBoardAndWritesItOnceItIsBack) {
  directory_.SetState("b01", BoardState::kOffline, "connecting");
  fleet::PushFileRequest request;
  request.mutable_selector()->add_boards("b01");
  request.set_path("/app.py");
  request.set_content("print('hi')\n");
  std::future<std::vector<fleet::PushFileResponse>> pushing = std::async(std::launch::async, [&] {
    grpc::Status status;
    std::vector<fleet::PushFileResponse> messages = Push(request, &status);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return messages;
  });
  // Found offline twice (the first try and a retry), then the board is back.
  for (int i = 0; i < 10000 && directory_.StatusQueries("b01") < 2; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_GE(directory_.StatusQueries("b01"), 2);
  directory_.SetState("b01", BoardState::kOnline, "");
  const std::vector<fleet::PushFileResponse> messages = pushing.get();

  EXPECT_THAT(Stages(messages, "b01"), ElementsAre(fleet::PUSH_STAGE_QUEUED, fleet::PUSH_STAGE_QUEUED,
                                                   fleet::PUSH_STAGE_WRITING, fleet::PUSH_STAGE_DONE));
  EXPECT_THAT(messages.at(1).error().message(), HasSubstr("board b01 is offline: connecting"));
  EXPECT_EQ(Board("b01").File("/app.py"), "print('hi')\n");
}

TEST_F(FleetServiceFakeBoardsTest, PushSkipsABoardWhoseFileIsUnchangedUnlessForced) {
  Board("b01").PutFile("/app.py", "print('hi')\n");
  Board("b02").PutFile("/app.py", "print('old')\n");
  fleet::PushFileRequest request;
  request.mutable_selector()->add_boards("b01");
  request.mutable_selector()->add_boards("b02");
  request.set_path("/app.py");
  request.set_content("print('hi')\n");
  grpc::Status status;
  std::vector<fleet::PushFileResponse> messages = Push(request, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(Stages(messages, "b01"),
              ElementsAre(fleet::PUSH_STAGE_QUEUED, fleet::PUSH_STAGE_WRITING, fleet::PUSH_STAGE_UNCHANGED));
  EXPECT_THAT(Stages(messages, "b02"),
              ElementsAre(fleet::PUSH_STAGE_QUEUED, fleet::PUSH_STAGE_WRITING, fleet::PUSH_STAGE_DONE));
  EXPECT_EQ(Board("b02").File("/app.py"), "print('hi')\n");
  EXPECT_EQ(Board("b01").calls().back().detail, Sha256Hex("print('hi')\n")) << "the board is asked to skip";

  request.set_force(true);
  messages = Push(request, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(Stages(messages, "b01"),
              ElementsAre(fleet::PUSH_STAGE_QUEUED, fleet::PUSH_STAGE_WRITING, fleet::PUSH_STAGE_DONE));
  EXPECT_EQ(Board("b01").calls().back().detail, "") << "forced: no skip asked";
}

TEST_F(FleetServiceFakeBoardsTest, RequestsOverABoardsLimitsAreRefusedNamingThemBeforeAnyBoardCall) {
  fleet::RunProgramRequest run;
  run.set_path("/app.py");
  run.set_name(std::string(33, 'n'));
  fleet::RunProgramResponse ran;
  grpc::Status status = stub_->RunProgram(Context(operator_).get(), run, &ran);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "name is 33 bytes, longer than a board takes (32: board.options, StartProgramRequest.name)");

  run.clear_name();
  run.set_path("/" + std::string(40, 'f') + ".py");  // its file name is the program's name
  status = stub_->RunProgram(Context(operator_).get(), run, &ran);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("name (the file name of path) is 43 bytes"));

  run.set_path("/app.py");
  for (int i = 0; i < 9; ++i) run.add_args("x");
  status = stub_->RunProgram(Context(operator_).get(), run, &ran);
  EXPECT_EQ(status.error_message(),
            "args has 9 elements, more than a board takes (8: board.options, StartProgramRequest.args)");
  run.clear_args();
  run.add_args(std::string(129, 'a'));
  status = stub_->RunProgram(Context(operator_).get(), run, &ran);
  EXPECT_THAT(status.error_message(), HasSubstr("args[0] is 129 bytes, longer than a board takes (128"));

  fleet::StartThreadRequest start;
  start.set_board("b01");
  start.set_module(std::string(65, 'm'));
  start.set_function("run");
  fleet::StartThreadResponse started;
  status = stub_->StartThread(Context(operator_).get(), start, &started);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("module is 65 bytes, longer than a board takes (64"));

  fleet::PushFileRequest push;
  push.set_path("/" + std::string(128, 'p'));
  push.set_content("x");
  Push(push, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("path is 129 bytes, longer than a board takes (128"));
  push.set_path(std::string("/app.py\0.bak", 12));
  Push(push, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("path holds a NUL byte at offset 7"));

  fleet::ListFilesRequest list;
  list.set_board("b01");
  list.set_path("relative/dir");
  fleet::ListFilesResponse listed;
  status = stub_->ListFiles(Context(viewer_).get(), list, &listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("is not absolute"));

  EXPECT_EQ(BoardCalls(), 0u) << "no board was called";
}

TEST_F(FleetServiceFakeBoardsTest, AKillGraceOverTheCapIsRefusedNamingItBeforeAnyBoardCall) {
  fleet::KillThreadRequest kill;
  kill.set_board("b01");
  kill.set_thread_id(7);
  kill.set_grace_ms(10001);
  fleet::KillThreadResponse killed;
  grpc::Status status = stub_->KillThread(Context(operator_).get(), kill, &killed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      status.error_message(),
      "grace_ms is 10001, over fleetd's limit of 10000 (a kill waits at most that long for a thread to end)");
  fleet::KillProgramRequest kill_program;
  kill_program.set_board("b01");
  kill_program.set_program_id(3);
  kill_program.set_grace_ms(60000);
  fleet::KillProgramResponse program_killed;
  status = stub_->KillProgram(Context(operator_).get(), kill_program, &program_killed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BoardCalls(), 0u);

  kill.set_grace_ms(10000);  // at the cap: fine
  status = stub_->KillThread(Context(operator_).get(), kill, &killed);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(killed.thread().state(), pb::THREAD_STATE_KILLED);
}

TEST_F(FleetServiceFakeBoardsTest, TheCallersDeadlineIsHandedToTheBoardAndNoDeadlineLeavesItToTheLink) {
  fleet::KillThreadRequest kill;
  kill.set_board("b01");
  kill.set_thread_id(7);
  fleet::KillThreadResponse killed;
  const absl::Time before = absl::Now();
  ASSERT_TRUE(stub_->KillThread(Context(operator_, 5000ms).get(), kill, &killed).ok());
  ASSERT_TRUE(stub_->KillThread(Context(operator_, 0ms).get(), kill, &killed).ok());

  const std::vector<FakeBoard::Call> calls = Board("b01").calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_GT(calls[0].options.deadline, before);
  EXPECT_LE(calls[0].options.deadline, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(calls[1].options.deadline, absl::InfiniteFuture());
}

TEST_F(FleetServiceFakeBoardsTest, BoardCallsWaitingForTheirBoardsHoldNoWorkerThread) {
  // More kills than the service has worker threads, all waiting for b01.
  Board("b01").Hold("KillThread");
  constexpr int kKills = 40;
  struct Pending {
    std::unique_ptr<grpc::ClientContext> context;
    fleet::KillThreadRequest request;
    fleet::KillThreadResponse response;
    std::promise<grpc::Status> done;
  };
  std::vector<std::unique_ptr<Pending>> kills;
  for (int i = 0; i < kKills; ++i) {
    auto p = std::make_unique<Pending>();
    p->context = Context(operator_);
    p->request.set_board("b01");
    p->request.set_thread_id(static_cast<uint32_t>(i + 1));
    Pending* raw = p.get();
    stub_->async()->KillThread(raw->context.get(), &raw->request, &raw->response,
                               [raw](grpc::Status s) { raw->done.set_value(std::move(s)); });
    kills.push_back(std::move(p));
  }
  for (int i = 0; i < 10000 && Board("b01").held() < kKills; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(Board("b01").held(), static_cast<size_t>(kKills));

  // Everything else still answers: reads, a refusal, another board's kill.
  fleet::ListBoardsResponse boards;
  EXPECT_TRUE(stub_->ListBoards(Context(viewer_).get(), fleet::ListBoardsRequest(), &boards).ok());
  EXPECT_EQ(boards.boards_size(), 3);
  EXPECT_EQ(stub_->ListBoards(Context("").get(), fleet::ListBoardsRequest(), &boards).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  fleet::KillThreadRequest other;
  other.set_board("b02");
  other.set_thread_id(1);
  fleet::KillThreadResponse other_killed;
  EXPECT_TRUE(stub_->KillThread(Context(operator_).get(), other, &other_killed).ok());

  Board("b01").Release();
  for (auto& p : kills) {
    std::future<grpc::Status> done = p->done.get_future();
    ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
    EXPECT_TRUE(done.get().ok());
  }
}

TEST_F(FleetServiceFakeBoardsTest, ABoardsRefusalOverItsLimitsReachesTheCallerAndTheAuditInItsWords) {
  const absl::Status busy = absl::ResourceExhaustedError(
      "board b01: KillThread: 8 calls in flight and 32 waiting on this board, the most fleetd allows "
      "(max_calls_in_flight 8, max_queued_calls 32)");
  Board("b01").FailNext("KillThread", busy);
  fleet::KillThreadRequest kill;
  kill.set_board("b01");
  kill.set_thread_id(7);
  fleet::KillThreadResponse killed;
  const grpc::Status status = stub_->KillThread(Context(operator_).get(), kill, &killed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(), busy.message());
  absl::StatusOr<std::vector<AuditRecord>> audit = temp_.store().ListAudit(AuditQuery{.limit = 10});
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ(audit->front().result_code, absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(audit->front().target, "b01/7");
}

TEST_F(FleetServiceFakeBoardsTest, AKillTheBoardAnswersAfterTheCallersDeadlineIsAuditedAsTheCallerSawIt) {
  Board("b01").Hold("KillThread");
  fleet::KillThreadRequest kill;
  kill.set_board("b01");
  kill.set_thread_id(7);
  fleet::KillThreadResponse killed;
  auto context = Context(operator_);
  context->set_deadline(std::chrono::system_clock::now() + 300ms);
  EXPECT_EQ(stub_->KillThread(context.get(), kill, &killed).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);

  Board("b01").Release();  // the board's OK comes too late for the caller
  std::vector<AuditRecord> rows;
  ASSERT_TRUE(PollUntil(5s, [&] {
    absl::StatusOr<std::vector<AuditRecord>> audit = temp_.store().ListAudit(AuditQuery{.limit = 10});
    rows = audit.ok() ? *audit : std::vector<AuditRecord>{};
    return rows.size() == 1 && rows.front().state == fleet::AUDIT_STATE_DONE;
  }));
  EXPECT_EQ(rows.front().result_code, absl::StatusCode::kDeadlineExceeded) << rows.front().result_message;
}

TEST_F(FleetServiceFakeBoardsTest, FilesAreListedWithTheirSha256AndDeletedByOperatorsOnly) {
  Board("b01").PutFile("/app.py", "print('hi')\n");
  Board("b01").PutFile("/lib.py", "x = 1\n");
  fleet::ListFilesRequest list;
  list.set_board("b01");
  fleet::ListFilesResponse listed;
  grpc::Status status = stub_->ListFiles(Context(viewer_).get(), list, &listed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(listed.board(), "b01");
  EXPECT_EQ(listed.path(), "/");
  ASSERT_EQ(listed.entries_size(), 2);
  EXPECT_EQ(listed.entries(0).name(), "app.py");
  EXPECT_EQ(listed.entries(0).size_bytes(), 12u);
  EXPECT_EQ(listed.entries(0).sha256_hex(), Sha256Hex("print('hi')\n"));

  fleet::DeleteFileRequest remove;
  remove.set_board("b01");
  remove.set_path("/app.py");
  fleet::DeleteFileResponse removed;
  EXPECT_EQ(stub_->DeleteFile(Context(viewer_).get(), remove, &removed).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Board("b01").File("/app.py").has_value());
  status = stub_->DeleteFile(Context(operator_).get(), remove, &removed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(Board("b01").File("/app.py").has_value());
  Board("b01").FailNext("DeleteFile", absl::NotFoundError("board b01: DeleteFile: no such file"));
  EXPECT_EQ(stub_->DeleteFile(Context(operator_).get(), remove, &removed).error_code(),
            grpc::StatusCode::NOT_FOUND);

  absl::StatusOr<std::vector<AuditRecord>> audit = temp_.store().ListAudit(AuditQuery{.limit = 10});
  ASSERT_TRUE(audit.ok());
  std::vector<std::string> rows;  // oldest first
  for (const AuditRecord& r : std::vector<AuditRecord>(audit->rbegin(), audit->rend())) {
    rows.push_back(absl::StrCat(r.action, " ", r.target, " ", absl::StatusCodeToString(r.result_code)));
  }
  EXPECT_THAT(rows, ElementsAre("Fleet.DeleteFile b01 /app.py PERMISSION_DENIED",
                                "Fleet.DeleteFile b01 /app.py OK", "Fleet.DeleteFile b01 /app.py NOT_FOUND"));
}

TEST_F(FleetServiceFakeBoardsTest, OperatorsDrivePinsAndViewersReadTheMachineEachSetAudited) {
  fleet::SetPinRequest drive;
  drive.set_board("b01");
  drive.set_pin(4);
  drive.set_value(1);
  fleet::SetPinResponse driven;
  EXPECT_EQ(stub_->SetPin(Context(viewer_).get(), drive, &driven).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status status = stub_->SetPin(Context(operator_).get(), drive, &driven);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(driven.pin().pin(), 4u);
  EXPECT_EQ(driven.pin().value(), 1u);
  EXPECT_TRUE(driven.pin().lab_driven());

  fleet::SetAdcRequest adc;
  adc.set_board("b01");
  adc.set_channel(0);
  adc.set_value_u16(65535);
  fleet::SetAdcResponse set;
  status = stub_->SetAdc(Context(operator_).get(), adc, &set);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(set.adc().value_u16(), 65535u);

  fleet::GetMachineRequest get;
  get.set_board("b01");
  fleet::GetMachineResponse machine;
  status = stub_->GetMachine(Context(viewer_).get(), get, &machine);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(machine.machine().pins_size(), 1);
  EXPECT_TRUE(machine.machine().pins(0).lab_driven());

  drive.set_release(true);
  drive.set_value(0);
  status = stub_->SetPin(Context(operator_).get(), drive, &driven);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(driven.pin().lab_driven());

  absl::StatusOr<std::vector<AuditRecord>> audit = temp_.store().ListAudit(AuditQuery{.limit = 10});
  ASSERT_TRUE(audit.ok());
  std::vector<std::string> rows;  // oldest first
  for (const AuditRecord& r : std::vector<AuditRecord>(audit->rbegin(), audit->rend())) {
    const bool ok = r.result_code == absl::StatusCode::kOk;
    rows.push_back(absl::StrCat(r.action, " ", r.target, " ", absl::StatusCodeToString(r.result_code),
                                ok ? " " + r.result_message : ""));
  }
  EXPECT_THAT(rows,
              ElementsAre("Fleet.SetPin b01/pin 4 PERMISSION_DENIED", "Fleet.SetPin b01/pin 4 OK driven to 1",
                          "Fleet.SetAdc b01/adc 0 OK set to 65535", "Fleet.SetPin b01/pin 4 OK released"));
}

TEST_F(FleetServiceFakeBoardsTest, OperatorsResetBoardsWithTheCallersDeadlineEachResetAudited) {
  fleet::ResetBoardRequest reset;
  reset.set_board("b01");
  fleet::ResetBoardResponse answer;
  EXPECT_EQ(stub_->ResetBoard(Context(viewer_).get(), reset, &answer).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Board("b01").calls().empty()) << "a viewer's reset reaches no board";

  const absl::Time before = absl::Now();
  grpc::Status status = stub_->ResetBoard(Context(operator_, 5000ms).get(), reset, &answer);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(answer.hard());
  reset.set_safe_boot(true);
  status = stub_->ResetBoard(Context(operator_).get(), reset, &answer);
  ASSERT_TRUE(status.ok()) << status.error_message();
  Board("b01").SetResetHard(true);
  reset.set_safe_boot(false);
  status = stub_->ResetBoard(Context(operator_).get(), reset, &answer);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(answer.hard());

  std::vector<FakeBoard::Call> resets;
  for (const FakeBoard::Call& c : Board("b01").calls()) {
    if (c.method == "Reset") resets.push_back(c);
  }
  ASSERT_EQ(resets.size(), 3u);
  EXPECT_GT(resets[0].options.deadline, before);
  EXPECT_LE(resets[0].options.deadline, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(resets[0].detail, "");
  EXPECT_EQ(resets[1].detail, "safe boot");
  absl::StatusOr<std::vector<AuditRecord>> audit = temp_.store().ListAudit(AuditQuery{.limit = 10});
  ASSERT_TRUE(audit.ok());
  std::vector<std::string> rows;  // oldest first
  for (const AuditRecord& r : std::vector<AuditRecord>(audit->rbegin(), audit->rend())) {
    rows.push_back(absl::StrCat(r.action, " ", r.target, " ", absl::StatusCodeToString(r.result_code), " ",
                                r.result_message));
  }
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_THAT(rows[0], HasSubstr("Fleet.ResetBoard b01 PERMISSION_DENIED"));
  EXPECT_EQ(rows[1], "Fleet.ResetBoard b01 OK fresh VM");
  EXPECT_EQ(rows[2], "Fleet.ResetBoard b01 (safe boot) OK fresh VM");
  EXPECT_EQ(rows[3], "Fleet.ResetBoard b01 OK hard reset: threads stuck in native code; the board restarted");
}

TEST_F(FleetServiceFakeBoardsTest, ResettingAnUnknownBoardIsNotFoundAndAnOfflineOneUnavailable) {
  fleet::ResetBoardRequest reset;
  reset.set_board("b99");
  fleet::ResetBoardResponse answer;
  grpc::Status status = stub_->ResetBoard(Context(operator_).get(), reset, &answer);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("b99"));

  directory_.SetState("b02", BoardState::kOffline, "connection failed: UNAVAILABLE: refused");
  reset.set_board("b02");
  status = stub_->ResetBoard(Context(operator_).get(), reset, &answer);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("board b02 is offline: connection failed"));
  EXPECT_EQ(BoardCalls(), 0u);
}

TEST_F(FleetServiceFakeBoardsTest, MachineInputOutOfBoundsIsRefusedNamingTheFieldBeforeAnyBoardCall) {
  struct Case {
    uint32_t pin;
    uint32_t value;
    bool release;
    std::string message;
  };
  for (const Case& c : {Case{256, 1, false, "pin 256 is out of range: pins are 0..255"},
                        Case{4, 2, false, "value 2 is not a level: 0 or 1"}}) {
    fleet::SetPinRequest drive;
    drive.set_board("b01");
    drive.set_pin(c.pin);
    drive.set_value(c.value);
    drive.set_release(c.release);
    fleet::SetPinResponse driven;
    const grpc::Status status = stub_->SetPin(Context(operator_).get(), drive, &driven);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.message;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  fleet::SetAdcRequest adc;
  adc.set_board("b01");
  adc.set_channel(1);
  adc.set_value_u16(65536);
  fleet::SetAdcResponse set;
  const grpc::Status status = stub_->SetAdc(Context(operator_).get(), adc, &set);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("value_u16 65536 is out of range: the limit is 65535"));
  EXPECT_EQ(BoardCalls(), 0u);
}

TEST_F(FleetServiceFakeBoardsTest, TheBoardsRefusalOfAPinPassesThroughWithTheBoardNamed) {
  const absl::Status output = absl::FailedPreconditionError(
      "board b01: SetPin: pin 2 is an output of the program (Pin.OUT); the lab drives inputs only");
  Board("b01").FailNext("SetPin", output);
  fleet::SetPinRequest drive;
  drive.set_board("b01");
  drive.set_pin(2);
  drive.set_value(1);
  fleet::SetPinResponse driven;
  const grpc::Status status = stub_->SetPin(Context(operator_).get(), drive, &driven);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(), output.message());

  fleet::GetMachineRequest get;
  get.set_board("nope");
  fleet::GetMachineResponse machine;
  EXPECT_EQ(stub_->GetMachine(Context(viewer_).get(), get, &machine).error_code(),
            grpc::StatusCode::NOT_FOUND);
  directory_.SetState("b02", BoardState::kOffline, "connection refused");
  get.set_board("b02");
  EXPECT_EQ(stub_->GetMachine(Context(viewer_).get(), get, &machine).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

// A snapshot of a board at `uptime_ms` with one running thread (7) and a
// program.
pb::HealthSnapshot SnapshotAt(uint64_t uptime_ms, uint64_t thread_cpu_ms = 0) {
  pb::HealthSnapshot s;
  s.set_uptime_us(uptime_ms * 1000);
  s.mutable_heap()->set_total_bytes(65536);
  s.mutable_heap()->set_used_bytes(1024);
  s.mutable_thread_counts()->set_running(1);
  pb::ThreadInfo* t = s.add_threads();
  t->set_id(7);
  t->set_name("worker");
  t->set_program_id(3);
  t->set_state(pb::THREAD_STATE_RUNNING);
  t->set_cpu_time_us(thread_cpu_ms * 1000);
  t->set_stack_size_bytes(8192);
  t->set_stack_used_bytes(512);
  t->set_stack_peak_bytes(900);
  s.add_programs()->set_id(3);
  s.add_metrics()->set_key("rx");
  return s;
}

fleet::WatchHealthResponse SnapshotUpdate(const std::string& board, uint64_t uptime_ms) {
  fleet::WatchHealthResponse u;
  u.set_board(board);
  *u.mutable_snapshot() = SnapshotAt(uptime_ms);
  return u;
}

TEST_F(FleetServiceFakeBoardsTest, GetHealthHistoryAnswersTheBoardsSamplesWithItsThreadsColumns) {
  const absl::Time t0 = absl::Now() - absl::Seconds(1);
  history_.Record("b01", SnapshotAt(1000, 100), t0);
  history_.Record("b01", SnapshotAt(1500, 350), t0 + absl::Milliseconds(500));
  fleet::GetHealthHistoryRequest request;
  request.set_board("b01");
  fleet::GetHealthHistoryResponse response;

  const grpc::Status status = stub_->GetHealthHistory(Context(viewer_).get(), request, &response);

  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.board(), "b01");
  EXPECT_EQ(response.start_time_ms(), absl::ToUnixMillis(t0));
  EXPECT_THAT(response.offset_ms(), ElementsAre(0, 500));
  EXPECT_THAT(response.heap_used_bytes(), ElementsAre(1024, 1024));
  ASSERT_EQ(response.threads_size(), 1);
  EXPECT_EQ(response.threads(0).name(), "worker");
  EXPECT_THAT(response.threads(0).cpu_percent(), ElementsAre(10, 50));
  EXPECT_THAT(response.threads(0).stack_used_bytes(), ElementsAre(512, 512));
  EXPECT_THAT(response.threads(0).stack_peak_bytes(), ElementsAre(900, 900));

  // A board in the inventory that sent nothing yet has an empty history.
  request.set_board("b02");
  ASSERT_TRUE(stub_->GetHealthHistory(Context(viewer_).get(), request, &response).ok());
  EXPECT_EQ(response.board(), "b02");
  EXPECT_EQ(response.offset_ms_size(), 0);
}

TEST_F(FleetServiceFakeBoardsTest, GetHealthHistoryRefusesAnUnknownBoardANegativeWindowAndNoToken) {
  fleet::GetHealthHistoryRequest request;
  fleet::GetHealthHistoryResponse response;
  request.set_board("b99");
  EXPECT_EQ(stub_->GetHealthHistory(Context(viewer_).get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  request.set_board("b01");
  request.set_window_ms(-1);
  const grpc::Status negative = stub_->GetHealthHistory(Context(viewer_).get(), request, &response);
  EXPECT_EQ(negative.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(negative.error_message(), HasSubstr("window_ms"));
  request.set_window_ms(0);
  EXPECT_EQ(stub_->GetHealthHistory(Context("").get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(FleetServiceFakeBoardsTest, RemovedBoardsHistoryIsDropped) {
  history_.Record("b01", SnapshotAt(1000), absl::Now());
  ASSERT_GT(history_.bytes(), 0u);
  const std::string admin = Secret("root", fleet::ROLE_ADMIN);
  fleet::RemoveBoardRequest request;
  request.set_name("b01");
  fleet::RemoveBoardResponse response;
  ASSERT_TRUE(stub_->RemoveBoard(Context(admin).get(), request, &response).ok());
  EXPECT_EQ(history_.bytes(), 0u);
}

TEST_F(FleetServiceFakeBoardsTest, WhoAmIAnswersTheTokensNameAndRoleUnaudited) {
  fleet::WhoAmIResponse response;
  ASSERT_TRUE(stub_->WhoAmI(Context(viewer_).get(), {}, &response).ok());
  EXPECT_EQ(response.token_name(), "watcher");
  EXPECT_EQ(response.role(), fleet::ROLE_VIEWER);
  ASSERT_TRUE(stub_->WhoAmI(Context(operator_).get(), {}, &response).ok());
  EXPECT_EQ(response.token_name(), "ci");
  EXPECT_EQ(response.role(), fleet::ROLE_OPERATOR);
  absl::StatusOr<std::vector<AuditRecord>> audit = temp_.store().ListAudit(AuditQuery{.limit = 10});
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->empty()) << "a read is not audited";

  EXPECT_EQ(stub_->WhoAmI(Context("").get(), {}, &response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stub_->WhoAmI(Context("tf_" + std::string(43, 'A')).get(), {}, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(FleetServiceFakeBoardsTest, WatchHealthSummaryOnlySendsSnapshotsWithoutThreadsProgramsAndMetrics) {
  (void)health_.OnSnapshot("b01", SnapshotAt(1000), absl::Now());
  fleet::WatchHealthRequest request;
  request.mutable_selector()->add_boards("b01");
  request.set_summary_only(true);
  auto context = Context(viewer_);
  std::unique_ptr<grpc::ClientReader<fleet::WatchHealthResponse>> reader =
      stub_->WatchHealth(context.get(), request);
  fleet::WatchHealthResponse state, snapshot, live;
  ASSERT_TRUE(reader->Read(&state));
  EXPECT_EQ(state.state(), fleet::BOARD_STATE_ONLINE);
  ASSERT_TRUE(reader->Read(&snapshot));
  ASSERT_TRUE(snapshot.has_snapshot());
  hub_->PublishHealth(SnapshotUpdate("b01", 1500));
  ASSERT_TRUE(reader->Read(&live));
  context->TryCancel();
  reader->Finish();

  for (const fleet::WatchHealthResponse& m : {snapshot, live}) {
    EXPECT_EQ(m.snapshot().threads_size(), 0);
    EXPECT_EQ(m.snapshot().programs_size(), 0);
    EXPECT_EQ(m.snapshot().metrics_size(), 0);
    EXPECT_EQ(m.snapshot().thread_counts().running(), 1u) << "counts stay";
    EXPECT_EQ(m.snapshot().heap().used_bytes(), 1024u) << "heap stays";
  }
  EXPECT_EQ(live.snapshot().uptime_us(), 1500000u);
}

TEST_F(FleetServiceFakeBoardsTest, WatchHealthMinPeriodHoldsSnapshotsButNeverStateChangesOrEvents) {
  (void)health_.OnSnapshot("b01", SnapshotAt(1000), absl::Now());
  fleet::WatchHealthRequest request;
  request.mutable_selector()->add_boards("b01");
  request.set_min_period_ms(60000);
  auto context = Context(viewer_);
  std::unique_ptr<grpc::ClientReader<fleet::WatchHealthResponse>> reader =
      stub_->WatchHealth(context.get(), request);
  fleet::WatchHealthResponse m;
  ASSERT_TRUE(reader->Read(&m));  // state
  ASSERT_TRUE(reader->Read(&m));  // the latest snapshot, at once
  ASSERT_TRUE(m.has_snapshot());

  // Within the period: snapshots wait, the state change and event do not.
  hub_->PublishHealth(SnapshotUpdate("b01", 1500));
  hub_->PublishHealth(SnapshotUpdate("b01", 2000));
  fleet::WatchHealthResponse offline;
  offline.set_board("b01");
  offline.set_state(fleet::BOARD_STATE_OFFLINE);
  hub_->PublishHealth(offline);
  fleet::WatchHealthResponse event;
  event.set_board("b01");
  event.mutable_event()->set_message("thread 7 failed");
  hub_->PublishHealth(event);

  ASSERT_TRUE(reader->Read(&m));
  EXPECT_EQ(m.state(), fleet::BOARD_STATE_OFFLINE);
  ASSERT_TRUE(reader->Read(&m));
  EXPECT_EQ(m.event().message(), "thread 7 failed");
  context->TryCancel();
  reader->Finish();
}

TEST_F(FleetServiceFakeBoardsTest, WatchHealthSendsTheNewestHeldSnapshotWhenThePeriodEnds) {
  (void)health_.OnSnapshot("b01", SnapshotAt(1000), absl::Now());
  fleet::WatchHealthRequest request;
  request.mutable_selector()->add_boards("b01");
  request.set_min_period_ms(200);
  auto context = Context(viewer_);
  std::unique_ptr<grpc::ClientReader<fleet::WatchHealthResponse>> reader =
      stub_->WatchHealth(context.get(), request);
  fleet::WatchHealthResponse m;
  ASSERT_TRUE(reader->Read(&m));
  ASSERT_TRUE(reader->Read(&m));
  ASSERT_TRUE(m.has_snapshot());
  for (uint64_t uptime = 1100; uptime <= 2000; uptime += 100)
    hub_->PublishHealth(SnapshotUpdate("b01", uptime));

  // Whatever went out in between, fewer snapshots than were published do, and
  // the newest one does.
  int received = 0;
  do {
    ASSERT_TRUE(reader->Read(&m));
    ASSERT_TRUE(m.has_snapshot());
    ++received;
  } while (m.snapshot().uptime_us() != 2000000 && received < 10);
  EXPECT_EQ(m.snapshot().uptime_us(), 2000000u);
  EXPECT_LT(received, 10);
  context->TryCancel();
  reader->Finish();
}

TEST_F(FleetServiceFakeBoardsTest, WatchHealthRefusesAMinPeriodOverTheLimit) {
  fleet::WatchHealthRequest request;
  request.set_min_period_ms(kMaxWatchPeriodMs + 1);
  auto context = Context(viewer_);
  std::unique_ptr<grpc::ClientReader<fleet::WatchHealthResponse>> reader =
      stub_->WatchHealth(context.get(), request);
  fleet::WatchHealthResponse m;
  EXPECT_FALSE(reader->Read(&m));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("min_period_ms is 60001, over the limit of 60000"));
}

}  // namespace
}  // namespace threadfleet::fleetd
