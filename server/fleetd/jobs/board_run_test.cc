// RunBoardAttempt over an in-memory board (FakeJobBoards): each rule of one
// board's steps, without sockets. The fake runs scripted programs: what they
// print, how they end (finish, raise in a thread, run until killed, lose the
// board) and what they report.
#include "server/fleetd/jobs/board_run.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"

namespace threadfleet::fleetd::jobs {
namespace {

namespace pb = ::threadfleet::board::v1;
namespace fv1 = ::threadfleet::fleet::v1;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// How a scripted program ends.
enum class Ending {
  kFinishes,         // every thread returns
  kExits,            // sys.exit(exit_code)
  kRaises,           // its worker thread dies of `raised`
  kRunsUntilKilled,  // until KillProgram (or forever, when unkillable)
  kLosesBoard,       // the board's connection drops while it runs
};

struct FakeScript {
  std::string output;
  Ending ending = Ending::kFinishes;
  int exit_code = 0;
  pb::ExceptionInfo raised;
  // The stack high-water mark of its worker thread, of 8192 bytes.
  uint32_t worker_stack_peak_bytes = 1024;
  // Swallows kills.
  bool unkillable = false;
  // fleet.report() values, seen in one snapshot while it runs (and gone
  // from the latest snapshot).
  std::map<std::string, double> reports;
  // Does not compile: StartProgram answers INVALID_ARGUMENT.
  bool syntax_error = false;
  // Bytes the board's output buffer dropped before `output` (a follow then
  // begins at this offset).
  uint64_t dropped_bytes = 0;
};

// One board in memory. Board calls take the board's name but there is one
// board, "b01".
class FakeJobBoards final : public JobBoards {
 public:
  // ---- Test setup

  // What running `path` does; the file must also have been pushed (or
  // Place()d) for a StartProgram to find it.
  void Script(const std::string& path, FakeScript script) {
    absl::MutexLock lock(&mu_);
    scripts_[path] = std::move(script);
  }
  // A file already on the board.
  void Place(const std::string& path, const std::string& sha256_hex) {
    absl::MutexLock lock(&mu_);
    files_[path] = sha256_hex;
  }
  void FailWrites(absl::Status status) {
    absl::MutexLock lock(&mu_);
    write_error_ = std::move(status);
  }
  void SetSnapshot(pb::HealthSnapshot snapshot) {
    absl::MutexLock lock(&mu_);
    snapshot_ = std::move(snapshot);
  }
  void AddAnomaly(std::string kind, std::string message, absl::Time time) {
    absl::MutexLock lock(&mu_);
    Anomaly a{std::move(kind), {}};
    a.event.set_board("b01");
    a.event.set_message(std::move(message));
    a.event.set_severity(fv1::SEVERITY_ERROR);
    *a.event.mutable_time() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(time));
    anomalies_.push_back(std::move(a));
  }

  // A program's wiring: it drives output pin `out` to the level the lab
  // drives on input pin `in` (as a button lighting an LED would).
  void Mirror(uint32_t in, uint32_t out) {
    absl::MutexLock lock(&mu_);
    mirrors_[in] = out;
    pins_[out].set_pin(out);
    pins_[out].set_mode(pb::PIN_MODE_OUT);
  }

  // ---- What happened

  // "WriteFile /app.py", "StartProgram /app.py", "KillProgram 1",
  // "SetPin 4 1", "SetPin 4 release", "SetAdc 0 30000", ...
  std::vector<std::string> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  pb::ProgramState program_state(uint32_t id) const {
    absl::MutexLock lock(&mu_);
    return programs_.at(id).info.state();
  }
  size_t snapshot_watches() const {
    absl::MutexLock lock(&mu_);
    return watches_.size();
  }

  // ---- JobBoards

  bool Reachable(absl::string_view) const override {
    absl::MutexLock lock(&mu_);
    return !lost_ && !connecting_;
  }

  // A board fleetd is still making its first connection to: reachable once
  // the attempt has waited for it.
  void StartConnecting() {
    absl::MutexLock lock(&mu_);
    connecting_ = true;
  }
  bool AwaitFirstConnection(absl::string_view, absl::Time, const StopSignal&) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("AwaitFirstConnection");
    connecting_ = false;
    return !lost_;
  }

  absl::StatusOr<pb::WriteFileResponse> WriteFile(absl::string_view, absl::string_view path,
                                                  std::shared_ptr<const std::string> content,
                                                  absl::string_view sha256_hex, absl::Time,
                                                  const StopSignal&) override {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost("WriteFile");
    if (!write_error_.ok()) return write_error_;
    pb::WriteFileResponse response;
    response.set_sha256_hex(std::string(sha256_hex));
    response.set_size_bytes(content->size());
    auto it = files_.find(std::string(path));
    if (it != files_.end() && it->second == sha256_hex) {
      response.set_unchanged(true);
      return response;
    }
    calls_.push_back(absl::StrCat("WriteFile ", path));
    files_[std::string(path)] = std::string(sha256_hex);
    return response;
  }

  absl::StatusOr<pb::StartProgramResponse> StartProgram(absl::string_view,
                                                        const pb::StartProgramRequest& request, absl::Time,
                                                        const StopSignal&) override {
    std::vector<SnapshotFn> watchers;
    pb::HealthSnapshot reported;
    pb::StartProgramResponse response;
    {
      absl::MutexLock lock(&mu_);
      if (lost_) return Lost("StartProgram");
      calls_.push_back(absl::StrCat("StartProgram ", request.path()));
      if (!files_.contains(request.path())) {
        return absl::NotFoundError(
            absl::StrCat("board b01: StartProgram: ", request.path(), ": no such file"));
      }
      const FakeScript& script = scripts_[request.path()];
      if (script.syntax_error) {
        return absl::InvalidArgumentError("board b01: StartProgram: SyntaxError: invalid syntax (line 2)");
      }
      FakeProgram& program = programs_[next_program_id_];
      program.script = script;
      program.info.set_id(next_program_id_++);
      program.info.set_name(request.name());
      program.info.set_state(pb::PROGRAM_STATE_RUNNING);
      program.info.set_start_time_us(1'000'000);
      program.info.set_main_thread_id(next_thread_id_);
      for (const char* name : {"main", "worker"}) {
        pb::ThreadInfo& t = program.threads.emplace_back();
        t.set_id(next_thread_id_++);
        t.set_name(name);
        t.set_program_id(program.info.id());
        t.set_state(pb::THREAD_STATE_RUNNING);
        t.set_stack_size_bytes(8192);
        t.set_stack_peak_bytes(t.name() == "worker" ? script.worker_stack_peak_bytes : 512);
        program.info.add_thread_ids(t.id());
      }
      response.set_program_id(program.info.id());
      response.set_main_thread_id(program.info.main_thread_id());
      for (const auto& [key, value] : script.reports) {
        pb::UserMetric* metric = reported.add_metrics();
        metric->set_thread_id(program.threads[1].id());
        metric->set_key(key);
        metric->set_value(value);
      }
      if (!script.reports.empty()) {
        for (const auto& [id, fn] : watches_) watchers.push_back(fn);
      }
    }
    for (const SnapshotFn& fn : watchers) fn(reported);
    return response;
  }

  absl::Status FollowOutput(absl::string_view, uint32_t program_id, uint64_t from_offset, absl::Time deadline,
                            const StopSignal& stop, OutputFn on_output) override {
    FakeScript script;
    {
      absl::MutexLock lock(&mu_);
      if (lost_) return Lost("StreamOutput");
      script = programs_.at(program_id).script;
    }
    Deliver(script.output, from_offset,
            [&](uint64_t offset, absl::string_view data) { on_output(offset + script.dropped_bytes, data); });
    {
      absl::MutexLock lock(&mu_);
      FakeProgram& program = programs_.at(program_id);
      switch (script.ending) {
        case Ending::kFinishes:
        case Ending::kExits:
        case Ending::kRaises:
          End(program);
          return absl::OkStatus();
        case Ending::kLosesBoard:
          lost_ = true;
          return Lost("StreamOutput");
        case Ending::kRunsUntilKilled:
          break;
      }
    }
    // Waits until killed, stopped or the deadline, as the link's stream does.
    bool stopped = false;
    const uint64_t stop_id = stop.OnStop([this, &stopped] {
      absl::MutexLock lock(&mu_);
      stopped = true;
    });
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      auto ended = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopped || programs_.at(program_id).info.state() != pb::PROGRAM_STATE_RUNNING;
      };
      mu_.AwaitWithDeadline(absl::Condition(&ended), deadline);
      if (stopped) {
        status = absl::CancelledError("board b01: StreamOutput: stopped");
      } else if (programs_.at(program_id).info.state() == pb::PROGRAM_STATE_RUNNING) {
        status =
            absl::DeadlineExceededError("board b01: StreamOutput: no answer within the caller's deadline");
      }
    }
    stop.RemoveOnStop(stop_id);
    return status;
  }

  absl::Status ReadOutput(absl::string_view, uint32_t program_id, uint64_t from_offset, absl::Time,
                          const StopSignal&, OutputFn on_output) override {
    std::string output;
    {
      absl::MutexLock lock(&mu_);
      if (lost_) return Lost("StreamOutput");
      calls_.push_back(absl::StrCat("ReadOutput ", program_id, " from ", from_offset));
      FakeProgram& program = programs_.at(program_id);
      output = program.script.output;
      // A program left running that does end has ended by the time its
      // output is read.
      if (program.script.ending != Ending::kRunsUntilKilled &&
          program.info.state() == pb::PROGRAM_STATE_RUNNING) {
        End(program);
      }
    }
    Deliver(output, from_offset, on_output);
    return absl::OkStatus();
  }

  absl::StatusOr<pb::ListThreadsResponse> ListThreads(absl::string_view, absl::Time) override {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost("ListThreads");
    pb::ListThreadsResponse response;
    for (const auto& [id, program] : programs_) {
      *response.add_programs() = program.info;
      for (const pb::ThreadInfo& t : program.threads) *response.add_threads() = t;
    }
    return response;
  }

  absl::StatusOr<pb::KillProgramResponse> KillProgram(absl::string_view, uint32_t program_id, absl::Duration,
                                                      absl::Time) override {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost("KillProgram");
    calls_.push_back(absl::StrCat("KillProgram ", program_id));
    FakeProgram& program = programs_.at(program_id);
    pb::KillProgramResponse response;
    if (program.info.state() == pb::PROGRAM_STATE_RUNNING) {
      if (program.script.unkillable) {
        for (pb::ThreadInfo& t : program.threads) {
          t.set_unkillable(true);
          response.add_unkillable_thread_ids(t.id());
        }
      } else {
        program.info.set_state(pb::PROGRAM_STATE_KILLED);
        for (pb::ThreadInfo& t : program.threads) t.set_state(pb::THREAD_STATE_KILLED);
      }
    }
    *response.mutable_program() = program.info;
    return response;
  }

  absl::StatusOr<pb::MachineState> GetMachine(absl::string_view, absl::Time, const StopSignal&) override {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost("GetMachine");
    pb::MachineState machine;
    for (const auto& [number, pin] : pins_) *machine.add_pins() = pin;
    return machine;
  }

  absl::StatusOr<pb::PinState> SetPin(absl::string_view, const pb::SetPinRequest& request, absl::Time,
                                      const StopSignal&) override {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost("SetPin");
    calls_.push_back(absl::StrCat("SetPin ", request.pin(), " ",
                                  request.release() ? "release" : absl::StrCat(request.value())));
    if (request.pin() >= 40) {
      return absl::InvalidArgumentError(
          absl::StrCat("board b01: SetPin: pin ", request.pin(), " does not exist on esp32 (0..39)"));
    }
    pb::PinState& pin = pins_[request.pin()];
    if (pin.mode() == pb::PIN_MODE_OUT) {
      return absl::FailedPreconditionError(
          absl::StrCat("board b01: SetPin: pin ", request.pin(), " is an output of the program"));
    }
    pin.set_pin(request.pin());
    pin.set_mode(pb::PIN_MODE_IN);
    pin.set_lab_driven(!request.release());
    pin.set_value(request.release() ? 0 : request.value());
    if (auto it = mirrors_.find(request.pin()); it != mirrors_.end())
      pins_[it->second].set_value(pin.value());
    return pin;
  }

  absl::StatusOr<pb::AdcState> SetAdc(absl::string_view, const pb::SetAdcRequest& request, absl::Time,
                                      const StopSignal&) override {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost("SetAdc");
    calls_.push_back(absl::StrCat("SetAdc ", request.channel(), " ", request.value_u16()));
    pb::AdcState adc;
    adc.set_channel(request.channel());
    adc.set_value_u16(request.value_u16());
    adc.set_lab_set(true);
    return adc;
  }

  std::optional<pb::HealthSnapshot> LatestSnapshot(absl::string_view) const override {
    absl::MutexLock lock(&mu_);
    return snapshot_;
  }

  uint64_t WatchSnapshots(absl::string_view, SnapshotFn on_snapshot) override {
    absl::MutexLock lock(&mu_);
    watches_[next_watch_id_] = std::move(on_snapshot);
    return next_watch_id_++;
  }

  void RemoveSnapshotWatch(uint64_t id) override {
    absl::MutexLock lock(&mu_);
    watches_.erase(id);
  }

  std::vector<Anomaly> AnomaliesSince(absl::string_view, absl::Time since, size_t limit) const override {
    absl::MutexLock lock(&mu_);
    std::vector<Anomaly> found;
    for (const Anomaly& a : anomalies_) {
      const absl::Time time =
          absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(a.event.time()));
      if (time >= since && found.size() < limit) found.push_back(a);
    }
    return found;
  }

 private:
  struct FakeProgram {
    pb::ProgramInfo info;
    std::vector<pb::ThreadInfo> threads;
    FakeScript script;
  };

  static absl::Status Lost(absl::string_view method) {
    return absl::UnavailableError(
        absl::StrCat("board b01: ", method, ": connection lost: the board closed the connection"));
  }

  // The output in 1000-byte chunks from `from_offset`, as a stream sends it.
  static void Deliver(const std::string& output, uint64_t from_offset, const OutputFn& on_output) {
    for (uint64_t at = from_offset; at < output.size(); at += 1000) {
      on_output(at, absl::string_view(output).substr(at, 1000));
    }
  }

  // As the board does: the program's state is its main thread's (a worker
  // that raised leaves it FINISHED).
  static void End(FakeProgram& program) {
    const FakeScript& script = program.script;
    program.info.set_end_time_us(1'250'000);
    program.info.set_state(pb::PROGRAM_STATE_FINISHED);
    program.info.set_exit_code(script.ending == Ending::kExits ? script.exit_code : 0);
    for (pb::ThreadInfo& t : program.threads) {
      t.set_end_time_us(1'250'000);
      t.set_state(pb::THREAD_STATE_FINISHED);
      if (script.ending == Ending::kRaises && t.name() == "worker") {
        t.set_state(pb::THREAD_STATE_FAILED);
        *t.mutable_exception() = script.raised;
      }
    }
  }

  mutable absl::Mutex mu_;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  bool connecting_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status write_error_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> files_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, FakeScript> scripts_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, FakeProgram> programs_ ABSL_GUARDED_BY(mu_);
  uint32_t next_program_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint32_t next_thread_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::optional<pb::HealthSnapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  std::vector<Anomaly> anomalies_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, SnapshotFn> watches_ ABSL_GUARDED_BY(mu_);
  uint64_t next_watch_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, pb::PinState> pins_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, uint32_t> mirrors_ ABSL_GUARDED_BY(mu_);
};

// ---- Steps as the spec parser builds them

Step Push(const std::string& file) {
  Step step;
  step.kind = Step::Kind::kPush;
  step.push.file = file;
  step.push.to = "/" + file;
  return step;
}

Step RunScript(const std::string& file, bool wait = true, absl::Duration timeout = absl::Seconds(30)) {
  Step step;
  step.kind = Step::Kind::kRun;
  step.run.path = "/" + file;
  step.run.name = file.substr(0, file.find('.'));
  step.run.wait = wait;
  step.run.timeout = timeout;
  return step;
}

Step Expect(ExpectStep expect) {
  Step step;
  step.kind = Step::Kind::kExpect;
  step.expect = std::move(expect);
  return step;
}

ExpectStep OutputMatches(const std::string& pattern) {
  ExpectStep expect;
  expect.output = std::make_shared<re2::RE2>(pattern);
  expect.output_pattern = pattern;
  return expect;
}

Step Kill(const std::string& program) {
  Step step;
  step.kind = Step::Kind::kKill;
  step.kill.program = program;
  return step;
}

Step Sleep(absl::Duration d) {
  Step step;
  step.kind = Step::Kind::kSleep;
  step.sleep.duration = d;
  return step;
}

Step DrivePin(uint32_t pin, uint32_t value) {
  Step step;
  step.kind = Step::Kind::kPin;
  step.pin.pin = pin;
  step.pin.value = value;
  return step;
}

Step ReleasePin(uint32_t pin) {
  Step step;
  step.kind = Step::Kind::kPin;
  step.pin.pin = pin;
  step.pin.release = true;
  return step;
}

Step ExpectPin(uint32_t pin, uint32_t value, absl::Duration within = absl::ZeroDuration()) {
  ExpectStep expect;
  expect.pins.push_back({.pin = pin, .value = value, .within = within});
  return Expect(std::move(expect));
}

pb::ExceptionInfo Boom() {
  pb::ExceptionInfo e;
  e.set_type("ValueError");
  e.set_message("boom");
  e.set_traceback(
      "Traceback (most recent call last):\n  File \"/app.py\", line 4, in worker\nValueError: boom\n");
  return e;
}

pb::HealthSnapshot SnapshotWithHeapFree(uint32_t free_bytes) {
  pb::HealthSnapshot snapshot;
  snapshot.mutable_heap()->set_total_bytes(256 * 1024);
  snapshot.mutable_heap()->set_free_bytes(free_bytes);
  pb::ThreadInfo* t = snapshot.add_threads();
  t->set_id(99);
  t->set_name("from-snapshot");
  return snapshot;
}

class BoardRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    files_["app.py"] = {std::make_shared<const std::string>("print('hi')\n"), std::string(64, 'a')};
  }

  fv1::BoardResult Attempt(std::vector<Step> steps, absl::Time deadline = absl::InfiniteFuture()) {
    spec_.name = "smoke";
    spec_.timeout = absl::Minutes(2);
    spec_.steps = std::move(steps);
    BoardAttempt attempt{.board = "b01",
                         .spec = &spec_,
                         .files = &files_,
                         .deadline = deadline,
                         .stop = &stop_,
                         .on_progress = [this](const fv1::BoardResult& r) { progress_.push_back(r); }};
    return RunBoardAttempt(boards_, attempt);
  }

  FakeJobBoards boards_;
  JobSpec spec_;
  std::map<std::string, JobFileContent> files_;
  StopSignal stop_;
  std::vector<fv1::BoardResult> progress_;
};

// ---- push

TEST_F(BoardRunTest, PushWritesTheFileAndSaysHowManyBytes) {
  fv1::BoardResult result = Attempt({Push("app.py")});

  EXPECT_EQ(result.board(), "b01");
  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED);
  EXPECT_THAT(result.message(), IsEmpty());
  ASSERT_THAT(result.steps(), SizeIs(1));
  EXPECT_EQ(result.steps(0).kind(), "push");
  EXPECT_EQ(result.steps(0).state(), fv1::RUN_STATE_PASSED);
  EXPECT_EQ(result.steps(0).message(), "wrote 12 bytes to /app.py");
  EXPECT_THAT(boards_.calls(), ElementsAre("WriteFile /app.py"));
}

TEST_F(BoardRunTest, PushLeavesABoardThatHasTheContentUnwritten) {
  boards_.Place("/app.py", std::string(64, 'a'));

  fv1::BoardResult result = Attempt({Push("app.py")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED);
  EXPECT_THAT(result.steps(0).message(), HasSubstr("unchanged"));
  EXPECT_THAT(boards_.calls(), IsEmpty());
}

TEST_F(BoardRunTest, FailedPushEndsTheBoardErrorWithTheBoardsMessage) {
  boards_.FailWrites(absl::ResourceExhaustedError("board b01: WriteFile: flash full (0 bytes free)"));

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_ERROR);
  EXPECT_EQ(result.message(), "steps[0] push: board b01: WriteFile: flash full (0 bytes free)");
  EXPECT_EQ(result.steps(0).state(), fv1::RUN_STATE_ERROR);
  EXPECT_EQ(result.steps(1).state(), fv1::RUN_STATE_SKIPPED);
}

// ---- run

TEST_F(BoardRunTest, RunWaitsForTheProgramToEndAndKeepsItsOutput) {
  boards_.Script("/app.py", {.output = "Shared variable is  8\n"});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED);
  const fv1::StepResult& run = result.steps(1);
  EXPECT_EQ(run.kind(), "run");
  EXPECT_EQ(run.state(), fv1::RUN_STATE_PASSED);
  EXPECT_EQ(run.message(), "program app finished in 250ms");
  EXPECT_EQ(run.output(), "Shared variable is  8\n");
  EXPECT_EQ(run.output_cut_bytes(), 0u);
  EXPECT_EQ(run.program_id(), 1u);
  // It ended: nothing is left to kill.
  EXPECT_THAT(boards_.calls(), Not(Contains(HasSubstr("KillProgram"))));
}

TEST_F(BoardRunTest, RunKeepsTheLast64KiBOfALongOutput) {
  std::string output;
  for (int i = 0; output.size() < 100 * 1024; ++i) absl::StrAppend(&output, "line ", i, "\n");
  boards_.Script("/app.py", {.output = output});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py")});

  const fv1::StepResult& run = result.steps(1);
  EXPECT_EQ(run.output().size(), 64u * 1024);
  EXPECT_EQ(run.output(), output.substr(output.size() - 64 * 1024));
  EXPECT_EQ(run.output_cut_bytes(), output.size() - 64 * 1024);
}

TEST_F(BoardRunTest, OutputTheBoardDroppedCountsAsCut) {
  boards_.Script("/app.py", {.output = "the tail\n", .dropped_bytes = 5000});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py")});

  EXPECT_EQ(result.steps(1).output(), "the tail\n");
  EXPECT_EQ(result.steps(1).output_cut_bytes(), 5000u);
}

TEST_F(BoardRunTest, ThreadThatRaisesFailsTheRunWithItsTracebackAsEvidence) {
  boards_.Script("/app.py", {.output = "starting\n", .ending = Ending::kRaises, .raised = Boom()});
  boards_.SetSnapshot(SnapshotWithHeapFree(200 * 1024));

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py"), Expect(OutputMatches("never"))});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(result.message(), "steps[1] run: program app ended FAILED: ValueError: boom (thread 2 worker)");
  const fv1::StepResult& run = result.steps(1);
  EXPECT_EQ(run.state(), fv1::RUN_STATE_FAILED);
  const fv1::Evidence& evidence = run.evidence();
  EXPECT_EQ(evidence.output_excerpt(), "starting\n");
  ASSERT_THAT(evidence.failed_threads(), SizeIs(1));
  EXPECT_EQ(evidence.failed_threads(0).name(), "worker");
  EXPECT_THAT(evidence.failed_threads(0).exception().traceback(), HasSubstr("ValueError: boom"));
  EXPECT_THAT(evidence.threads(), SizeIs(2));  // the board's table, not the snapshot's
  EXPECT_EQ(evidence.heap().free_bytes(), 200u * 1024);
  EXPECT_EQ(result.steps(2).state(), fv1::RUN_STATE_SKIPPED);
}

TEST_F(BoardRunTest, ProgramThatExitsNonZeroFailsTheRun) {
  boards_.Script("/app.py", {.ending = Ending::kExits, .exit_code = 3});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(result.steps(1).message(), "program app exited with code 3");
}

TEST_F(BoardRunTest, MissingScriptEndsTheBoardError) {
  fv1::BoardResult result = Attempt({RunScript("app.py")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_ERROR);
  EXPECT_EQ(result.message(),
            "steps[0] run: could not start /app.py: board b01: StartProgram: /app.py: no such file");
}

TEST_F(BoardRunTest, ScriptThatDoesNotCompileFailsTheRun) {
  boards_.Script("/app.py", {.syntax_error = true});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_THAT(result.message(), HasSubstr("SyntaxError"));
}

TEST_F(BoardRunTest, ProgramStillRunningAtItsTimeoutFailsWithEvidenceThenIsKilled) {
  boards_.Script("/app.py", {.output = "waiting\n", .ending = Ending::kRunsUntilKilled});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py", true, absl::Milliseconds(50))});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(result.steps(1).message(), "program app still running after 50ms");
  const fv1::Evidence& evidence = result.steps(1).evidence();
  EXPECT_EQ(evidence.output_excerpt(), "waiting\n");
  // Taken before the kill: the threads were still running.
  ASSERT_THAT(evidence.threads(), SizeIs(2));
  EXPECT_EQ(evidence.threads(0).state(), pb::THREAD_STATE_RUNNING);
  EXPECT_THAT(boards_.calls(), Contains("KillProgram 1"));
  EXPECT_EQ(boards_.program_state(1), pb::PROGRAM_STATE_KILLED);
}

TEST_F(BoardRunTest, RunWithoutWaitPassesOnceStartedAndExpectReadsItsOutput) {
  boards_.Script("/app.py", {.output = "tick 1\ntick 2\n", .ending = Ending::kRunsUntilKilled});

  fv1::BoardResult result =
      Attempt({Push("app.py"), RunScript("app.py", /*wait=*/false), Expect(OutputMatches("tick \\d"))});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED);
  EXPECT_EQ(result.steps(1).message(), "started program app (program 1); left running");
  EXPECT_EQ(result.steps(2).state(), fv1::RUN_STATE_PASSED);
  EXPECT_EQ(result.steps(1).output(), "tick 1\ntick 2\n");
}

TEST_F(BoardRunTest, ProgramsLeftRunningAreKilledAfterTheLastStep) {
  boards_.Script("/app.py", {.output = "tick\n", .ending = Ending::kRunsUntilKilled});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py", /*wait=*/false)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED);
  EXPECT_THAT(boards_.calls(), Contains("KillProgram 1"));
  EXPECT_EQ(boards_.program_state(1), pb::PROGRAM_STATE_KILLED);
  // Its output up to the kill is its step's.
  EXPECT_EQ(result.steps(1).output(), "tick\n");
}

// ---- expect

TEST_F(BoardRunTest, ExpectPassesWhenEveryCheckHolds) {
  boards_.Script("/app.py", {.output = "Shared variable is  8\n", .reports = {{"temp", 21.5}}});
  boards_.SetSnapshot(SnapshotWithHeapFree(100 * 1024));
  ExpectStep expect = OutputMatches("Shared variable is\\s+8");
  expect.no_failed_threads = true;
  expect.no_anomalies = {"deadlock", "stall", "thread_unkillable"};
  expect.max_stack_percent = 80;
  expect.min_heap_free_bytes = 16 * 1024;
  expect.metrics = {{.name = "temp", .min = 0, .max = 50}};

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py"), Expect(expect)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED) << result.message();
  EXPECT_EQ(result.steps(2).kind(), "expect");
  EXPECT_EQ(result.steps(2).state(), fv1::RUN_STATE_PASSED);
  EXPECT_EQ(boards_.snapshot_watches(), 0u);
}

TEST_F(BoardRunTest, ExpectNamesEveryFailingCheckInOneMessage) {
  boards_.Script("/app.py", {.output = "Shared variable is  7\n",
                             .ending = Ending::kRaises,
                             .raised = Boom(),
                             .worker_stack_peak_bytes = 8000,
                             .reports = {{"temp", 61}}});
  boards_.SetSnapshot(SnapshotWithHeapFree(4096));
  ExpectStep expect = OutputMatches("Shared variable is\\s+8");
  expect.no_failed_threads = true;
  expect.max_stack_percent = 80;
  expect.min_heap_free_bytes = 16 * 1024;
  expect.metrics = {{.name = "temp", .min = 0, .max = 50}, {.name = "humidity", .min = 10}};
  Step run = RunScript("app.py", /*wait=*/false);

  fv1::BoardResult result = Attempt({Push("app.py"), run, Expect(expect)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  const fv1::StepResult& checked = result.steps(2);
  EXPECT_EQ(checked.state(), fv1::RUN_STATE_FAILED);
  EXPECT_THAT(
      checked.message(),
      AllOf(HasSubstr("output: no match for /Shared variable is\\s+8/"),
            HasSubstr("no_failed_threads: thread 2 (worker) of program app failed: ValueError: boom"),
            HasSubstr(
                "max_stack_percent 80: thread 2 (worker) used 97% of its stack (peak 8000 of 8192 bytes)"),
            HasSubstr("min_heap_free: heap free 4096 bytes, below 16384"),
            HasSubstr("metric temp = 61, above max 50"),
            HasSubstr("metric humidity: never reported during the run")));
  EXPECT_EQ(checked.evidence().output_excerpt(), "Shared variable is  7\n");
  EXPECT_THAT(checked.evidence().failed_threads(), SizeIs(1));
}

TEST_F(BoardRunTest, NoAnomaliesFailsOnlyOnAnomaliesRaisedSinceTheAttemptStarted) {
  boards_.AddAnomaly("deadlock", "board b01: deadlock of an earlier run", absl::Now() - absl::Minutes(1));
  boards_.AddAnomaly("deadlock", "board b01: deadlock: threads 2, 3", absl::Now() + absl::Seconds(1));
  boards_.AddAnomaly("stack_high", "board b01: thread 2 stack high", absl::Now() + absl::Seconds(1));
  ExpectStep expect;
  expect.no_anomalies = {"deadlock", "stall"};

  fv1::BoardResult result = Attempt({Expect(expect)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(result.steps(0).message(), "no_anomalies: deadlock: board b01: deadlock: threads 2, 3");
  // Evidence holds every anomaly of the window, not only the checked kinds.
  EXPECT_THAT(result.steps(0).evidence().anomalies(), SizeIs(2));
}

TEST_F(BoardRunTest, MetricKeepsTheLatestValueSeenAfterItsThreadEnded) {
  // The value shows in one snapshot while the program runs; the latest
  // snapshot, after it ended, has none.
  boards_.Script("/app.py", {.reports = {{"temp", 72}}});
  boards_.SetSnapshot(SnapshotWithHeapFree(100 * 1024));
  ExpectStep expect;
  expect.metrics = {{.name = "temp", .max = 50}};

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py"), Expect(expect)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(result.steps(2).message(), "metric temp = 72, above max 50");
}

TEST_F(BoardRunTest, MinHeapFreeWithoutASnapshotFailsSayingSo) {
  ExpectStep expect;
  expect.min_heap_free_bytes = 1024;

  fv1::BoardResult result = Attempt({Expect(expect)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(result.steps(0).message(), "min_heap_free: no health snapshot of the board yet");
}

// ---- kill

TEST_F(BoardRunTest, KillStepKillsTheProgramItsRunStepNamed) {
  boards_.Script("/app.py", {.ending = Ending::kRunsUntilKilled});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py", /*wait=*/false), Kill("app")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED);
  EXPECT_EQ(result.steps(2).message(), "killed program app (program 1)");
  EXPECT_EQ(boards_.program_state(1), pb::PROGRAM_STATE_KILLED);
  // Killed once: the kill step's, not again after the steps.
  std::vector<std::string> calls = boards_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "KillProgram 1"), 1);
}

TEST_F(BoardRunTest, KillStepFailsOnUnkillableThreads) {
  boards_.Script("/app.py", {.ending = Ending::kRunsUntilKilled, .unkillable = true});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py", /*wait=*/false), Kill("app")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_THAT(result.steps(2).message(), HasSubstr("program app: threads 1, 2 still alive after the kill"));
  EXPECT_TRUE(result.steps(2).has_evidence());
}

TEST_F(BoardRunTest, KillOfAProgramNoRunStepStartedIsAnError) {
  fv1::BoardResult result = Attempt({Kill("app")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_ERROR);
  EXPECT_THAT(result.message(), HasSubstr("no program named app was started"));
}

// ---- pin, adc, expect.pin

TEST_F(BoardRunTest, PinStepDrivesAnInputAndExpectPinSeesTheProgramsOutput) {
  boards_.Mirror(/*in=*/4, /*out=*/2);

  fv1::BoardResult result = Attempt({DrivePin(4, 1), ExpectPin(2, 1), DrivePin(4, 0), ExpectPin(2, 0)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED) << result.message();
  EXPECT_EQ(result.steps(0).kind(), "pin");
  EXPECT_EQ(result.steps(0).message(), "drove pin 4 to 1");
  EXPECT_EQ(result.steps(1).message(), "every check passed");
}

TEST_F(BoardRunTest, ExpectPinAtTheWrongLevelFailsNamingThePinAndBothLevels) {
  boards_.Mirror(/*in=*/4, /*out=*/2);

  fv1::BoardResult result =
      Attempt({DrivePin(4, 1), ExpectPin(2, 0, absl::Milliseconds(120)), ExpectPin(9, 1)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(result.message(), "steps[1] expect: pin 2: level 1, expected 0 within 120ms");
  EXPECT_TRUE(result.steps(1).has_evidence());
  EXPECT_EQ(result.steps(2).state(), fv1::RUN_STATE_SKIPPED);
}

TEST_F(BoardRunTest, ExpectPinOnAPinNobodyUsesSaysSo) {
  fv1::BoardResult result = Attempt({ExpectPin(9, 1)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(result.message(), "steps[0] expect: pin 9: not in use on the board (expected 1)");
}

TEST_F(BoardRunTest, PinsTheAttemptDroveAreReleasedAfterTheStepsButNotTwice) {
  fv1::BoardResult result = Attempt({DrivePin(4, 1), DrivePin(5, 0), ReleasePin(5)});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED) << result.message();
  EXPECT_EQ(result.steps(2).message(), "released pin 5; it reads 0");
  EXPECT_THAT(boards_.calls(),
              ElementsAre("SetPin 4 1", "SetPin 5 0", "SetPin 5 release", "SetPin 4 release"));
}

TEST_F(BoardRunTest, APinTheBoardRefusesFailsWithTheBoardsMessage) {
  boards_.Mirror(/*in=*/4, /*out=*/2);

  fv1::BoardResult output = Attempt({DrivePin(2, 1)});
  EXPECT_EQ(output.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(output.message(), "steps[0] pin: board b01: SetPin: pin 2 is an output of the program");

  fv1::BoardResult missing = Attempt({DrivePin(40, 1)});
  EXPECT_EQ(missing.state(), fv1::RUN_STATE_FAILED);
  EXPECT_THAT(missing.message(), HasSubstr("pin 40 does not exist on esp32"));
}

TEST_F(BoardRunTest, AdcStepSetsTheChannel) {
  Step adc;
  adc.kind = Step::Kind::kAdc;
  adc.adc.channel = 0;
  adc.adc.value = 30000;

  fv1::BoardResult result = Attempt({adc});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED);
  EXPECT_EQ(result.steps(0).message(), "set ADC channel 0 to 30000");
  EXPECT_THAT(boards_.calls(), ElementsAre("SetAdc 0 30000"));
}

// ---- sleep, deadline, stop, lost board

TEST_F(BoardRunTest, SleepPassesAfterItsDuration) {
  fv1::BoardResult result = Attempt({Sleep(absl::Milliseconds(1))});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED);
  EXPECT_EQ(result.steps(0).message(), "slept 1ms");
}

TEST_F(BoardRunTest, RunsDeadlineEndsTheAttemptErrorTimedOut) {
  fv1::BoardResult result =
      Attempt({Sleep(absl::Hours(1)), Push("app.py")}, absl::Now() + absl::Milliseconds(50));

  EXPECT_EQ(result.state(), fv1::RUN_STATE_ERROR);
  EXPECT_EQ(result.message(), "steps[0] sleep: timed out after 2m");
  EXPECT_EQ(result.steps(1).state(), fv1::RUN_STATE_SKIPPED);
}

TEST_F(BoardRunTest, RunsDeadlineStopsAWaitingRunAndKillsIt) {
  boards_.Script("/app.py", {.ending = Ending::kRunsUntilKilled});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py", true, absl::Hours(1))},
                                    absl::Now() + absl::Milliseconds(50));

  EXPECT_EQ(result.state(), fv1::RUN_STATE_ERROR);
  EXPECT_EQ(result.message(), "steps[1] run: timed out after 2m");
  EXPECT_EQ(boards_.program_state(1), pb::PROGRAM_STATE_KILLED);
}

TEST_F(BoardRunTest, StopCancelsTheAttemptWithTheSignalsReasonAndKillsItsPrograms) {
  boards_.Script("/app.py", {.ending = Ending::kRunsUntilKilled});
  // Stopped as soon as the run step starts (on_progress runs on the
  // attempt's thread): the follow in flight ends at once.
  BoardAttempt attempt;
  spec_.timeout = absl::Minutes(2);
  spec_.steps = {Push("app.py"), RunScript("app.py", true, absl::Hours(1)), Sleep(absl::Seconds(1))};
  attempt.board = "b01";
  attempt.spec = &spec_;
  attempt.files = &files_;
  attempt.stop = &stop_;
  attempt.on_progress = [this](const fv1::BoardResult& r) {
    if (r.steps_size() == 2 && r.steps(1).state() == fv1::RUN_STATE_RUNNING) stop_.Stop("cancelled by alice");
  };

  fv1::BoardResult result = RunBoardAttempt(boards_, attempt);

  EXPECT_EQ(result.state(), fv1::RUN_STATE_CANCELLED);
  EXPECT_EQ(result.message(), "steps[1] run: cancelled by alice");
  EXPECT_EQ(result.steps(1).state(), fv1::RUN_STATE_CANCELLED);
  EXPECT_FALSE(result.steps(1).has_evidence());
  EXPECT_EQ(result.steps(2).state(), fv1::RUN_STATE_SKIPPED);
  EXPECT_EQ(boards_.program_state(1), pb::PROGRAM_STATE_KILLED);
}

TEST_F(BoardRunTest, AttemptStoppedBeforeItStartsRunsNoStep) {
  stop_.Stop("run aborted: 3 of 4 boards failed");

  fv1::BoardResult result = Attempt({Push("app.py")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_CANCELLED);
  EXPECT_EQ(result.message(), "run aborted: 3 of 4 boards failed");
  EXPECT_EQ(result.steps(0).state(), fv1::RUN_STATE_SKIPPED);
  EXPECT_THAT(boards_.calls(), IsEmpty());
}

TEST_F(BoardRunTest, BoardFleetdIsStillConnectingToIsWaitedForBeforeTheFirstStep) {
  boards_.StartConnecting();

  fv1::BoardResult result = Attempt({Push("app.py")});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_PASSED) << result.message();
  EXPECT_THAT(boards_.calls(), ElementsAre("AwaitFirstConnection", "WriteFile /app.py"));
}

TEST_F(BoardRunTest, BoardLostMidStepEndsErrorAtOnceWithTheLinksMessage) {
  boards_.Script("/app.py", {.output = "partial\n", .ending = Ending::kLosesBoard});
  boards_.SetSnapshot(SnapshotWithHeapFree(100 * 1024));

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py", true, absl::Hours(1))});

  EXPECT_EQ(result.state(), fv1::RUN_STATE_ERROR);
  EXPECT_THAT(result.message(),
              HasSubstr("board b01: StreamOutput: connection lost: the board closed the connection"));
  // The thread table of the latest snapshot, the board being unreachable;
  // and the result says its program could not be killed.
  const fv1::Evidence& evidence = result.steps(1).evidence();
  ASSERT_THAT(evidence.threads(), SizeIs(1));
  EXPECT_EQ(evidence.threads(0).name(), "from-snapshot");
  EXPECT_EQ(evidence.output_excerpt(), "partial\n");
  EXPECT_THAT(result.message(), HasSubstr("could not kill program app"));
}

// ---- a spec as the parser builds it

TEST_F(BoardRunTest, ParsedSpecRunsItsStepsOnTheBoard) {
  absl::StatusOr<JobSpec> parsed = ParseJobSpec(R"(name: seed-smoke
boards: {selector: "lab=local", count: all}
timeout: 2m
steps:
  - push: {file: app.py}
  - run: {file: app.py, args: [fast], timeout: 30s, wait: false}
  - expect:
      output: "tick \\d"
      no_failed_threads: true
      no_anomalies: [deadlock, unkillable]
  - kill: {program: app}
)",
                                                "smoke.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  boards_.Script("/app.py", {.output = "tick 1\n", .ending = Ending::kRunsUntilKilled});
  boards_.AddAnomaly("thread_unkillable", "board b01: thread 9 is unkillable",
                     absl::Now() + absl::Seconds(1));

  fv1::BoardResult result = Attempt(parsed->steps);

  EXPECT_EQ(result.state(), fv1::RUN_STATE_FAILED);
  EXPECT_EQ(result.message(),
            "steps[2] expect: no_anomalies: thread_unkillable: board b01: thread 9 is unkillable");
  EXPECT_EQ(result.steps(0).message(), "wrote 12 bytes to /app.py");
  EXPECT_EQ(result.steps(1).message(), "started program app (program 1); left running");
  EXPECT_EQ(result.steps(3).state(), fv1::RUN_STATE_SKIPPED);
  EXPECT_EQ(boards_.program_state(1), pb::PROGRAM_STATE_KILLED);
}

// ---- progress

TEST_F(BoardRunTest, ProgressIsReportedAtEachStepsStartAndEndAndWhenAProgramStarted) {
  boards_.Script("/app.py", {});

  fv1::BoardResult result = Attempt({Push("app.py"), RunScript("app.py")});

  ASSERT_THAT(progress_, SizeIs(5));
  EXPECT_EQ(progress_[0].state(), fv1::RUN_STATE_RUNNING);
  EXPECT_EQ(progress_[0].steps(0).state(), fv1::RUN_STATE_RUNNING);
  EXPECT_EQ(progress_[1].steps(0).state(), fv1::RUN_STATE_PASSED);
  EXPECT_EQ(progress_[2].steps(1).state(), fv1::RUN_STATE_RUNNING);
  EXPECT_EQ(progress_[3].steps(1).state(), fv1::RUN_STATE_RUNNING);
  EXPECT_NE(progress_[3].steps(1).program_id(), 0u) << "watchers see the program a run step started";
  EXPECT_EQ(progress_[4].steps(1).state(), fv1::RUN_STATE_PASSED);
  EXPECT_TRUE(result.has_start_time());
  EXPECT_TRUE(result.has_end_time());
}

}  // namespace
}  // namespace threadfleet::fleetd::jobs
