#include "server/fleetd/auth/token.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/fleetd/store/sha256.h"
#include "server/fleetd/store/sqlite_store.h"
#include "server/fleetd/testing/temp_store.h"

namespace threadfleet::fleetd {
namespace {

namespace fleet = ::threadfleet::fleet::v1;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

class TokenAuthorityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(temp_.Init("token_test"));
    tokens_ = std::make_unique<TokenAuthority>(temp_.store());
  }

  testing::TempStore temp_;  // first: outlives everything using its store
  std::unique_ptr<TokenAuthority> tokens_;
};

TEST(RoleTest, RolesAreOrderedViewerOperatorAdmin) {
  EXPECT_TRUE(RoleAtLeast(fleet::ROLE_ADMIN, fleet::ROLE_OPERATOR));
  EXPECT_TRUE(RoleAtLeast(fleet::ROLE_OPERATOR, fleet::ROLE_OPERATOR));
  EXPECT_TRUE(RoleAtLeast(fleet::ROLE_OPERATOR, fleet::ROLE_VIEWER));
  EXPECT_FALSE(RoleAtLeast(fleet::ROLE_VIEWER, fleet::ROLE_OPERATOR));
  EXPECT_FALSE(RoleAtLeast(fleet::ROLE_OPERATOR, fleet::ROLE_ADMIN));
}

TEST(RoleTest, UnspecifiedRoleMayDoNothing) {
  EXPECT_FALSE(RoleAtLeast(fleet::ROLE_UNSPECIFIED, fleet::ROLE_VIEWER));
  EXPECT_FALSE(RoleAtLeast(static_cast<fleet::Role>(42), fleet::ROLE_VIEWER));
}

TEST(RoleTest, RoleNamesRoundTrip) {
  for (fleet::Role role : {fleet::ROLE_VIEWER, fleet::ROLE_OPERATOR, fleet::ROLE_ADMIN}) {
    EXPECT_EQ(ParseRole(RoleName(role)).value(), role);
  }
  EXPECT_EQ(ParseRole("Admin").value(), fleet::ROLE_ADMIN);
  EXPECT_EQ(ParseRole("root").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ParseRole("root").status().message(), HasSubstr("viewer, operator or admin"));
}

TEST(SecretTest, SecretsArePrefixedBase64UrlAndDistinct) {
  std::string a = GenerateTokenSecret().value();
  std::string b = GenerateTokenSecret().value();

  EXPECT_THAT(a, MatchesRegex("tf_[A-Za-z0-9_-]{43}"));
  EXPECT_NE(a, b);
}

TEST(SecretTest, SecretFromAuthorizationNeedsTheBearerScheme) {
  EXPECT_EQ(SecretFromAuthorization("Bearer tf_abc").value(), "tf_abc");
  EXPECT_EQ(SecretFromAuthorization("bearer  tf_abc ").value(), "tf_abc");
  EXPECT_EQ(SecretFromAuthorization("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(SecretFromAuthorization("Basic dXNlcg==").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(SecretFromAuthorization("Bearer").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(TokenNameTest, NamesAreOneTo64LettersDigitsDotsDashesOrUnderscores) {
  EXPECT_TRUE(CheckTokenName("ci").ok());
  EXPECT_TRUE(CheckTokenName("ci-runner_2.prod").ok());
  EXPECT_TRUE(CheckTokenName(std::string(64, 'n')).ok());
  for (const std::string& bad :
       {std::string(), std::string(65, 'n'), std::string("a\nb"), std::string("nul\0x", 5),
        std::string("sp ace"), std::string("caf\xc3\xa9")}) {
    absl::Status status = CheckTokenName(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("A-Z a-z 0-9 . _ -")) << bad;
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("\n"))) << "one line";
  }
}

TEST_F(TokenAuthorityTest, CreateRefusesABadNameAndStoresNothing) {
  EXPECT_EQ(tokens_->Create(std::string(5000, 'x'), fleet::ROLE_VIEWER, "admin", kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(tokens_->List().value().empty());
}

TEST_F(TokenAuthorityTest, CreatedTokenVerifiesToItsRecord) {
  IssuedToken issued = tokens_->Create("ci", fleet::ROLE_OPERATOR, "admin", kT0).value();

  absl::StatusOr<TokenRecord> verified = tokens_->Verify(issued.secret);

  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->id, issued.record.id);
  EXPECT_EQ(verified->name, "ci");
  EXPECT_EQ(verified->role, fleet::ROLE_OPERATOR);
  EXPECT_EQ(verified->created_by, "admin");
  EXPECT_EQ(verified->create_time, kT0);
}

TEST_F(TokenAuthorityTest, StoreKeepsOnlyTheHash) {
  IssuedToken issued = tokens_->Create("ci", fleet::ROLE_VIEWER, "admin", kT0).value();

  std::vector<TokenRecord> tokens = tokens_->List().value();
  ASSERT_EQ(tokens.size(), 1u);
  for (const TokenRecord& token : tokens) {
    EXPECT_EQ(token.sha256_hex, Sha256Hex(issued.secret));
    EXPECT_THAT(token.sha256_hex, Not(HasSubstr(issued.secret.substr(3))));
  }
}

TEST_F(TokenAuthorityTest, UnknownAndMalformedTokensAreUnauthenticated) {
  std::string unknown = GenerateTokenSecret().value();

  absl::Status unknown_status = tokens_->Verify(unknown).status();
  absl::Status malformed_status = tokens_->Verify("tf_short").status();

  EXPECT_EQ(unknown_status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(unknown_status.message(), HasSubstr("unknown token"));
  EXPECT_THAT(unknown_status.message(), Not(HasSubstr(unknown)));
  EXPECT_EQ(malformed_status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(malformed_status.message(), HasSubstr("malformed"));
  EXPECT_EQ(tokens_->Verify("").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(TokenAuthorityTest, RevokedTokenNoLongerVerifies) {
  IssuedToken issued = tokens_->Create("alice", fleet::ROLE_ADMIN, "admin", kT0).value();

  TokenRecord revoked = tokens_->Revoke(issued.record.id, kT0 + absl::Minutes(1)).value();
  absl::Status status = tokens_->Verify(issued.secret).status();

  EXPECT_EQ(revoked.revoke_time, kT0 + absl::Minutes(1));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), HasSubstr("alice"));
  EXPECT_THAT(status.message(), HasSubstr("revoked"));
}

TEST_F(TokenAuthorityTest, RevokingAnUnknownTokenIsNotFound) {
  EXPECT_EQ(tokens_->Revoke(99, kT0).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TokenAuthorityTest, AuthorizeChecksTheRole) {
  IssuedToken viewer = tokens_->Create("dash", fleet::ROLE_VIEWER, "admin", kT0).value();
  IssuedToken admin = tokens_->Create("root", fleet::ROLE_ADMIN, "admin", kT0).value();

  absl::Status denied = tokens_->Authorize(viewer.secret, fleet::ROLE_OPERATOR).status();

  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.message(), HasSubstr("role viewer; this call needs operator"));
  EXPECT_TRUE(tokens_->Authorize(viewer.secret, fleet::ROLE_VIEWER).ok());
  EXPECT_TRUE(tokens_->Authorize(admin.secret, fleet::ROLE_OPERATOR).ok());
}

TEST_F(TokenAuthorityTest, CreateNeedsANameAndARole) {
  EXPECT_EQ(tokens_->Create("", fleet::ROLE_VIEWER, "admin", kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tokens_->Create("x", fleet::ROLE_UNSPECIFIED, "admin", kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TokenAuthorityTest, TokensSurviveAStoreRestart) {
  IssuedToken issued = tokens_->Create("ci", fleet::ROLE_OPERATOR, "admin", kT0).value();
  tokens_.reset();

  ASSERT_NO_FATAL_FAILURE(temp_.Reopen());
  tokens_ = std::make_unique<TokenAuthority>(temp_.store());

  EXPECT_EQ(tokens_->Verify(issued.secret).value().name, "ci");
}

}  // namespace
}  // namespace threadfleet::fleetd
