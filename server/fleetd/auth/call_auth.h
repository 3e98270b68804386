// CallAuthorizer: the gate every Fleet API call passes after its size check
// (request_limits.h). It reads the caller's bearer token, checks the role the
// call needs and writes the audit log: every refused call (any RPC), and for
// every call that changes something its intent before it runs
// (AuditIntent) and its outcome after (AuditOutcome).
//
// Example (in a handler):
//
//   absl::StatusOr<Caller> caller = auth.Authorize(AuthorizationOf(*context), "Fleet.KillThread",
//                                                  fleet::v1::ROLE_OPERATOR, "b01/7");
//   if (!caller.ok()) return caller.status();  // refused, already audited
//   absl::StatusOr<int64_t> intent = auth.AuditIntent(caller->name, "Fleet.KillThread", "b01/7");
//   if (!intent.ok()) return intent.status();  // not recorded: the kill does not run
//   absl::Status result = KillTheThread();
//   auth.AuditOutcome(*intent, "Fleet.KillThread", "b01/7", result);
//
// Targets and messages quote what callers sent, so both are cut to
// kMaxAuditTargetBytes / kMaxAuditMessageBytes before they are stored.
//
// Audit targets name what a call acts on: "b01" (a board), "b01/7" (thread
// 7 of b01), "b01/program/3", "selector lab=a" / "selector boards=b01,b02",
// "token ci", "job smoke". Actors are token names, or "anonymous" for a call
// without a valid token.
#ifndef THREADFLEET_SERVER_FLEETD_AUTH_CALL_AUTH_H_
#define THREADFLEET_SERVER_FLEETD_AUTH_CALL_AUTH_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "server/fleetd/auth/token.h"
#include "server/fleetd/store/store.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {

// The actor of calls without a valid token.
inline constexpr absl::string_view kAnonymousActor = "anonymous";

// The longest audit target and message stored; longer ones are cut
// (common::CutInput), so no caller makes an audit row large.
inline constexpr size_t kMaxAuditTargetBytes = 256;
inline constexpr size_t kMaxAuditMessageBytes = 1024;

// Who made a call that passed the gate.
struct Caller {
  // The token's name: the audit log's actor.
  std::string name;
  threadfleet::fleet::v1::Role role = threadfleet::fleet::v1::ROLE_UNSPECIFIED;
};

// The value of the call's `authorization` metadata; empty when absent (the
// first one when sent more than once).
std::string AuthorizationOf(const grpc::ServerContextBase& context);

// The audit target of a selector: "selector lab=a", "selector boards=b01,b02",
// "selector lab=a boards=b01", or "selector all" for an empty one. Board
// names are sorted ("boards=b03,b02,b01" -> "boards=b01,b02,b03"). Cut to
// kMaxAuditTargetBytes (common::CutInput): error messages quote it too.
std::string SelectorTarget(const threadfleet::fleet::v1::Selector& selector);

// Thread-safe as the store and token authority are.
class CallAuthorizer {
 public:
  // REQUIRES: both outlive the authorizer.
  CallAuthorizer(Store& store, TokenAuthority& tokens) : store_(store), tokens_(tokens) {}

  // Checks the bearer token in `authorization` (an `authorization` header
  // value, "Bearer tf_...") for a call of `action` (e.g. "Fleet.KillThread")
  // that needs `need`. Returns the caller, or:
  // - UNAUTHENTICATED when the header is missing or malformed or the token is
  //   unknown or revoked (actor "anonymous");
  // - PERMISSION_DENIED when the token's role is below `need`; the message
  //   names the token, its role, the call and the role it needs (actor: the
  //   token's name);
  // - a store error (UNAVAILABLE, ...) unchanged (actor "anonymous").
  // Every refusal is appended to the audit log with `target` before this
  // returns.
  [[nodiscard]] absl::StatusOr<Caller> Authorize(absl::string_view authorization, absl::string_view action,
                                                 threadfleet::fleet::v1::Role need, absl::string_view target);

  // Appends a finished call to the audit log: the code and message of
  // `result`, or `ok_message` (e.g. "2 boards done, 1 failed: ...") when it
  // is OK. A failure to write it is logged on stderr, not returned: the
  // call's own result stands.
  void Audit(absl::string_view actor, absl::string_view action, absl::string_view target,
             const absl::Status& result, absl::string_view ok_message = {});

  // Records that `actor` is about to run the mutation `action` on `target`
  // (state STARTED) and returns the entry's id for AuditOutcome. When the
  // store cannot record it the mutation must not run: the error says so,
  // DATA_LOSS for a damaged store and UNAVAILABLE otherwise.
  [[nodiscard]] absl::StatusOr<int64_t> AuditIntent(absl::string_view actor, absl::string_view action,
                                                    absl::string_view target);

  // Completes the entry AuditIntent wrote: the final target, and `result`
  // (what the client got) or `ok_message` when it is OK. A failure to write
  // it is logged on stderr; the entry then stays STARTED, and the next
  // fleetd start marks it OUTCOME_UNKNOWN.
  void AuditOutcome(int64_t intent_id, absl::string_view action, absl::string_view target,
                    const absl::Status& result, absl::string_view ok_message = {});

 private:
  Store& store_;
  TokenAuthority& tokens_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_AUTH_CALL_AUTH_H_
