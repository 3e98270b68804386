// ReflectionGate: gRPC server reflection only for callers with a valid
// token. Reflection lists every service and message of the Fleet API, which
// is a map for an attacker; the standard health service
// (grpc.health.v1.Health) stays open for probes, and the Fleet API has its
// own gate (call_auth.h).
//
// It is the API listener's AuthMetadataProcessor: gRPC hands it every call's
// metadata (":path" included) before the call reaches a service.
//
// Example (fleetd_main):
//
//   std::shared_ptr<grpc::ServerCredentials> tls = grpc::SslServerCredentials(options);
//   tls->SetAuthMetadataProcessor(std::make_shared<ReflectionGate>(tokens));
//
// A refused reflection call gets UNAUTHENTICATED with the token check's
// message; it is not audited (it changes nothing and names no target).
#ifndef THREADFLEET_SERVER_FLEETD_AUTH_REFLECTION_GATE_H_
#define THREADFLEET_SERVER_FLEETD_AUTH_REFLECTION_GATE_H_

#include <grpcpp/security/auth_metadata_processor.h>

#include "server/fleetd/auth/token.h"

namespace threadfleet::fleetd {

class ReflectionGate final : public grpc::AuthMetadataProcessor {
 public:
  // REQUIRES: `tokens` outlives the gate (and so the server).
  explicit ReflectionGate(TokenAuthority& tokens) : tokens_(tokens) {}

  // The token lookup reads the store: not on gRPC's I/O threads.
  bool IsBlocking() const override { return true; }

  // OK for every call that is not reflection; for reflection, OK with a
  // valid (unrevoked) token of any role in `authorization`, else
  // UNAUTHENTICATED saying why (or the store's error).
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata, OutputMetadata* response_metadata) override;

 private:
  TokenAuthority& tokens_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_AUTH_REFLECTION_GATE_H_
