// fleetctl's connection to fleetd: one gRPC channel over TLS (server
// authentication with the lab CA; fleetctl presents no certificate) and a
// bearer token sent as `authorization: Bearer tf_...` on every call.
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<FleetClient>> client =
//       FleetClient::Connect(config, absl::Seconds(30));
//   if (!client.ok()) ...  // "cannot read CA certificate /x/ca.pem: No such file or directory"
//   fleet::v1::ListBoardsResponse response;
//   std::unique_ptr<grpc::ClientContext> context = (*client)->NewContext();
//   grpc::Status status = (*client)->stub().ListBoards(context.get(), {}, &response);
//   if (!status.ok()) std::cerr << "fleetctl: error: " << DescribeStatus(status) << "\n";
//
// The channel connects lazily: an unreachable server shows as UNAVAILABLE
// on the first call, not here.

#ifndef THREADFLEET_SERVER_CLI_FLEET_CLIENT_H_
#define THREADFLEET_SERVER_CLI_FLEET_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/cli/cli_config.h"
#include "threadfleet/fleet/v1/fleet.grpc.pb.h"

namespace threadfleet::cli {

// Whether a call is bounded by --timeout.
enum class CallKind {
  // Unary calls and streams that end on their own (push, logs without -f).
  kBounded,
  // Streams that follow until the program ends or the user interrupts.
  kFollow,
};

class FleetClient {
 public:
  // Reads the CA certificate and opens the channel to config.server.
  // When the CA cannot be read, the error of common::ReadTextFile naming the
  // file (NOT_FOUND, PERMISSION_DENIED, ...); INVALID_ARGUMENT naming it when
  // it holds no PEM certificate.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FleetClient>> Connect(const ClientConfig& config,
                                                                            absl::Duration timeout);

  fleet::v1::Fleet::StubInterface& stub() { return *stub_; }

  // A context for one call: the bearer token (if any) and, for kBounded
  // calls, a deadline `timeout` from now.
  std::unique_ptr<grpc::ClientContext> NewContext(CallKind kind = CallKind::kBounded) const;

  absl::Duration timeout() const { return timeout_; }

 private:
  FleetClient(std::unique_ptr<fleet::v1::Fleet::StubInterface> stub, std::string token,
              absl::Duration timeout);

  std::unique_ptr<fleet::v1::Fleet::StubInterface> stub_;
  std::string token_;
  absl::Duration timeout_;
};

// "CODE: message" for a failed call, e.g. "UNAVAILABLE: failed to connect
// to all addresses"; just "CODE" when the message is empty.
std::string DescribeStatus(const grpc::Status& status);

}  // namespace threadfleet::cli

#endif  // THREADFLEET_SERVER_CLI_FLEET_CLIENT_H_
