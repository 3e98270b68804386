#include "server/fleetd/links/link_credentials.h"

#include <utility>

#include "server/common/read_text_file.h"

namespace threadfleet::fleetd {

absl::StatusOr<LinkCredentials> LinkCredentials::FromFiles(const std::string& ca_path,
                                                           const std::string& cert_path,
                                                           const std::string& key_path) {
  LinkCredentials c;
  absl::StatusOr<std::string> ca = common::ReadPemFile(ca_path, "lab CA certificate");
  if (!ca.ok()) return ca.status();
  absl::StatusOr<std::string> cert = common::ReadPemFile(cert_path, "client certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = common::ReadPemFile(key_path, "client key");
  if (!key.ok()) return key.status();
  c.ca_pem = *std::move(ca);
  c.cert_pem = *std::move(cert);
  c.key_pem = *std::move(key);
  return c;
}

}  // namespace threadfleet::fleetd
