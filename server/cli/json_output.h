// fleetctl's -o json: a Fleet API message as JSON in the protobuf JSON
// mapping, with proto field names (program_id, not programId), enums as
// names and fields at their default values printed, so scripts see every
// field of every message.
//
// Example:
//
//   fleet::v1::StartThreadResponse response;  // program_id 3, thread_id 7
//   MessageToJson(response, JsonLayout::kLine);  // {"program_id":3,"thread_id":7}

#ifndef THREADFLEET_SERVER_CLI_JSON_OUTPUT_H_
#define THREADFLEET_SERVER_CLI_JSON_OUTPUT_H_

#include <string>

#include "google/protobuf/message.h"

namespace threadfleet::cli {

enum class JsonLayout {
  // Indented over several lines: unary commands print one such document.
  kPretty,
  // One line: streaming commands print one per message (JSON Lines).
  kLine,
};

// `message` as JSON, ending in '\n'. Every Fleet API message converts; a
// conversion failure (not expected) yields a JSON object with an "error".
std::string MessageToJson(const google::protobuf::Message& message, JsonLayout layout);

}  // namespace threadfleet::cli

#endif  // THREADFLEET_SERVER_CLI_JSON_OUTPUT_H_
