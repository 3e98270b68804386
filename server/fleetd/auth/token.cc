#include "server/fleetd/auth/token.h"

#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/common/quoted_input.h"
#include "server/fleetd/store/sha256.h"

namespace threadfleet::fleetd {
namespace {

using ::threadfleet::fleet::v1::Role;

// 32 bytes: 256 bits of entropy, 43 base64url characters unpadded.
constexpr int kSecretBytes = 32;
constexpr size_t kSecretChars = 43;

bool IsBase64Url(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}

bool IsWellFormed(absl::string_view secret) {
  if (!absl::StartsWith(secret, kTokenPrefix)) return false;
  absl::string_view body = secret.substr(kTokenPrefix.size());
  if (body.size() != kSecretChars) return false;
  for (char c : body) {
    if (!IsBase64Url(c)) return false;
  }
  return true;
}

bool IsTokenNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

}  // namespace

absl::Status CheckTokenName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("a token needs a name (what or who it is for): 1 to ",
                                                   kMaxTokenNameBytes, " of A-Z a-z 0-9 . _ -"));
  }
  if (name.size() > kMaxTokenNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("token name ", common::QuoteInput(name),
                                                   " is too long: at most ", kMaxTokenNameBytes,
                                                   " characters of A-Z a-z 0-9 . _ -"));
  }
  for (char c : name) {
    if (!IsTokenNameChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat("token name ", common::QuoteInput(name),
                                                     " may only use A-Z a-z 0-9 . _ - (1 to ",
                                                     kMaxTokenNameBytes, " characters)"));
    }
  }
  return absl::OkStatus();
}

bool RoleAtLeast(Role have, Role need) {
  if (have == threadfleet::fleet::v1::ROLE_UNSPECIFIED || !threadfleet::fleet::v1::Role_IsValid(have))
    return false;
  return have >= need;
}

absl::string_view RoleName(Role role) {
  switch (role) {
    case threadfleet::fleet::v1::ROLE_VIEWER:
      return "viewer";
    case threadfleet::fleet::v1::ROLE_OPERATOR:
      return "operator";
    case threadfleet::fleet::v1::ROLE_ADMIN:
      return "admin";
    default:
      return "unspecified";
  }
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role role : {threadfleet::fleet::v1::ROLE_VIEWER, threadfleet::fleet::v1::ROLE_OPERATOR,
                    threadfleet::fleet::v1::ROLE_ADMIN}) {
    if (absl::EqualsIgnoreCase(name, RoleName(role))) return role;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role ", common::QuoteInput(name), "; use viewer, operator or admin"));
}

absl::StatusOr<std::string> GenerateTokenSecret() {
  unsigned char bytes[kSecretBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return absl::InternalError("cannot create a token: the system's random source failed");
  }
  std::string body =
      absl::WebSafeBase64Escape(absl::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
  return absl::StrCat(kTokenPrefix, body);
}

absl::StatusOr<absl::string_view> SecretFromAuthorization(absl::string_view header) {
  constexpr absl::string_view kScheme = "bearer ";
  if (header.empty()) return absl::UnauthenticatedError("no token: send `authorization: Bearer tf_...`");
  if (header.size() <= kScheme.size() || !absl::StartsWithIgnoreCase(header, kScheme)) {
    return absl::UnauthenticatedError("authorization must use the Bearer scheme: `Bearer tf_...`");
  }
  return absl::StripAsciiWhitespace(header.substr(kScheme.size()));
}

absl::StatusOr<IssuedToken> TokenAuthority::Create(absl::string_view name, Role role,
                                                   absl::string_view created_by, absl::Time now) {
  if (absl::Status valid = CheckTokenName(name); !valid.ok()) return valid;
  if (role == threadfleet::fleet::v1::ROLE_UNSPECIFIED || !threadfleet::fleet::v1::Role_IsValid(role)) {
    return absl::InvalidArgumentError(
        absl::StrCat("token ", name, ": role must be viewer, operator or admin"));
  }
  absl::StatusOr<std::string> secret = GenerateTokenSecret();
  if (!secret.ok()) return secret.status();
  TokenRecord record{.name = std::string(name),
                     .sha256_hex = Sha256Hex(*secret),
                     .role = role,
                     .created_by = std::string(created_by),
                     .create_time = now};
  absl::StatusOr<int64_t> id = store_.AddToken(record);
  if (!id.ok()) return id.status();
  record.id = *id;
  return IssuedToken{.secret = *std::move(secret), .record = std::move(record)};
}

absl::StatusOr<TokenRecord> TokenAuthority::Verify(absl::string_view secret) {
  if (!IsWellFormed(secret)) {
    return absl::UnauthenticatedError(absl::StrCat("malformed token: expected \"", kTokenPrefix, "\" and ",
                                                   kSecretChars, " base64url characters"));
  }
  absl::StatusOr<TokenRecord> token = store_.FindTokenByHash(Sha256Hex(secret));
  if (absl::IsNotFound(token.status())) {
    return absl::UnauthenticatedError("unknown token; ask an admin for one (fleetctl token create)");
  }
  if (!token.ok()) return token.status();
  if (token->revoke_time.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat("token ", token->name, " (id ", token->id,
                                                   ") was revoked at ",
                                                   absl::FormatTime(*token->revoke_time)));
  }
  return token;
}

absl::StatusOr<TokenRecord> TokenAuthority::Authorize(absl::string_view secret, Role need) {
  absl::StatusOr<TokenRecord> token = Verify(secret);
  if (!token.ok()) return token.status();
  if (!RoleAtLeast(token->role, need)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "token ", token->name, " has role ", RoleName(token->role), "; this call needs ", RoleName(need)));
  }
  return token;
}

absl::StatusOr<TokenRecord> TokenAuthority::Revoke(int64_t id, absl::Time now) {
  return store_.RevokeToken(id, now);
}

absl::StatusOr<std::vector<TokenRecord>> TokenAuthority::List() { return store_.ListTokens(); }

}  // namespace threadfleet::fleetd
