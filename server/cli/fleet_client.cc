#include "server/cli/fleet_client.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/cli/format.h"
#include "server/common/read_text_file.h"

namespace threadfleet::cli {

absl::StatusOr<std::unique_ptr<FleetClient>> FleetClient::Connect(const ClientConfig& config,
                                                                  absl::Duration timeout) {
  absl::StatusOr<std::string> pem = common::ReadTextFile(config.ca_path, "CA certificate");
  if (!pem.ok()) return pem.status();
  if (!absl::StrContains(*pem, "-----BEGIN CERTIFICATE-----")) {
    return absl::InvalidArgumentError(
        absl::StrCat("CA certificate ", config.ca_path, " holds no PEM certificate"));
  }
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = *std::move(pem);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(config.server, grpc::SslCredentials(tls), args);
  return std::unique_ptr<FleetClient>(
      new FleetClient(fleet::v1::Fleet::NewStub(channel), config.token, timeout));
}

FleetClient::FleetClient(std::unique_ptr<fleet::v1::Fleet::StubInterface> stub, std::string token,
                         absl::Duration timeout)
    : stub_(std::move(stub)), token_(std::move(token)), timeout_(timeout) {}

std::unique_ptr<grpc::ClientContext> FleetClient::NewContext(CallKind kind) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token_.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  if (kind == CallKind::kBounded) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  }
  return context;
}

std::string DescribeStatus(const grpc::Status& status) {
  std::string text = StatusCodeName(status.error_code());
  if (!status.error_message().empty()) absl::StrAppend(&text, ": ", status.error_message());
  return text;
}

}  // namespace threadfleet::cli
