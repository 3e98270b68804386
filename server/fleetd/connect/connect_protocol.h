// The Connect protocol's wire rules (connectrpc.com/docs/protocol) as plain
// functions over bytes and header values: no sockets, no gRPC calls. The
// gateway (connect_gateway.h) uses them to serve the Fleet API to browsers
// and plain HTTP clients.
//
// Example (a server-streaming request and its answer):
//
//   absl::StatusOr<ConnectContentType> type = ParseConnectContentType(content_type_header);
//   // type->codec == ConnectCodec::kJson, type->streaming == true
//   absl::StatusOr<absl::string_view> message = DecodeRequestEnvelope(body, kMaxMessage);
//   ... run the call ...
//   out += EncodeEnvelope(0, answer_json);
//   out += EncodeEnvelope(kEnvelopeEndStream, EndStreamJson(status));
//
// Every function bounds what it reads: envelope lengths are checked against
// the caller's limit before anything is copied, header values against the
// spec's lengths.
#ifndef THREADFLEET_SERVER_FLEETD_CONNECT_CONNECT_PROTOCOL_H_
#define THREADFLEET_SERVER_FLEETD_CONNECT_CONNECT_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace threadfleet::fleetd {

// How messages are encoded: proto3 JSON or binary protobuf.
enum class ConnectCodec { kJson, kProto };

// What a Content-Type says: the codec, and whether messages are enveloped
// (the streaming types application/connect+json and application/connect+proto)
// or the body is one bare message (unary: application/json, application/proto).
struct ConnectContentType {
  ConnectCodec codec = ConnectCodec::kJson;
  bool streaming = false;

  bool operator==(const ConnectContentType&) const = default;
};

// Parses a Content-Type value: the media type is case-insensitive; a
// `charset` parameter is allowed for JSON when it is utf-8 (any case, quoted
// or not); other parameters are ignored. UNIMPLEMENTED naming the type for
// any other media type or charset (the gateway answers 415).
[[nodiscard]] absl::StatusOr<ConnectContentType> ParseConnectContentType(absl::string_view value);

// The Content-Type of an answer: "application/json", "application/proto",
// "application/connect+json" or "application/connect+proto".
absl::string_view ConnectContentTypeName(ConnectContentType type);

// An envelope's flags byte: the message is compressed (refused: fleetd
// compresses nothing), or it is the end-of-stream message.
inline constexpr uint8_t kEnvelopeCompressed = 0x01;
inline constexpr uint8_t kEnvelopeEndStream = 0x02;
// The flags byte and the 4-byte big-endian length before every message.
inline constexpr size_t kEnvelopePrefixBytes = 5;

// One envelope at the front of a byte string.
struct ConnectEnvelope {
  uint8_t flags = 0;
  // Points into the decoded bytes.
  absl::string_view payload;
  // Prefix and payload: where the next envelope starts.
  size_t size = 0;
};

// Decodes the envelope at the front of `bytes`. INVALID_ARGUMENT when fewer
// than its prefix and payload are there, or its flags have unknown bits set;
// RESOURCE_EXHAUSTED naming both lengths when the payload is longer than
// `max_payload_bytes` (checked before it is needed whole); UNIMPLEMENTED for
// a compressed one.
[[nodiscard]] absl::StatusOr<ConnectEnvelope> DecodeEnvelope(absl::string_view bytes,
                                                             size_t max_payload_bytes);

// The one message of a server-streaming request body: one envelope (flags
// 0) and nothing after it. Errors as DecodeEnvelope; INVALID_ARGUMENT for an
// end-of-stream envelope or bytes after the message.
[[nodiscard]] absl::StatusOr<absl::string_view> DecodeRequestEnvelope(absl::string_view body,
                                                                      size_t max_payload_bytes);

// `payload` with its prefix. REQUIRES: payload.size() < 2^32.
std::string EncodeEnvelope(uint8_t flags, absl::string_view payload);

// Connect's name of a status code: "canceled", "invalid_argument",
// "permission_denied"... ("unknown" for OK and codes outside the table).
absl::string_view ConnectCodeName(absl::StatusCode code);

// The HTTP status of a unary call that ended with `code` (the spec's table:
// invalid_argument 400, unauthenticated 401, permission_denied 403,
// not_found 404, resource_exhausted 429, unimplemented 501, unavailable
// 503, ...); 200 for OK.
int HttpStatusOf(absl::StatusCode code);

// The Connect error JSON of a failed call: {"code":"not_found","message":"..."}
// (the message omitted when empty). REQUIRES: !status.ok().
std::string ConnectErrorJson(const absl::Status& status);

// The end-of-stream message's JSON: {} for OK, {"error":{...}} otherwise.
std::string EndStreamJson(const absl::Status& status);

// A JSON string literal of `text`, quotes included. Bytes that are not UTF-8
// become U+FFFD; '<', '>' and '&' are escaped too, so no answer ever holds
// markup a browser could take for HTML.
std::string JsonQuote(absl::string_view text);

// Parses Connect-Timeout-Ms (nullopt when absent): 1 to 10 ASCII digits, the
// time the client gives the call. INVALID_ARGUMENT naming the header
// otherwise.
[[nodiscard]] absl::StatusOr<std::optional<absl::Duration>> ParseConnectTimeout(
    std::optional<absl::string_view> value);

// Checks Connect-Protocol-Version: absent or "1"; INVALID_ARGUMENT naming
// the header and the value otherwise.
[[nodiscard]] absl::Status CheckConnectProtocolVersion(std::optional<absl::string_view> value);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_CONNECT_CONNECT_PROTOCOL_H_
