// Bearer tokens for fleetd's users: create, verify, revoke, and the roles
// they carry.
//
// A token's secret is "tf_" followed by 43 base64url characters (32 random
// bytes). fleetd stores only the secret's SHA-256, so a leaked store grants
// nothing; the secret is shown once, when the token is created. Roles are
// ordered viewer < operator < admin, and each may do what the ones below it
// may.
//
// Example:
//
//   TokenAuthority tokens(store);
//   absl::StatusOr<IssuedToken> ci =
//       tokens.Create("ci", fleet::v1::ROLE_OPERATOR, "admin", absl::Now());
//   // ... hand ci->secret to the CI system; later, on each call:
//   absl::StatusOr<TokenRecord> who =
//       tokens.Authorize(secret_from_header, fleet::v1::ROLE_OPERATOR);
//   if (!who.ok()) return who.status();  // UNAUTHENTICATED / PERMISSION_DENIED
//
// Verification looks the hash up in the store; comparing hashes leaks nothing
// useful through timing, since a caller cannot choose a secret with a given
// hash prefix.

#ifndef THREADFLEET_SERVER_FLEETD_AUTH_TOKEN_H_
#define THREADFLEET_SERVER_FLEETD_AUTH_TOKEN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/fleetd/store/store.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {

// Every token secret starts with this, so secret scanners and people can tell
// what it is.
inline constexpr absl::string_view kTokenPrefix = "tf_";

// The longest token name. Names appear in audit entries, logs and tables,
// so they are short and plain.
inline constexpr size_t kMaxTokenNameBytes = 64;

// OK for a token name of 1 to kMaxTokenNameBytes characters from
// [A-Za-z0-9._-]; INVALID_ARGUMENT saying the rule otherwise (quoting the
// name cut short, control characters escaped).
[[nodiscard]] absl::Status CheckTokenName(absl::string_view name);

// True when `have` may do what `need` may (viewer < operator < admin). An
// unspecified role may do nothing, and nothing needs less than viewer.
[[nodiscard]] bool RoleAtLeast(threadfleet::fleet::v1::Role have, threadfleet::fleet::v1::Role need);

// "viewer", "operator", "admin"; "unspecified" for anything else.
[[nodiscard]] absl::string_view RoleName(threadfleet::fleet::v1::Role role);

// The role named "viewer", "operator" or "admin" (case-insensitive).
// INVALID_ARGUMENT for anything else, naming the valid roles.
[[nodiscard]] absl::StatusOr<threadfleet::fleet::v1::Role> ParseRole(absl::string_view name);

// A new random secret: kTokenPrefix and 43 base64url characters. INTERNAL if
// the system's random source fails.
[[nodiscard]] absl::StatusOr<std::string> GenerateTokenSecret();

// The secret in an HTTP/gRPC `authorization` header value "Bearer <secret>"
// (the scheme is case-insensitive). UNAUTHENTICATED if the value is empty or
// uses another scheme.
[[nodiscard]] absl::StatusOr<absl::string_view> SecretFromAuthorization(absl::string_view header);

// A token just created: its secret (shown once) and its stored record.
struct IssuedToken {
  std::string secret;
  TokenRecord record;
};

// Creates, verifies and revokes tokens in a Store. Thread-safe as the store
// is. Store errors (UNAVAILABLE, DATA_LOSS, INTERNAL) pass through unchanged
// from every method, so a broken store never reads as a bad token.
class TokenAuthority {
 public:
  // REQUIRES: `store` outlives this.
  explicit TokenAuthority(Store& store) : store_(store) {}

  // Creates a token named `name` with `role`. INVALID_ARGUMENT if the name
  // fails CheckTokenName or the role is unspecified.
  [[nodiscard]] absl::StatusOr<IssuedToken> Create(absl::string_view name, threadfleet::fleet::v1::Role role,
                                                   absl::string_view created_by, absl::Time now);

  // The record of the token whose secret this is. UNAUTHENTICATED if the
  // secret is malformed, unknown or revoked (the message says which, never
  // echoing the secret).
  [[nodiscard]] absl::StatusOr<TokenRecord> Verify(absl::string_view secret);

  // Verify, then PERMISSION_DENIED if the token's role is below `need`
  // (the message names both roles).
  [[nodiscard]] absl::StatusOr<TokenRecord> Authorize(absl::string_view secret,
                                                      threadfleet::fleet::v1::Role need);

  // Revokes a token at `now`: Verify fails for it from then on. Revoking it
  // again keeps the first time. NOT_FOUND if the id is unknown.
  [[nodiscard]] absl::StatusOr<TokenRecord> Revoke(int64_t id, absl::Time now);

  // Every token, revoked ones included, by id.
  [[nodiscard]] absl::StatusOr<std::vector<TokenRecord>> List();

 private:
  Store& store_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_AUTH_TOKEN_H_
