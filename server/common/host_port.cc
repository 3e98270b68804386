#include "server/common/host_port.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace threadfleet::common {
namespace {

bool IsHostNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
}

bool IsIpv6Char(char c) {
  return absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

}  // namespace

std::string HostPort::ToString() const {
  return bracketed ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view address, PortRule rule) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("address \"", address, "\" has no port; write host:port"));
  }
  HostPort out;
  absl::string_view host = address.substr(0, colon);
  const absl::string_view port = address.substr(colon + 1);
  out.bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (out.bracketed) host = host.substr(1, host.size() - 2);
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("address \"", address, "\" has no host; write host:port"));
  }
  const bool host_ok = out.bracketed ? std::all_of(host.begin(), host.end(), IsIpv6Char)
                                     : std::all_of(host.begin(), host.end(), IsHostNameChar);
  if (!host_ok) {
    return absl::InvalidArgumentError(absl::StrCat("address \"", address, "\": host \"", host,
                                                   "\" is not a host name, IPv4 address or [IPv6] address"));
  }
  const int min_port = rule == PortRule::kListen ? 0 : 1;
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port, &out.port) || out.port < min_port || out.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", address, "\": port \"", port, "\" must be a number from ",
                     rule == PortRule::kListen ? "0 (any free port)" : "1", " to 65535"));
  }
  out.host = std::string(host);
  return out;
}

}  // namespace threadfleet::common
