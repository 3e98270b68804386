// Fleet API messages as Connect carries them: proto3 JSON or binary
// protobuf, for any message type (the gateway finds the types in the
// service's descriptor; nothing here is per method).
//
//   std::unique_ptr<google::protobuf::Message> request = NewMessage(*method->input_type());
//   absl::Status read = DecodeMessage(ConnectCodec::kJson, body, *request);   // INVALID_ARGUMENT
//   absl::StatusOr<std::string> json = EncodeMessage(ConnectCodec::kJson, *answer);
#ifndef THREADFLEET_SERVER_FLEETD_CONNECT_CONNECT_CODEC_H_
#define THREADFLEET_SERVER_FLEETD_CONNECT_CONNECT_CODEC_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "server/fleetd/connect/connect_protocol.h"

namespace threadfleet::fleetd {

// An empty message of a generated type. REQUIRES: `type` is from the
// generated pool (a type compiled into fleetd).
std::unique_ptr<google::protobuf::Message> NewMessage(const google::protobuf::Descriptor& type);

// Fills `message` (cleared first) from `bytes`. JSON: proto3 JSON; an
// empty body reads as {}; an unknown field, a wrong type or bad syntax is
// INVALID_ARGUMENT naming the message type and, from protobuf's parser, the
// field. Binary: INVALID_ARGUMENT naming the type when the bytes are not one.
[[nodiscard]] absl::Status DecodeMessage(ConnectCodec codec, absl::string_view bytes,
                                         google::protobuf::Message& message);

// `message` as proto3 JSON (lowerCamelCase names, 64-bit integers as
// strings, enums by name, defaults omitted) or binary. INTERNAL if protobuf
// cannot print it.
[[nodiscard]] absl::StatusOr<std::string> EncodeMessage(ConnectCodec codec,
                                                        const google::protobuf::Message& message);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_CONNECT_CONNECT_CODEC_H_
