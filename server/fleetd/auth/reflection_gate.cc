#include "server/fleetd/auth/reflection_gate.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace threadfleet::fleetd {
namespace {

// Every version of the reflection service: /grpc.reflection.v1alpha.ServerReflection/...
constexpr absl::string_view kReflectionPrefix = "/grpc.reflection.";

absl::string_view View(const grpc::string_ref& s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

grpc::Status ReflectionGate::Process(const InputMetadata& auth_metadata, grpc::AuthContext*, OutputMetadata*,
                                     OutputMetadata*) {
  auto path = auth_metadata.find(":path");
  if (path == auth_metadata.end() || !absl::StartsWith(View(path->second), kReflectionPrefix)) {
    return grpc::Status::OK;
  }
  auto header = auth_metadata.find("authorization");
  absl::StatusOr<absl::string_view> secret =
      SecretFromAuthorization(header == auth_metadata.end() ? absl::string_view() : View(header->second));
  absl::Status verified = secret.status();
  if (secret.ok()) verified = tokens_.Verify(*secret).status();
  if (verified.ok()) return grpc::Status::OK;
  return grpc::Status(
      static_cast<grpc::StatusCode>(verified.code()),
      std::string("server reflection needs a valid token: ") + std::string(verified.message()));
}

}  // namespace threadfleet::fleetd
