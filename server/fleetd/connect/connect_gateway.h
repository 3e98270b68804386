// ConnectGateway: the Fleet API in the Connect protocol on fleetd's HTTP
// listener, for the dashboard and plain HTTP clients (curl, http.client).
//
// It serves every method of threadfleet.fleet.v1.Fleet from the service's
// descriptor, with no code per method: a request body is decoded (proto3
// JSON or binary, connect_codec.h), then sent as the same call to fleetd's
// own gRPC server over its in-process channel, carrying the request's
// `authorization` header and Connect-Timeout-Ms as the call's deadline. So
// tokens, roles, limits and the audit log apply exactly as for gRPC clients.
// Answers go back as Connect wants them:
//   unary  (application/json | application/proto): 200 and the message, or
//          the code's HTTP status and the Connect error JSON;
//   server streaming (application/connect+json | application/connect+proto):
//          200, an envelope per message, then the end-of-stream envelope
//          ({} or {"error":{...}}); errors found before the call starts end
//          the stream the same way.
// Protocol mistakes are refused before any call: a method other than POST
// (405, Allow: POST), an unknown method (404), an unserved content type
// (415), a bad Connect-Protocol-Version or Connect-Timeout-Ms
// (invalid_argument), compression (unimplemented).
//
//   ConnectGateway gateway(server->InProcessChannel(args), {});
//   route = [&](HttpRequest request, std::shared_ptr<HttpResponder> responder) {
//     if (ConnectGateway::Handles(request.path)) return gateway.Serve(std::move(request), responder);
//     ...
//   };
//
// When the HTTP connection ends first (HttpResponder::OnCancel) the gRPC
// call is cancelled; a streamed answer whose client stops taking it (Write
// false) is cancelled too.
#ifndef THREADFLEET_SERVER_FLEETD_CONNECT_CONNECT_GATEWAY_H_
#define THREADFLEET_SERVER_FLEETD_CONNECT_CONNECT_GATEWAY_H_

#include <cstddef>
#include <memory>

#include "absl/strings/string_view.h"
#include "grpcpp/channel.h"
#include "server/fleetd/http/http_exchange.h"

namespace threadfleet::fleetd {

namespace internal {
struct ConnectGatewayState;
}  // namespace internal

struct ConnectGatewayLimits {
  // The largest answer message passed on; a bigger one ends its call with
  // resource_exhausted (the in-process channel's receive limit should be at
  // least this, or gRPC refuses it first).
  size_t max_response_message_bytes = size_t{8} << 20;
  // Server-streaming calls open at once (fleetd.yaml
  // limits.http.max_connect_streams); one more is refused with
  // resource_exhausted before it starts.
  int max_open_streams = 32;
};

// Thread-safe. Calls in flight keep what they use alive, so the gateway may
// be destroyed while they end (they end when the gRPC server shuts down).
class ConnectGateway {
 public:
  // `in_process_channel`: fleetd's gRPC server's InProcessChannel (calls
  // over it are the service's own, so it must serve threadfleet.fleet.v1.Fleet).
  ConnectGateway(std::shared_ptr<grpc::Channel> in_process_channel, ConnectGatewayLimits limits);
  ~ConnectGateway();

  ConnectGateway(const ConnectGateway&) = delete;
  ConnectGateway& operator=(const ConnectGateway&) = delete;

  // Whether `path` belongs to the gateway: "/threadfleet.fleet.v1.Fleet/"
  // followed by anything (an unknown method is then answered 404 by Serve).
  static bool Handles(absl::string_view path);

  // Answers `request` through `responder`, now (refusals) or from a gRPC
  // thread when the call ends. Returns at once. REQUIRES: Handles(request.path).
  void Serve(HttpRequest request, std::shared_ptr<HttpResponder> responder);

  // Server-streaming calls open now.
  int open_streams() const;

 private:
  std::shared_ptr<internal::ConnectGatewayState> state_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_CONNECT_CONNECT_GATEWAY_H_
