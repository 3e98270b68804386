// How one Fleet API call runs: RpcSpec (its audit name, least role, whether
// it mutates), UnaryCall with Serve/ServeAsync for unary RPCs, and
// ServiceStream for server-streaming ones. Each checks the request's sizes
// first (request_limits.h: before any other work, unaudited), authorizes the
// caller (call_auth.h), records a mutation's intent in the audit log, runs
// the body on the state's worker pool, records the outcome the client saw
// and finishes the reactor.
//
// Example (a unary handler of FleetService):
//
//   return Serve(state, context, *request, kKillThread, "b01/7", [state](UnaryCall& call) {
//     return absl::OkStatus();  // finishes the call, its outcome audited
//   });
#ifndef THREADFLEET_SERVER_FLEETD_API_INTERNAL_SERVICE_CALL_H_
#define THREADFLEET_SERVER_FLEETD_API_INTERNAL_SERVICE_CALL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "server/fleetd/api/internal/api_values.h"
#include "server/fleetd/api/internal/service_state.h"
#include "server/fleetd/api/stream_reactor.h"
#include "server/fleetd/auth/call_auth.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd::internal {

namespace fleet = threadfleet::fleet::v1;
namespace pb = threadfleet::board::v1;

// Messages a stream may have queued for a slow client before it is ended.
inline constexpr size_t kMaxQueuedMessages = 4096;

// What each RPC needs: its audit name, the least role, and whether it
// changes something (then its result is audited too).
struct RpcSpec {
  absl::string_view action;
  fleet::Role need;
  bool mutating;
};

inline constexpr RpcSpec kListBoards{"Fleet.ListBoards", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kGetBoard{"Fleet.GetBoard", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kAddBoard{"Fleet.AddBoard", fleet::ROLE_ADMIN, true};
inline constexpr RpcSpec kRemoveBoard{"Fleet.RemoveBoard", fleet::ROLE_ADMIN, true};
inline constexpr RpcSpec kSetLabels{"Fleet.SetLabels", fleet::ROLE_ADMIN, true};
inline constexpr RpcSpec kPushFile{"Fleet.PushFile", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kListFiles{"Fleet.ListFiles", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kDeleteFile{"Fleet.DeleteFile", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kRunProgram{"Fleet.RunProgram", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kStartThread{"Fleet.StartThread", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kKillThread{"Fleet.KillThread", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kKillProgram{"Fleet.KillProgram", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kListThreads{"Fleet.ListThreads", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kGetMachine{"Fleet.GetMachine", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kSetPin{"Fleet.SetPin", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kSetAdc{"Fleet.SetAdc", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kResetBoard{"Fleet.ResetBoard", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kStreamOutput{"Fleet.StreamOutput", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kGetHealth{"Fleet.GetHealth", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kWatchHealth{"Fleet.WatchHealth", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kGetHealthHistory{"Fleet.GetHealthHistory", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kListEvents{"Fleet.ListEvents", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kWatchEvents{"Fleet.WatchEvents", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kApplyJob{"Fleet.ApplyJob", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kDeleteJob{"Fleet.DeleteJob", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kRunJob{"Fleet.RunJob", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kListJobs{"Fleet.ListJobs", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kListRuns{"Fleet.ListRuns", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kGetRun{"Fleet.GetRun", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kCancelRun{"Fleet.CancelRun", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kWatchRun{"Fleet.WatchRun", fleet::ROLE_VIEWER, false};
inline constexpr RpcSpec kReleaseBoard{"Fleet.ReleaseBoard", fleet::ROLE_OPERATOR, true};
inline constexpr RpcSpec kCreateToken{"Fleet.CreateToken", fleet::ROLE_ADMIN, true};
inline constexpr RpcSpec kListTokens{"Fleet.ListTokens", fleet::ROLE_ADMIN, false};
inline constexpr RpcSpec kRevokeToken{"Fleet.RevokeToken", fleet::ROLE_ADMIN, true};
inline constexpr RpcSpec kListAudit{"Fleet.ListAudit", fleet::ROLE_ADMIN, false};
inline constexpr RpcSpec kWhoAmI{"Fleet.WhoAmI", fleet::ROLE_VIEWER, false};

// The call's deadline; InfiniteFuture when the client set none.
absl::Time DeadlineOf(const grpc::ServerContextBase& context);

// The status a client got for a call that ended with `result`: `result`
// itself, unless the call ended after `deadline` (DEADLINE_EXCEEDED) or the
// client had cancelled it (CANCELLED) — then what fleetd did is in the
// message. What the audit log records.
absl::Status ClientSawStatus(const absl::Status& result, absl::Time deadline, bool cancelled, absl::Time now);

// One unary call: checks its request's sizes, authorizes it, records a
// mutation's intent before it runs and its outcome after, finishes its
// reactor.
class UnaryCall {
 public:
  UnaryCall(FleetServiceState* state, grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
            const RpcSpec& spec, std::string target)
      : state_(state),
        context_(context),
        reactor_(reactor),
        spec_(spec),
        target_(std::move(target)),
        authorization_(AuthorizationOf(*context)) {}

  // The size check every request passes first (request_limits.h); on refusal
  // finishes the call INVALID_ARGUMENT, unaudited (nothing ran, and an audit
  // row per oversized request is what an attacker wants), and returns false.
  bool CheckRequest(const google::protobuf::Message& request) {
    absl::Status sized = state_->limits.Check(request);
    if (sized.ok()) return true;
    reactor_->Finish(ToGrpc(sized));
    return false;
  }

  // Checks the caller's token; on refusal finishes the call (audited) and
  // returns false. For a mutating RPC, then records its intent; when that
  // cannot be written the call fails (UNAVAILABLE or DATA_LOSS) and returns
  // false, so no mutation runs unaudited.
  bool Authorize() {
    absl::StatusOr<Caller> caller = state_->auth.Authorize(authorization_, spec_.action, spec_.need, target_);
    if (!caller.ok()) {
      reactor_->Finish(ToGrpc(caller.status()));
      return false;
    }
    caller_ = *std::move(caller);
    if (!spec_.mutating) return true;
    absl::StatusOr<int64_t> intent = state_->auth.AuditIntent(caller_.name, spec_.action, target_);
    if (!intent.ok()) {
      reactor_->Finish(ToGrpc(intent.status()));
      return false;
    }
    intent_id_ = *intent;
    return true;
  }

  const Caller& caller() const { return caller_; }
  void set_target(std::string target) { target_ = std::move(target); }
  // A summary for the audit log when the call succeeds (e.g. per-board
  // failures of a fan-out).
  void set_audit_message(std::string message) { audit_message_ = std::move(message); }

  // Records a mutating call's outcome (as the client sees it), then finishes
  // it.
  void Finish(const absl::Status& status) {
    if (spec_.mutating) {
      const absl::Status seen =
          ClientSawStatus(status, DeadlineOf(*context_), context_->IsCancelled(), absl::Now());
      state_->auth.AuditOutcome(intent_id_, spec_.action, target_, seen, audit_message_);
    }
    reactor_->Finish(ToGrpc(status));
  }

 private:
  FleetServiceState* const state_;
  grpc::CallbackServerContext* const context_;
  grpc::ServerUnaryReactor* const reactor_;
  const RpcSpec spec_;
  std::string target_;
  const std::string authorization_;
  Caller caller_;
  std::string audit_message_;
  // The audit entry of a mutating call's intent.
  int64_t intent_id_ = 0;
};

// Runs a unary call: the request's size check (on gRPC's thread, before any
// other work), then on the worker pool authorization and `body`, which gets
// the call and must Finish it exactly once, from any thread (e.g. once its
// board has answered); the outcome is audited when the RPC is mutating.
template <typename Body>
grpc::ServerUnaryReactor* ServeAsync(FleetServiceState* state, grpc::CallbackServerContext* context,
                                     const google::protobuf::Message& request, const RpcSpec& spec,
                                     std::string target, Body body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto call = std::make_shared<UnaryCall>(state, context, reactor, spec, std::move(target));
  if (!call->CheckRequest(request)) return reactor;
  state->pool->Submit([call, body = std::move(body)]() mutable {
    if (!call->Authorize()) return;
    body(call);
  });
  return reactor;
}

// As ServeAsync, for a `body` that returns the status finishing the call.
template <typename Body>
grpc::ServerUnaryReactor* Serve(FleetServiceState* state, grpc::CallbackServerContext* context,
                                const google::protobuf::Message& request, const RpcSpec& spec,
                                std::string target, Body body) {
  return ServeAsync(
      state, context, request, spec, std::move(target),
      [body = std::move(body)](std::shared_ptr<UnaryCall> call) mutable { call->Finish(body(*call)); });
}

// A one-line summary of a fan-out's per-board failures for the audit log;
// "N boards ok" when every board succeeded.
std::string FanOutSummary(size_t boards, const std::vector<std::pair<std::string, absl::Status>>& failures);

// A streaming call's reactor with the state and the caller's token: Start()
// checks the request's sizes, then runs Run() on the pool after
// authorization (and, for a mutating RPC, after its intent is audited).
template <typename Message>
class ServiceStream : public StreamReactor<Message> {
 public:
  ServiceStream(FleetServiceState* state, const RpcSpec& spec, std::string target, std::string authorization,
                size_t max_queued = kMaxQueuedMessages)
      : StreamReactor<Message>(state->streams, *state->pool, max_queued),
        state_(state),
        spec_(spec),
        target_(std::move(target)),
        authorization_(std::move(authorization)) {}

  // Registers the stream and runs it on the pool; a request over the limits
  // ends it at once with INVALID_ARGUMENT, unaudited. Returns `this` for the
  // service method to return.
  StreamReactor<Message>* Start(const google::protobuf::Message& request) {
    this->Register();
    if (absl::Status sized = state_->limits.Check(request); !sized.ok()) {
      this->End(ToGrpc(sized));
      return this;
    }
    this->Hold();
    state_->pool->Submit([this] {
      if (!this->ending()) {
        absl::Status admitted = Admit();
        if (admitted.ok()) {
          Run();
        } else {
          this->End(ToGrpc(admitted));
        }
      }
      this->Release();
    });
    return this;
  }

 protected:
  // On the pool, after authorization. Ends the stream itself (End), or
  // arranges for producers to.
  virtual void Run() = 0;

  // Records a mutating stream's outcome: `status`, or `ok_message` when it is
  // OK — as the client sees it: CANCELLED when the stream had already ended
  // (client cancel, deadline, fleetd stopping) before this.
  void AuditOutcome(const absl::Status& status, absl::string_view ok_message = {}) {
    const absl::Status seen = ClientSawStatus(status, absl::InfiniteFuture(), this->ending(), absl::Now());
    state_->auth.AuditOutcome(intent_id_, spec_.action, target_, seen, ok_message);
  }

  FleetServiceState* const state_;
  const RpcSpec spec_;
  const std::string target_;
  const std::string authorization_;
  Caller caller_;

 private:
  // Authorization, then a mutation's intent.
  absl::Status Admit() {
    absl::StatusOr<Caller> caller = state_->auth.Authorize(authorization_, spec_.action, spec_.need, target_);
    if (!caller.ok()) return caller.status();
    caller_ = *std::move(caller);
    if (!spec_.mutating) return absl::OkStatus();
    absl::StatusOr<int64_t> intent = state_->auth.AuditIntent(caller_.name, spec_.action, target_);
    if (!intent.ok()) return intent.status();
    intent_id_ = *intent;
    return absl::OkStatus();
  }

  int64_t intent_id_ = 0;
};

}  // namespace threadfleet::fleetd::internal

#endif  // THREADFLEET_SERVER_FLEETD_API_INTERNAL_SERVICE_CALL_H_
