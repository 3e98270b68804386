// FleetService: fleetd's Fleet API (proto/threadfleet/fleet/v1/fleet.proto)
// as a gRPC callback service. It only adapts protobuf to the domain classes:
// the inventory answers "which boards?", the board links do the board calls,
// the health aggregator answers thread and health queries without a board
// round trip, the store keeps scripts, programs, events and the audit log,
// and the event hub feeds the watch streams.
//
// Example (what fleetd's main does):
//
//   FleetService service(FleetServiceDeps{.store = store.get(), .inventory = inventory.get(),
//                                          .links = &links, .health = &health,
//                                          .tokens = &tokens, .hub = &hub,
//                                          .board_calls = BoardCallLimits{}});
//   grpc::ServerBuilder builder;
//   builder.AddListeningPort("127.0.0.1:7443", tls_credentials, &port);
//   builder.RegisterService(&service);
//   std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
//   ...
//   service.Shutdown();  // ends the watch/follow streams
//   server->Shutdown();
//
// Every request's sizes are checked first (request_limits.h: INVALID_ARGUMENT
// naming the field and its limit, before any other work), then the call is
// authorized (call_auth.h: bearer token, role per RPC); every refused call is
// audited, and every mutating one twice: its intent before it runs, the
// outcome the client got after. Authorization, store work and audit run on
// the service's bounded worker pool (fan_out.h), never on gRPC's callback
// threads. Board calls are asynchronous (board_client.h): a handler starts
// them and returns its thread to the pool; what follows (records, audit,
// Finish) runs on the pool when the board answers. So no shared thread waits
// for a board: a busy or dead board slows only the calls to it, and
// authorization and reads never wait behind board work. Fan-outs (PushFile,
// RunProgram) start one call per board at once; offline boards fail at once
// with UNAVAILABLE. The caller's deadline goes to the board. Streams keep one
// write in flight and a bounded queue; a client that falls more than 4096
// messages behind gets RESOURCE_EXHAUSTED.
//
// Requests are checked before any board call: names, paths and arguments
// against the boards' limits (board.options), kill grace periods against
// BoardCallLimits::max_kill_grace; each refusal is INVALID_ARGUMENT naming
// the field and the limit.
//
// Board.info is the board's GetInfo answer on its current (or last)
// connection, fetched by the link when it connects; unset while the board
// was never reached. ListBoards, GetBoard, ListThreads and GetHealth answer
// from memory, never from the boards; a successful KillThread or
// KillProgram writes the records the board returned into the
// HealthAggregator at once, so a ListThreads right after the kill shows the
// threads killed. The SHA-256 recorded with a RunProgram is that of the last
// content this fleetd pushed to that (board, path), kept in memory (empty
// after a restart or for files pushed by other means).
//
// GetMachine asks the board (not the latest snapshot), so a job's check
// right after its SetPin sees the level the program set since. SetPin and
// SetAdc are audited with the target "BOARD/pin N" / "BOARD/adc N"; their
// input is checked first (machine_input.h: pin and channel below 256, value
// 0 or 1 unless release, ADC value at most 65535), the board's own refusals
// (a pin its profile lacks, an output pin) pass through with the board named.
//
// ResetBoard (operator) is audited with the target "BOARD", or "BOARD (safe
// boot)" with safe_boot, and "fresh VM" or "hard reset: ..." as its outcome.
// After a soft reset fleetd lists the board's threads and programs (ended
// ones included) into the HealthAggregator, so a ListThreads right after it
// shows the programs the reset killed; after a hard one the board restarts
// and its link reconnects (the board is OFFLINE for a moment).
//
// GetHealthHistory answers from the HealthHistory (deps.history): a board
// the inventory does not know is NOT_FOUND, a negative window_ms
// INVALID_ARGUMENT. WatchHealth's min_period_ms holds each board's
// snapshots back to one per period per stream (the newest is sent when the
// period ends; events and state changes go at once), bounded by
// kMaxWatchPeriodMs (INVALID_ARGUMENT above); summary_only strips each
// snapshot's threads, programs and metrics. WhoAmI answers the caller's token
// name and role to any valid token (not audited: it reads).
//
// Jobs RPCs adapt the JobRunner (jobs/job_runner.h): ApplyJob, DeleteJob,
// RunJob, ListJobs, ListRuns, GetRun, CancelRun, WatchRun, ReleaseBoard.
// RunJob with wait watches the run until it ended, or answers
// DEADLINE_EXCEEDED at the call's deadline while the run goes on; CancelRun
// answers once the run ended. WatchRun sends the whole run after each
// change; a client that reads slower than the run changes gets only the
// newest state (never more than one message waits), and always the last
// one. Runs started by a call carry the trigger "manual:<token name>".
// Without a JobRunner (deps.jobs null) every job RPC answers UNIMPLEMENTED
// after authorization.
#ifndef THREADFLEET_SERVER_FLEETD_API_FLEET_SERVICE_H_
#define THREADFLEET_SERVER_FLEETD_API_FLEET_SERVICE_H_

#include <memory>

#include "absl/time/time.h"
#include "server/fleetd/auth/request_limits.h"
#include "server/fleetd/auth/token.h"
#include "server/fleetd/health/event_hub.h"
#include "server/fleetd/health/health.h"
#include "server/fleetd/health/health_history.h"
#include "server/fleetd/inventory/inventory.h"
#include "server/fleetd/jobs/job_runner.h"
#include "server/fleetd/links/board_directory.h"
#include "server/fleetd/store/store.h"
#include "threadfleet/fleet/v1/fleet.grpc.pb.h"

namespace threadfleet::fleetd {

namespace internal {
class FleetServiceState;
}  // namespace internal

// The longest WatchHealthRequest.min_period_ms: a minute between a board's
// snapshots is already slower than any chart.
inline constexpr uint32_t kMaxWatchPeriodMs = 60000;

// Limits on the calls the service makes to boards (the per-board limits on
// calls in flight are the links': LinkOptions).
struct BoardCallLimits {
  // The longest grace period a KillThread/KillProgram may ask for; a longer
  // one is refused (INVALID_ARGUMENT naming this). The board waits up to two
  // of them, so this bounds how long one kill holds a call slot.
  absl::Duration max_kill_grace = absl::Seconds(10);
};

// What the service works on. The pointers are non-null (but `history` and
// `jobs`, which may be) and outlive the service.
struct FleetServiceDeps {
  Store* store = nullptr;
  Inventory* inventory = nullptr;
  // The boards' links: LinkManager, or a fake in unit tests.
  BoardDirectory* links = nullptr;
  HealthAggregator* health = nullptr;
  // Each board's recent samples for GetHealthHistory (fed by the
  // LabMonitor); null in a fleetd without it (GetHealthHistory then answers
  // UNIMPLEMENTED after authorization). RemoveBoard drops the board's.
  HealthHistory* history = nullptr;
  TokenAuthority* tokens = nullptr;
  EventHub* hub = nullptr;
  // Fleet test jobs; null in a fleetd without them (the job RPCs then answer
  // UNIMPLEMENTED, boards show no quarantine or reservation).
  jobs::JobRunner* jobs = nullptr;
  // The sizes every request is checked against before any work
  // (request_limits.h); fleetd.yaml's limits.request.
  RequestLimitOptions request_limits = {};
  BoardCallLimits board_calls;
};

class FleetService final : public threadfleet::fleet::v1::Fleet::CallbackService {
 public:
  // REQUIRES: every pointer of `deps` (but `jobs`) non-null and outliving the
  // service; `jobs`, when set, Shutdown() before the service is destroyed
  // (so every run, and every RunJob/CancelRun waiting for one, ends).
  explicit FleetService(FleetServiceDeps deps);
  // Ends open streams (as Shutdown), waits (30 s at most) for what follows
  // the board calls in flight, and for the worker pool's work.
  // REQUIRES: the grpc::Server serving it is shut down first.
  ~FleetService() override;

  FleetService(const FleetService&) = delete;
  FleetService& operator=(const FleetService&) = delete;

  // Ends every open streaming call (watch/follow streams finish with
  // UNAVAILABLE "fleetd is shutting down") so grpc::Server::Shutdown does not
  // wait on them; streams started after it end the same way at once.
  // Idempotent; safe from any thread but gRPC's callback threads.
  void Shutdown();

  // Fleet::CallbackService
  grpc::ServerUnaryReactor* ListBoards(grpc::CallbackServerContext* context,
                                       const threadfleet::fleet::v1::ListBoardsRequest* request,
                                       threadfleet::fleet::v1::ListBoardsResponse* response) override;
  grpc::ServerUnaryReactor* GetBoard(grpc::CallbackServerContext* context,
                                     const threadfleet::fleet::v1::GetBoardRequest* request,
                                     threadfleet::fleet::v1::GetBoardResponse* response) override;
  grpc::ServerUnaryReactor* AddBoard(grpc::CallbackServerContext* context,
                                     const threadfleet::fleet::v1::AddBoardRequest* request,
                                     threadfleet::fleet::v1::AddBoardResponse* response) override;
  grpc::ServerUnaryReactor* RemoveBoard(grpc::CallbackServerContext* context,
                                        const threadfleet::fleet::v1::RemoveBoardRequest* request,
                                        threadfleet::fleet::v1::RemoveBoardResponse* response) override;
  grpc::ServerUnaryReactor* SetLabels(grpc::CallbackServerContext* context,
                                      const threadfleet::fleet::v1::SetLabelsRequest* request,
                                      threadfleet::fleet::v1::SetLabelsResponse* response) override;
  grpc::ServerWriteReactor<threadfleet::fleet::v1::PushFileResponse>* PushFile(
      grpc::CallbackServerContext* context, const threadfleet::fleet::v1::PushFileRequest* request) override;
  grpc::ServerUnaryReactor* ListFiles(grpc::CallbackServerContext* context,
                                      const threadfleet::fleet::v1::ListFilesRequest* request,
                                      threadfleet::fleet::v1::ListFilesResponse* response) override;
  grpc::ServerUnaryReactor* DeleteFile(grpc::CallbackServerContext* context,
                                       const threadfleet::fleet::v1::DeleteFileRequest* request,
                                       threadfleet::fleet::v1::DeleteFileResponse* response) override;
  grpc::ServerUnaryReactor* RunProgram(grpc::CallbackServerContext* context,
                                       const threadfleet::fleet::v1::RunProgramRequest* request,
                                       threadfleet::fleet::v1::RunProgramResponse* response) override;
  grpc::ServerUnaryReactor* StartThread(grpc::CallbackServerContext* context,
                                        const threadfleet::fleet::v1::StartThreadRequest* request,
                                        threadfleet::fleet::v1::StartThreadResponse* response) override;
  grpc::ServerUnaryReactor* KillThread(grpc::CallbackServerContext* context,
                                       const threadfleet::fleet::v1::KillThreadRequest* request,
                                       threadfleet::fleet::v1::KillThreadResponse* response) override;
  grpc::ServerUnaryReactor* KillProgram(grpc::CallbackServerContext* context,
                                        const threadfleet::fleet::v1::KillProgramRequest* request,
                                        threadfleet::fleet::v1::KillProgramResponse* response) override;
  grpc::ServerUnaryReactor* ListThreads(grpc::CallbackServerContext* context,
                                        const threadfleet::fleet::v1::ListThreadsRequest* request,
                                        threadfleet::fleet::v1::ListThreadsResponse* response) override;
  grpc::ServerUnaryReactor* GetMachine(grpc::CallbackServerContext* context,
                                       const threadfleet::fleet::v1::GetMachineRequest* request,
                                       threadfleet::fleet::v1::GetMachineResponse* response) override;
  grpc::ServerUnaryReactor* SetPin(grpc::CallbackServerContext* context,
                                   const threadfleet::fleet::v1::SetPinRequest* request,
                                   threadfleet::fleet::v1::SetPinResponse* response) override;
  grpc::ServerUnaryReactor* SetAdc(grpc::CallbackServerContext* context,
                                   const threadfleet::fleet::v1::SetAdcRequest* request,
                                   threadfleet::fleet::v1::SetAdcResponse* response) override;
  grpc::ServerUnaryReactor* ResetBoard(grpc::CallbackServerContext* context,
                                       const threadfleet::fleet::v1::ResetBoardRequest* request,
                                       threadfleet::fleet::v1::ResetBoardResponse* response) override;
  grpc::ServerWriteReactor<threadfleet::fleet::v1::StreamOutputResponse>* StreamOutput(
      grpc::CallbackServerContext* context,
      const threadfleet::fleet::v1::StreamOutputRequest* request) override;
  grpc::ServerUnaryReactor* GetHealth(grpc::CallbackServerContext* context,
                                      const threadfleet::fleet::v1::GetHealthRequest* request,
                                      threadfleet::fleet::v1::GetHealthResponse* response) override;
  grpc::ServerWriteReactor<threadfleet::fleet::v1::WatchHealthResponse>* WatchHealth(
      grpc::CallbackServerContext* context,
      const threadfleet::fleet::v1::WatchHealthRequest* request) override;
  grpc::ServerUnaryReactor* GetHealthHistory(
      grpc::CallbackServerContext* context, const threadfleet::fleet::v1::GetHealthHistoryRequest* request,
      threadfleet::fleet::v1::GetHealthHistoryResponse* response) override;
  grpc::ServerUnaryReactor* ListEvents(grpc::CallbackServerContext* context,
                                       const threadfleet::fleet::v1::ListEventsRequest* request,
                                       threadfleet::fleet::v1::ListEventsResponse* response) override;
  grpc::ServerWriteReactor<threadfleet::fleet::v1::WatchEventsResponse>* WatchEvents(
      grpc::CallbackServerContext* context,
      const threadfleet::fleet::v1::WatchEventsRequest* request) override;
  grpc::ServerUnaryReactor* ApplyJob(grpc::CallbackServerContext* context,
                                     const threadfleet::fleet::v1::ApplyJobRequest* request,
                                     threadfleet::fleet::v1::ApplyJobResponse* response) override;
  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* context,
                                      const threadfleet::fleet::v1::DeleteJobRequest* request,
                                      threadfleet::fleet::v1::DeleteJobResponse* response) override;
  grpc::ServerUnaryReactor* RunJob(grpc::CallbackServerContext* context,
                                   const threadfleet::fleet::v1::RunJobRequest* request,
                                   threadfleet::fleet::v1::RunJobResponse* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const threadfleet::fleet::v1::ListJobsRequest* request,
                                     threadfleet::fleet::v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* ListRuns(grpc::CallbackServerContext* context,
                                     const threadfleet::fleet::v1::ListRunsRequest* request,
                                     threadfleet::fleet::v1::ListRunsResponse* response) override;
  grpc::ServerUnaryReactor* GetRun(grpc::CallbackServerContext* context,
                                   const threadfleet::fleet::v1::GetRunRequest* request,
                                   threadfleet::fleet::v1::GetRunResponse* response) override;
  grpc::ServerUnaryReactor* CancelRun(grpc::CallbackServerContext* context,
                                      const threadfleet::fleet::v1::CancelRunRequest* request,
                                      threadfleet::fleet::v1::CancelRunResponse* response) override;
  grpc::ServerWriteReactor<threadfleet::fleet::v1::WatchRunResponse>* WatchRun(
      grpc::CallbackServerContext* context, const threadfleet::fleet::v1::WatchRunRequest* request) override;
  grpc::ServerUnaryReactor* ReleaseBoard(grpc::CallbackServerContext* context,
                                         const threadfleet::fleet::v1::ReleaseBoardRequest* request,
                                         threadfleet::fleet::v1::ReleaseBoardResponse* response) override;
  grpc::ServerUnaryReactor* CreateToken(grpc::CallbackServerContext* context,
                                        const threadfleet::fleet::v1::CreateTokenRequest* request,
                                        threadfleet::fleet::v1::CreateTokenResponse* response) override;
  grpc::ServerUnaryReactor* ListTokens(grpc::CallbackServerContext* context,
                                       const threadfleet::fleet::v1::ListTokensRequest* request,
                                       threadfleet::fleet::v1::ListTokensResponse* response) override;
  grpc::ServerUnaryReactor* RevokeToken(grpc::CallbackServerContext* context,
                                        const threadfleet::fleet::v1::RevokeTokenRequest* request,
                                        threadfleet::fleet::v1::RevokeTokenResponse* response) override;
  grpc::ServerUnaryReactor* ListAudit(grpc::CallbackServerContext* context,
                                      const threadfleet::fleet::v1::ListAuditRequest* request,
                                      threadfleet::fleet::v1::ListAuditResponse* response) override;
  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* context,
                                   const threadfleet::fleet::v1::WhoAmIRequest* request,
                                   threadfleet::fleet::v1::WhoAmIResponse* response) override;

 private:
  // Everything the handlers and reactors share: deps, the worker pool, open
  // streams, pushed files. Tasks and reactors use it by pointer; the
  // destructor waits for them.
  std::unique_ptr<internal::FleetServiceState> state_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_API_FLEET_SERVICE_H_
