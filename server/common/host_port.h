// "host:port", the way fleetd's users write an address (boards in lab.yaml,
// listen addresses in fleetd.yaml, fleetctl's --server): a host name, an
// IPv4 address or a bracketed IPv6 address, a colon, a decimal port. One
// parser for every place that reads one, so they all accept and refuse the
// same text with the same words.
//
// Example:
//
//   absl::StatusOr<HostPort> board = ParseHostPort("[::1]:7001");
//   if (!board.ok()) return board.status();  // INVALID_ARGUMENT, says what is wrong
//   board->host;        // "::1" (no brackets)
//   board->port;        // 7001
//   board->ToString();  // "[::1]:7001"
//   ParseHostPort("127.0.0.1:0", PortRule::kListen);  // port 0: any free port
#ifndef THREADFLEET_SERVER_COMMON_HOST_PORT_H_
#define THREADFLEET_SERVER_COMMON_HOST_PORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace threadfleet::common {

struct HostPort {
  // Without brackets: "localhost", "127.0.0.1", "::1".
  std::string host;
  int port = 0;
  // The host was written in brackets (an IPv6 address).
  bool bracketed = false;

  // "host:port", an IPv6 host in brackets.
  std::string ToString() const;
};

// Which ports an address may have.
enum class PortRule {
  kDial,    // 1-65535: an address to connect to
  kListen,  // 0-65535: an address to listen on, 0 for any free port
};

// Parses "host:port" or "[v6]:port". INVALID_ARGUMENT naming the address and
// what is wrong: no port, no host, a host that is not a host name (letters,
// digits, '.', '-'), IPv4 address or bracketed IPv6 address (hex digits,
// ':', '.'), or a port that is not a decimal number in the rule's range.
// Only the text is checked: nothing is looked up.
[[nodiscard]] absl::StatusOr<HostPort> ParseHostPort(absl::string_view address,
                                                     PortRule rule = PortRule::kDial);

}  // namespace threadfleet::common

#endif  // THREADFLEET_SERVER_COMMON_HOST_PORT_H_
