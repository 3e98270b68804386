#include "server/cli/json_output.h"

#include "google/protobuf/util/json_util.h"

namespace threadfleet::cli {

std::string MessageToJson(const google::protobuf::Message& message, JsonLayout layout) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = layout == JsonLayout::kPretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  options.always_print_enums_as_ints = false;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return "{\"error\": \"cannot convert the response to JSON\"}\n";
  // add_whitespace already ends the document with a newline.
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

}  // namespace threadfleet::cli
