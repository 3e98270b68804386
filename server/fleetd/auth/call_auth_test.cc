// CallAuthorizer over a real SqliteStore and TokenAuthority: which calls pass,
// which codes refusals get, and what the audit log keeps.
#include "server/fleetd/auth/call_auth.h"

#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/fleetd/store/sqlite_store.h"
#include "server/fleetd/testing/temp_store.h"

namespace threadfleet::fleetd {
namespace {

namespace fleet = ::threadfleet::fleet::v1;
using ::testing::HasSubstr;

class CallAuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(temp_.Init("call_auth_test"));
    store_ = &temp_.store();
    tokens_ = std::make_unique<TokenAuthority>(*store_);
    auth_ = std::make_unique<CallAuthorizer>(*store_, *tokens_);
  }
  std::string Bearer(const std::string& name, fleet::Role role) {
    absl::StatusOr<IssuedToken> t = tokens_->Create(name, role, "test", absl::Now());
    EXPECT_TRUE(t.ok()) << t.status();
    return "Bearer " + t->secret;
  }

  // The audit log oldest first, as it was written.
  std::vector<AuditRecord> Audit() {
    absl::StatusOr<std::vector<AuditRecord>> all = store_->ListAudit(AuditQuery{.limit = 1000});
    EXPECT_TRUE(all.ok()) << all.status();
    if (!all.ok()) return {};
    return std::vector<AuditRecord>(all->rbegin(), all->rend());
  }

  testing::TempStore temp_;  // first: outlives everything using its store
  SqliteStore* store_ = nullptr;
  std::unique_ptr<TokenAuthority> tokens_;
  std::unique_ptr<CallAuthorizer> auth_;
};

TEST_F(CallAuthorizerTest, TokenWithEnoughRolePassesAndNothingIsAudited) {
  const std::string admin = Bearer("alice", fleet::ROLE_ADMIN);
  absl::StatusOr<Caller> caller = auth_->Authorize(admin, "Fleet.KillThread", fleet::ROLE_OPERATOR, "b01/7");
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->name, "alice");
  EXPECT_EQ(caller->role, fleet::ROLE_ADMIN);
  EXPECT_TRUE(Audit().empty());
}

TEST_F(CallAuthorizerTest, MissingTokenIsUnauthenticatedAndAuditedAsAnonymous) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize("", "Fleet.ListBoards", fleet::ROLE_VIEWER, "selector all");
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
  const std::vector<AuditRecord> audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].actor, "anonymous");
  EXPECT_EQ(audit[0].action, "Fleet.ListBoards");
  EXPECT_EQ(audit[0].target, "selector all");
  EXPECT_EQ(audit[0].result_code, absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(audit[0].result_message, HasSubstr("Bearer"));
}

TEST_F(CallAuthorizerTest, UnknownMalformedAndRevokedTokensAreUnauthenticated) {
  const std::string ci = Bearer("ci", fleet::ROLE_OPERATOR);
  ASSERT_TRUE(tokens_->Revoke(1, absl::Now()).ok());
  EXPECT_EQ(auth_->Authorize(ci, "Fleet.GetBoard", fleet::ROLE_VIEWER, "b01").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth_->Authorize("Bearer tf_nope", "Fleet.GetBoard", fleet::ROLE_VIEWER, "b01").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth_->Authorize("Basic abc", "Fleet.GetBoard", fleet::ROLE_VIEWER, "b01").status().code(),
            absl::StatusCode::kUnauthenticated);
  const std::vector<AuditRecord> audit = Audit();
  ASSERT_EQ(audit.size(), 3u);
  for (const AuditRecord& r : audit) {
    EXPECT_EQ(r.actor, "anonymous");
    EXPECT_EQ(r.result_code, absl::StatusCode::kUnauthenticated);
  }
  EXPECT_THAT(audit[0].result_message, HasSubstr("revoked"));
}

TEST_F(CallAuthorizerTest, RoleTooLowIsPermissionDeniedNamingTheNeededRoleAndAuditedUnderTheTokenName) {
  const std::string viewer = Bearer("bob", fleet::ROLE_VIEWER);
  absl::StatusOr<Caller> caller = auth_->Authorize(viewer, "Fleet.KillThread", fleet::ROLE_OPERATOR, "b01/7");
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(caller.status().message()), HasSubstr("needs operator"));
  EXPECT_THAT(std::string(caller.status().message()), HasSubstr("Fleet.KillThread"));
  const std::vector<AuditRecord> audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].actor, "bob");
  EXPECT_EQ(audit[0].target, "b01/7");
  EXPECT_EQ(audit[0].result_code, absl::StatusCode::kPermissionDenied);
}

TEST_F(CallAuthorizerTest, AuditKeepsTheResultOfAMutatingCall) {
  auth_->Audit("alice", "Fleet.RemoveBoard", "b09", absl::NotFoundError("no board named b09"));
  auth_->Audit("alice", "Fleet.AddBoard", "b09", absl::OkStatus());
  const std::vector<AuditRecord> audit = Audit();
  ASSERT_EQ(audit.size(), 2u);
  EXPECT_EQ(audit[0].result_code, absl::StatusCode::kNotFound);
  EXPECT_EQ(audit[0].result_message, "no board named b09");
  EXPECT_EQ(audit[1].action, "Fleet.AddBoard");
  EXPECT_EQ(audit[1].result_code, absl::StatusCode::kOk);
  EXPECT_GT(audit[1].time, absl::Now() - absl::Minutes(1));
}

TEST_F(CallAuthorizerTest, AnIntentIsStartedBeforeTheMutationAndItsOutcomeCompletesIt) {
  absl::StatusOr<int64_t> intent = auth_->AuditIntent("alice", "Fleet.RevokeToken", "token id 3");
  ASSERT_TRUE(intent.ok()) << intent.status();
  std::vector<AuditRecord> audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].state, fleet::AUDIT_STATE_STARTED);
  EXPECT_EQ(audit[0].actor, "alice");

  auth_->AuditOutcome(*intent, "Fleet.RevokeToken", "token ci", absl::OkStatus(), "id 3");
  audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].state, fleet::AUDIT_STATE_DONE);
  EXPECT_EQ(audit[0].target, "token ci");
  EXPECT_EQ(audit[0].result_message, "id 3");
}

TEST_F(CallAuthorizerTest, AnIntentThatCannotBeWrittenSaysTheCallDidNotRun) {
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((temp_.dir() / "fleet.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "DROP TABLE audit_log", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);

  absl::StatusOr<int64_t> intent = auth_->AuditIntent("alice", "Fleet.PushFile", "selector all /app.py");
  EXPECT_EQ(intent.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(intent.status().message(), HasSubstr("Fleet.PushFile did not run"));
}

TEST_F(CallAuthorizerTest, RefusalsStoreTheTargetCutShort) {
  const std::string target(3 << 20, 'b');
  EXPECT_FALSE(auth_->Authorize("", "Fleet.KillThread", fleet::ROLE_OPERATOR, target).ok());
  const std::vector<AuditRecord> audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_LE(audit[0].target.size(), kMaxAuditTargetBytes + 32);
  EXPECT_THAT(audit[0].target, HasSubstr("(3145728 bytes)"));
}

TEST_F(CallAuthorizerTest, SelectorTargetsNameLabelsAndBoards) {
  fleet::Selector s;
  EXPECT_EQ(SelectorTarget(s), "selector all");
  s.set_labels("lab=a");
  EXPECT_EQ(SelectorTarget(s), "selector lab=a");
  s.add_boards("b01");
  s.add_boards("b02");
  EXPECT_EQ(SelectorTarget(s), "selector lab=a boards=b01,b02");

  fleet::Selector listed;
  for (const char* b : {"b03", "b02", "b01"}) listed.add_boards(b);
  EXPECT_EQ(SelectorTarget(listed), "selector boards=b01,b02,b03");
}

}  // namespace
}  // namespace threadfleet::fleetd
