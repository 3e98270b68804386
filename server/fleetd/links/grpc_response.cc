#include "server/fleetd/links/grpc_response.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace threadfleet::fleetd {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The gRPC code of an HTTP status that is not 200 (gRPC's
// doc/http-grpc-status-mapping.md).
absl::StatusCode CodeOfHttpStatus(int status) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInternal;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

// The length a message prefix announces, or why the message is refused.
absl::Status CheckPrefix(absl::string_view prefix, size_t max_message_bytes, size_t* length) {
  const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(prefix[i])); };
  if (byte(0) == 1)
    return absl::InternalError("the board sent a compressed message; fleetd offers no compression");
  if (byte(0) != 0) return absl::InternalError(absl::StrCat("bad gRPC message flag ", byte(0)));
  *length = (byte(1) << 24) | (byte(2) << 16) | (byte(3) << 8) | byte(4);
  if (*length > max_message_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("response message of ", *length, " bytes is over the limit of ", max_message_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

std::string FrameGrpcMessage(absl::string_view message) {
  const auto length = static_cast<uint32_t>(message.size());
  std::string framed(kGrpcMessagePrefixBytes, '\0');
  framed[1] = static_cast<char>(length >> 24);
  framed[2] = static_cast<char>(length >> 16);
  framed[3] = static_cast<char>(length >> 8);
  framed[4] = static_cast<char>(length);
  framed.append(message.data(), message.size());
  return framed;
}

std::string GrpcBytesMessageHead(uint32_t field, size_t data_size) {
  // Protobuf's wire format: a varint tag (field << 3 | 2, length-delimited),
  // a varint length, the bytes.
  std::string varints;
  const auto put_varint = [&varints](uint64_t v) {
    while (v >= 0x80) {
      varints.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    varints.push_back(static_cast<char>(v));
  };
  put_varint((static_cast<uint64_t>(field) << 3) | 2);
  put_varint(data_size);
  const auto length = static_cast<uint32_t>(varints.size() + data_size);
  std::string head(kGrpcMessagePrefixBytes, '\0');
  head[1] = static_cast<char>(length >> 24);
  head[2] = static_cast<char>(length >> 16);
  head[3] = static_cast<char>(length >> 8);
  head[4] = static_cast<char>(length);
  return head + varints;
}

std::string PercentDecodeGrpcMessage(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int high = HexDigit(text[i + 1]);
      const int low = HexDigit(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

void GrpcResponseReader::OnHeader(absl::string_view name, absl::string_view value) {
  if (name == ":status") {
    int status = 0;
    http_status_ = absl::SimpleAtoi(value, &status) ? status : -1;
  } else if (name == "content-type") {
    // application/grpc, application/grpc+proto, application/grpc;...
    grpc_content_type_ = absl::StartsWithIgnoreCase(value, "application/grpc") &&
                         (value.size() == 16 || value[16] == '+' || value[16] == ';');
  } else if (name == "grpc-status") {
    grpc_status_ = std::string(value);
  } else if (name == "grpc-message") {
    grpc_message_ = PercentDecodeGrpcMessage(value);
  }
}

absl::Status GrpcResponseReader::OnHeadersDone() {
  if (!http_status_.has_value()) return absl::InternalError("response headers without :status");
  if (*http_status_ != 200) {
    return absl::Status(CodeOfHttpStatus(*http_status_),
                        absl::StrCat("the board answered HTTP status ", *http_status_));
  }
  // A Trailers-Only response carries its grpc-status here; Finish() reads it.
  if (!grpc_content_type_ && !grpc_status_.has_value()) {
    return absl::UnknownError("the board's response is not gRPC (content-type)");
  }
  headers_accepted_ = true;
  return absl::OkStatus();
}

absl::Status GrpcResponseReader::OnData(
    absl::string_view bytes, absl::FunctionRef<absl::Status(absl::string_view message)> on_message) {
  if (!headers_accepted_) return absl::InternalError("response DATA before its headers");
  while (!bytes.empty()) {
    size_t length = 0;
    if (partial_.empty() && bytes.size() >= kGrpcMessagePrefixBytes) {
      // Whole messages in this chunk are handed over without a copy.
      if (absl::Status s = CheckPrefix(bytes, max_message_bytes_, &length); !s.ok()) return s;
      if (bytes.size() - kGrpcMessagePrefixBytes >= length) {
        ++messages_;
        if (absl::Status s = on_message(bytes.substr(kGrpcMessagePrefixBytes, length)); !s.ok()) return s;
        bytes.remove_prefix(kGrpcMessagePrefixBytes + length);
        continue;
      }
    }
    if (partial_.size() < kGrpcMessagePrefixBytes) {
      const size_t take = std::min(kGrpcMessagePrefixBytes - partial_.size(), bytes.size());
      partial_.append(bytes.data(), take);
      bytes.remove_prefix(take);
      if (partial_.size() < kGrpcMessagePrefixBytes) return absl::OkStatus();
    }
    if (absl::Status s = CheckPrefix(partial_, max_message_bytes_, &length); !s.ok()) return s;
    const size_t total = kGrpcMessagePrefixBytes + length;
    const size_t take = std::min(total - partial_.size(), bytes.size());
    partial_.append(bytes.data(), take);
    bytes.remove_prefix(take);
    if (partial_.size() < total) return absl::OkStatus();
    ++messages_;
    absl::Status s = on_message(absl::string_view(partial_).substr(kGrpcMessagePrefixBytes));
    partial_.clear();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status GrpcResponseReader::Finish() const {
  if (!partial_.empty()) return absl::InternalError("the board ended the call inside a message");
  if (!grpc_status_.has_value()) return absl::InternalError("the board ended the call without a grpc-status");
  int code = 0;
  if (!absl::SimpleAtoi(*grpc_status_, &code) || code < 0 || code > 16) {
    return absl::InternalError(absl::StrCat("the board ended the call with a bad grpc-status \"",
                                            absl::CHexEscape(*grpc_status_), "\""));
  }
  return absl::Status(static_cast<absl::StatusCode>(code), grpc_message_);
}

}  // namespace threadfleet::fleetd
