// fleetctl job apply|ls|run|runs|show|logs|cancel|rm|junit|report: fleet
// test jobs (docs/jobs.md).
//
// Exit codes of `job run`: 0 the run passed, 1 it failed, 2 it could not run
// (ERROR, CANCELLED) or a call failed. The other commands exit as every
// fleetctl command does (0 done, 1 the call failed, 2 bad words). A
// spec that does not parse or names a file that cannot be read is refused
// before any call with "FILE:LINE:COL: message", exit 2 — so is a spec
// fleetd refuses (INVALID_ARGUMENT).

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "server/cli/commands.h"
#include "server/cli/format.h"
#include "server/cli/run_report.h"
#include "server/cli/table.h"
#include "server/common/read_text_file.h"
#include "server/fleetd/jobs/job_spec.h"

namespace threadfleet::cli {
// A namespace of its own: fleetctl_lib is one unity translation unit, where
// the other command files' helpers (RunPlan, ListRuns...) are visible too.
namespace job_cli {

// What `job run` and `job report` exit with for a run's final state.
int RunExitCode(fleet::v1::RunState state) {
  switch (state) {
    case fleet::v1::RUN_STATE_PASSED:
      return kExitOk;
    case fleet::v1::RUN_STATE_FAILED:
      return kExitFailed;
    default:
      return kExitUsage;
  }
}

bool Ended(fleet::v1::RunState state) {
  return state == fleet::v1::RUN_STATE_PASSED || state == fleet::v1::RUN_STATE_FAILED ||
         state == fleet::v1::RUN_STATE_ERROR || state == fleet::v1::RUN_STATE_CANCELLED ||
         state == fleet::v1::RUN_STATE_SKIPPED;
}

// "5 boards: 3 passed, 1 failed, 1 error (1 flaky)", only the non-zero ones.
std::string CountsText(const fleet::v1::RunCounts& n) {
  std::string text = absl::StrCat(n.boards(), n.boards() == 1 ? " board" : " boards");
  std::vector<std::string> parts;
  for (const auto& [count, name] : std::vector<std::pair<int, const char*>>{{n.passed(), "passed"},
                                                                            {n.failed(), "failed"},
                                                                            {n.error(), "error"},
                                                                            {n.skipped(), "skipped"},
                                                                            {n.cancelled(), "cancelled"}}) {
    if (count > 0) parts.push_back(absl::StrCat(count, " ", name));
  }
  if (!parts.empty()) absl::StrAppend(&text, ": ", absl::StrJoin(parts, ", "));
  if (n.flaky() > 0) absl::StrAppend(&text, " (", n.flaky(), " flaky)");
  return text;
}

// "run 42 of seed-smoke: failed — 2 of 5 boards did not pass; 5 boards: ..."
std::string RunSummary(const fleet::v1::Run& run) {
  std::string text = absl::StrCat("run ", run.id(), " of ", run.job_name(), ": ", RunStateText(run.state()));
  if (!run.message().empty()) absl::StrAppend(&text, " — ", run.message());
  absl::StrAppend(&text, "; ", CountsText(run.counts()));
  return text;
}

// Fails a call of a command whose exit codes say "could not run" with 2.
int FailRun(Session& session, const grpc::Status& status) {
  session.Fail(status);
  return kExitUsage;
}

// ---- apply

// A spec and the files its push steps name, read and checked locally.
struct ApplyPlan {
  fleet::v1::ApplyJobRequest request;
};

// Reads and parses the spec, then reads every file its push steps name,
// relative to the spec's directory. INVALID_ARGUMENT "FILE:LINE:COL:
// message" for a spec that does not parse or a file that cannot be read.
absl::StatusOr<ApplyPlan> PrepareApply(const std::string& spec_path) {
  absl::StatusOr<std::string> yaml = common::ReadTextFile(spec_path, "job spec");
  if (!yaml.ok()) return yaml.status();
  absl::StatusOr<fleetd::jobs::JobSpec> spec = fleetd::jobs::ParseJobSpec(*yaml, spec_path);
  if (!spec.ok()) return spec.status();
  ApplyPlan plan;
  plan.request.set_spec_yaml(*yaml);
  plan.request.set_spec_file(spec_path);
  const std::filesystem::path base = std::filesystem::path(spec_path).parent_path();
  for (const fleetd::jobs::JobSpec::File& file : spec->files) {
    absl::StatusOr<std::string> content = common::ReadTextFile(base / file.path, "push file");
    if (!content.ok()) {
      return absl::InvalidArgumentError(
          fleetd::jobs::SpecMessage(spec_path, file.location, content.status().message()));
    }
    fleet::v1::JobFile* out = plan.request.add_files();
    out->set_path(file.path);
    out->set_content(*std::move(content));
  }
  return plan;
}

int ApplyJob(Session& session, const fleet::v1::ApplyJobRequest& request) {
  fleet::v1::ApplyJobResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ApplyJob(context.get(), request, &response);
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    // "FILE:LINE:COL: message" on a line of its own, as an editor reads it.
    session.err() << status.error_message() << std::endl;
    return kExitUsage;
  }
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  const fleet::v1::Job& job = response.job();
  session.out() << (response.changed() ? "applied" : "unchanged") << " job " << job.name() << " version "
                << job.version() << " (" << job.files_size() << (job.files_size() == 1 ? " file" : " files");
  if (!job.schedule().empty()) session.out() << ", schedule \"" << job.schedule() << "\" " << job.time_zone();
  session.out() << ")" << std::endl;
  return kExitOk;
}

// ---- ls, runs

std::string LastRunCell(const fleet::v1::Job& job) {
  if (!job.has_last_run()) return "-";
  return absl::StrCat(job.last_run().id(), " ", RunStateText(job.last_run().state()));
}

int ListJobs(Session& session) {
  fleet::v1::ListJobsResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ListJobs(context.get(), {}, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  Table table({"NAME", "VERSION", "SCHEDULE", "NEXT", "LAST RUN", "LAST START", "FILES"});
  for (const fleet::v1::Job& job : response.jobs()) {
    table.AddRow({job.name(), absl::StrCat(job.version()), job.schedule().empty() ? "-" : job.schedule(),
                  FormatTimestamp(job.next_fire_time()), LastRunCell(job),
                  job.has_last_run() ? FormatTimestamp(job.last_run().start_time()) : "-",
                  absl::StrCat(job.files_size())});
  }
  session.out() << table.Render() << std::flush;
  return kExitOk;
}

int ListRuns(Session& session, const fleet::v1::ListRunsRequest& request) {
  fleet::v1::ListRunsResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ListRuns(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  Table table({"ID", "JOB", "STATE", "TRIGGER", "STARTED", "TOOK", "BOARDS", "MESSAGE"});
  table.SetMaxWidth(6, 60);
  table.SetMaxWidth(7, 80);
  for (const fleet::v1::Run& run : response.runs()) {
    table.AddRow({absl::StrCat(run.id()), run.job_name(), RunStateText(run.state()), run.trigger(),
                  FormatTimestamp(run.start_time()), FormatElapsed(run.start_time(), run.end_time()),
                  CountsText(run.counts()), run.message()});
  }
  session.out() << table.Render() << std::flush;
  if (response.next_before_id() != 0) {
    session.err() << "older runs: --before " << response.next_before_id() << std::endl;
  }
  return kExitOk;
}

// ---- show, logs

grpc::Status FetchRun(Session& session, const fleet::v1::GetRunRequest& request,
                      fleet::v1::GetRunResponse& response) {
  auto context = session.client().NewContext();
  return session.client().stub().GetRun(context.get(), request, &response);
}

std::string StepLabel(const fleet::v1::StepResult& step) {
  return absl::StrCat("steps[", step.index(), "] ", step.kind());
}

std::string DescribeRun(const fleet::v1::Run& run) {
  std::string text;
  absl::StrAppend(&text, "Run:      ", run.id(), "\n", "Job:      ", run.job_name(), " (version ",
                  run.job_version(), ")\n", "State:    ", RunStateText(run.state()), "\n",
                  "Trigger:  ", run.trigger(), "\n", "Started:  ", FormatTimestamp(run.start_time()), "\n");
  if (run.end_time().seconds() != 0) {
    absl::StrAppend(&text, "Ended:    ", FormatTimestamp(run.end_time()), " (took ",
                    FormatElapsed(run.start_time(), run.end_time()), ")\n");
  } else {
    absl::StrAppend(&text, "Deadline: ", FormatTimestamp(run.deadline()), "\n");
  }
  if (!run.message().empty()) absl::StrAppend(&text, "Message:  ", run.message(), "\n");
  absl::StrAppend(&text, "Boards:   ", CountsText(run.counts()), "\n");
  for (const fleet::v1::BoardResult& r : run.results()) {
    absl::StrAppend(&text, "\n", r.board(), ": ", RunStateText(r.state()));
    if (r.attempts() > 1) absl::StrAppend(&text, " after ", r.attempts(), " attempts");
    if (r.flaky()) absl::StrAppend(&text, " (flaky)");
    absl::StrAppend(&text, ", took ", FormatElapsed(r.start_time(), r.end_time()));
    if (!r.message().empty()) absl::StrAppend(&text, " — ", r.message());
    absl::StrAppend(&text, "\n");
    if (!r.retried_because().empty())
      absl::StrAppend(&text, "  retried because: ", r.retried_because(), "\n");
    for (const fleet::v1::StepResult& step : r.steps()) {
      absl::StrAppend(&text, "  ", StepLabel(step), ": ", RunStateText(step.state()));
      if (step.end_time().seconds() != 0)
        absl::StrAppend(&text, " in ", FormatElapsed(step.start_time(), step.end_time()));
      if (step.program_id() != 0) absl::StrAppend(&text, " (program ", step.program_id(), ")");
      if (!step.message().empty()) absl::StrAppend(&text, " — ", step.message());
      absl::StrAppend(&text, "\n");
      if (step.has_evidence()) {
        for (absl::string_view line : absl::StrSplit(EvidenceDetails(step.evidence()), '\n')) {
          absl::StrAppend(&text, line.empty() ? "" : "    ", line, "\n");
        }
      }
    }
  }
  return text;
}

int ShowRun(Session& session, const fleet::v1::GetRunRequest& request) {
  fleet::v1::GetRunResponse response;
  grpc::Status status = FetchRun(session, request, response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  session.out() << DescribeRun(response.run()) << std::flush;
  return kExitOk;
}

int RunLogs(Session& session, const fleet::v1::GetRunRequest& request) {
  fleet::v1::GetRunResponse response;
  grpc::Status status = FetchRun(session, request, response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  const fleet::v1::BoardResult* result = nullptr;
  for (const fleet::v1::BoardResult& r : response.run().results()) {
    if (r.board() == request.board()) result = &r;
  }
  if (result == nullptr) {
    return session.Fail(absl::StrCat("NOT_FOUND: run ", request.id(), " has no board ", request.board()));
  }
  std::vector<const fleet::v1::StepResult*> run_steps;
  for (const fleet::v1::StepResult& step : result->steps()) {
    if (step.kind() == "run" && step.program_id() != 0) run_steps.push_back(&step);
  }
  if (run_steps.empty()) {
    return session.Fail(
        absl::StrCat("NOT_FOUND: board ", request.board(), " started no program in run ", request.id()));
  }
  // Like tail(1) with several files: a header before each output only when
  // there is more than one.
  for (const fleet::v1::StepResult* step : run_steps) {
    if (run_steps.size() > 1) {
      session.out() << "==> " << StepLabel(*step) << " (program " << step->program_id() << ") <==\n";
    }
    if (step->output_cut_bytes() > 0) {
      session.err() << "fleetctl: the first " << step->output_cut_bytes() << " bytes of " << StepLabel(*step)
                    << "'s output were not kept" << std::endl;
    }
    session.out() << step->output() << std::flush;
  }
  return kExitOk;
}

// ---- run

// Prints a line for each board step that ended since `printed` last saw
// the run, and for each board that ended.
class RunProgress {
 public:
  explicit RunProgress(Session& session)
      : session_(session), table_({"BOARD", "STEP", "RESULT", "TOOK", "MESSAGE"}, {8, 16, 9, 6}) {}

  void Header() { session_.out() << table_.Header() << std::flush; }

  void Update(const fleet::v1::Run& run) {
    for (const fleet::v1::BoardResult& r : run.results()) {
      for (const fleet::v1::StepResult& step : r.steps()) {
        if (!Ended(step.state()) || step.state() == fleet::v1::RUN_STATE_SKIPPED) continue;
        if (!printed_.insert({r.board(), r.attempts(), step.index()}).second) continue;
        session_.out() << table_.Row({r.board(), StepLabel(step), RunStateText(step.state()),
                                      FormatElapsed(step.start_time(), step.end_time()), step.message()});
      }
      if (Ended(r.state()) && boards_done_.insert(r.board()).second) {
        std::string result = RunStateText(r.state());
        if (r.flaky()) absl::StrAppend(&result, " (flaky)");
        session_.out() << table_.Row(
            {r.board(), "board", result, FormatElapsed(r.start_time(), r.end_time()), r.message()});
      }
    }
    session_.out() << std::flush;
  }

 private:
  Session& session_;
  StreamingTable table_;
  // (board, attempt, step index) already printed.
  std::set<std::tuple<std::string, int, int>> printed_;
  std::set<std::string> boards_done_;
};

struct RunPlan {
  std::string name;
  bool wait = false;
  bool follow = false;
};

int FinishRun(Session& session, const fleet::v1::Run& run) {
  if (!session.json()) session.out() << RunSummary(run) << std::endl;
  return RunExitCode(run.state());
}

int FollowRun(Session& session, const fleet::v1::Run& started) {
  fleet::v1::WatchRunRequest request;
  request.set_id(started.id());
  auto context = session.client().NewContext(CallKind::kFollow);
  auto reader = session.client().stub().WatchRun(context.get(), request);
  RunProgress progress(session);
  if (!session.json()) progress.Header();
  fleet::v1::Run last = started;
  fleet::v1::WatchRunResponse response;
  while (reader->Read(&response)) {
    if (session.json()) {
      session.PrintJson(response, JsonLayout::kLine);
    } else {
      progress.Update(response.run());
    }
    last = std::move(*response.mutable_run());
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FailRun(session, status);
  if (!Ended(last.state())) {
    session.Fail(absl::StrCat("the watch of run ", last.id(), " ended before the run did (",
                              RunStateText(last.state()), ")"));
    return kExitUsage;
  }
  return FinishRun(session, last);
}

int RunJob(Session& session, const RunPlan& plan) {
  fleet::v1::RunJobRequest request;
  request.set_name(plan.name);
  request.set_wait(plan.wait && !plan.follow);
  fleet::v1::RunJobResponse response;
  // A waited run takes as long as its timeout allows: not cut at --timeout.
  auto context = session.client().NewContext(request.wait() ? CallKind::kFollow : CallKind::kBounded);
  grpc::Status status = session.client().stub().RunJob(context.get(), request, &response);
  if (!status.ok()) return FailRun(session, status);
  const fleet::v1::Run& run = response.run();
  if (plan.follow) {
    if (!session.json()) session.err() << "started run " << run.id() << " of " << run.job_name() << std::endl;
    return FollowRun(session, run);
  }
  if (session.json()) session.PrintJson(response, JsonLayout::kPretty);
  if (!plan.wait) {
    if (!session.json()) {
      session.out() << "started run " << run.id() << " of " << run.job_name() << " ("
                    << RunStateText(run.state()) << "); follow it: fleetctl job show " << run.id()
                    << std::endl;
    }
    return kExitOk;
  }
  return FinishRun(session, run);
}

// ---- cancel, rm

int CancelRun(Session& session, const fleet::v1::CancelRunRequest& request) {
  fleet::v1::CancelRunResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().CancelRun(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << RunSummary(response.run()) << std::endl;
  }
  return kExitOk;
}

int DeleteJob(Session& session, const fleet::v1::DeleteJobRequest& request) {
  fleet::v1::DeleteJobResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().DeleteJob(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << "removed job " << request.name() << " (its runs stay readable)" << std::endl;
  }
  return kExitOk;
}

// ---- junit, report

int Report(Session& session, uint64_t run_id, ReportFormat format) {
  fleet::v1::GetRunRequest request;
  request.set_id(run_id);
  fleet::v1::GetRunResponse response;
  grpc::Status status = FetchRun(session, request, response);
  if (!status.ok()) return session.Fail(status);
  session.out() << RenderRunReport(response.run(), format) << std::flush;
  return kExitOk;
}

// A run from a file `job show -o json` wrote (a GetRunResponse), or a bare
// Run as JSON.
absl::StatusOr<fleet::v1::Run> ReadRunFile(const std::string& path) {
  absl::StatusOr<std::string> json = common::ReadTextFile(path, "run file");
  if (!json.ok()) return json.status();
  fleet::v1::GetRunResponse response;
  if (google::protobuf::util::JsonStringToMessage(*json, &response).ok() && response.has_run()) {
    return response.run();
  }
  fleet::v1::Run run;
  const auto parsed = google::protobuf::util::JsonStringToMessage(*json, &run);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("run file ", path,
                                                   " is neither `fleetctl job show -o json` output nor a Run "
                                                   "as JSON: ",
                                                   std::string(parsed.message())));
  }
  return run;
}

// Parses a RUN_ID word; throws CLI::ValidationError for anything but a
// positive number.
uint64_t ParseRunId(const std::string& word) {
  uint64_t id = 0;
  if (!absl::SimpleAtoi(word, &id) || id == 0) {
    throw CLI::ValidationError(absl::StrCat("run id '", word, "' is not a positive number"));
  }
  return id;
}

}  // namespace job_cli

void AddJobCommands(CLI::App& app, Action& action, LocalAction& local_action) {
  CLI::App* job = app.add_subcommand("job", "Apply, run and report fleet test jobs (docs/jobs.md)");
  job->require_subcommand(0, 1);

  {
    auto file = std::make_shared<std::string>();
    CLI::App* apply = job->add_subcommand(
        "apply", "Upload a job spec and the files its push steps name (relative to the spec) (operator)");
    apply->add_option("FILE", *file, "The job spec, YAML")->required();
    apply->callback([&action, &local_action, file] {
      absl::StatusOr<job_cli::ApplyPlan> plan = job_cli::PrepareApply(*file);
      if (!plan.ok()) {
        // Checked before any connection: a bad spec needs no fleetd to be refused.
        local_action = [message = std::string(plan.status().message())](std::ostream&, std::ostream& err) {
          err << message << std::endl;
          return kExitUsage;
        };
        return;
      }
      action = [request = plan->request](Session& session) { return job_cli::ApplyJob(session, request); };
    });
  }
  {
    CLI::App* ls = job->add_subcommand("ls", "List the jobs with their schedule and latest run");
    ls->callback([&action] { action = [](Session& session) { return job_cli::ListJobs(session); }; });
  }
  {
    auto plan = std::make_shared<job_cli::RunPlan>();
    CLI::App* run = job->add_subcommand(
        "run", "Start a run of a job now (operator); exit 0 passed, 1 failed, 2 could not run");
    run->add_option("NAME", plan->name, "Job name")->required();
    run->add_flag("--wait", plan->wait, "Wait until the run ended, then print its outcome");
    run->add_flag("--follow", plan->follow, "Print a line per board step as it ends, until the run ended");
    run->callback(
        [&action, plan] { action = [plan](Session& session) { return job_cli::RunJob(session, *plan); }; });
  }
  {
    struct Words {
      std::string name;
      int32_t limit = 0;
      uint64_t before = 0;
    };
    auto words = std::make_shared<Words>();
    CLI::App* runs = job->add_subcommand("runs", "List runs, newest first (of one job, or of every job)");
    runs->add_option("NAME", words->name, "Job name (default: every job)");
    runs->add_option("--limit", words->limit, "At most this many (default 20, at most 1000)")
        ->check(CLI::Range(1, 1000));
    runs->add_option("--before", words->before, "Only runs with a smaller id (the next page)");
    runs->callback([&action, words] {
      fleet::v1::ListRunsRequest request;
      request.set_job_name(words->name);
      request.set_limit(words->limit);
      request.set_before_id(words->before);
      action = [request](Session& session) { return job_cli::ListRuns(session, request); };
    });
  }
  {
    auto id = std::make_shared<std::string>();
    CLI::App* show =
        job->add_subcommand("show", "Show a run: per board, per step, with the evidence of failures");
    show->add_option("RUN_ID", *id, "Run id")->required();
    show->callback([&action, id] {
      fleet::v1::GetRunRequest request;
      request.set_id(job_cli::ParseRunId(*id));
      action = [request](Session& session) { return job_cli::ShowRun(session, request); };
    });
  }
  {
    struct Words {
      std::string id, board;
    };
    auto words = std::make_shared<Words>();
    CLI::App* logs = job->add_subcommand("logs", "Print the output of each run step of a board in a run");
    logs->add_option("RUN_ID", words->id, "Run id")->required();
    logs->add_option("BOARD", words->board, "Board name")->required();
    logs->callback([&action, words] {
      fleet::v1::GetRunRequest request;
      request.set_id(job_cli::ParseRunId(words->id));
      request.set_board(words->board);
      request.set_with_output(true);
      action = [request](Session& session) { return job_cli::RunLogs(session, request); };
    });
  }
  {
    auto id = std::make_shared<std::string>();
    CLI::App* cancel = job->add_subcommand(
        "cancel", "Cancel a run: its programs are killed and its boards freed (operator)");
    cancel->add_option("RUN_ID", *id, "Run id")->required();
    cancel->callback([&action, id] {
      fleet::v1::CancelRunRequest request;
      request.set_id(job_cli::ParseRunId(*id));
      action = [request](Session& session) { return job_cli::CancelRun(session, request); };
    });
  }
  {
    auto name = std::make_shared<std::string>();
    CLI::App* rm = job->add_subcommand("rm", "Remove a job and its schedule; its runs stay (operator)");
    rm->add_option("NAME", *name, "Job name")->required();
    rm->callback([&action, name] {
      fleet::v1::DeleteJobRequest request;
      request.set_name(*name);
      action = [request](Session& session) { return job_cli::DeleteJob(session, request); };
    });
  }
  {
    auto id = std::make_shared<std::string>();
    CLI::App* junit =
        job->add_subcommand("junit", "Print a run as JUnit XML (fleetctl job junit 42 > junit.xml)");
    junit->add_option("RUN_ID", *id, "Run id")->required();
    junit->callback([&action, id] {
      const uint64_t run_id = job_cli::ParseRunId(*id);
      action = [run_id](Session& session) { return job_cli::Report(session, run_id, ReportFormat::kJunit); };
    });
  }
  {
    struct Words {
      std::string id, format = "junit", input;
    };
    auto words = std::make_shared<Words>();
    CLI::App* report =
        job->add_subcommand("report", "Print a run as JUnit XML, TAP 13 or Markdown (a CI step summary)");
    report->add_option("RUN_ID", words->id, "Run id (or --input)");
    report->add_option("--format", words->format, "junit, tap, markdown or csv (default junit)")
        ->check(CLI::IsMember({"junit", "tap", "markdown", "csv"}));
    report->add_option("--input", words->input,
                       "Read the run from this file (`fleetctl job show RUN_ID -o json`) instead of fleetd");
    report->callback([&action, &local_action, words] {
      const ReportFormat format = *ParseReportFormat(words->format);
      if (words->id.empty() == words->input.empty()) {
        throw CLI::ValidationError("job report: give a RUN_ID or --input FILE (one of them)");
      }
      if (!words->input.empty()) {
        local_action = [path = words->input, format](std::ostream& out, std::ostream& err) {
          absl::StatusOr<fleet::v1::Run> run = job_cli::ReadRunFile(path);
          if (!run.ok()) {
            err << "fleetctl: error: " << run.status().message() << std::endl;
            return kExitUsage;
          }
          out << RenderRunReport(*run, format) << std::flush;
          return kExitOk;
        };
        return;
      }
      const uint64_t run_id = job_cli::ParseRunId(words->id);
      action = [run_id, format](Session& session) { return job_cli::Report(session, run_id, format); };
    });
  }
}

}  // namespace threadfleet::cli
