#include "server/fleetd/auth/call_auth.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/common/quoted_input.h"

namespace threadfleet::fleetd {

namespace fleet = threadfleet::fleet::v1;

std::string AuthorizationOf(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

std::string SelectorTarget(const fleet::Selector& selector) {
  std::string target = "selector";
  if (!selector.labels().empty()) absl::StrAppend(&target, " ", selector.labels());
  if (!selector.boards().empty()) {
    // Sorted: one set of boards is one target however the caller ordered it.
    std::vector<std::string> boards(selector.boards().begin(), selector.boards().end());
    std::sort(boards.begin(), boards.end());
    absl::StrAppend(&target, " boards=", absl::StrJoin(boards, ","));
  }
  if (selector.labels().empty() && selector.boards().empty()) absl::StrAppend(&target, " all");
  // Messages quote it too: as short as an audit target.
  return common::CutInput(target, kMaxAuditTargetBytes);
}

absl::StatusOr<Caller> CallAuthorizer::Authorize(absl::string_view authorization, absl::string_view action,
                                                 fleet::Role need, absl::string_view target) {
  absl::StatusOr<absl::string_view> secret = SecretFromAuthorization(authorization);
  if (!secret.ok()) {
    Audit(kAnonymousActor, action, target, secret.status());
    return secret.status();
  }
  absl::StatusOr<TokenRecord> token = tokens_.Verify(*secret);
  if (!token.ok()) {
    Audit(kAnonymousActor, action, target, token.status());
    return token.status();
  }
  if (!RoleAtLeast(token->role, need)) {
    absl::Status denied = absl::PermissionDeniedError(absl::StrCat(
        "token ", token->name, " has role ", RoleName(token->role), "; ", action, " needs ", RoleName(need)));
    Audit(token->name, action, target, denied);
    return denied;
  }
  return Caller{.name = token->name, .role = token->role};
}

void CallAuthorizer::Audit(absl::string_view actor, absl::string_view action, absl::string_view target,
                           const absl::Status& result, absl::string_view ok_message) {
  absl::StatusOr<int64_t> id = store_.AppendAudit(
      AuditRecord{.time = absl::Now(),
                  .actor = std::string(actor),
                  .action = std::string(action),
                  .target = common::CutInput(target, kMaxAuditTargetBytes),
                  .result_code = result.code(),
                  .result_message =
                      common::CutInput(result.ok() ? ok_message : result.message(), kMaxAuditMessageBytes)});
  if (!id.ok()) {
    std::fprintf(stderr, "fleetd: audit write failed action=%s actor=%s target=%s: %s\n",
                 std::string(action).c_str(), std::string(actor).c_str(), common::QuoteInput(target).c_str(),
                 id.status().ToString().c_str());
  }
}

absl::StatusOr<int64_t> CallAuthorizer::AuditIntent(absl::string_view actor, absl::string_view action,
                                                    absl::string_view target) {
  absl::StatusOr<int64_t> id =
      store_.AppendAudit(AuditRecord{.time = absl::Now(),
                                     .actor = std::string(actor),
                                     .action = std::string(action),
                                     .target = common::CutInput(target, kMaxAuditTargetBytes),
                                     .result_code = absl::StatusCode::kUnknown,
                                     .result_message = "started",
                                     .state = fleet::AUDIT_STATE_STARTED});
  if (id.ok()) return id;
  const absl::StatusCode code =
      absl::IsDataLoss(id.status()) ? absl::StatusCode::kDataLoss : absl::StatusCode::kUnavailable;
  return absl::Status(code, absl::StrCat(action, " did not run: the audit log cannot record it (",
                                         id.status().message(), ")"));
}

void CallAuthorizer::AuditOutcome(int64_t intent_id, absl::string_view action, absl::string_view target,
                                  const absl::Status& result, absl::string_view ok_message) {
  absl::Status written = store_.FinishAudit(
      intent_id, common::CutInput(target, kMaxAuditTargetBytes), result.code(),
      common::CutInput(result.ok() ? ok_message : result.message(), kMaxAuditMessageBytes));
  if (!written.ok()) {
    std::fprintf(stderr, "fleetd: audit outcome not written id=%lld action=%s code=%d: %s\n",
                 static_cast<long long>(intent_id), std::string(action).c_str(),
                 static_cast<int>(result.code()), written.ToString().c_str());
  }
}

}  // namespace threadfleet::fleetd
