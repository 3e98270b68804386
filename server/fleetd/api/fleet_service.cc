#include "server/fleetd/api/fleet_service.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/machine_input.h"
#include "server/fleetd/api/fan_out.h"
#include "server/fleetd/api/internal/api_values.h"
#include "server/fleetd/api/internal/board_limits.h"
#include "server/fleetd/api/internal/output_stream_proxy.h"
#include "server/fleetd/api/internal/push_file_stream.h"
#include "server/fleetd/api/internal/run_watch.h"
#include "server/fleetd/api/internal/service_call.h"
#include "server/fleetd/api/internal/service_state.h"
#include "server/fleetd/api/internal/watch_streams.h"
#include "server/fleetd/auth/call_auth.h"

namespace threadfleet::fleetd {

namespace fleet = threadfleet::fleet::v1;
namespace pb = threadfleet::board::v1;

namespace {

using internal::CheckBoardPath;
using internal::CheckBoardString;
using internal::CheckBoardStrings;
using internal::FanOutSummary;
using internal::FleetServiceState;
using internal::Serve;
using internal::ServeAsync;
using internal::ToBoardError;
using internal::ToTimestamp;
using internal::UnaryCall;
// Default and largest page of ListEvents / ListAudit.
constexpr int kDefaultPage = 100;
constexpr int kMaxPage = 1000;

bool IsLive(pb::ThreadState state) {
  return state == pb::THREAD_STATE_RUNNING || state == pb::THREAD_STATE_SLEEPING ||
         state == pb::THREAD_STATE_WAITING_LOCK;
}

// The file name of a path ("/app/main.py" -> "main.py").
std::string BaseName(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path : path.substr(slash + 1));
}

absl::Status CheckLimit(int32_t limit) {
  if (limit < 0) return absl::InvalidArgumentError(absl::StrCat("limit ", limit, " is negative"));
  return absl::OkStatus();
}

int PageSize(int32_t limit) { return limit == 0 ? kDefaultPage : std::min<int>(limit, kMaxPage); }

// An anomaly as the fleet Event GetHealth lists (not stored: id 0).
fleet::Event AnomalyToEvent(const AnomalyEvent& a) {
  fleet::Event e;
  *e.mutable_time() = ToTimestamp(a.time);
  e.set_board(a.board);
  e.set_thread_id(a.thread_id);
  e.set_program_id(a.program_id);
  e.set_message(a.message);
  e.set_severity(fleet::SEVERITY_WARNING);
  pb::EventKind board_kind = pb::EVENT_KIND_UNSPECIFIED;
  switch (a.kind) {
    case AnomalyKind::kStackHigh:
      e.set_kind(fleet::EVENT_KIND_STACK_HIGH);
      return e;
    case AnomalyKind::kHeapLow:
      e.set_kind(fleet::EVENT_KIND_HEAP_LOW);
      return e;
    case AnomalyKind::kNativeStuck:
      e.set_kind(fleet::EVENT_KIND_NATIVE_STUCK);
      return e;
    case AnomalyKind::kBoardOffline:
      e.set_kind(fleet::EVENT_KIND_BOARD_STATE);
      e.set_severity(fleet::SEVERITY_ERROR);
      return e;
    case AnomalyKind::kThreadFailed:
      board_kind = pb::EVENT_KIND_THREAD_FAILED;
      break;
    case AnomalyKind::kStall:
      board_kind = pb::EVENT_KIND_STALL;
      break;
    case AnomalyKind::kDeadlock:
      board_kind = pb::EVENT_KIND_DEADLOCK;
      e.set_severity(fleet::SEVERITY_ERROR);
      break;
    case AnomalyKind::kThreadUnkillable:
      board_kind = pb::EVENT_KIND_THREAD_UNKILLABLE;
      e.set_severity(fleet::SEVERITY_ERROR);
      break;
  }
  e.set_kind(fleet::EVENT_KIND_BOARD_EVENT);
  pb::Event* be = e.mutable_board_event();
  be->set_time_us(static_cast<uint64_t>(absl::ToUnixMicros(a.time)));
  be->set_kind(board_kind);
  be->set_thread_id(board_kind == pb::EVENT_KIND_DEADLOCK ? 0 : a.thread_id);
  be->set_program_id(a.program_id);
  be->set_message(a.message);
  for (uint32_t id : a.cycle_thread_ids) be->add_cycle_thread_ids(id);
  return e;
}

fleet::Token ToProto(const TokenRecord& t) {
  fleet::Token token;
  token.set_id(static_cast<uint64_t>(t.id));
  token.set_name(t.name);
  token.set_role(t.role);
  *token.mutable_create_time() = ToTimestamp(t.create_time);
  if (t.revoke_time.has_value()) *token.mutable_revoke_time() = ToTimestamp(*t.revoke_time);
  token.set_created_by(t.created_by);
  return token;
}

fleet::AuditEntry ToProto(const AuditRecord& r) {
  fleet::AuditEntry entry;
  entry.set_id(static_cast<uint64_t>(r.id));
  *entry.mutable_time() = ToTimestamp(r.time);
  entry.set_actor(r.actor);
  entry.set_action(r.action);
  entry.set_target(r.target);
  entry.set_code(static_cast<int32_t>(r.result_code));
  entry.set_message(r.result_message);
  entry.set_state(r.state);
  return entry;
}

// The answer of a job RPC in a fleetd without jobs.
absl::Status JobsNotEnabled() { return absl::UnimplementedError("jobs are not enabled in this fleetd"); }

// Shows a program's kill to readers now, not at the board's next snapshot:
// its record from KillProgram, then its threads' records (ended ones
// included) as the board lists them; then `done`, on the pool. A failed
// listing only delays the threads' records until that snapshot.
void ApplyKilledProgram(FleetServiceState* state, std::shared_ptr<BoardClient> board, const std::string& name,
                        const pb::ProgramInfo& program, absl::Time deadline, std::function<void()> done) {
  state->deps.health->UpdateProgram(name, program);
  pb::ListThreadsRequest request;
  request.set_program_id(program.id());
  request.set_include_finished(true);
  board->ListThreads(request, {.deadline = deadline},
                     state->OnPool<absl::StatusOr<pb::ListThreadsResponse>>(
                         [state, name, id = program.id(),
                          done = std::move(done)](absl::StatusOr<pb::ListThreadsResponse> listed) {
                           if (!listed.ok()) {
                             std::fprintf(
                                 stderr, "fleetd: board=%s program=%u threads not refreshed after kill: %s\n",
                                 name.c_str(), id, listed.status().ToString().c_str());
                           } else {
                             for (const pb::ThreadInfo& t : listed->threads()) {
                               if (t.program_id() == id) state->deps.health->UpdateThread(name, t);
                             }
                             for (const pb::ProgramInfo& p : listed->programs()) {
                               if (p.id() == id) state->deps.health->UpdateProgram(name, p);
                             }
                           }
                           done();
                         }));
}

// Shows a soft reset to readers now, not at the board's next snapshot: the
// records of every thread and program the board lists (ended ones
// included: those the reset killed); then `done`, on the pool. A failed
// listing only delays them until that snapshot.
void ApplyReset(FleetServiceState* state, const std::shared_ptr<BoardClient>& board, const std::string& name,
                absl::Time deadline, std::function<void()> done) {
  pb::ListThreadsRequest request;
  request.set_include_finished(true);
  board->ListThreads(
      request, {.deadline = deadline},
      state->OnPool<absl::StatusOr<pb::ListThreadsResponse>>(
          [state, name, done = std::move(done)](absl::StatusOr<pb::ListThreadsResponse> listed) {
            if (!listed.ok()) {
              std::fprintf(stderr, "fleetd: board=%s threads not refreshed after reset: %s\n", name.c_str(),
                           listed.status().ToString().c_str());
            } else {
              for (const pb::ThreadInfo& t : listed->threads()) state->deps.health->UpdateThread(name, t);
              for (const pb::ProgramInfo& p : listed->programs()) state->deps.health->UpdateProgram(name, p);
            }
            done();
          }));
}

// RunProgram's name, path and args against what a board takes.
absl::Status CheckRunProgram(const fleet::RunProgramRequest& request, const std::string& name) {
  if (absl::Status s = CheckBoardPath("path", request.path(), "StartProgramRequest.path"); !s.ok()) return s;
  if (absl::Status s = CheckBoardString(request.name().empty() ? "name (the file name of path)" : "name",
                                        name, "StartProgramRequest.name");
      !s.ok()) {
    return s;
  }
  return CheckBoardStrings("args", request.args(), "StartProgramRequest.args");
}

// StartThread's module, function and args against what a board takes.
absl::Status CheckStartThread(const fleet::StartThreadRequest& request) {
  if (absl::Status s = CheckBoardString("module", request.module(), "StartThreadRequest.module"); !s.ok())
    return s;
  if (absl::Status s = CheckBoardString("function", request.function(), "StartThreadRequest.function");
      !s.ok()) {
    return s;
  }
  return CheckBoardStrings("args", request.args(), "StartThreadRequest.args");
}

}  // namespace

FleetService::FleetService(FleetServiceDeps deps) : state_(std::make_unique<FleetServiceState>(deps)) {}

FleetService::~FleetService() {
  Shutdown();
  if (!state_->streams.WaitIdle(absl::Seconds(30))) {
    std::fprintf(stderr, "fleetd: some API streams did not end within 30 s of shutdown\n");
  }
  // What follows a board call still out runs on the pool: wait for it
  // before the pool goes (the board's answer, or the link's end, comes).
  if (!state_->WaitForBoardCalls(absl::Seconds(30))) {
    std::fprintf(stderr, "fleetd: some board calls did not end within 30 s of shutdown\n");
  }
  state_->timers.reset();
  state_->pool.reset();
}

void FleetService::Shutdown() {
  state_->streams.ShutdownAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "fleetd is shutting down"));
}

// ---- Boards

grpc::ServerUnaryReactor* FleetService::ListBoards(grpc::CallbackServerContext* context,
                                                   const fleet::ListBoardsRequest* request,
                                                   fleet::ListBoardsResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kListBoards, SelectorTarget(request->selector()),
               [state, request, response](UnaryCall&) {
                 absl::StatusOr<std::vector<BoardRecord>> boards =
                     state->deps.inventory->Select(request->selector());
                 if (!boards.ok()) return boards.status();
                 for (const BoardRecord& b : *boards) *response->add_boards() = state->ToProto(b);
                 return absl::OkStatus();
               });
}

grpc::ServerUnaryReactor* FleetService::GetBoard(grpc::CallbackServerContext* context,
                                                 const fleet::GetBoardRequest* request,
                                                 fleet::GetBoardResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kGetBoard, request->name(),
               [state, request, response](UnaryCall&) {
                 absl::StatusOr<BoardRecord> board = state->deps.inventory->Get(request->name());
                 if (!board.ok()) return board.status();
                 *response->mutable_board() = state->ToProto(*board);
                 return absl::OkStatus();
               });
}

grpc::ServerUnaryReactor* FleetService::AddBoard(grpc::CallbackServerContext* context,
                                                 const fleet::AddBoardRequest* request,
                                                 fleet::AddBoardResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(
      state, context, *request, internal::kAddBoard, request->name(), [state, request, response](UnaryCall&) {
        Labels labels(request->labels().begin(), request->labels().end());
        absl::StatusOr<BoardRecord> board =
            state->deps.inventory->Add(request->name(), request->address(), std::move(labels), absl::Now());
        if (!board.ok()) return board.status();
        absl::Status linked = state->deps.links->Add(board->name, board->address);
        if (!linked.ok()) {
          // Keep inventory and links in step: a board without a link is undone.
          absl::Status undone = state->deps.inventory->Remove(board->name);
          if (!undone.ok())
            std::fprintf(stderr, "fleetd: AddBoard rollback failed: %s\n", undone.ToString().c_str());
          return linked;
        }
        *response->mutable_board() = state->ToProto(*board);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* FleetService::RemoveBoard(grpc::CallbackServerContext* context,
                                                    const fleet::RemoveBoardRequest* request,
                                                    fleet::RemoveBoardResponse*) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kRemoveBoard, request->name(),
               [state, request](UnaryCall&) {
                 absl::Status removed = state->deps.inventory->Remove(request->name());
                 if (!removed.ok()) return removed;
                 absl::Status unlinked = state->deps.links->Remove(request->name());
                 if (!unlinked.ok() && unlinked.code() != absl::StatusCode::kNotFound) return unlinked;
                 state->deps.health->RemoveBoard(request->name());
                 if (state->deps.history != nullptr) state->deps.history->RemoveBoard(request->name());
                 state->ForgetBoard(request->name());
                 return absl::OkStatus();
               });
}

grpc::ServerUnaryReactor* FleetService::SetLabels(grpc::CallbackServerContext* context,
                                                  const fleet::SetLabelsRequest* request,
                                                  fleet::SetLabelsResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kSetLabels, request->board(),
               [state, request, response](UnaryCall&) {
                 Labels set(request->set().begin(), request->set().end());
                 std::vector<std::string> remove(request->remove().begin(), request->remove().end());
                 absl::StatusOr<BoardRecord> board =
                     state->deps.inventory->SetLabels(request->board(), set, remove);
                 if (!board.ok()) return board.status();
                 *response->mutable_board() = state->ToProto(*board);
                 return absl::OkStatus();
               });
}

// ---- Files

grpc::ServerWriteReactor<fleet::PushFileResponse>* FleetService::PushFile(
    grpc::CallbackServerContext* context, const fleet::PushFileRequest* request) {
  return internal::StartPushFile(state_.get(), *request, AuthorizationOf(*context),
                                 internal::DeadlineOf(*context));
}

grpc::ServerUnaryReactor* FleetService::ListFiles(grpc::CallbackServerContext* context,
                                                  const fleet::ListFilesRequest* request,
                                                  fleet::ListFilesResponse* response) {
  FleetServiceState* state = state_.get();
  const absl::Time deadline = internal::DeadlineOf(*context);
  const std::string path = request->path().empty() ? "/" : request->path();
  return ServeAsync(state, context, *request, internal::kListFiles, absl::StrCat(request->board(), " ", path),
                    [state, request, response, deadline, path](std::shared_ptr<UnaryCall> call) {
                      if (absl::Status s = CheckBoardPath("path", path, "ListFilesRequest.path"); !s.ok()) {
                        return call->Finish(s);
                      }
                      absl::StatusOr<std::shared_ptr<BoardClient>> board = state->Reachable(request->board());
                      if (!board.ok()) return call->Finish(board.status());
                      pb::ListFilesRequest list;
                      list.set_path(path);
                      list.set_with_sha256(true);
                      (*board)->ListFiles(
                          list, {.deadline = deadline},
                          state->OnPool<absl::StatusOr<pb::ListFilesResponse>>(
                              [call, request, response, path](absl::StatusOr<pb::ListFilesResponse> listed) {
                                if (!listed.ok()) return call->Finish(listed.status());
                                response->set_board(request->board());
                                response->set_path(path);
                                *response->mutable_entries() = std::move(*listed->mutable_entries());
                                response->set_truncated(listed->truncated());
                                call->Finish(absl::OkStatus());
                              }));
                    });
}

grpc::ServerUnaryReactor* FleetService::DeleteFile(grpc::CallbackServerContext* context,
                                                   const fleet::DeleteFileRequest* request,
                                                   fleet::DeleteFileResponse*) {
  FleetServiceState* state = state_.get();
  const absl::Time deadline = internal::DeadlineOf(*context);
  return ServeAsync(
      state, context, *request, internal::kDeleteFile, absl::StrCat(request->board(), " ", request->path()),
      [state, request, deadline](std::shared_ptr<UnaryCall> call) {
        if (absl::Status s = CheckBoardPath("path", request->path(), "DeleteFileRequest.path"); !s.ok()) {
          return call->Finish(s);
        }
        absl::StatusOr<std::shared_ptr<BoardClient>> board = state->Reachable(request->board());
        if (!board.ok()) return call->Finish(board.status());
        (*board)->DeleteFile(
            request->path(), {.deadline = deadline},
            state->OnPool<absl::Status>([call](absl::Status deleted) { call->Finish(deleted); }));
      });
}

// ---- Programs and threads

grpc::ServerUnaryReactor* FleetService::RunProgram(grpc::CallbackServerContext* context,
                                                   const fleet::RunProgramRequest* request,
                                                   fleet::RunProgramResponse* response) {
  FleetServiceState* state = state_.get();
  const absl::Time deadline = internal::DeadlineOf(*context);
  return ServeAsync(
      state, context, *request, internal::kRunProgram,
      SelectorTarget(request->selector()) + " " + request->path(),
      [state, request, response, deadline](std::shared_ptr<UnaryCall> call) {
        const std::string name = request->name().empty() ? BaseName(request->path()) : request->name();
        if (absl::Status checked = CheckRunProgram(*request, name); !checked.ok())
          return call->Finish(checked);
        absl::StatusOr<std::vector<BoardRecord>> boards = state->deps.inventory->Select(request->selector());
        if (!boards.ok()) return call->Finish(boards.status());
        if (boards->empty()) {
          return call->Finish(absl::FailedPreconditionError(
              absl::StrCat("the selector (", SelectorTarget(request->selector()), ") picks no board")));
        }
        // Every result exists before the fan-out: each board's task fills
        // its own, from whichever thread.
        for (const BoardRecord& b : *boards) response->add_results()->set_board(b.name);
        FanOut(
            *state->pool, boards->size(),
            [state, call, request, response, name, deadline](size_t i, std::function<void()> done) {
              fleet::BoardProgramStart* result = response->mutable_results(static_cast<int>(i));
              absl::StatusOr<std::shared_ptr<BoardClient>> board = state->ReachableClient(result->board());
              if (!board.ok()) {
                *result->mutable_error() = ToBoardError(board.status());
                return done();
              }
              pb::StartProgramRequest start;
              start.set_path(request->path());
              start.set_name(name);
              for (const std::string& a : request->args()) start.add_args(a);
              (*board)->StartProgram(
                  start, {.deadline = deadline},
                  state->OnPool<absl::StatusOr<pb::StartProgramResponse>>(
                      [state, call, request, result, name,
                       done](absl::StatusOr<pb::StartProgramResponse> started) {
                        if (!started.ok()) {
                          *result->mutable_error() = ToBoardError(started.status());
                          return done();
                        }
                        result->set_program_id(started->program_id());
                        result->set_main_thread_id(started->main_thread_id());
                        absl::StatusOr<int64_t> recorded = state->deps.store->AddProgram(ProgramRecord{
                            .board = result->board(),
                            .board_program_id = started->program_id(),
                            .main_thread_id = started->main_thread_id(),
                            .name = name,
                            .path = request->path(),
                            .script_sha256_hex = state->PushedSha(result->board(), request->path()),
                            .args = std::vector<std::string>(request->args().begin(), request->args().end()),
                            .started_by = call->caller().name,
                            .start_time = absl::Now()});
                        if (!recorded.ok()) {
                          std::fprintf(stderr, "fleetd: program of board %s not recorded: %s\n",
                                       result->board().c_str(), recorded.status().ToString().c_str());
                        }
                        done();
                      }));
            },
            [call, response] {
              std::vector<std::pair<std::string, absl::Status>> failures;
              for (const fleet::BoardProgramStart& r : response->results()) {
                if (r.has_error()) {
                  failures.emplace_back(
                      r.board(),
                      absl::Status(static_cast<absl::StatusCode>(r.error().code()), r.error().message()));
                }
              }
              call->set_audit_message(FanOutSummary(response->results_size(), failures));
              call->Finish(absl::OkStatus());
            });
      });
}

grpc::ServerUnaryReactor* FleetService::StartThread(grpc::CallbackServerContext* context,
                                                    const fleet::StartThreadRequest* request,
                                                    fleet::StartThreadResponse* response) {
  FleetServiceState* state = state_.get();
  const std::string target = absl::StrCat(request->board(), " ", request->module(), ".", request->function());
  const absl::Time deadline = internal::DeadlineOf(*context);
  return ServeAsync(
      state, context, *request, internal::kStartThread, target,
      [state, request, response, deadline](std::shared_ptr<UnaryCall> call) {
        if (absl::Status checked = CheckStartThread(*request); !checked.ok()) return call->Finish(checked);
        absl::StatusOr<std::shared_ptr<BoardClient>> board = state->Reachable(request->board());
        if (!board.ok()) return call->Finish(board.status());
        pb::StartThreadRequest start;
        start.set_module(request->module());
        start.set_function(request->function());
        for (const std::string& a : request->args()) start.add_args(a);
        (*board)->StartThread(
            start, {.deadline = deadline},
            state->OnPool<absl::StatusOr<pb::StartThreadResponse>>(
                [state, call, request, response](absl::StatusOr<pb::StartThreadResponse> started) {
                  if (!started.ok()) return call->Finish(started.status());
                  response->set_program_id(started->program_id());
                  response->set_thread_id(started->thread_id());
                  absl::StatusOr<int64_t> recorded = state->deps.store->AddProgram(ProgramRecord{
                      .board = request->board(),
                      .board_program_id = started->program_id(),
                      .main_thread_id = started->thread_id(),
                      .name = request->function(),
                      .path = absl::StrCat(request->module(), ".", request->function()),
                      .args = std::vector<std::string>(request->args().begin(), request->args().end()),
                      .started_by = call->caller().name,
                      .start_time = absl::Now()});
                  if (!recorded.ok()) {
                    std::fprintf(stderr, "fleetd: program of board %s not recorded: %s\n",
                                 request->board().c_str(), recorded.status().ToString().c_str());
                  }
                  call->Finish(absl::OkStatus());
                }));
      });
}

grpc::ServerUnaryReactor* FleetService::KillThread(grpc::CallbackServerContext* context,
                                                   const fleet::KillThreadRequest* request,
                                                   fleet::KillThreadResponse* response) {
  FleetServiceState* state = state_.get();
  const std::string target = absl::StrCat(request->board(), "/", request->thread_id());
  const absl::Time deadline = internal::DeadlineOf(*context);
  return ServeAsync(state, context, *request, internal::kKillThread, target,
                    [state, request, response, deadline](std::shared_ptr<UnaryCall> call) {
                      if (absl::Status grace = state->CheckGrace(request->grace_ms()); !grace.ok())
                        return call->Finish(grace);
                      absl::StatusOr<std::shared_ptr<BoardClient>> board = state->Reachable(request->board());
                      if (!board.ok()) return call->Finish(board.status());
                      (*board)->KillThread(
                          request->thread_id(), absl::Milliseconds(request->grace_ms()),
                          {.deadline = deadline},
                          state->OnPool<absl::StatusOr<pb::ThreadInfo>>(
                              [state, call, request, response](absl::StatusOr<pb::ThreadInfo> thread) {
                                if (!thread.ok()) return call->Finish(thread.status());
                                // Readers see the kill now, not at the board's next snapshot.
                                state->deps.health->UpdateThread(request->board(), *thread);
                                *response->mutable_thread() = *std::move(thread);
                                call->Finish(absl::OkStatus());
                              }));
                    });
}

grpc::ServerUnaryReactor* FleetService::KillProgram(grpc::CallbackServerContext* context,
                                                    const fleet::KillProgramRequest* request,
                                                    fleet::KillProgramResponse* response) {
  FleetServiceState* state = state_.get();
  const std::string target = absl::StrCat(request->board(), "/program/", request->program_id());
  const absl::Time deadline = internal::DeadlineOf(*context);
  return ServeAsync(state, context, *request, internal::kKillProgram, target,
                    [state, request, response, deadline](std::shared_ptr<UnaryCall> call) {
                      if (absl::Status grace = state->CheckGrace(request->grace_ms()); !grace.ok())
                        return call->Finish(grace);
                      absl::StatusOr<std::shared_ptr<BoardClient>> board = state->Reachable(request->board());
                      if (!board.ok()) return call->Finish(board.status());
                      (*board)->KillProgram(request->program_id(), absl::Milliseconds(request->grace_ms()),
                                            {.deadline = deadline},
                                            state->OnPool<absl::StatusOr<pb::KillProgramResponse>>(
                                                [state, call, request, response, board = *board,
                                                 deadline](absl::StatusOr<pb::KillProgramResponse> killed) {
                                                  if (!killed.ok()) return call->Finish(killed.status());
                                                  *response->mutable_program() = killed->program();
                                                  for (uint32_t id : killed->unkillable_thread_ids())
                                                    response->add_unkillable_thread_ids(id);
                                                  ApplyKilledProgram(
                                                      state, board, request->board(), killed->program(),
                                                      deadline, [call] { call->Finish(absl::OkStatus()); });
                                                }));
                    });
}

grpc::ServerUnaryReactor* FleetService::ListThreads(grpc::CallbackServerContext* context,
                                                    const fleet::ListThreadsRequest* request,
                                                    fleet::ListThreadsResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kListThreads, SelectorTarget(request->selector()),
               [state, request, response](UnaryCall&) {
                 absl::StatusOr<std::vector<BoardRecord>> boards =
                     state->deps.inventory->Select(request->selector());
                 if (!boards.ok()) return boards.status();
                 for (const BoardRecord& b : *boards) {
                   fleet::BoardThreads* out = response->add_boards();
                   out->set_board(b.name);
                   out->set_state(state->View(b.name).state);
                   if (out->state() == fleet::BOARD_STATE_OFFLINE) continue;
                   std::optional<pb::HealthSnapshot> latest = state->deps.health->Latest(b.name);
                   if (!latest.has_value()) continue;
                   for (const pb::ThreadInfo& t : latest->threads()) {
                     if (request->include_finished() || IsLive(t.state())) *out->add_threads() = t;
                   }
                   for (const pb::ProgramInfo& p : latest->programs()) {
                     if (request->include_finished() || p.state() == pb::PROGRAM_STATE_RUNNING) {
                       *out->add_programs() = p;
                     }
                   }
                 }
                 return absl::OkStatus();
               });
}

// ---- Machine

grpc::ServerUnaryReactor* FleetService::GetMachine(grpc::CallbackServerContext* context,
                                                   const fleet::GetMachineRequest* request,
                                                   fleet::GetMachineResponse* response) {
  FleetServiceState* state = state_.get();
  const absl::Time deadline = internal::DeadlineOf(*context);
  return ServeAsync(state, context, *request, internal::kGetMachine, request->board(),
                    [state, request, response, deadline](std::shared_ptr<UnaryCall> call) {
                      absl::StatusOr<std::shared_ptr<BoardClient>> board = state->Reachable(request->board());
                      if (!board.ok()) return call->Finish(board.status());
                      (*board)->GetMachine({.deadline = deadline},
                                           state->OnPool<absl::StatusOr<pb::MachineState>>(
                                               [call, response](absl::StatusOr<pb::MachineState> machine) {
                                                 if (!machine.ok()) return call->Finish(machine.status());
                                                 *response->mutable_machine() = *std::move(machine);
                                                 call->Finish(absl::OkStatus());
                                               }));
                    });
}

grpc::ServerUnaryReactor* FleetService::SetPin(grpc::CallbackServerContext* context,
                                               const fleet::SetPinRequest* request,
                                               fleet::SetPinResponse* response) {
  FleetServiceState* state = state_.get();
  const absl::Time deadline = internal::DeadlineOf(*context);
  return ServeAsync(
      state, context, *request, internal::kSetPin, absl::StrCat(request->board(), "/pin ", request->pin()),
      [state, request, response, deadline](std::shared_ptr<UnaryCall> call) {
        if (absl::Status s = common::CheckPinNumber("pin", request->pin()); !s.ok()) return call->Finish(s);
        if (!request->release()) {
          if (absl::Status s = common::CheckPinLevel("value", request->value()); !s.ok())
            return call->Finish(s);
        }
        absl::StatusOr<std::shared_ptr<BoardClient>> board = state->Reachable(request->board());
        if (!board.ok()) return call->Finish(board.status());
        pb::SetPinRequest set;
        set.set_pin(request->pin());
        set.set_value(request->value());
        set.set_release(request->release());
        call->set_audit_message(request->release() ? "released"
                                                   : absl::StrCat("driven to ", request->value()));
        (*board)->SetPin(
            set, {.deadline = deadline},
            state->OnPool<absl::StatusOr<pb::PinState>>([call, response](absl::StatusOr<pb::PinState> pin) {
              if (!pin.ok()) return call->Finish(pin.status());
              *response->mutable_pin() = *std::move(pin);
              call->Finish(absl::OkStatus());
            }));
      });
}

grpc::ServerUnaryReactor* FleetService::SetAdc(grpc::CallbackServerContext* context,
                                               const fleet::SetAdcRequest* request,
                                               fleet::SetAdcResponse* response) {
  FleetServiceState* state = state_.get();
  const absl::Time deadline = internal::DeadlineOf(*context);
  return ServeAsync(state, context, *request, internal::kSetAdc,
                    absl::StrCat(request->board(), "/adc ", request->channel()),
                    [state, request, response, deadline](std::shared_ptr<UnaryCall> call) {
                      if (absl::Status s = common::CheckAdcChannel("channel", request->channel()); !s.ok())
                        return call->Finish(s);
                      if (absl::Status s = common::CheckAdcValue("value_u16", request->value_u16()); !s.ok())
                        return call->Finish(s);
                      absl::StatusOr<std::shared_ptr<BoardClient>> board = state->Reachable(request->board());
                      if (!board.ok()) return call->Finish(board.status());
                      pb::SetAdcRequest set;
                      set.set_channel(request->channel());
                      set.set_value_u16(request->value_u16());
                      call->set_audit_message(absl::StrCat("set to ", request->value_u16()));
                      (*board)->SetAdc(set, {.deadline = deadline},
                                       state->OnPool<absl::StatusOr<pb::AdcState>>(
                                           [call, response](absl::StatusOr<pb::AdcState> adc) {
                                             if (!adc.ok()) return call->Finish(adc.status());
                                             *response->mutable_adc() = *std::move(adc);
                                             call->Finish(absl::OkStatus());
                                           }));
                    });
}

grpc::ServerUnaryReactor* FleetService::ResetBoard(grpc::CallbackServerContext* context,
                                                   const fleet::ResetBoardRequest* request,
                                                   fleet::ResetBoardResponse* response) {
  FleetServiceState* state = state_.get();
  const absl::Time deadline = internal::DeadlineOf(*context);
  const std::string target =
      request->safe_boot() ? absl::StrCat(request->board(), " (safe boot)") : request->board();
  return ServeAsync(
      state, context, *request, internal::kResetBoard, target,
      [state, request, response, deadline](std::shared_ptr<UnaryCall> call) {
        absl::StatusOr<std::shared_ptr<BoardClient>> board = state->Reachable(request->board());
        if (!board.ok()) return call->Finish(board.status());
        pb::ResetRequest reset;
        reset.set_safe_boot(request->safe_boot());
        (*board)->Reset(
            reset, {.deadline = deadline},
            state->OnPool<absl::StatusOr<pb::ResetResponse>>([state, call, request, response, board = *board,
                                                              deadline](absl::StatusOr<pb::ResetResponse> r) {
              if (!r.ok()) return call->Finish(r.status());
              response->set_hard(r->hard());
              if (r->hard()) {
                // The board restarts: nothing to list until its link is back.
                call->set_audit_message("hard reset: threads stuck in native code; the board restarted");
                return call->Finish(absl::OkStatus());
              }
              call->set_audit_message("fresh VM");
              ApplyReset(state, board, request->board(), deadline,
                         [call] { call->Finish(absl::OkStatus()); });
            }));
      });
}

// ---- Output

grpc::ServerWriteReactor<fleet::StreamOutputResponse>* FleetService::StreamOutput(
    grpc::CallbackServerContext* context, const fleet::StreamOutputRequest* request) {
  return internal::StartOutputStream(state_.get(), *request, AuthorizationOf(*context),
                                     internal::DeadlineOf(*context));
}

// ---- Health

grpc::ServerUnaryReactor* FleetService::GetHealth(grpc::CallbackServerContext* context,
                                                  const fleet::GetHealthRequest* request,
                                                  fleet::GetHealthResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(
      state, context, *request, internal::kGetHealth, SelectorTarget(request->selector()),
      [state, request, response](UnaryCall&) {
        absl::StatusOr<std::vector<BoardRecord>> boards = state->deps.inventory->Select(request->selector());
        if (!boards.ok()) return boards.status();
        for (const BoardRecord& b : *boards) {
          fleet::BoardHealth* out = response->add_boards();
          out->set_board(b.name);
          const internal::BoardView view = state->View(b.name);
          out->set_state(view.state);
          std::optional<pb::HealthSnapshot> latest = state->deps.health->Latest(b.name);
          if (latest.has_value()) {
            *out->mutable_snapshot() = *std::move(latest);
            if (view.last_snapshot != absl::InfinitePast()) {
              *out->mutable_snapshot_time() = ToTimestamp(view.last_snapshot);
            }
          }
          std::vector<AnomalyEvent> anomalies = state->deps.health->ActiveAnomalies(b.name);
          std::stable_sort(anomalies.begin(), anomalies.end(),
                           [](const AnomalyEvent& x, const AnomalyEvent& y) { return x.time > y.time; });
          for (const AnomalyEvent& a : anomalies) *out->add_anomalies() = AnomalyToEvent(a);
        }
        return absl::OkStatus();
      });
}

grpc::ServerWriteReactor<fleet::WatchHealthResponse>* FleetService::WatchHealth(
    grpc::CallbackServerContext* context, const fleet::WatchHealthRequest* request) {
  return internal::StartWatchHealth(state_.get(), *request, AuthorizationOf(*context));
}

grpc::ServerUnaryReactor* FleetService::GetHealthHistory(grpc::CallbackServerContext* context,
                                                         const fleet::GetHealthHistoryRequest* request,
                                                         fleet::GetHealthHistoryResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kGetHealthHistory, request->board(),
               [state, request, response](UnaryCall&) {
                 if (request->window_ms() < 0) {
                   return absl::InvalidArgumentError(absl::StrCat("window_ms is ", request->window_ms(),
                                                                  ": must be 0 (all kept) or positive"));
                 }
                 absl::StatusOr<BoardRecord> board = state->deps.inventory->Get(request->board());
                 if (!board.ok()) return board.status();
                 if (state->deps.history == nullptr) {
                   return absl::UnimplementedError("this fleetd keeps no health history");
                 }
                 state->deps.history->Query(board->name, absl::Milliseconds(request->window_ms()),
                                            absl::Now(), *response);
                 return absl::OkStatus();
               });
}

// ---- Events

grpc::ServerUnaryReactor* FleetService::ListEvents(grpc::CallbackServerContext* context,
                                                   const fleet::ListEventsRequest* request,
                                                   fleet::ListEventsResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kListEvents, SelectorTarget(request->selector()),
               [state, request, response](UnaryCall&) {
                 absl::Status limit = CheckLimit(request->limit());
                 if (!limit.ok()) return limit;
                 response->set_next_after_id(request->after_id());
                 absl::StatusOr<std::optional<std::set<std::string>>> boards =
                     state->EventBoards(request->selector());
                 if (!boards.ok()) return boards.status();
                 if (boards->has_value() && (*boards)->empty()) return absl::OkStatus();
                 EventQuery query{.after_id = static_cast<int64_t>(request->after_id()),
                                  .min_severity = request->min_severity(),
                                  .limit = PageSize(request->limit())};
                 if (boards->has_value()) query.boards.assign((*boards)->begin(), (*boards)->end());
                 absl::StatusOr<std::vector<fleet::Event>> events = state->deps.store->ListEvents(query);
                 if (!events.ok()) return events.status();
                 for (fleet::Event& e : *events) {
                   response->set_next_after_id(e.id());
                   *response->add_events() = std::move(e);
                 }
                 return absl::OkStatus();
               });
}

grpc::ServerWriteReactor<fleet::WatchEventsResponse>* FleetService::WatchEvents(
    grpc::CallbackServerContext* context, const fleet::WatchEventsRequest* request) {
  return internal::StartWatchEvents(state_.get(), *request, AuthorizationOf(*context));
}

// ---- Jobs: the runner answers; these adapt, authorize and audit.

grpc::ServerUnaryReactor* FleetService::ApplyJob(grpc::CallbackServerContext* context,
                                                 const fleet::ApplyJobRequest* request,
                                                 fleet::ApplyJobResponse* response) {
  FleetServiceState* state = state_.get();
  // The job's name is in the spec: the target names the file until it parsed.
  const std::string target =
      absl::StrCat("job spec ", request->spec_file().empty() ? "spec" : request->spec_file());
  return Serve(state, context, *request, internal::kApplyJob, target,
               [state, request, response](UnaryCall& call) {
                 if (state->deps.jobs == nullptr) return JobsNotEnabled();
                 absl::StatusOr<jobs::JobRunner::Applied> applied = state->deps.jobs->ApplyJob(*request);
                 if (!applied.ok()) return applied.status();
                 call.set_target(absl::StrCat("job ", applied->job.name()));
                 call.set_audit_message(absl::StrCat("version ", applied->job.version(),
                                                     applied->changed ? "" : " (unchanged)", ", ",
                                                     applied->job.files_size(), " files"));
                 *response->mutable_job() = std::move(applied->job);
                 response->set_changed(applied->changed);
                 return absl::OkStatus();
               });
}

grpc::ServerUnaryReactor* FleetService::DeleteJob(grpc::CallbackServerContext* context,
                                                  const fleet::DeleteJobRequest* request,
                                                  fleet::DeleteJobResponse*) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kDeleteJob, "job " + request->name(),
               [state, request](UnaryCall&) {
                 if (state->deps.jobs == nullptr) return JobsNotEnabled();
                 return state->deps.jobs->DeleteJob(request->name());
               });
}

grpc::ServerUnaryReactor* FleetService::RunJob(grpc::CallbackServerContext* context,
                                               const fleet::RunJobRequest* request,
                                               fleet::RunJobResponse* response) {
  FleetServiceState* state = state_.get();
  const absl::Time deadline = internal::DeadlineOf(*context);
  return ServeAsync(state, context, *request, internal::kRunJob, "job " + request->name(),
                    [state, request, response, deadline](std::shared_ptr<UnaryCall> call) {
                      if (state->deps.jobs == nullptr) return call->Finish(JobsNotEnabled());
                      absl::StatusOr<fleet::Run> run = state->deps.jobs->StartRun(
                          request->name(), absl::StrCat("manual:", call->caller().name));
                      if (!run.ok()) return call->Finish(run.status());
                      call->set_audit_message(absl::StrCat("run ", run->id()));
                      if (!request->wait()) {
                        *response->mutable_run() = *std::move(run);
                        return call->Finish(absl::OkStatus());
                      }
                      internal::FinishWhenRunEnds(
                          state, call, run->id(), deadline,
                          [response](const fleet::Run& ended) { *response->mutable_run() = ended; });
                    });
}

grpc::ServerUnaryReactor* FleetService::ListJobs(grpc::CallbackServerContext* context,
                                                 const fleet::ListJobsRequest* request,
                                                 fleet::ListJobsResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kListJobs, "jobs", [state, response](UnaryCall&) {
    if (state->deps.jobs == nullptr) return JobsNotEnabled();
    absl::StatusOr<std::vector<fleet::Job>> jobs = state->deps.jobs->ListJobs();
    if (!jobs.ok()) return jobs.status();
    for (fleet::Job& job : *jobs) *response->add_jobs() = std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* FleetService::ListRuns(grpc::CallbackServerContext* context,
                                                 const fleet::ListRunsRequest* request,
                                                 fleet::ListRunsResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kListRuns,
               request->job_name().empty() ? "runs" : "job " + request->job_name(),
               [state, request, response](UnaryCall&) {
                 if (absl::Status limit = CheckLimit(request->limit()); !limit.ok()) return limit;
                 if (state->deps.jobs == nullptr) return JobsNotEnabled();
                 absl::StatusOr<fleet::ListRunsResponse> runs = state->deps.jobs->ListRuns(*request);
                 if (!runs.ok()) return runs.status();
                 *response = *std::move(runs);
                 return absl::OkStatus();
               });
}

grpc::ServerUnaryReactor* FleetService::GetRun(grpc::CallbackServerContext* context,
                                               const fleet::GetRunRequest* request,
                                               fleet::GetRunResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(
      state, context, *request, internal::kGetRun, absl::StrCat("run ", request->id()),
      [state, request, response](UnaryCall&) {
        if (state->deps.jobs == nullptr) return JobsNotEnabled();
        // Output is up to 64 KiB per run step: one board's at a time
        // bounds the answer by the spec's steps, not by the lab's size.
        if (request->with_output() && request->board().empty()) {
          return absl::InvalidArgumentError(
              "GetRunRequest.with_output needs a board: the output of one board's run steps at a time");
        }
        absl::StatusOr<fleet::Run> run =
            state->deps.jobs->GetRun(request->id(), request->with_output(), request->board());
        if (!run.ok()) return run.status();
        *response->mutable_run() = *std::move(run);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* FleetService::CancelRun(grpc::CallbackServerContext* context,
                                                  const fleet::CancelRunRequest* request,
                                                  fleet::CancelRunResponse* response) {
  FleetServiceState* state = state_.get();
  return ServeAsync(
      state, context, *request, internal::kCancelRun, absl::StrCat("run ", request->id()),
      [state, request, response](std::shared_ptr<UnaryCall> call) {
        if (state->deps.jobs == nullptr) return call->Finish(JobsNotEnabled());
        state->deps.jobs->CancelRun(
            request->id(), call->caller().name, [state, call, response](absl::StatusOr<fleet::Run> ended) {
              // On the runner's thread: finishing writes the audit log, so on the pool.
              state->pool->Submit([call, response, ended = std::move(ended)]() mutable {
                if (!ended.ok()) return call->Finish(ended.status());
                call->set_audit_message(absl::StrCat("run ended ", fleet::RunState_Name(ended->state())));
                *response->mutable_run() = *std::move(ended);
                call->Finish(absl::OkStatus());
              });
            });
      });
}

grpc::ServerWriteReactor<fleet::WatchRunResponse>* FleetService::WatchRun(
    grpc::CallbackServerContext* context, const fleet::WatchRunRequest* request) {
  return internal::StartWatchRun(state_.get(), *request, AuthorizationOf(*context));
}

grpc::ServerUnaryReactor* FleetService::ReleaseBoard(grpc::CallbackServerContext* context,
                                                     const fleet::ReleaseBoardRequest* request,
                                                     fleet::ReleaseBoardResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(
      state, context, *request, internal::kReleaseBoard, request->name(),
      [state, request, response](UnaryCall& call) {
        if (state->deps.jobs == nullptr) return JobsNotEnabled();
        const bool was_quarantined = state->deps.jobs->QuarantineOf(request->name()).has_value();
        if (absl::Status released = state->deps.jobs->ReleaseBoard(request->name(), call.caller().name);
            !released.ok()) {
          return released;
        }
        absl::StatusOr<BoardRecord> board = state->deps.inventory->Get(request->name());
        if (!board.ok()) return board.status();
        call.set_audit_message(was_quarantined ? "released from quarantine" : "was not quarantined");
        *response->mutable_board() = state->ToProto(*board);
        return absl::OkStatus();
      });
}

// ---- Tokens

grpc::ServerUnaryReactor* FleetService::CreateToken(grpc::CallbackServerContext* context,
                                                    const fleet::CreateTokenRequest* request,
                                                    fleet::CreateTokenResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(
      state, context, *request, internal::kCreateToken, "token " + request->name(),
      [state, request, response](UnaryCall& call) {
        absl::StatusOr<IssuedToken> issued =
            state->deps.tokens->Create(request->name(), request->role(), call.caller().name, absl::Now());
        if (!issued.ok()) return issued.status();
        *response->mutable_token() = ToProto(issued->record);
        response->set_secret(issued->secret);
        call.set_audit_message(absl::StrCat("role ", RoleName(request->role()), ", id ", issued->record.id));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* FleetService::ListTokens(grpc::CallbackServerContext* context,
                                                   const fleet::ListTokensRequest* request,
                                                   fleet::ListTokensResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kListTokens, "tokens", [state, response](UnaryCall&) {
    absl::StatusOr<std::vector<TokenRecord>> tokens = state->deps.tokens->List();
    if (!tokens.ok()) return tokens.status();
    for (const TokenRecord& t : *tokens) *response->add_tokens() = ToProto(t);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* FleetService::RevokeToken(grpc::CallbackServerContext* context,
                                                    const fleet::RevokeTokenRequest* request,
                                                    fleet::RevokeTokenResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(state, context, *request, internal::kRevokeToken, absl::StrCat("token id ", request->id()),
               [state, request, response](UnaryCall& call) {
                 absl::StatusOr<TokenRecord> revoked =
                     state->deps.tokens->Revoke(static_cast<int64_t>(request->id()), absl::Now());
                 if (!revoked.ok()) return revoked.status();
                 call.set_target(absl::StrCat("token ", revoked->name));
                 call.set_audit_message(absl::StrCat("id ", revoked->id));
                 *response->mutable_token() = ToProto(*revoked);
                 return absl::OkStatus();
               });
}

// ---- Audit

grpc::ServerUnaryReactor* FleetService::ListAudit(grpc::CallbackServerContext* context,
                                                  const fleet::ListAuditRequest* request,
                                                  fleet::ListAuditResponse* response) {
  FleetServiceState* state = state_.get();
  return Serve(
      state, context, *request, internal::kListAudit, "audit", [state, request, response](UnaryCall&) {
        absl::Status limit = CheckLimit(request->limit());
        if (!limit.ok()) return limit;
        if (request->before_id() != 0 && request->before_id() <= request->after_id()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "before_id ", request->before_id(), " must be larger than after_id ", request->after_id()));
        }
        response->set_next_after_id(request->after_id());
        const int page = PageSize(request->limit());
        // One more than the page: whether older entries remain, without a count.
        absl::StatusOr<std::vector<AuditRecord>> entries =
            state->deps.store->ListAudit(AuditQuery{.after_id = static_cast<int64_t>(request->after_id()),
                                                    .before_id = static_cast<int64_t>(request->before_id()),
                                                    .limit = page + 1});
        if (!entries.ok()) return entries.status();
        const bool more = entries->size() > static_cast<size_t>(page);
        if (more) entries->pop_back();
        for (const AuditRecord& r : *entries) *response->add_entries() = ToProto(r);
        if (!entries->empty()) {
          response->set_next_after_id(static_cast<uint64_t>(entries->front().id));
          if (more) response->set_next_before_id(static_cast<uint64_t>(entries->back().id));
        }
        return absl::OkStatus();
      });
}

// ---- The caller

grpc::ServerUnaryReactor* FleetService::WhoAmI(grpc::CallbackServerContext* context,
                                               const fleet::WhoAmIRequest* request,
                                               fleet::WhoAmIResponse* response) {
  return Serve(state_.get(), context, *request, internal::kWhoAmI, "caller", [response](UnaryCall& call) {
    response->set_token_name(call.caller().name);
    response->set_role(call.caller().role);
    return absl::OkStatus();
  });
}

}  // namespace threadfleet::fleetd
