#include "server/fleetd/connect/connect_codec.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace threadfleet::fleetd {

std::unique_ptr<google::protobuf::Message> NewMessage(const google::protobuf::Descriptor& type) {
  return std::unique_ptr<google::protobuf::Message>(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(&type)->New());
}

absl::Status DecodeMessage(ConnectCodec codec, absl::string_view bytes, google::protobuf::Message& message) {
  message.Clear();
  if (codec == ConnectCodec::kProto) {
    if (message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("request body is not a binary ", message.GetTypeName(), " (", bytes.size(), " bytes)"));
  }
  if (bytes.empty()) return absl::OkStatus();
  google::protobuf::util::JsonParseOptions options;
  // A misspelt field must not be silently dropped: the call would run
  // without it (e.g. a kill without its grace period).
  options.ignore_unknown_fields = false;
  const google::protobuf::util::Status parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(bytes.data(), bytes.size()), &message, options);
  if (parsed.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("request body is not a JSON ", message.GetTypeName(), ": ", parsed.message().ToString()));
}

absl::StatusOr<std::string> EncodeMessage(ConnectCodec codec, const google::protobuf::Message& message) {
  std::string out;
  if (codec == ConnectCodec::kProto) {
    if (!message.SerializeToString(&out)) {
      return absl::InternalError(absl::StrCat("cannot serialize a ", message.GetTypeName()));
    }
    return out;
  }
  google::protobuf::util::JsonPrintOptions options;
  const google::protobuf::util::Status printed =
      google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!printed.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot print a ", message.GetTypeName(), " as JSON: ", printed.message().ToString()));
  }
  return out;
}

}  // namespace threadfleet::fleetd
