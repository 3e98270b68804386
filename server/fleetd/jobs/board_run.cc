#include "server/fleetd/jobs/board_run.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "re2/re2.h"

namespace threadfleet::fleetd::jobs {
namespace {

namespace pb = threadfleet::board::v1;
namespace fv1 = threadfleet::fleet::v1;

// A run step's output kept in its result (StepResult.output): the tail.
constexpr size_t kOutputKeptBytes = 64 * 1024;
// The output tail in a failed step's evidence.
constexpr size_t kEvidenceOutputBytes = 4 * 1024;
// Anomaly events an expect reads and evidence keeps.
constexpr size_t kAnomaliesRead = 256;
// Failing checks of one kind named in a message before "and N more".
constexpr size_t kFindingsNamed = 3;
// Calls made after the steps or to gather evidence are not bound by the
// run's deadline (it may have passed: that is often why they are made), only
// by these.
constexpr absl::Duration kEvidenceCallTimeout = absl::Seconds(5);
constexpr absl::Duration kCleanupCallTimeout = absl::Seconds(10);
// How long an attempt waits for a board fleetd has not reached yet since it
// started (a run started with fleetd: a schedule's catch-up).
constexpr absl::Duration kFirstConnectionWait = absl::Seconds(10);
// How often an expect.pin asks the board again while it waits for a level.
constexpr absl::Duration kPinPollInterval = absl::Milliseconds(50);

void SetTime(google::protobuf::Timestamp* field, absl::Time time) {
  *field = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(time));
}

// "thread 3 (worker)".
std::string ThreadLabel(const pb::ThreadInfo& thread) {
  return thread.name().empty() ? absl::StrCat("thread ", thread.id())
                               : absl::StrCat("thread ", thread.id(), " (", thread.name(), ")");
}

// "ValueError: boom".
std::string ExceptionText(const pb::ExceptionInfo& exception) {
  return exception.message().empty() ? exception.type()
                                     : absl::StrCat(exception.type(), ": ", exception.message());
}

// The first kFindingsNamed findings, then how many more there were.
std::string NameSome(const std::vector<std::string>& findings) {
  if (findings.size() <= kFindingsNamed) return absl::StrJoin(findings, "; ");
  std::vector<std::string> named(findings.begin(), findings.begin() + kFindingsNamed);
  return absl::StrCat(absl::StrJoin(named, "; "), "; and ", findings.size() - kFindingsNamed, " more");
}

// The tail of one run step's output. Chunks arrive on the links' thread
// while the attempt's thread may read, hence the lock.
class OutputTail {
 public:
  void Append(uint64_t offset, absl::string_view data) {
    absl::MutexLock lock(&mu_);
    if (offset > next_offset_) {
      // The board dropped bytes before these: what we hold no longer
      // joins what follows.
      kept_.clear();
      next_offset_ = offset;
    }
    const uint64_t overlap = next_offset_ - offset;
    if (overlap >= data.size()) return;
    kept_.append(data.data() + overlap, data.size() - overlap);
    next_offset_ += data.size() - overlap;
    // Trimmed in batches, so a stream of small chunks does not move the
    // whole tail each time.
    if (kept_.size() > 2 * kOutputKeptBytes) {
      kept_.erase(0, kept_.size() - kOutputKeptBytes);
    }
  }

  // The offset after the last byte received: where a later read goes on.
  uint64_t next_offset() const {
    absl::MutexLock lock(&mu_);
    return next_offset_;
  }

  // The last `max` bytes (at most kOutputKeptBytes).
  std::string Tail(size_t max) const {
    absl::MutexLock lock(&mu_);
    const size_t n = std::min({max, kOutputKeptBytes, kept_.size()});
    return kept_.substr(kept_.size() - n);
  }

  // Bytes of the program's output before Tail(kOutputKeptBytes).
  uint64_t cut_bytes() const {
    absl::MutexLock lock(&mu_);
    return next_offset_ - std::min(kept_.size(), kOutputKeptBytes);
  }

 private:
  mutable absl::Mutex mu_;
  std::string kept_ ABSL_GUARDED_BY(mu_);
  uint64_t next_offset_ ABSL_GUARDED_BY(mu_) = 0;
};

// The latest value of each fleet.report() key the board's snapshots showed
// during the attempt (a thread's values leave the snapshots when it ends).
class SeenMetrics {
 public:
  void Record(const pb::HealthSnapshot& snapshot) {
    absl::MutexLock lock(&mu_);
    for (const pb::UserMetric& metric : snapshot.metrics()) latest_[metric.key()] = metric.value();
  }
  std::optional<double> Latest(const std::string& key) const {
    absl::MutexLock lock(&mu_);
    auto it = latest_.find(key);
    if (it == latest_.end()) return std::nullopt;
    return it->second;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, double> latest_ ABSL_GUARDED_BY(mu_);
};

// A program a run step of the attempt started.
struct StartedProgram {
  std::string name;
  uint32_t id = 0;
  int step_index = 0;
  bool wait = true;
  // Known to have ended (its output followed to the end, or killed).
  bool ended = false;
  std::unique_ptr<OutputTail> output = std::make_unique<OutputTail>();
};

// How a step ended.
struct Outcome {
  fv1::RunState state = fv1::RUN_STATE_PASSED;
  std::string message;
};

Outcome Passed(std::string message) { return {fv1::RUN_STATE_PASSED, std::move(message)}; }
Outcome Failed(std::string message) { return {fv1::RUN_STATE_FAILED, std::move(message)}; }
Outcome Error(std::string message) { return {fv1::RUN_STATE_ERROR, std::move(message)}; }

class Attempt {
 public:
  Attempt(JobBoards& boards, const BoardAttempt& attempt)
      : boards_(boards), a_(attempt), spec_(*attempt.spec), stop_(*attempt.stop) {}

  fv1::BoardResult Run() {
    start_ = absl::Now();
    result_.set_board(a_.board);
    result_.set_state(fv1::RUN_STATE_RUNNING);
    SetTime(result_.mutable_start_time(), start_);
    if (NeedsMetrics()) {
      metrics_watch_ =
          boards_.WatchSnapshots(a_.board, [this](const pb::HealthSnapshot& s) { metrics_.Record(s); });
    }

    // A board fleetd is still connecting to (it just started) gets a moment.
    if (!boards_.Reachable(a_.board)) {
      boards_.AwaitFirstConnection(a_.board, std::min(absl::Now() + kFirstConnectionWait, a_.deadline),
                                   stop_);
    }

    Outcome outcome = Passed("");
    size_t next = 0;
    for (; next < spec_.steps.size(); ++next) {
      if (std::optional<Outcome> interrupted = Interrupted()) {
        outcome = *std::move(interrupted);
        break;
      }
      outcome = PerformStep(next);
      if (outcome.state != fv1::RUN_STATE_PASSED) {
        outcome.message =
            absl::StrCat("steps[", next, "] ", StepKindName(spec_.steps[next].kind), ": ", outcome.message);
        ++next;
        break;
      }
    }
    // A board that passed has no message: each step's says what it did.
    if (outcome.state == fv1::RUN_STATE_PASSED) outcome.message.clear();
    for (; next < spec_.steps.size(); ++next) {
      fv1::StepResult* skipped = AddStep(next);
      skipped->set_state(fv1::RUN_STATE_SKIPPED);
    }
    CleanUp(outcome);
    if (metrics_watch_.has_value()) boards_.RemoveSnapshotWatch(*metrics_watch_);

    result_.set_state(outcome.state);
    result_.set_message(outcome.message);
    SetTime(result_.mutable_end_time(), absl::Now());
    return std::move(result_);
  }

 private:
  bool NeedsMetrics() const {
    return std::any_of(spec_.steps.begin(), spec_.steps.end(), [](const Step& s) {
      return s.kind == Step::Kind::kExpect && !s.expect.metrics.empty();
    });
  }

  fv1::StepResult* AddStep(size_t index) {
    fv1::StepResult* step = result_.add_steps();
    step->set_index(static_cast<int32_t>(index));
    step->set_kind(std::string(StepKindName(spec_.steps[index].kind)));
    return step;
  }

  void Progress() {
    if (a_.on_progress) a_.on_progress(result_);
  }

  Outcome PerformStep(size_t index) {
    const Step& step = spec_.steps[index];
    const int step_at = result_.steps_size();
    {
      fv1::StepResult* started = AddStep(index);
      started->set_state(fv1::RUN_STATE_RUNNING);
      SetTime(started->mutable_start_time(), absl::Now());
    }
    Progress();
    Outcome outcome;
    switch (step.kind) {
      case Step::Kind::kPush:
        outcome = Push(step.push);
        break;
      case Step::Kind::kRun:
        outcome = RunProgram(step.run, static_cast<int>(index), *result_.mutable_steps(step_at));
        break;
      case Step::Kind::kExpect:
        outcome = Expect(step.expect);
        break;
      case Step::Kind::kKill:
        outcome = Kill(step.kill);
        break;
      case Step::Kind::kSleep:
        outcome = Sleep(step.sleep);
        break;
      case Step::Kind::kPin:
        outcome = DrivePin(step.pin);
        break;
      case Step::Kind::kAdc:
        outcome = SetAdc(step.adc);
        break;
    }
    fv1::StepResult& done = *result_.mutable_steps(step_at);
    done.set_state(outcome.state);
    done.set_message(outcome.message);
    if (outcome.state == fv1::RUN_STATE_FAILED || outcome.state == fv1::RUN_STATE_ERROR) {
      CollectEvidence(*done.mutable_evidence());
    }
    SetTime(done.mutable_end_time(), absl::Now());
    Progress();
    return outcome;
  }

  // ---- Why the attempt must end whatever the step

  std::string TimedOut() const {
    return absl::StrCat("timed out after ", absl::FormatDuration(spec_.timeout));
  }

  // ERROR "timed out" past the deadline (the runner stops the signal then
  // too: the deadline is the better reason), CANCELLED when stopped.
  std::optional<Outcome> Interrupted() const {
    if (absl::Now() >= a_.deadline) return Error(TimedOut());
    if (stop_.stopped()) return Outcome{fv1::RUN_STATE_CANCELLED, stop_.reason()};
    return std::nullopt;
  }

  // A board call failed: the run's end if that is why, else the board's
  // message (a lost board says so at once).
  Outcome CallFailed(const absl::Status& status) const {
    if (std::optional<Outcome> interrupted = Interrupted()) return *std::move(interrupted);
    return Error(std::string(status.message()));
  }

  // ---- Steps

  Outcome Push(const PushStep& push) {
    auto file = a_.files->find(push.file);
    if (file == a_.files->end() || file->second.content == nullptr) {
      return Error(absl::StrCat("file ", push.file, " was not applied with the job"));
    }
    const std::string to = push.to.empty() ? absl::StrCat("/", push.file) : push.to;
    absl::StatusOr<pb::WriteFileResponse> written =
        boards_.WriteFile(a_.board, to, file->second.content, file->second.sha256_hex, a_.deadline, stop_);
    if (!written.ok()) return CallFailed(written.status());
    if (written->unchanged()) return Passed(absl::StrCat("unchanged: ", to, " already has this content"));
    return Passed(absl::StrCat("wrote ", written->size_bytes(), " bytes to ", to));
  }

  Outcome RunProgram(const RunStep& run, int index, fv1::StepResult& step) {
    pb::StartProgramRequest request;
    request.set_path(run.path);
    request.set_name(run.name);
    for (const std::string& arg : run.args) request.add_args(arg);
    absl::StatusOr<pb::StartProgramResponse> started =
        boards_.StartProgram(a_.board, request, a_.deadline, stop_);
    if (!started.ok()) {
      std::string why = absl::StrCat("could not start ", run.path, ": ", started.status().message());
      // A script that does not compile is the script's fault; a missing one
      // (or a full board) is the setup's.
      if (absl::IsInvalidArgument(started.status())) return Failed(std::move(why));
      if (std::optional<Outcome> interrupted = Interrupted()) return *std::move(interrupted);
      return Error(std::move(why));
    }
    StartedProgram& program = programs_.emplace_back();
    program.name = run.name.empty() ? run.path : run.name;
    program.id = started->program_id();
    program.step_index = index;
    program.wait = run.wait;
    step.set_program_id(program.id);
    Progress();  // watchers see which program the step runs
    if (!run.wait) {
      return Passed(
          absl::StrCat("started program ", program.name, " (program ", program.id, "); left running"));
    }

    const absl::Time bound = std::min(absl::Now() + run.timeout, a_.deadline);
    OutputTail* output = program.output.get();
    const absl::Status followed = boards_.FollowOutput(
        a_.board, program.id, 0, bound, stop_,
        [output](uint64_t offset, absl::string_view data) { output->Append(offset, data); });
    SetOutput(program, step);
    if (followed.ok()) return Ended(program);
    if (absl::IsDeadlineExceeded(followed) && !stop_.stopped()) {
      if (bound == a_.deadline) return Error(TimedOut());
      return Failed(
          absl::StrCat("program ", program.name, " still running after ", absl::FormatDuration(run.timeout)));
    }
    return CallFailed(followed);
  }

  // The program's output ended: how did the program end?
  Outcome Ended(StartedProgram& program) {
    program.ended = true;
    absl::StatusOr<pb::ListThreadsResponse> listed =
        boards_.ListThreads(a_.board, std::min(absl::Now() + kEvidenceCallTimeout, a_.deadline));
    if (!listed.ok()) return CallFailed(listed.status());
    const pb::ProgramInfo* info = nullptr;
    for (const pb::ProgramInfo& p : listed->programs()) {
      if (p.id() == program.id) info = &p;
    }
    if (info == nullptr) {
      return Error(absl::StrCat("program ", program.name, " (program ", program.id,
                                ") ended but the board no longer lists it"));
    }
    const std::string took =
        absl::FormatDuration(absl::Microseconds(info->end_time_us() - info->start_time_us()));
    // fleet.proto: a program with a thread that died of an exception ended
    // FAILED. The board says so only of its main thread, so the threads
    // decide too.
    const pb::ThreadInfo* failed = nullptr;
    for (const pb::ThreadInfo& t : listed->threads()) {
      if (t.program_id() == program.id && t.state() == pb::THREAD_STATE_FAILED && failed == nullptr)
        failed = &t;
    }
    if (failed != nullptr || info->state() == pb::PROGRAM_STATE_FAILED) {
      std::string message = absl::StrCat("program ", program.name, " ended FAILED");
      if (failed != nullptr) {
        absl::StrAppend(&message, ": ", ExceptionText(failed->exception()), " (thread ", failed->id(),
                        failed->name().empty() ? "" : " ", failed->name(), ")");
      }
      return Failed(std::move(message));
    }
    switch (info->state()) {
      case pb::PROGRAM_STATE_FINISHED:
        if (info->exit_code() != 0) {
          return Failed(absl::StrCat("program ", program.name, " exited with code ", info->exit_code()));
        }
        return Passed(absl::StrCat("program ", program.name, " finished in ", took));
      case pb::PROGRAM_STATE_KILLED:
        return Failed(absl::StrCat("program ", program.name, " ended KILLED: killed before it finished"));
      default:
        return Error(
            absl::StrCat("program ", program.name, " ended in state ", pb::ProgramState_Name(info->state())));
    }
  }

  Outcome Expect(const ExpectStep& expect) {
    std::vector<std::string> failures;
    if (expect.output != nullptr) {
      StartedProgram* program = LatestProgram();
      if (program == nullptr) {
        failures.push_back("output: no run step before this expect");
      } else {
        if (!program->ended) {
          const absl::Status read =
              CatchUpOutput(*program, std::min(absl::Now() + kEvidenceCallTimeout, a_.deadline), stop_);
          if (!read.ok()) return CallFailed(read);
        }
        const std::string text = program->output->Tail(kOutputKeptBytes);
        if (!RE2::PartialMatch(text, *expect.output)) {
          failures.push_back(absl::StrCat("output: no match for /", expect.output_pattern, "/ in the ",
                                          text.size(), " bytes of program ", program->name, "'s output"));
        }
      }
    }
    if (expect.no_failed_threads || expect.max_stack_percent.has_value()) {
      absl::StatusOr<pb::ListThreadsResponse> listed =
          boards_.ListThreads(a_.board, std::min(absl::Now() + kEvidenceCallTimeout, a_.deadline));
      if (!listed.ok()) return CallFailed(listed.status());
      if (expect.no_failed_threads) CheckNoFailedThreads(*listed, failures);
      if (expect.max_stack_percent.has_value()) CheckStacks(*listed, *expect.max_stack_percent, failures);
    }
    if (!expect.no_anomalies.empty()) CheckAnomalies(expect.no_anomalies, failures);
    if (expect.min_heap_free_bytes.has_value()) CheckHeap(*expect.min_heap_free_bytes, failures);
    for (const MetricBound& bound : expect.metrics) CheckMetric(bound, failures);
    for (const PinExpectation& pin : expect.pins) {
      if (std::optional<Outcome> failed = CheckPin(pin, failures)) return *std::move(failed);
    }
    if (!failures.empty()) return Failed(absl::StrJoin(failures, "; "));
    return Passed("every check passed");
  }

  void CheckNoFailedThreads(const pb::ListThreadsResponse& listed, std::vector<std::string>& failures) const {
    std::vector<std::string> failed;
    for (const pb::ThreadInfo& t : listed.threads()) {
      if (t.state() != pb::THREAD_STATE_FAILED || !IsOurs(t)) continue;
      failed.push_back(absl::StrCat(ThreadLabel(t), " of program ", ProgramName(t.program_id()),
                                    " failed: ", ExceptionText(t.exception())));
    }
    if (!failed.empty()) failures.push_back(absl::StrCat("no_failed_threads: ", NameSome(failed)));
  }

  void CheckStacks(const pb::ListThreadsResponse& listed, int max_percent,
                   std::vector<std::string>& failures) const {
    std::vector<std::string> high;
    for (const pb::ThreadInfo& t : listed.threads()) {
      if (!IsOurs(t) || t.stack_size_bytes() == 0) continue;
      const uint64_t percent = uint64_t{t.stack_peak_bytes()} * 100 / t.stack_size_bytes();
      if (percent <= static_cast<uint64_t>(max_percent)) continue;
      high.push_back(absl::StrCat(ThreadLabel(t), " used ", percent, "% of its stack (peak ",
                                  t.stack_peak_bytes(), " of ", t.stack_size_bytes(), " bytes)"));
    }
    if (!high.empty()) {
      failures.push_back(absl::StrCat("max_stack_percent ", max_percent, ": ", NameSome(high)));
    }
  }

  void CheckAnomalies(const std::vector<std::string>& kinds, std::vector<std::string>& failures) const {
    const std::set<std::string> wanted(kinds.begin(), kinds.end());
    std::vector<std::string> seen;
    for (const JobBoards::Anomaly& a : boards_.AnomaliesSince(a_.board, start_, kAnomaliesRead)) {
      if (wanted.contains(a.kind)) seen.push_back(absl::StrCat(a.kind, ": ", a.event.message()));
    }
    if (!seen.empty()) failures.push_back(absl::StrCat("no_anomalies: ", NameSome(seen)));
  }

  void CheckHeap(int64_t min_free, std::vector<std::string>& failures) const {
    std::optional<pb::HealthSnapshot> latest = boards_.LatestSnapshot(a_.board);
    if (!latest.has_value()) {
      failures.push_back("min_heap_free: no health snapshot of the board yet");
      return;
    }
    const int64_t free_bytes = latest->heap().free_bytes();
    if (free_bytes < min_free) {
      failures.push_back(absl::StrCat("min_heap_free: heap free ", free_bytes, " bytes, below ", min_free));
    }
  }

  void CheckMetric(const MetricBound& bound, std::vector<std::string>& failures) const {
    std::optional<double> value = metrics_.Latest(bound.name);
    if (!value.has_value()) {
      failures.push_back(absl::StrCat("metric ", bound.name, ": never reported during the run"));
    } else if (bound.min.has_value() && *value < *bound.min) {
      failures.push_back(absl::StrCat("metric ", bound.name, " = ", *value, ", below min ", *bound.min));
    } else if (bound.max.has_value() && *value > *bound.max) {
      failures.push_back(absl::StrCat("metric ", bound.name, " = ", *value, ", above max ", *bound.max));
    }
  }

  // Waits up to pin.within for the pin's level, asking the board; a level
  // that does not come is a failure, a board call that fails is the
  // returned outcome (the board, not the program, is at fault).
  std::optional<Outcome> CheckPin(const PinExpectation& pin, std::vector<std::string>& failures) {
    const absl::Time until = std::min(absl::Now() + pin.within, a_.deadline);
    while (true) {
      absl::StatusOr<pb::MachineState> machine =
          boards_.GetMachine(a_.board, std::min(absl::Now() + kEvidenceCallTimeout, a_.deadline), stop_);
      if (!machine.ok()) return CallFailed(machine.status());
      const pb::PinState* seen = nullptr;
      for (const pb::PinState& p : machine->pins()) {
        if (p.pin() == pin.pin) seen = &p;
      }
      if (seen != nullptr && seen->value() == pin.value) return std::nullopt;
      if (absl::Now() >= until || stop_.SleepFor(std::min(kPinPollInterval, until - absl::Now()))) {
        if (std::optional<Outcome> interrupted = Interrupted()) return interrupted;
        const std::string waited = pin.within == absl::ZeroDuration()
                                       ? ""
                                       : absl::StrCat(" within ", absl::FormatDuration(pin.within));
        failures.push_back(
            seen == nullptr
                ? absl::StrCat("pin ", pin.pin, ": not in use on the board (expected ", pin.value, waited,
                               ")")
                : absl::StrCat("pin ", pin.pin, ": level ", seen->value(), ", expected ", pin.value, waited));
        return std::nullopt;
      }
    }
  }

  Outcome DrivePin(const PinStep& pin) {
    pb::SetPinRequest request;
    request.set_pin(pin.pin);
    request.set_value(pin.value);
    request.set_release(pin.release);
    absl::StatusOr<pb::PinState> set = boards_.SetPin(a_.board, request, a_.deadline, stop_);
    if (!set.ok()) {
      // The board refuses a pin its profile lacks or an output pin: the
      // job's (or the program's) fault, not the board's.
      if (absl::IsInvalidArgument(set.status()) || absl::IsFailedPrecondition(set.status())) {
        return Failed(std::string(set.status().message()));
      }
      return CallFailed(set.status());
    }
    if (pin.release) {
      driven_pins_.erase(pin.pin);
      return Passed(absl::StrCat("released pin ", pin.pin, "; it reads ", set->value()));
    }
    driven_pins_.insert(pin.pin);
    return Passed(absl::StrCat("drove pin ", pin.pin, " to ", pin.value));
  }

  Outcome SetAdc(const AdcStep& adc) {
    pb::SetAdcRequest request;
    request.set_channel(adc.channel);
    request.set_value_u16(adc.value);
    absl::StatusOr<pb::AdcState> set = boards_.SetAdc(a_.board, request, a_.deadline, stop_);
    if (!set.ok()) {
      if (absl::IsInvalidArgument(set.status())) return Failed(std::string(set.status().message()));
      return CallFailed(set.status());
    }
    return Passed(absl::StrCat("set ADC channel ", adc.channel, " to ", adc.value));
  }

  Outcome Kill(const KillStep& kill) {
    StartedProgram* program = nullptr;
    for (StartedProgram& p : programs_) {
      if (p.name == kill.program) program = &p;
    }
    if (program == nullptr) {
      return Error(absl::StrCat("no program named ", kill.program, " was started by this job's run steps"));
    }
    absl::StatusOr<pb::KillProgramResponse> killed =
        boards_.KillProgram(a_.board, program->id, kill.grace, a_.deadline);
    if (!killed.ok()) return CallFailed(killed.status());
    program->ended = killed->unkillable_thread_ids().empty();
    if (!program->ended) {
      return Failed(absl::StrCat("program ", program->name, ": ", UnkillableText(*killed)));
    }
    if (killed->program().state() == pb::PROGRAM_STATE_KILLED) {
      return Passed(absl::StrCat("killed program ", program->name, " (program ", program->id, ")"));
    }
    return Passed(absl::StrCat("program ", program->name, " had already ended ",
                               pb::ProgramState_Name(killed->program().state())));
  }

  Outcome Sleep(const SleepStep& sleep) {
    const absl::Duration left = a_.deadline - absl::Now();
    if (stop_.SleepFor(std::min(sleep.duration, left)) || left < sleep.duration) {
      if (std::optional<Outcome> interrupted = Interrupted()) return *std::move(interrupted);
      return Error(TimedOut());
    }
    return Passed(absl::StrCat("slept ", absl::FormatDuration(sleep.duration)));
  }

  // ---- Programs

  static std::string UnkillableText(const pb::KillProgramResponse& killed) {
    return absl::StrCat(killed.unkillable_thread_ids_size() == 1 ? "thread " : "threads ",
                        absl::StrJoin(killed.unkillable_thread_ids(), ", "),
                        " still alive after the kill (unkillable)");
  }

  // The program of the attempt's latest run step; null before any.
  StartedProgram* LatestProgram() { return programs_.empty() ? nullptr : &programs_.back(); }

  bool IsOurs(const pb::ThreadInfo& thread) const {
    return thread.program_id() != 0 &&
           std::any_of(programs_.begin(), programs_.end(),
                       [&](const StartedProgram& p) { return p.id == thread.program_id(); });
  }

  std::string ProgramName(uint32_t id) const {
    for (const StartedProgram& p : programs_) {
      if (p.id == id) return p.name;
    }
    return absl::StrCat(id);
  }

  // Reads what a program left running wrote since the last read.
  absl::Status CatchUpOutput(StartedProgram& program, absl::Time deadline, const StopSignal& stop) {
    OutputTail* output = program.output.get();
    return boards_.ReadOutput(
        a_.board, program.id, output->next_offset(), deadline, stop,
        [output](uint64_t offset, absl::string_view data) { output->Append(offset, data); });
  }

  static void SetOutput(const StartedProgram& program, fv1::StepResult& step) {
    step.set_output(program.output->Tail(kOutputKeptBytes));
    step.set_output_cut_bytes(program.output->cut_bytes());
  }

  // Kills what the attempt left running and releases the pins it drove
  // (whatever stopped it: a stopped run's signal does not cut these calls
  // short), reads the rest of the output of programs left running, and says
  // in the outcome what could not be cleaned up.
  void CleanUp(Outcome& outcome) {
    const StopSignal never_stopped;
    std::vector<std::string> problems;
    bool unreachable = false;
    for (StartedProgram& program : programs_) {
      if (program.ended) continue;
      absl::StatusOr<pb::KillProgramResponse> killed =
          boards_.KillProgram(a_.board, program.id, absl::ZeroDuration(), absl::Now() + kCleanupCallTimeout);
      if (!killed.ok()) {
        unreachable = true;
        problems.push_back(
            absl::StrCat("could not kill program ", program.name, ": ", killed.status().message()));
        continue;
      }
      if (!killed->unkillable_thread_ids().empty()) {
        problems.push_back(absl::StrCat("program ", program.name, ": ", UnkillableText(*killed)));
      }
      if (!program.wait) {
        // What it wrote until the kill belongs in its step's output; a
        // failed read only leaves that output shorter.
        (void)CatchUpOutput(program, absl::Now() + kEvidenceCallTimeout, never_stopped);
      }
    }
    // A wire the run left on an input would hold it for whoever comes next.
    for (uint32_t pin : driven_pins_) {
      pb::SetPinRequest release;
      release.set_pin(pin);
      release.set_release(true);
      absl::StatusOr<pb::PinState> released =
          boards_.SetPin(a_.board, release, absl::Now() + kCleanupCallTimeout, never_stopped);
      if (!released.ok()) {
        unreachable = unreachable || absl::IsUnavailable(released.status());
        problems.push_back(absl::StrCat("could not release pin ", pin, ": ", released.status().message()));
      }
    }
    for (const StartedProgram& program : programs_) {
      for (fv1::StepResult& step : *result_.mutable_steps()) {
        if (step.index() == program.step_index) SetOutput(program, step);
      }
    }
    if (problems.empty()) return;
    const std::string text = absl::StrCat("after the steps: ", absl::StrJoin(problems, "; "));
    if (outcome.state == fv1::RUN_STATE_PASSED) {
      outcome = unreachable ? Error(text) : Failed(text);
    } else {
      absl::StrAppend(&outcome.message, "; ", text);
    }
  }

  // ---- Evidence

  void CollectEvidence(fv1::Evidence& evidence) {
    if (const StartedProgram* program = LatestProgram()) {
      evidence.set_output_excerpt(program->output->Tail(kEvidenceOutputBytes));
    }
    const std::optional<pb::HealthSnapshot> latest = boards_.LatestSnapshot(a_.board);
    std::optional<absl::StatusOr<pb::ListThreadsResponse>> listed;
    if (boards_.Reachable(a_.board))
      listed = boards_.ListThreads(a_.board, absl::Now() + kEvidenceCallTimeout);
    if (listed.has_value() && listed->ok()) {
      *evidence.mutable_threads() = (*listed)->threads();
    } else if (latest.has_value()) {
      *evidence.mutable_threads() = latest->threads();
    }
    for (const pb::ThreadInfo& t : evidence.threads()) {
      if (t.state() == pb::THREAD_STATE_FAILED && IsOurs(t)) *evidence.add_failed_threads() = t;
    }
    for (JobBoards::Anomaly& a : boards_.AnomaliesSince(a_.board, start_, kAnomaliesRead)) {
      *evidence.add_anomalies() = std::move(a.event);
    }
    if (latest.has_value()) *evidence.mutable_heap() = latest->heap();
  }

  JobBoards& boards_;
  const BoardAttempt& a_;
  const JobSpec& spec_;
  const StopSignal& stop_;
  absl::Time start_;
  fv1::BoardResult result_;
  std::vector<StartedProgram> programs_;
  SeenMetrics metrics_;
  std::optional<uint64_t> metrics_watch_;
  // Pins a pin step drives and no later step released: released at the end.
  std::set<uint32_t> driven_pins_;
};

}  // namespace

fv1::BoardResult RunBoardAttempt(JobBoards& boards, const BoardAttempt& attempt) {
  return Attempt(boards, attempt).Run();
}

}  // namespace threadfleet::fleetd::jobs
