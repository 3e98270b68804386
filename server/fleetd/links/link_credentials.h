// LinkCredentials: what fleetd presents to boards and trusts on every board
// connection (the health streams and the gRPC channel alike).
//
// Example:
//
//   absl::StatusOr<LinkCredentials> c = LinkCredentials::FromFiles(ca, cert, key);
//   if (!c.ok()) return c.status();   // names the file that cannot be read
#ifndef THREADFLEET_SERVER_FLEETD_LINKS_LINK_CREDENTIALS_H_
#define THREADFLEET_SERVER_FLEETD_LINKS_LINK_CREDENTIALS_H_

#include <string>

#include "absl/status/statusor.h"

namespace threadfleet::fleetd {

// What fleetd presents to boards and trusts: PEM text.
struct LinkCredentials {
  std::string ca_pem;    // the lab CA: board certificates must chain to it
  std::string cert_pem;  // fleetd's client certificate
  std::string key_pem;   // its private key

  // Reads the three PEM files. NOT_FOUND / PERMISSION_DENIED naming the file
  // that cannot be read; INVALID_ARGUMENT for an empty one.
  [[nodiscard]] static absl::StatusOr<LinkCredentials> FromFiles(const std::string& ca_path,
                                                                 const std::string& cert_path,
                                                                 const std::string& key_path);
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_LINKS_LINK_CREDENTIALS_H_
