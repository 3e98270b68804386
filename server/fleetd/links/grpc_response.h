// The client's side of one gRPC call on the wire, for fleetd's own HTTP/2
// client (board_connections.h): frames the request message and reads the
// response as HTTP/2 hands it over: header fields, DATA bytes (length-prefixed
// messages, in chunks of any size), trailers. Everything here comes from the
// network, so every input is checked and has a fuzzer (grpc_response_fuzz.cc).
//
// Example:
//
//   std::string body = FrameGrpcMessage(request.SerializeAsString());
//   GrpcResponseReader response(/*max_message_bytes=*/1 << 20);
//   ... for each header field:  response.OnHeader(name, value);
//   ... headers complete:       response.OnHeadersDone();
//   ... for each DATA chunk:    response.OnData(chunk, [](absl::string_view m) { ...; return
//   absl::OkStatus(); });
//   ... stream ended:           absl::Status call = response.Finish();
//
// Wire format (gRPC over HTTP/2): each message is a 1-byte compressed flag, a
// 4-byte big-endian length and the message; the status comes as trailers
// `grpc-status` (decimal code) and `grpc-message` (percent-encoded), or in
// the response headers of a Trailers-Only response.
#ifndef THREADFLEET_SERVER_FLEETD_LINKS_GRPC_RESPONSE_H_
#define THREADFLEET_SERVER_FLEETD_LINKS_GRPC_RESPONSE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace threadfleet::fleetd {

// Bytes of a message's prefix: compressed flag + length.
inline constexpr size_t kGrpcMessagePrefixBytes = 5;

// `message` with its uncompressed gRPC prefix.
std::string FrameGrpcMessage(absl::string_view message);

// The bytes that go before `data_size` bytes of data to make a framed gRPC
// message whose only field is bytes field `field` holding the data: the
// gRPC prefix, the field's tag and its length. Lets a large payload be sent
// as many messages without copying it into each (WriteFileRequest.data).
// REQUIRES: 0 < field < 2^29.
std::string GrpcBytesMessageHead(uint32_t field, size_t data_size);

// `grpc-message` text, percent-decoded; a malformed escape is kept as is.
std::string PercentDecodeGrpcMessage(absl::string_view text);

// Reads one call's response. Not thread-safe; one per call.
class GrpcResponseReader {
 public:
  // Messages longer than `max_message_bytes` fail the call (RESOURCE_EXHAUSTED).
  explicit GrpcResponseReader(size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // One field of the response headers or trailers; fields gRPC does not
  // define are ignored. Always OK: a bad value is judged by OnHeadersDone()
  // or Finish(), which know whether the call is over.
  void OnHeader(absl::string_view name, absl::string_view value);

  // The response headers are complete. OK for `:status` 200 with a gRPC
  // content-type; otherwise the call's error as gRPC maps HTTP statuses
  // (401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/
  // 503/504 UNAVAILABLE, any other UNKNOWN; a missing or foreign content-type
  // UNKNOWN), with the HTTP status in the message.
  [[nodiscard]] absl::Status OnHeadersDone();

  // DATA bytes of the response, split anywhere. Calls `on_message` with each
  // complete message (valid during the call), in order; an error from it stops
  // reading and is returned. INTERNAL for a compressed message (fleetd never
  // offers compression), RESOURCE_EXHAUSTED for one over the limit, and
  // INTERNAL for DATA before the headers were accepted.
  [[nodiscard]] absl::Status OnData(absl::string_view bytes,
                                    absl::FunctionRef<absl::Status(absl::string_view message)> on_message);

  // The response stream ended: the call's status. The board's grpc-status
  // and message when present; INTERNAL when the stream ended inside a
  // message or without a grpc-status (or with one that is not a code).
  [[nodiscard]] absl::Status Finish() const;

  // The number of complete messages read so far.
  size_t messages() const { return messages_; }

 private:
  const size_t max_message_bytes_;
  std::optional<int> http_status_;
  bool grpc_content_type_ = false;
  bool headers_accepted_ = false;
  std::optional<std::string> grpc_status_;
  std::string grpc_message_;
  // Bytes of a message not complete yet (prefix included).
  std::string partial_;
  size_t messages_ = 0;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_LINKS_GRPC_RESPONSE_H_
