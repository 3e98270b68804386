#include "server/fleetd/connect/connect_protocol.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/quoted_input.h"

namespace threadfleet::fleetd {
namespace {

// The spec: at most 10 digits.
constexpr size_t kMaxTimeoutDigits = 10;

struct CodeRow {
  absl::StatusCode code;
  absl::string_view name;
  int http_status;
};

// The Connect protocol's table of codes, names and HTTP statuses.
constexpr std::array<CodeRow, 16> kCodes = {{
    {absl::StatusCode::kCancelled, "canceled", 499},
    {absl::StatusCode::kUnknown, "unknown", 500},
    {absl::StatusCode::kInvalidArgument, "invalid_argument", 400},
    {absl::StatusCode::kDeadlineExceeded, "deadline_exceeded", 504},
    {absl::StatusCode::kNotFound, "not_found", 404},
    {absl::StatusCode::kAlreadyExists, "already_exists", 409},
    {absl::StatusCode::kPermissionDenied, "permission_denied", 403},
    {absl::StatusCode::kResourceExhausted, "resource_exhausted", 429},
    {absl::StatusCode::kFailedPrecondition, "failed_precondition", 400},
    {absl::StatusCode::kAborted, "aborted", 409},
    {absl::StatusCode::kOutOfRange, "out_of_range", 400},
    {absl::StatusCode::kUnimplemented, "unimplemented", 501},
    {absl::StatusCode::kInternal, "internal", 500},
    {absl::StatusCode::kUnavailable, "unavailable", 503},
    {absl::StatusCode::kDataLoss, "data_loss", 500},
    {absl::StatusCode::kUnauthenticated, "unauthenticated", 401},
}};

const CodeRow* RowOf(absl::StatusCode code) {
  for (const CodeRow& row : kCodes) {
    if (row.code == code) return &row;
  }
  return nullptr;
}

// The length of the UTF-8 sequence at the front of `text`, or 0 when it is
// not one (bad lead byte, missing continuation, overlong, surrogate or past
// U+10FFFF).
size_t Utf8SequenceLength(absl::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  size_t length = 0;
  uint32_t point = 0;
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    point = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    point = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    point = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    point = (point << 6) | (byte(i) & 0x3F);
  }
  constexpr std::array<uint32_t, 5> kSmallest = {0, 0, 0x80, 0x800, 0x10000};
  if (point < kSmallest[length] || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF)) return 0;
  return length;
}

std::string ErrorObject(const absl::Status& status) {
  std::string json = absl::StrCat("{\"code\":\"", ConnectCodeName(status.code()), "\"");
  if (!status.message().empty()) absl::StrAppend(&json, ",\"message\":", JsonQuote(status.message()));
  json += "}";
  return json;
}

}  // namespace

absl::StatusOr<ConnectContentType> ParseConnectContentType(absl::string_view value) {
  std::vector<absl::string_view> parts = absl::StrSplit(value, ';');
  const std::string media = absl::AsciiStrToLower(absl::StripAsciiWhitespace(parts[0]));
  std::optional<ConnectContentType> type;
  if (media == "application/json") type = ConnectContentType{ConnectCodec::kJson, false};
  if (media == "application/proto") type = ConnectContentType{ConnectCodec::kProto, false};
  if (media == "application/connect+json") type = ConnectContentType{ConnectCodec::kJson, true};
  if (media == "application/connect+proto") type = ConnectContentType{ConnectCodec::kProto, true};
  if (!type.has_value()) {
    return absl::UnimplementedError(
        absl::StrCat("content-type ", common::QuoteInput(value),
                     " is not served: use application/json or application/proto (unary), "
                     "application/connect+json or application/connect+proto (streaming)"));
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> param =
        absl::StrSplit(absl::StripAsciiWhitespace(parts[i]), absl::MaxSplits('=', 1));
    if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(param.first), "charset")) continue;
    absl::string_view charset = absl::StripAsciiWhitespace(param.second);
    if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"') {
      charset = charset.substr(1, charset.size() - 2);
    }
    // Binary messages have no charset; JSON is UTF-8 only.
    if (type->codec != ConnectCodec::kJson || !absl::EqualsIgnoreCase(charset, "utf-8")) {
      return absl::UnimplementedError(absl::StrCat("content-type ", common::QuoteInput(value),
                                                   " names a charset fleetd does not read: only JSON, "
                                                   "and only charset=utf-8"));
    }
  }
  return *type;
}

absl::string_view ConnectContentTypeName(ConnectContentType type) {
  if (type.streaming) {
    return type.codec == ConnectCodec::kJson ? "application/connect+json" : "application/connect+proto";
  }
  return type.codec == ConnectCodec::kJson ? "application/json" : "application/proto";
}

absl::StatusOr<ConnectEnvelope> DecodeEnvelope(absl::string_view bytes, size_t max_payload_bytes) {
  if (bytes.size() < kEnvelopePrefixBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("envelope: ", bytes.size(), " bytes, its prefix needs ", kEnvelopePrefixBytes));
  }
  ConnectEnvelope envelope;
  envelope.flags = static_cast<uint8_t>(bytes[0]);
  uint64_t length = 0;
  for (size_t i = 1; i < kEnvelopePrefixBytes; ++i)
    length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  if ((envelope.flags & ~(kEnvelopeCompressed | kEnvelopeEndStream)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "envelope: unknown flags 0x", absl::Hex(static_cast<unsigned>(envelope.flags), absl::kZeroPad2)));
  }
  if ((envelope.flags & kEnvelopeCompressed) != 0) {
    return absl::UnimplementedError("envelope: compressed messages are not served (send them uncompressed)");
  }
  if (length > max_payload_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("envelope: message of ", length, " bytes, the limit is ", max_payload_bytes));
  }
  if (bytes.size() - kEnvelopePrefixBytes < length) {
    return absl::InvalidArgumentError(absl::StrCat("envelope: says ", length, " bytes, only ",
                                                   bytes.size() - kEnvelopePrefixBytes, " follow"));
  }
  envelope.payload = bytes.substr(kEnvelopePrefixBytes, length);
  envelope.size = kEnvelopePrefixBytes + length;
  return envelope;
}

absl::StatusOr<absl::string_view> DecodeRequestEnvelope(absl::string_view body, size_t max_payload_bytes) {
  absl::StatusOr<ConnectEnvelope> envelope = DecodeEnvelope(body, max_payload_bytes);
  if (!envelope.ok()) return envelope.status();
  if ((envelope->flags & kEnvelopeEndStream) != 0) {
    return absl::InvalidArgumentError("envelope: a request holds a message, not an end-of-stream");
  }
  if (envelope->size != body.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("envelope: ", body.size() - envelope->size,
                     " bytes after the request's message (a server-streaming call takes one)"));
  }
  return envelope->payload;
}

std::string EncodeEnvelope(uint8_t flags, absl::string_view payload) {
  const uint32_t length = static_cast<uint32_t>(payload.size());
  std::string out;
  out.reserve(kEnvelopePrefixBytes + payload.size());
  out.push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((length >> shift) & 0xFF));
  out.append(payload.data(), payload.size());
  return out;
}

absl::string_view ConnectCodeName(absl::StatusCode code) {
  const CodeRow* row = RowOf(code);
  return row == nullptr ? "unknown" : row->name;
}

int HttpStatusOf(absl::StatusCode code) {
  if (code == absl::StatusCode::kOk) return 200;
  const CodeRow* row = RowOf(code);
  return row == nullptr ? 500 : row->http_status;
}

std::string ConnectErrorJson(const absl::Status& status) { return ErrorObject(status); }

std::string EndStreamJson(const absl::Status& status) {
  if (status.ok()) return "{}";
  return absl::StrCat("{\"error\":", ErrorObject(status), "}");
}

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  out.reserve(text.size() + 2);
  while (!text.empty()) {
    const size_t length = Utf8SequenceLength(text);
    if (length == 0) {
      out += "\\ufffd";
      text.remove_prefix(1);
      continue;
    }
    if (length > 1) {
      out.append(text.data(), length);
      text.remove_prefix(length);
      continue;
    }
    const char c = text[0];
    text.remove_prefix(1);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == '<' || c == '>' || c == '&') {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out.push_back(c);
        }
    }
  }
  out += "\"";
  return out;
}

absl::StatusOr<std::optional<absl::Duration>> ParseConnectTimeout(std::optional<absl::string_view> value) {
  if (!value.has_value()) return std::nullopt;
  uint64_t ms = 0;
  const bool digits_only = !value->empty() && value->size() <= kMaxTimeoutDigits &&
                           std::all_of(value->begin(), value->end(), absl::ascii_isdigit);
  if (!digits_only || !absl::SimpleAtoi(*value, &ms)) {
    return absl::InvalidArgumentError(absl::StrCat("connect-timeout-ms ", common::QuoteInput(*value),
                                                   ": must be 1 to ", kMaxTimeoutDigits, " digits"));
  }
  return absl::Milliseconds(static_cast<int64_t>(ms));
}

absl::Status CheckConnectProtocolVersion(std::optional<absl::string_view> value) {
  if (!value.has_value() || *value == "1") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("connect-protocol-version ", common::QuoteInput(*value), ": only version 1 is served"));
}

}  // namespace threadfleet::fleetd
