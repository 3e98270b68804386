#include "server/fleetd/jobs/job_runner.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/time_util.h"

namespace threadfleet::fleetd::jobs {
namespace fleet = ::threadfleet::fleet::v1;

namespace {

// How often a waiting run re-reads the clock: a test's clock moves without
// waking anyone, and a real one's deadline is met exactly (the wait is the
// smaller of this and the time left).
constexpr absl::Duration kClockPoll = absl::Milliseconds(100);
// How often the scheduler thread ticks.
constexpr absl::Duration kSchedulerPeriod = absl::Seconds(1);
// Fire times walked at most to find the latest missed one (a 1-minute
// schedule over two weeks down); beyond it the scheduler resumes from now.
constexpr int kMaxMissedFires = 20'000;
constexpr int kDefaultRunsPage = 20;
constexpr int kMaxRunsPage = 1000;
constexpr char kInterruptedByDeath[] = "interrupted: fleetd stopped during the run";
constexpr char kInterruptedByShutdown[] = "interrupted: fleetd is shutting down";

google::protobuf::Timestamp ToProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

bool Ended(fleet::RunState state) {
  return state == fleet::RUN_STATE_PASSED || state == fleet::RUN_STATE_FAILED ||
         state == fleet::RUN_STATE_ERROR || state == fleet::RUN_STATE_CANCELLED ||
         state == fleet::RUN_STATE_SKIPPED;
}

std::string StateName(fleet::RunState state) {
  std::string name(absl::StripPrefix(fleet::RunState_Name(state), "RUN_STATE_"));
  return name;
}

// "2m", "90s", "1h30m": how a spec writes a duration.
std::string ShortDuration(absl::Duration d) {
  std::string text = absl::FormatDuration(d);
  if (absl::EndsWith(text, "m0s")) text.resize(text.size() - 2);
  if (absl::EndsWith(text, "h0m")) text.resize(text.size() - 2);
  return text;
}

fleet::RunCounts CountResults(const std::map<std::string, fleet::BoardResult>& results) {
  fleet::RunCounts counts;
  counts.set_boards(static_cast<int32_t>(results.size()));
  for (const auto& [board, result] : results) {
    switch (result.state()) {
      case fleet::RUN_STATE_PASSED:
        counts.set_passed(counts.passed() + 1);
        break;
      case fleet::RUN_STATE_FAILED:
        counts.set_failed(counts.failed() + 1);
        break;
      case fleet::RUN_STATE_ERROR:
        counts.set_error(counts.error() + 1);
        break;
      case fleet::RUN_STATE_SKIPPED:
        counts.set_skipped(counts.skipped() + 1);
        break;
      case fleet::RUN_STATE_CANCELLED:
        counts.set_cancelled(counts.cancelled() + 1);
        break;
      default:
        break;
    }
    if (result.flaky()) counts.set_flaky(counts.flaky() + 1);
  }
  return counts;
}

// Why a run was stopped from outside its boards.
enum class StopCause { kNone, kCancel, kTimeout, kShutdown };

}  // namespace

namespace internal {

// A run this fleetd is carrying out, from StartRun until its end is stored.
struct ActiveRun {
  int64_t id = 0;
  std::string job_name;
  std::shared_ptr<const JobSpec> spec;
  std::map<std::string, JobFileContent> files;
  // The boards it may take (picked by the spec, in service), by name, and
  // how many it needs of them.
  std::vector<std::string> candidates;
  size_t needed = 0;
  // In the Clock's time.
  absl::Time deadline;
  StopSignal stop;
  std::thread coordinator;
  // Set as the coordinator's last act: joining it then does not wait.
  std::atomic<bool> coordinator_done{false};
  // Orders the run's store writes and watcher calls, so a later state is
  // never overwritten by an earlier one.
  absl::Mutex publish_mu;

  // Guarded by JobRunnerState::mu.
  fleet::Run run;  // everything but results
  std::map<std::string, fleet::BoardResult> results;
  // Boards whose result changed since the last Publish: written to the
  // store (one transaction) and shown to watchers together, at most
  // kClockPoll later, so 200 boards' steps do not queue one by one behind
  // a store write each.
  std::set<std::string> dirty;
  std::vector<std::string> boards;  // reserved, by name
  size_t next_board = 0;
  int workers_left = 0;
  StopCause cause = StopCause::kNone;
  std::string abort_message;
  std::vector<std::function<void(absl::StatusOr<fleet::Run>)>> cancel_waiters;
};

class JobRunnerState {
 public:
  JobRunnerState(JobRunnerDeps deps, JobRunnerOptions options)
      : deps_(std::move(deps)), options_(std::move(options)) {
    if (!deps_.attempt) deps_.attempt = RunBoardAttempt;
  }

  absl::Status Start();
  void Shutdown();
  absl::StatusOr<JobRunner::Applied> ApplyJob(const fleet::ApplyJobRequest& request);
  absl::Status DeleteJob(absl::string_view name);
  absl::StatusOr<std::vector<fleet::Job>> ListJobs();
  absl::StatusOr<fleet::Run> StartRun(absl::string_view job_name, absl::string_view trigger);
  absl::StatusOr<fleet::Run> GetRun(uint64_t id, bool with_output, absl::string_view board);
  absl::StatusOr<fleet::ListRunsResponse> ListRuns(const fleet::ListRunsRequest& request);
  void CancelRun(uint64_t id, absl::string_view actor, std::function<void(absl::StatusOr<fleet::Run>)> done);
  absl::StatusOr<uint64_t> WatchRun(uint64_t id, JobRunner::RunFn fn);
  void Unwatch(uint64_t watch_id);
  std::optional<fleet::Quarantine> QuarantineOf(absl::string_view board) const;
  uint64_t ReservedBy(absl::string_view board) const;
  absl::Status ReleaseBoard(absl::string_view board, absl::string_view actor);
  void SchedulerTick(absl::Time now);

 private:
  struct Watch {
    int64_t run_id = 0;
    JobRunner::RunFn fn;
  };

  // The job's parsed spec, cached per version (fleetd parses each version
  // once per process).
  absl::StatusOr<std::shared_ptr<const JobSpec>> SpecOf(const JobRecord& job);
  fleet::Job JobProto(const JobRecord& job, const JobSpec* spec);
  fleet::Run RunProto(const RunRecord& record, std::vector<fleet::BoardResult> results);
  fleet::Run SnapshotLocked(const ActiveRun& run, bool with_results) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<std::string>> Candidates(const JobSpec& spec, std::string* why_few);
  // Takes `run->needed` free candidates (reachable ones first) when there
  // are enough; else names the busy ones in `busy`.
  bool TryReserveLocked(ActiveRun& run, std::string* busy) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopRun(ActiveRun& run, StopCause cause, std::string reason);

  void RunMain(std::shared_ptr<ActiveRun> run);
  void RunSteps(const std::shared_ptr<ActiveRun>& run);
  // Joins the coordinators of ended runs (all of them with `all`, else those
  // already returned).
  void ReapCoordinators(bool all);
  bool WaitForBoards(ActiveRun& run);
  void WorkerMain(std::shared_ptr<ActiveRun> run);
  void RunBoard(ActiveRun& run, const std::string& board);
  void CheckAbortRuleLocked(ActiveRun& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(const std::shared_ptr<ActiveRun>& run);
  void CountForQuarantine(int64_t run_id, const fleet::BoardResult& result);

  // Writes the results of the boards marked dirty and, when asked or when one
  // of them ended, the run's state and counts to the store; then shows the
  // run to its watchers. Does nothing when nothing changed.
  void Publish(ActiveRun& run, bool run_changed, bool ended);
  void RecordEvent(fleet::Event event);
  // The RUN_ENDED event, the log line and the notifier, for an ended run.
  void ReportEnd(const fleet::Run& run, const JobSpec& spec);
  void Fire(const JobRecord& job, const JobSpec& spec, absl::Time fire_time, absl::string_view trigger);
  void SchedulerMain();

  JobRunnerDeps deps_;
  const JobRunnerOptions options_;

  // Serializes ApplyJob, DeleteJob and StartRun's checks, so a run starts on
  // the version it checked and a job is not deleted under a starting run.
  absl::Mutex jobs_mu_;
  // Serializes SchedulerTick (the scheduler thread and tests may both call).
  absl::Mutex tick_mu_;

  mutable absl::Mutex mu_;
  std::map<int64_t, std::shared_ptr<ActiveRun>> active_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t, std::less<>> reserved_ ABSL_GUARDED_BY(mu_);
  // Bumped whenever boards are freed or a run is stopped: waiters re-check.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Ended runs whose coordinator thread is still to be joined.
  std::vector<std::shared_ptr<ActiveRun>> finished_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<int64_t, std::shared_ptr<const JobSpec>>> specs_ ABSL_GUARDED_BY(mu_);

  absl::Mutex watch_mu_;
  uint64_t next_watch_ ABSL_GUARDED_BY(watch_mu_) = 1;
  std::map<uint64_t, Watch> watches_ ABSL_GUARDED_BY(watch_mu_);

  StopSignal scheduler_stop_;
  std::thread scheduler_;
};

// ---------------------------------------------------------------------------
// Specs and protos

absl::StatusOr<std::shared_ptr<const JobSpec>> JobRunnerState::SpecOf(const JobRecord& job) {
  {
    absl::MutexLock lock(&mu_);
    auto it = specs_.find(job.name);
    if (it != specs_.end() && it->second.first == job.version) return it->second.second;
  }
  absl::StatusOr<JobSpec> spec = ParseJobSpec(job.spec_yaml, job.name, options_.spec_limits);
  if (!spec.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.name, " version ", job.version,
                     "'s spec no longer validates: ", spec.status().message()));
  }
  auto shared = std::make_shared<const JobSpec>(*std::move(spec));
  absl::MutexLock lock(&mu_);
  specs_[job.name] = {job.version, shared};
  return shared;
}

fleet::Job JobRunnerState::JobProto(const JobRecord& job, const JobSpec* spec) {
  fleet::Job out;
  out.set_name(job.name);
  out.set_spec_yaml(job.spec_yaml);
  out.set_version(job.version);
  *out.mutable_create_time() = ToProto(job.create_time);
  *out.mutable_update_time() = ToProto(job.update_time);
  for (const JobFileRecord& file : job.files) {
    fleet::JobFile* f = out.add_files();
    f->set_path(file.path);
    f->set_sha256_hex(file.sha256_hex);
    f->set_size_bytes(static_cast<uint64_t>(file.size_bytes));
  }
  if (spec != nullptr && spec->schedule.has_value()) {
    out.set_schedule(spec->schedule_text);
    out.set_time_zone(spec->time_zone);
    absl::Time base = std::max(job.last_fire_time.value_or(job.update_time), job.update_time);
    absl::Time next = spec->schedule->NextAfter(std::max(base, deps_.clock->Now()));
    if (next != absl::InfiniteFuture()) *out.mutable_next_fire_time() = ToProto(next);
  }
  return out;
}

fleet::Run JobRunnerState::RunProto(const RunRecord& record, std::vector<fleet::BoardResult> results) {
  fleet::Run run;
  run.set_id(static_cast<uint64_t>(record.id));
  run.set_job_name(record.job_name);
  run.set_job_version(record.job_version);
  run.set_state(record.state);
  run.set_trigger(record.trigger);
  *run.mutable_start_time() = ToProto(record.start_time);
  if (record.end_time.has_value()) *run.mutable_end_time() = ToProto(*record.end_time);
  if (record.deadline.has_value()) *run.mutable_deadline() = ToProto(*record.deadline);
  run.set_message(record.message);
  *run.mutable_counts() = record.counts;
  for (fleet::BoardResult& result : results) *run.add_results() = std::move(result);
  return run;
}

fleet::Run JobRunnerState::SnapshotLocked(const ActiveRun& run, bool with_results) const {
  fleet::Run out = run.run;
  *out.mutable_counts() = CountResults(run.results);
  if (run.results.empty()) out.mutable_counts()->set_boards(static_cast<int32_t>(run.needed));
  if (!with_results) return out;
  for (const auto& [board, result] : run.results) {
    fleet::BoardResult* r = out.add_results();
    *r = result;
    for (fleet::StepResult& step : *r->mutable_steps()) step.clear_output();
  }
  return out;
}

// ---------------------------------------------------------------------------
// Jobs

absl::StatusOr<JobRunner::Applied> JobRunnerState::ApplyJob(const fleet::ApplyJobRequest& request) {
  const std::string spec_file = request.spec_file().empty() ? "spec" : request.spec_file();
  absl::StatusOr<JobSpec> spec = ParseJobSpec(request.spec_yaml(), spec_file, options_.spec_limits);
  if (!spec.ok()) return spec.status();

  // Every file the spec names, uploaded; no other.
  std::map<std::string, const fleet::JobFile*> uploaded;
  size_t total_bytes = 0;
  for (const fleet::JobFile& file : request.files()) {
    if (!uploaded.emplace(file.path(), &file).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec_file, ": file ", file.path(), " is uploaded twice"));
    }
    total_bytes += file.content().size();
  }
  std::set<std::string> named;
  for (const JobSpec::File& file : spec->files) {
    named.insert(file.path);
    if (!uploaded.contains(file.path)) {
      return absl::InvalidArgumentError(SpecMessage(
          spec_file, file.location, absl::StrCat("file ", file.path, " was not uploaded with the spec")));
    }
  }
  for (const auto& [path, file] : uploaded) {
    if (!named.contains(path)) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec_file, ": file ", path, " is uploaded but no push step names it"));
    }
  }
  if (total_bytes > options_.spec_limits.max_files_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec_file, ": the files hold ", total_bytes, " bytes together, over the limit of ",
                     options_.spec_limits.max_files_bytes, " (max_files_bytes)"));
  }

  // The boards: at least one, and at least `count`, of the inventory.
  fleet::Selector selector;
  selector.set_labels(spec->selector);
  for (const std::string& name : spec->board_names) selector.add_boards(name);
  absl::StatusOr<std::vector<BoardRecord>> picked = deps_.inventory->Select(selector);
  if (!picked.ok()) {
    if (!absl::IsNotFound(picked.status()) && !absl::IsInvalidArgument(picked.status()))
      return picked.status();
    return absl::InvalidArgumentError(
        SpecMessage(spec_file, spec->boards_location, absl::StrCat("boards: ", picked.status().message())));
  }
  if (picked->empty()) {
    return absl::InvalidArgumentError(SpecMessage(
        spec_file, spec->boards_location,
        absl::StrCat("boards: selector \"", spec->selector, "\" picks no board of the inventory")));
  }
  if (spec->count > 0 && picked->size() < static_cast<size_t>(spec->count)) {
    return absl::InvalidArgumentError(
        SpecMessage(spec_file, spec->boards_location,
                    absl::StrCat("boards: count is ", spec->count, " but the selector picks only ",
                                 picked->size(), " boards of the inventory")));
  }

  std::vector<JobFileRecord> files;
  for (const auto& [path, file] : uploaded) {
    absl::StatusOr<std::string> sha = deps_.store->PutScript(file->content());
    if (!sha.ok()) return sha.status();
    files.push_back(JobFileRecord{
        .path = path, .sha256_hex = *sha, .size_bytes = static_cast<int64_t>(file->content().size())});
  }
  absl::MutexLock jobs_lock(&jobs_mu_);
  absl::StatusOr<JobRecord> before = deps_.store->GetJob(spec->name);
  if (!before.ok() && !absl::IsNotFound(before.status())) return before.status();
  absl::StatusOr<JobRecord> job =
      deps_.store->PutJob(spec->name, request.spec_yaml(), files, deps_.clock->Now());
  if (!job.ok()) return job.status();
  const bool changed = !before.ok() || before->version != job->version;
  auto shared = std::make_shared<const JobSpec>(*std::move(spec));
  {
    absl::MutexLock lock(&mu_);
    specs_[job->name] = {job->version, shared};
  }
  std::fprintf(stderr, "fleetd: job applied name=%s version=%lld changed=%d\n", job->name.c_str(),
               static_cast<long long>(job->version), changed ? 1 : 0);
  return JobRunner::Applied{.job = JobProto(*job, shared.get()), .changed = changed};
}

absl::Status JobRunnerState::DeleteJob(absl::string_view name) {
  absl::MutexLock jobs_lock(&jobs_mu_);
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, run] : active_) {
      if (run->job_name == name) {
        return absl::FailedPreconditionError(absl::StrCat(
            "job ", name, " has run ", id, " ", absl::AsciiStrToLower(StateName(run->run.state())),
            "; cancel it first (fleetctl job cancel ", id, ")"));
      }
    }
  }
  if (absl::Status s = deps_.store->DeleteJob(name, deps_.clock->Now()); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  specs_.erase(std::string(name));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<fleet::Job>> JobRunnerState::ListJobs() {
  absl::StatusOr<std::vector<JobRecord>> jobs = deps_.store->ListJobs();
  if (!jobs.ok()) return jobs.status();
  std::vector<fleet::Job> out;
  for (const JobRecord& job : *jobs) {
    absl::StatusOr<std::shared_ptr<const JobSpec>> spec = SpecOf(job);
    fleet::Job& proto = out.emplace_back(JobProto(job, spec.ok() ? spec->get() : nullptr));
    absl::StatusOr<std::vector<RunRecord>> last =
        deps_.store->ListRuns(RunQuery{.job_name = job.name, .limit = 1});
    if (!last.ok()) return last.status();
    if (!last->empty()) *proto.mutable_last_run() = RunProto(last->front(), {});
  }
  return out;
}

// ---------------------------------------------------------------------------
// Runs: start, reservation

absl::StatusOr<std::vector<std::string>> JobRunnerState::Candidates(const JobSpec& spec,
                                                                    std::string* why_few) {
  fleet::Selector selector;
  selector.set_labels(spec.selector);
  for (const std::string& name : spec.board_names) selector.add_boards(name);
  absl::StatusOr<std::vector<BoardRecord>> picked = deps_.inventory->Select(selector);
  if (!picked.ok()) return picked.status();
  absl::StatusOr<std::vector<BoardJobHealth>> quarantined = deps_.store->ListQuarantinedBoards();
  if (!quarantined.ok()) return quarantined.status();
  std::set<std::string> out_of_service;
  for (const BoardJobHealth& health : *quarantined) out_of_service.insert(health.board);
  std::vector<std::string> candidates;
  std::vector<std::string> skipped;
  for (const BoardRecord& board : *picked) {
    (out_of_service.contains(board.name) ? skipped : candidates).push_back(board.name);
  }
  *why_few = absl::StrCat("its boards pick ", picked->size(), " boards");
  if (!skipped.empty()) absl::StrAppend(why_few, ", quarantined: ", absl::StrJoin(skipped, ", "));
  return candidates;
}

bool JobRunnerState::TryReserveLocked(ActiveRun& run, std::string* busy) {
  std::vector<std::string> free;
  std::vector<std::string> taken;
  for (const std::string& board : run.candidates) {
    auto it = reserved_.find(board);
    if (it == reserved_.end()) {
      free.push_back(board);
    } else {
      taken.push_back(absl::StrCat(board, " (run ", it->second, ")"));
    }
  }
  if (free.size() < run.needed) {
    *busy = absl::StrJoin(taken, ", ");
    return false;
  }
  // Reachable boards first, so a count-N run does not pick an offline one
  // while a reachable one is free; then by name.
  std::stable_partition(free.begin(), free.end(),
                        [&](const std::string& board) { return deps_.boards->Reachable(board); });
  free.resize(run.needed);
  std::sort(free.begin(), free.end());
  for (const std::string& board : free) {
    reserved_[board] = run.id;
    fleet::BoardResult& result = run.results[board];
    result.set_board(board);
    result.set_state(fleet::RUN_STATE_QUEUED);
  }
  run.boards = std::move(free);
  run.run.set_state(fleet::RUN_STATE_RUNNING);
  return true;
}

absl::StatusOr<fleet::Run> JobRunnerState::StartRun(absl::string_view job_name, absl::string_view trigger) {
  absl::MutexLock jobs_lock(&jobs_mu_);
  absl::StatusOr<JobRecord> job = deps_.store->GetJob(job_name);
  if (!job.ok()) return job.status();
  absl::StatusOr<std::shared_ptr<const JobSpec>> spec = SpecOf(*job);
  if (!spec.ok()) return spec.status();
  std::string why_few;
  absl::StatusOr<std::vector<std::string>> candidates = Candidates(**spec, &why_few);
  if (!candidates.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_name, ": its boards cannot be picked: ", candidates.status().message()));
  }
  const size_t needed = (*spec)->count > 0 ? static_cast<size_t>((*spec)->count) : candidates->size();
  if (candidates->empty() || candidates->size() < needed) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_name, " needs ", std::max<size_t>(needed, 1), " boards in service; ", why_few));
  }
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return absl::UnavailableError("fleetd is shutting down; start the run again later");
    if (active_.size() >= static_cast<size_t>(options_.max_active_runs)) {
      return absl::ResourceExhaustedError(
          absl::StrCat(active_.size(),
                       " runs are queued or running, the limit "
                       "(jobs.max_active_runs in fleetd.yaml); wait for one to end"));
    }
  }
  ReapCoordinators(/*all=*/false);
  auto run = std::make_shared<ActiveRun>();
  for (const JobFileRecord& file : job->files) {
    absl::StatusOr<ScriptRecord> script = deps_.store->GetScript(file.sha256_hex);
    if (!script.ok()) return script.status();
    run->files[file.path] =
        JobFileContent{.content = std::make_shared<const std::string>(std::move(script->content)),
                       .sha256_hex = file.sha256_hex};
  }
  const absl::Time now = deps_.clock->Now();
  absl::StatusOr<RunRecord> record = deps_.store->CreateRun(job_name, trigger, now, now + (*spec)->timeout);
  if (!record.ok()) return record.status();
  run->id = record->id;
  run->job_name = job->name;
  run->spec = *spec;
  run->candidates = *std::move(candidates);
  run->needed = needed;
  run->deadline = *record->deadline;
  run->run = RunProto(*record, {});

  fleet::Run snapshot;
  bool busy_fail = false;
  {
    absl::MutexLock lock(&mu_);
    std::string busy;
    if (!TryReserveLocked(*run, &busy) && run->spec->fail_when_busy) {
      busy_fail = true;
      run->run.set_state(fleet::RUN_STATE_ERROR);
      run->run.set_message(absl::StrCat("boards busy: ", busy));
    } else {
      active_[run->id] = run;
    }
    snapshot = SnapshotLocked(*run, true);
  }
  if (busy_fail) {
    if (absl::Status s = deps_.store->UpdateRun(run->id, fleet::RUN_STATE_ERROR, run->run.message(),
                                                snapshot.counts(), deps_.clock->Now());
        !s.ok()) {
      return s;
    }
    absl::StatusOr<RunRecord> ended = deps_.store->GetRun(run->id);
    if (!ended.ok()) return ended.status();
    fleet::Run out = RunProto(*ended, {});
    ReportEnd(out, *run->spec);
    return out;
  }
  Publish(*run, /*run_changed=*/true, /*ended=*/false);
  {
    absl::MutexLock lock(&mu_);
    run->coordinator = std::thread([this, run] { RunMain(run); });
  }
  std::fprintf(stderr, "fleetd: run started id=%lld job=%s trigger=\"%s\" state=%s\n",
               static_cast<long long>(run->id), run->job_name.c_str(), std::string(trigger).c_str(),
               StateName(snapshot.state()).c_str());
  return snapshot;
}

void JobRunnerState::StopRun(ActiveRun& run, StopCause cause, std::string reason) {
  {
    absl::MutexLock lock(&mu_);
    if (run.cause != StopCause::kNone || run.stop.stopped()) return;
    run.cause = cause;
  }
  run.stop.Stop(std::move(reason));
  absl::MutexLock lock(&mu_);
  ++generation_;
}

// ---------------------------------------------------------------------------
// Runs: execution

void JobRunnerState::RunMain(std::shared_ptr<ActiveRun> run) {
  RunSteps(run);
  Finish(run);
  run->coordinator_done.store(true, std::memory_order_release);
}

void JobRunnerState::RunSteps(const std::shared_ptr<ActiveRun>& run) {
  if (WaitForBoards(*run)) {
    // Every board of the run shows (QUEUED) before the first one starts.
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [board, result] : run->results) run->dirty.insert(board);
    }
    Publish(*run, /*run_changed=*/false, /*ended=*/false);
    int workers = static_cast<int>(run->boards.size());
    workers = std::min(workers, std::max(1, options_.max_threads_per_run));
    if (run->spec->max_boards_at_once > 0) workers = std::min(workers, run->spec->max_boards_at_once);
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      run->workers_left = workers;
    }
    for (int i = 0; i < workers; ++i) threads.emplace_back([this, run] { WorkerMain(run); });
    // Watch the deadline until every worker ended; past it, stop them (the
    // attempts kill what they started) and wait for them to end.
    // Publishes the boards' progress on each wake-up.
    bool timed_out = false;
    for (bool ended = false; !ended && !timed_out;) {
      {
        absl::MutexLock lock(&mu_);
        const absl::Condition workers_ended(
            +[](ActiveRun* r) { return r->workers_left == 0; }, run.get());
        const absl::Duration left = run->deadline - deps_.clock->Now();
        if (left <= absl::ZeroDuration()) {
          timed_out = true;
        } else {
          ended = mu_.AwaitWithTimeout(workers_ended, std::min(left, kClockPoll));
        }
      }
      Publish(*run, /*run_changed=*/false, /*ended=*/false);
    }
    if (timed_out) {
      StopRun(*run, StopCause::kTimeout, absl::StrCat("timed out after ", ShortDuration(run->spec->timeout)));
    }
    for (std::thread& thread : threads) thread.join();
  }
}

bool JobRunnerState::WaitForBoards(ActiveRun& run) {
  std::string busy;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (run.run.state() == fleet::RUN_STATE_RUNNING) break;
      if (run.stop.stopped()) return false;
      if (TryReserveLocked(run, &busy)) break;
      const absl::Duration left = run.deadline - deps_.clock->Now();
      if (left <= absl::ZeroDuration()) {
        run.run.set_state(fleet::RUN_STATE_ERROR);
        run.run.set_message(absl::StrCat("timed out waiting for boards ", busy));
        return false;
      }
      const uint64_t seen = generation_;
      struct Wake {
        const uint64_t* generation;
        uint64_t seen;
      } wake{&generation_, seen};
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](Wake* w) { return *w->generation != w->seen; }, &wake),
                           std::min(left, kClockPoll));
      continue;
    }
  }
  Publish(run, /*run_changed=*/true, /*ended=*/false);
  return true;
}

void JobRunnerState::WorkerMain(std::shared_ptr<ActiveRun> run) {
  for (;;) {
    std::string board;
    {
      absl::MutexLock lock(&mu_);
      if (run->stop.stopped() || !run->abort_message.empty() || run->next_board >= run->boards.size()) break;
      board = run->boards[run->next_board++];
    }
    RunBoard(*run, board);
  }
  absl::MutexLock lock(&mu_);
  --run->workers_left;
}

void JobRunnerState::RunBoard(ActiveRun& run, const std::string& board) {
  int attempts = 0;
  std::string retried_because;
  fleet::BoardResult result;
  for (;;) {
    ++attempts;
    // The engine's deadlines are wall-clock ones (they bound board calls).
    const absl::Time deadline = absl::Now() + (run.deadline - deps_.clock->Now());
    BoardAttempt attempt{.board = board,
                         .spec = run.spec.get(),
                         .files = &run.files,
                         .deadline = deadline,
                         .stop = &run.stop,
                         .on_progress = [&](const fleet::BoardResult& progress) {
                           fleet::BoardResult copy = progress;
                           copy.set_board(board);
                           copy.set_state(fleet::RUN_STATE_RUNNING);
                           copy.set_attempts(attempts);
                           copy.set_retried_because(retried_because);
                           absl::MutexLock lock(&mu_);
                           run.results[board] = std::move(copy);
                           run.dirty.insert(board);
                         }};
    result = deps_.attempt(*deps_.boards, attempt);
    result.set_board(board);
    const bool failed = result.state() == fleet::RUN_STATE_FAILED || result.state() == fleet::RUN_STATE_ERROR;
    if (!failed || attempts > run.spec->retries || run.stop.stopped()) break;
    retried_because = result.message();
    std::fprintf(stderr, "fleetd: retrying board=%s run=%lld attempt=%d because=\"%s\"\n", board.c_str(),
                 static_cast<long long>(run.id), attempts + 1, retried_because.c_str());
  }
  result.set_attempts(attempts);
  result.set_retried_because(retried_because);
  result.set_flaky(result.state() == fleet::RUN_STATE_PASSED && attempts > 1);
  // An attempt the run's timeout or a stop cut short says nothing about the
  // board (a slow job must not quarantine the lab).
  if (!run.stop.stopped() && deps_.clock->Now() < run.deadline) CountForQuarantine(run.id, result);
  absl::MutexLock lock(&mu_);
  run.results[board] = result;
  run.dirty.insert(board);
  CheckAbortRuleLocked(run);
}

void JobRunnerState::CheckAbortRuleLocked(ActiveRun& run) {
  if (!run.spec->abort.has_value() || !run.abort_message.empty()) return;
  int ended = 0;
  int failed = 0;
  for (const auto& [board, result] : run.results) {
    const fleet::RunState state = result.state();
    if (state == fleet::RUN_STATE_PASSED) ++ended;
    if (state == fleet::RUN_STATE_FAILED || state == fleet::RUN_STATE_ERROR) {
      ++ended;
      ++failed;
    }
  }
  const JobSpec::Abort& rule = *run.spec->abort;
  if (ended < rule.min_boards || 100.0 * failed < rule.failed_percent * ended) return;
  run.abort_message =
      absl::StrFormat("aborted: %d of %d ended boards failed (abort: failed_percent %g, min_boards %d)",
                      failed, ended, rule.failed_percent, rule.min_boards);
  std::fprintf(stderr, "fleetd: run aborted id=%lld job=%s failed=%d ended=%d\n",
               static_cast<long long>(run.id), run.job_name.c_str(), failed, ended);
}

void JobRunnerState::CountForQuarantine(int64_t run_id, const fleet::BoardResult& result) {
  const fleet::RunState state = result.state();
  if (state != fleet::RUN_STATE_PASSED && state != fleet::RUN_STATE_FAILED &&
      state != fleet::RUN_STATE_ERROR) {
    return;  // CANCELLED and SKIPPED say nothing about the board
  }
  absl::StatusOr<BoardJobHealth> health = deps_.store->GetBoardJobHealth(result.board());
  if (!health.ok()) {
    std::fprintf(stderr, "fleetd: board job health unreadable board=%s: %s\n", result.board().c_str(),
                 health.status().ToString().c_str());
    return;
  }
  bool quarantine = false;
  if (state == fleet::RUN_STATE_ERROR) {
    health->error_run_ids.push_back(run_id);
    health->last_error = result.message();
    if (!health->quarantine_since.has_value() &&
        health->error_run_ids.size() >= static_cast<size_t>(std::max(1, options_.quarantine_after))) {
      quarantine = true;
      health->quarantine_since = deps_.clock->Now();
      health->quarantine_reason =
          absl::StrCat("ended ERROR in ", health->error_run_ids.size(), " runs in a row (runs ",
                       absl::StrJoin(health->error_run_ids, ", "), "): ", result.message());
    }
  } else {
    health->error_run_ids.clear();
    health->last_error.clear();
  }
  if (absl::Status s = deps_.store->PutBoardJobHealth(*health); !s.ok()) {
    std::fprintf(stderr, "fleetd: board job health not stored board=%s: %s\n", result.board().c_str(),
                 s.ToString().c_str());
    return;
  }
  if (!quarantine) return;
  std::fprintf(stderr, "fleetd: board quarantined board=%s reason=\"%s\"\n", result.board().c_str(),
               health->quarantine_reason.c_str());
  fleet::Event event;
  event.set_board(result.board());
  event.set_kind(fleet::EVENT_KIND_BOARD_QUARANTINE);
  event.set_severity(fleet::SEVERITY_WARNING);
  event.set_message(absl::StrCat("quarantined: ", health->quarantine_reason,
                                 "; jobs skip it until `fleetctl board release ", result.board(), "`"));
  RecordEvent(std::move(event));
}

void JobRunnerState::Finish(const std::shared_ptr<ActiveRun>& run) {
  fleet::Run snapshot;
  std::vector<std::function<void(absl::StatusOr<fleet::Run>)>> waiters;
  {
    absl::MutexLock lock(&mu_);
    const std::string stop_reason = run->stop.reason();
    // Boards a stop cut short, or that never started.
    for (auto& [board, result] : run->results) {
      if (Ended(result.state()) && result.state() != fleet::RUN_STATE_CANCELLED) continue;
      const bool started = result.state() != fleet::RUN_STATE_QUEUED;
      if (run->cause == StopCause::kTimeout || run->cause == StopCause::kShutdown) {
        result.set_state(started ? fleet::RUN_STATE_ERROR : fleet::RUN_STATE_SKIPPED);
        result.set_message(run->cause == StopCause::kShutdown ? kInterruptedByShutdown : stop_reason);
      } else if (run->cause == StopCause::kCancel) {
        result.set_state(started ? fleet::RUN_STATE_CANCELLED : fleet::RUN_STATE_SKIPPED);
        result.set_message(started ? stop_reason : absl::StrCat("not started: ", stop_reason));
      } else if (!started) {
        result.set_state(fleet::RUN_STATE_SKIPPED);
        result.set_message(absl::StrCat("not started: ", run->abort_message));
      }
      if (!result.has_end_time()) *result.mutable_end_time() = ToProto(deps_.clock->Now());
      run->dirty.insert(board);
    }
    const fleet::RunCounts counts = CountResults(run->results);
    fleet::Run& r = run->run;
    if (r.state() == fleet::RUN_STATE_ERROR && run->boards.empty()) {
      // Ended while waiting for boards (its message says why).
    } else if (run->cause == StopCause::kCancel) {
      r.set_state(fleet::RUN_STATE_CANCELLED);
      r.set_message(stop_reason);
    } else if (run->cause == StopCause::kTimeout) {
      r.set_state(fleet::RUN_STATE_ERROR);
      r.set_message(stop_reason);
    } else if (run->cause == StopCause::kShutdown) {
      r.set_state(fleet::RUN_STATE_ERROR);
      r.set_message(kInterruptedByShutdown);
    } else if (!run->abort_message.empty()) {
      r.set_state(fleet::RUN_STATE_FAILED);
      r.set_message(absl::StrCat(run->abort_message, "; ", counts.skipped(), " boards skipped"));
    } else if (counts.failed() > 0) {
      r.set_state(fleet::RUN_STATE_FAILED);
      r.set_message(absl::StrCat(counts.failed(), " of ", counts.boards(), " boards failed"));
    } else if (counts.error() > 0) {
      r.set_state(fleet::RUN_STATE_ERROR);
      std::string first;
      for (const auto& [board, result] : run->results) {
        if (result.state() == fleet::RUN_STATE_ERROR) {
          first = absl::StrCat(board, ": ", result.message());
          break;
        }
      }
      r.set_message(
          absl::StrCat(counts.error(), " of ", counts.boards(), " boards ended ERROR (", first, ")"));
    } else {
      r.set_state(fleet::RUN_STATE_PASSED);
      r.set_message(absl::StrCat(counts.passed(), " of ", counts.boards(), " boards passed",
                                 counts.flaky() > 0 ? absl::StrCat(", ", counts.flaky(), " flaky") : ""));
    }
    *r.mutable_end_time() = ToProto(deps_.clock->Now());
    for (const std::string& board : run->boards) reserved_.erase(board);
    ++generation_;
  }
  Publish(*run, /*run_changed=*/true, /*ended=*/true);
  {
    // From here on, readers find the run in the store, ended.
    absl::MutexLock lock(&mu_);
    snapshot = SnapshotLocked(*run, true);
    waiters = std::move(run->cancel_waiters);
    active_.erase(run->id);
    finished_.push_back(run);
  }
  ReportEnd(snapshot, *run->spec);
  if (absl::StatusOr<int64_t> pruned =
          deps_.store->PruneRuns(run->job_name, std::max(1, options_.runs_kept_per_job));
      !pruned.ok()) {
    std::fprintf(stderr, "fleetd: pruning runs failed job=%s: %s\n", run->job_name.c_str(),
                 pruned.status().ToString().c_str());
  }
  for (auto& done : waiters) done(snapshot);
}

void JobRunnerState::ReportEnd(const fleet::Run& run, const JobSpec& spec) {
  fleet::Event event;
  event.set_kind(fleet::EVENT_KIND_RUN_ENDED);
  event.set_severity(run.state() == fleet::RUN_STATE_ERROR    ? fleet::SEVERITY_ERROR
                     : run.state() == fleet::RUN_STATE_FAILED ? fleet::SEVERITY_WARNING
                                                              : fleet::SEVERITY_INFO);
  event.set_message(absl::StrCat("run ", run.id(), " of ", run.job_name(), " ", StateName(run.state()), ": ",
                                 run.message()));
  std::fprintf(stderr, "fleetd: run ended id=%llu job=%s state=%s message=\"%s\"\n",
               static_cast<unsigned long long>(run.id()), run.job_name().c_str(),
               StateName(run.state()).c_str(), run.message().c_str());
  RecordEvent(std::move(event));
  if (!deps_.notify || !spec.notify.has_value()) return;
  const std::vector<std::string>& on = spec.notify->on;
  const std::string state = absl::AsciiStrToLower(StateName(run.state()));
  if (on.empty() || std::find(on.begin(), on.end(), state) != on.end()) deps_.notify(*spec.notify, run);
}

void JobRunnerState::Publish(ActiveRun& run, bool run_changed, bool ended) {
  absl::MutexLock publish_lock(&run.publish_mu);
  fleet::Run state;
  std::vector<fleet::BoardResult> changed;
  {
    absl::MutexLock lock(&mu_);
    state = SnapshotLocked(run, /*with_results=*/false);
    changed.reserve(run.dirty.size());
    for (const std::string& board : run.dirty) changed.push_back(run.results[board]);
    run.dirty.clear();
  }
  for (const fleet::BoardResult& result : changed) run_changed = run_changed || Ended(result.state());
  if (changed.empty() && !run_changed && !ended) return;
  if (!changed.empty()) {
    if (absl::Status s = deps_.store->PutBoardResults(run.id, changed); !s.ok()) {
      std::fprintf(stderr, "fleetd: board results not stored run=%lld boards=%zu: %s\n",
                   static_cast<long long>(run.id), changed.size(), s.ToString().c_str());
    }
  }
  if (run_changed) {
    if (absl::Status s = deps_.store->UpdateRun(run.id, state.state(), state.message(), state.counts(),
                                                deps_.clock->Now());
        !s.ok()) {
      std::fprintf(stderr, "fleetd: run not stored run=%lld: %s\n", static_cast<long long>(run.id),
                   s.ToString().c_str());
    }
  }
  absl::MutexLock watch_lock(&watch_mu_);
  bool any = false;
  for (const auto& [id, watch] : watches_) any = any || watch.run_id == run.id;
  if (!any) return;
  fleet::Run snapshot;
  {
    absl::MutexLock lock(&mu_);
    snapshot = SnapshotLocked(run, /*with_results=*/true);
  }
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (it->second.run_id != run.id) {
      ++it;
      continue;
    }
    it->second.fn(snapshot, ended);
    it = ended ? watches_.erase(it) : std::next(it);
  }
}

void JobRunnerState::RecordEvent(fleet::Event event) {
  *event.mutable_time() = ToProto(deps_.clock->Now());
  if (absl::StatusOr<fleet::Event> stored = deps_.hub->Record(std::move(event)); !stored.ok()) {
    std::fprintf(stderr, "fleetd: event not stored: %s\n", stored.status().ToString().c_str());
  }
}

// ---------------------------------------------------------------------------
// Runs: reading, cancelling, watching

absl::StatusOr<fleet::Run> JobRunnerState::GetRun(uint64_t id, bool with_output, absl::string_view board) {
  absl::StatusOr<RunRecord> record = deps_.store->GetRun(static_cast<int64_t>(id));
  if (!record.ok()) return record.status();
  absl::StatusOr<std::vector<fleet::BoardResult>> results = deps_.store->ListBoardResults(record->id);
  if (!results.ok()) return results.status();
  std::vector<fleet::BoardResult> kept;
  for (fleet::BoardResult& result : *results) {
    if (!board.empty() && result.board() != board) continue;
    if (!with_output) {
      for (fleet::StepResult& step : *result.mutable_steps()) step.clear_output();
    }
    kept.push_back(std::move(result));
  }
  if (!board.empty() && kept.empty()) {
    return absl::NotFoundError(absl::StrCat("run ", id, " has no board named ", board));
  }
  return RunProto(*record, std::move(kept));
}

absl::StatusOr<fleet::ListRunsResponse> JobRunnerState::ListRuns(const fleet::ListRunsRequest& request) {
  if (request.limit() < 0 || request.limit() > kMaxRunsPage) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit must be 0 (the default, 20) to ", kMaxRunsPage, ", got ", request.limit()));
  }
  const int limit = request.limit() == 0 ? kDefaultRunsPage : request.limit();
  absl::StatusOr<std::vector<RunRecord>> runs =
      deps_.store->ListRuns(RunQuery{.job_name = request.job_name(),
                                     .before_id = static_cast<int64_t>(request.before_id()),
                                     .limit = limit + 1});
  if (!runs.ok()) return runs.status();
  if (runs->empty() && !request.job_name().empty() && request.before_id() == 0) {
    if (absl::StatusOr<JobRecord> job = deps_.store->GetJob(request.job_name()); !job.ok())
      return job.status();
  }
  fleet::ListRunsResponse response;
  const bool more = runs->size() > static_cast<size_t>(limit);
  if (more) runs->resize(limit);
  for (const RunRecord& run : *runs) *response.add_runs() = RunProto(run, {});
  if (more) response.set_next_before_id(static_cast<uint64_t>(runs->back().id));
  return response;
}

void JobRunnerState::CancelRun(uint64_t id, absl::string_view actor,
                               std::function<void(absl::StatusOr<fleet::Run>)> done) {
  std::shared_ptr<ActiveRun> run;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(static_cast<int64_t>(id));
    if (it != active_.end()) {
      run = it->second;
      run->cancel_waiters.push_back(std::move(done));
    }
  }
  if (run == nullptr) {
    done(GetRun(id, /*with_output=*/false, ""));
    return;
  }
  std::fprintf(stderr, "fleetd: run cancel id=%llu by=%s\n", static_cast<unsigned long long>(id),
               std::string(actor).c_str());
  StopRun(*run, StopCause::kCancel, absl::StrCat("cancelled by ", actor));
}

absl::StatusOr<uint64_t> JobRunnerState::WatchRun(uint64_t id, JobRunner::RunFn fn) {
  std::shared_ptr<ActiveRun> run;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(static_cast<int64_t>(id));
    if (it != active_.end()) run = it->second;
  }
  if (run != nullptr) {
    // Under publish_mu no change is published: the watcher sees this state,
    // then every later one.
    absl::MutexLock publish_lock(&run->publish_mu);
    absl::MutexLock watch_lock(&watch_mu_);
    bool ended = false;
    fleet::Run snapshot;
    {
      absl::MutexLock lock(&mu_);
      ended = !active_.contains(run->id);
      snapshot = SnapshotLocked(*run, true);
    }
    const uint64_t watch_id = next_watch_++;
    if (!ended) {
      fn(snapshot, false);
      watches_[watch_id] = Watch{.run_id = run->id, .fn = std::move(fn)};
      return watch_id;
    }
  }
  absl::StatusOr<fleet::Run> stored = GetRun(id, /*with_output=*/false, "");
  if (!stored.ok()) return stored.status();
  absl::MutexLock watch_lock(&watch_mu_);
  const uint64_t watch_id = next_watch_++;
  fn(*stored, Ended(stored->state()));
  return watch_id;
}

void JobRunnerState::Unwatch(uint64_t watch_id) {
  absl::MutexLock watch_lock(&watch_mu_);
  watches_.erase(watch_id);
}

// ---------------------------------------------------------------------------
// Boards

std::optional<fleet::Quarantine> JobRunnerState::QuarantineOf(absl::string_view board) const {
  absl::StatusOr<BoardJobHealth> health = deps_.store->GetBoardJobHealth(board);
  if (!health.ok() || !health->quarantine_since.has_value()) return std::nullopt;
  fleet::Quarantine quarantine;
  *quarantine.mutable_since() = ToProto(*health->quarantine_since);
  quarantine.set_reason(health->quarantine_reason);
  return quarantine;
}

uint64_t JobRunnerState::ReservedBy(absl::string_view board) const {
  absl::MutexLock lock(&mu_);
  auto it = reserved_.find(board);
  return it == reserved_.end() ? 0 : static_cast<uint64_t>(it->second);
}

absl::Status JobRunnerState::ReleaseBoard(absl::string_view board, absl::string_view actor) {
  if (absl::StatusOr<BoardRecord> known = deps_.inventory->Get(board); !known.ok()) return known.status();
  absl::StatusOr<BoardJobHealth> health = deps_.store->GetBoardJobHealth(board);
  if (!health.ok()) return health.status();
  if (!health->quarantine_since.has_value()) return absl::OkStatus();
  const std::string reason = health->quarantine_reason;
  if (absl::Status s = deps_.store->PutBoardJobHealth(BoardJobHealth{.board = std::string(board)}); !s.ok())
    return s;
  std::fprintf(stderr, "fleetd: board released board=%s by=%s\n", std::string(board).c_str(),
               std::string(actor).c_str());
  fleet::Event event;
  event.set_board(std::string(board));
  event.set_kind(fleet::EVENT_KIND_BOARD_QUARANTINE);
  event.set_severity(fleet::SEVERITY_INFO);
  event.set_message(absl::StrCat("released by ", actor, " (was quarantined: ", reason, ")"));
  RecordEvent(std::move(event));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Scheduler and lifetime

void JobRunnerState::Fire(const JobRecord& job, const JobSpec& spec, absl::Time fire_time,
                          absl::string_view trigger) {
  // Stored before the run starts: a fleetd dying right after does not fire
  // this time again.
  if (absl::Status s = deps_.store->SetJobLastFire(job.name, fire_time); !s.ok()) {
    std::fprintf(stderr, "fleetd: schedule not fired job=%s: %s\n", job.name.c_str(), s.ToString().c_str());
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, run] : active_) {
      if (run->job_name == job.name && run->run.state() == fleet::RUN_STATE_QUEUED) {
        std::fprintf(stderr, "fleetd: schedule skipped job=%s fire=%s: run %lld is still queued\n",
                     job.name.c_str(), absl::FormatTime(fire_time).c_str(), static_cast<long long>(id));
        return;
      }
    }
  }
  absl::StatusOr<fleet::Run> run = StartRun(job.name, trigger);
  if (!run.ok()) {
    std::fprintf(stderr, "fleetd: schedule fired but the run did not start job=%s: %s\n", job.name.c_str(),
                 run.status().ToString().c_str());
  }
}

void JobRunnerState::SchedulerTick(absl::Time now) {
  absl::MutexLock tick_lock(&tick_mu_);
  absl::StatusOr<std::vector<JobRecord>> jobs = deps_.store->ListJobs();
  if (!jobs.ok()) {
    std::fprintf(stderr, "fleetd: scheduler cannot list jobs: %s\n", jobs.status().ToString().c_str());
    return;
  }
  for (const JobRecord& job : *jobs) {
    absl::StatusOr<std::shared_ptr<const JobSpec>> spec = SpecOf(job);
    if (!spec.ok() || !(*spec)->schedule.has_value()) continue;
    const CronSchedule& schedule = *(*spec)->schedule;
    const absl::Time base = std::max(job.last_fire_time.value_or(job.update_time), job.update_time);
    absl::Time due = schedule.NextAfter(base);
    if (due > now) continue;
    for (int i = 0; i < kMaxMissedFires; ++i) {
      const absl::Time next = schedule.NextAfter(due);
      if (next > now) break;
      due = next;
    }
    Fire(job, **spec, due, "schedule");
  }
}

void JobRunnerState::SchedulerMain() {
  while (!scheduler_stop_.SleepFor(kSchedulerPeriod)) SchedulerTick(deps_.clock->Now());
}

absl::Status JobRunnerState::Start() {
  const absl::Time now = deps_.clock->Now();
  absl::StatusOr<std::vector<int64_t>> interrupted =
      deps_.store->InterruptActiveRuns(kInterruptedByDeath, now);
  if (!interrupted.ok()) return interrupted.status();
  for (int64_t id : *interrupted) {
    absl::StatusOr<std::vector<fleet::BoardResult>> results = deps_.store->ListBoardResults(id);
    if (!results.ok()) return results.status();
    std::map<std::string, fleet::BoardResult> by_board;
    for (fleet::BoardResult& result : *results) {
      if (!Ended(result.state())) {
        result.set_state(result.state() == fleet::RUN_STATE_QUEUED ? fleet::RUN_STATE_SKIPPED
                                                                   : fleet::RUN_STATE_ERROR);
        result.set_message(kInterruptedByDeath);
        for (fleet::StepResult& step : *result.mutable_steps()) {
          if (step.state() == fleet::RUN_STATE_RUNNING) step.set_state(fleet::RUN_STATE_ERROR);
        }
        if (absl::Status s = deps_.store->PutBoardResult(id, result); !s.ok()) return s;
      }
      by_board[result.board()] = result;
    }
    if (absl::Status s = deps_.store->UpdateRun(id, fleet::RUN_STATE_ERROR, kInterruptedByDeath,
                                                CountResults(by_board), now);
        !s.ok()) {
      return s;
    }
    std::fprintf(stderr, "fleetd: run interrupted id=%lld: fleetd stopped during the run\n",
                 static_cast<long long>(id));
  }
  // Schedules missed while fleetd was down: once now (catch_up), or not.
  absl::StatusOr<std::vector<JobRecord>> jobs = deps_.store->ListJobs();
  if (!jobs.ok()) return jobs.status();
  {
    absl::MutexLock tick_lock(&tick_mu_);
    for (const JobRecord& job : *jobs) {
      absl::StatusOr<std::shared_ptr<const JobSpec>> spec = SpecOf(job);
      if (!spec.ok()) {
        std::fprintf(stderr, "fleetd: job not scheduled name=%s: %s\n", job.name.c_str(),
                     spec.status().ToString().c_str());
        continue;
      }
      if (!(*spec)->schedule.has_value()) continue;
      const CronSchedule& schedule = *(*spec)->schedule;
      const absl::Time base = std::max(job.last_fire_time.value_or(job.update_time), job.update_time);
      absl::Time due = schedule.NextAfter(base);
      if (due > now) continue;
      for (int i = 0; i < kMaxMissedFires; ++i) {
        const absl::Time next = schedule.NextAfter(due);
        if (next > now) break;
        due = next;
      }
      if ((*spec)->catch_up) {
        Fire(job, **spec, due, "schedule (catch-up)");
      } else if (absl::Status s = deps_.store->SetJobLastFire(job.name, due); !s.ok()) {
        return s;
      } else {
        std::fprintf(stderr, "fleetd: missed schedule skipped job=%s fire=%s (catch_up: false)\n",
                     job.name.c_str(), absl::FormatTime(due).c_str());
      }
    }
  }
  scheduler_ = std::thread([this] { SchedulerMain(); });
  return absl::OkStatus();
}

void JobRunnerState::Shutdown() {
  scheduler_stop_.Stop("fleetd is shutting down");
  if (scheduler_.joinable()) scheduler_.join();
  std::vector<std::shared_ptr<ActiveRun>> runs;
  {
    // Under jobs_mu_: a StartRun in progress has its coordinator assigned.
    absl::MutexLock jobs_lock(&jobs_mu_);
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (const auto& [id, run] : active_) runs.push_back(run);
  }
  for (const std::shared_ptr<ActiveRun>& run : runs)
    StopRun(*run, StopCause::kShutdown, kInterruptedByShutdown);
  ReapCoordinators(/*all=*/true);
}

void JobRunnerState::ReapCoordinators(bool all) {
  for (;;) {
    std::vector<std::shared_ptr<ActiveRun>> ended;
    {
      absl::MutexLock lock(&mu_);
      if (all) {
        // A stopped run ends on its own; wait for each to reach finished_.
        mu_.Await(absl::Condition(
            +[](std::map<int64_t, std::shared_ptr<ActiveRun>>* active) { return active->empty(); },
            &active_));
      }
      auto keep = std::stable_partition(finished_.begin(), finished_.end(), [&](const auto& run) {
        return !all && !run->coordinator_done.load(std::memory_order_acquire);
      });
      ended.assign(keep, finished_.end());
      finished_.erase(keep, finished_.end());
    }
    for (const std::shared_ptr<ActiveRun>& run : ended) {
      if (run->coordinator.joinable()) run->coordinator.join();
    }
    if (!all || ended.empty()) return;
  }
}

}  // namespace internal

// ---------------------------------------------------------------------------
// JobRunner: the public face

JobRunner::JobRunner(JobRunnerDeps deps, JobRunnerOptions options)
    : state_(std::make_unique<internal::JobRunnerState>(std::move(deps), std::move(options))) {}

JobRunner::~JobRunner() { Shutdown(); }

absl::Status JobRunner::Start() { return state_->Start(); }
void JobRunner::Shutdown() { state_->Shutdown(); }
absl::StatusOr<JobRunner::Applied> JobRunner::ApplyJob(const fleet::ApplyJobRequest& request) {
  return state_->ApplyJob(request);
}
absl::Status JobRunner::DeleteJob(absl::string_view name) { return state_->DeleteJob(name); }
absl::StatusOr<std::vector<fleet::Job>> JobRunner::ListJobs() { return state_->ListJobs(); }
absl::StatusOr<fleet::Run> JobRunner::StartRun(absl::string_view job_name, absl::string_view trigger) {
  return state_->StartRun(job_name, trigger);
}
absl::StatusOr<fleet::Run> JobRunner::GetRun(uint64_t id, bool with_output, absl::string_view board) {
  return state_->GetRun(id, with_output, board);
}
absl::StatusOr<fleet::ListRunsResponse> JobRunner::ListRuns(const fleet::ListRunsRequest& request) {
  return state_->ListRuns(request);
}
void JobRunner::CancelRun(uint64_t id, absl::string_view actor,
                          std::function<void(absl::StatusOr<fleet::Run>)> done) {
  state_->CancelRun(id, actor, std::move(done));
}
absl::StatusOr<uint64_t> JobRunner::WatchRun(uint64_t id, RunFn fn) {
  return state_->WatchRun(id, std::move(fn));
}
void JobRunner::Unwatch(uint64_t watch_id) { state_->Unwatch(watch_id); }
std::optional<fleet::Quarantine> JobRunner::QuarantineOf(absl::string_view board) const {
  return state_->QuarantineOf(board);
}
uint64_t JobRunner::ReservedBy(absl::string_view board) const { return state_->ReservedBy(board); }
absl::Status JobRunner::ReleaseBoard(absl::string_view board, absl::string_view actor) {
  return state_->ReleaseBoard(board, actor);
}
void JobRunner::SchedulerTick(absl::Time now) { state_->SchedulerTick(now); }

}  // namespace threadfleet::fleetd::jobs
