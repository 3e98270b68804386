// NameResolver: host names to socket addresses, off the caller's thread.
// BoardConnections serves every board on one thread; a board named by a
// host name whose lookup is slow (a DNS server that does not answer) must not
// stall the others, so names are looked up here, one at a time, on a thread
// of their own, and each answer is handed back through a callback.
//
// Example:
//
//   NameResolver resolver(SystemResolve, [](uint64_t tag, absl::StatusOr<SocketAddress> a) { ... });
//   resolver.Resolve(7, "board-3.lab", "7001");   // the callback runs later with tag 7
//
// The lookup thread is detached: destroying the resolver returns at once even
// while a lookup blocks, and answers that come after it are dropped.
#ifndef THREADFLEET_SERVER_FLEETD_LINKS_NAME_RESOLVER_H_
#define THREADFLEET_SERVER_FLEETD_LINKS_NAME_RESOLVER_H_

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace threadfleet::fleetd {

struct SocketAddress {
  sockaddr_storage address{};
  socklen_t size = 0;
};

// Looks `host` up (blocking) and returns its first stream address at `port`.
using ResolveFn =
    std::function<absl::StatusOr<SocketAddress>(const std::string& host, const std::string& port)>;

// getaddrinfo; UNAVAILABLE "cannot resolve \"HOST\": REASON" when it fails.
absl::StatusOr<SocketAddress> SystemResolve(const std::string& host, const std::string& port);

class NameResolver {
 public:
  // Runs on the lookup thread, once per Resolve(), in order; must not block.
  using DoneFn = std::function<void(uint64_t tag, absl::StatusOr<SocketAddress> address)>;

  NameResolver(ResolveFn resolve, DoneFn on_done);
  // Returns without waiting for a lookup in progress; no on_done runs after.
  ~NameResolver();

  NameResolver(const NameResolver&) = delete;
  NameResolver& operator=(const NameResolver&) = delete;

  // Queues a lookup; its answer comes to on_done with `tag`.
  void Resolve(uint64_t tag, std::string host, std::string port);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_LINKS_NAME_RESOLVER_H_
