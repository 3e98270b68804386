// libFuzzer target (the `fuzz` preset): arbitrary bytes as what an HTTP
// client sends the Connect gateway. The first byte picks a Content-Type
// value's length (that many bytes are parsed as one); the bytes after it are
// decoded as an envelope, as a server-streaming
// request body, and as the request message of every Fleet method, in JSON
// and binary. Nothing may crash, a decoded envelope must lie within the bytes
// and the limit, and a message that decodes must encode again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "server/fleetd/connect/connect_codec.h"
#include "server/fleetd/connect/connect_protocol.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace {

using namespace threadfleet::fleetd;  // NOLINT: a fuzzer's few lines

constexpr size_t kMaxPayload = 4096;

void Check(bool condition) {
  if (!condition) std::abort();
}

void FuzzEnvelopes(absl::string_view bytes) {
  absl::StatusOr<ConnectEnvelope> envelope = DecodeEnvelope(bytes, kMaxPayload);
  if (envelope.ok()) {
    Check(envelope->size == kEnvelopePrefixBytes + envelope->payload.size());
    Check(envelope->size <= bytes.size() && envelope->payload.size() <= kMaxPayload);
    Check((envelope->flags & kEnvelopeCompressed) == 0);
    Check(DecodeEnvelope(EncodeEnvelope(envelope->flags, envelope->payload), kMaxPayload)->payload ==
          envelope->payload);
  }
  absl::StatusOr<absl::string_view> message = DecodeRequestEnvelope(bytes, kMaxPayload);
  if (message.ok()) Check(message->size() + kEnvelopePrefixBytes == bytes.size());
}

void FuzzMessages(absl::string_view bytes) {
  const google::protobuf::ServiceDescriptor* fleet =
      threadfleet::fleet::v1::ListBoardsRequest::descriptor()->file()->FindServiceByName("Fleet");
  for (int i = 0; i < fleet->method_count(); ++i) {
    std::unique_ptr<google::protobuf::Message> request = NewMessage(*fleet->method(i)->input_type());
    for (ConnectCodec codec : {ConnectCodec::kJson, ConnectCodec::kProto}) {
      if (DecodeMessage(codec, bytes, *request).ok()) Check(EncodeMessage(codec, *request).ok());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t type_bytes = static_cast<uint8_t>(in[0]) % 64;
  const absl::string_view header = in.substr(1, type_bytes);
  const absl::string_view body = in.substr(1 + header.size());
  absl::StatusOr<ConnectContentType> type = ParseConnectContentType(header);
  if (type.ok()) Check(ParseConnectContentType(ConnectContentTypeName(*type)).value() == *type);
  (void)ParseConnectTimeout(header);
  (void)CheckConnectProtocolVersion(header);
  Check(!JsonQuote(body).empty());
  FuzzEnvelopes(body);
  FuzzMessages(body);
  return 0;
}
