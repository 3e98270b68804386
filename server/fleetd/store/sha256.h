// SHA-256 of a byte string, as lowercase hex: how fleetd names scripts and
// stores token secrets.
//
// Example:
//
//   std::string hex = Sha256Hex("abc");  // "ba7816bf...15ad"

#ifndef THREADFLEET_SERVER_FLEETD_STORE_SHA256_H_
#define THREADFLEET_SERVER_FLEETD_STORE_SHA256_H_

#include <string>

#include "absl/strings/string_view.h"

namespace threadfleet::fleetd {

// The SHA-256 digest of `data`, 64 lowercase hex digits.
[[nodiscard]] std::string Sha256Hex(absl::string_view data);

// True when `text` looks like a Sha256Hex result: 64 lowercase hex digits.
[[nodiscard]] bool IsSha256Hex(absl::string_view text);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_STORE_SHA256_H_
