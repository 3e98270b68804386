// HealthStreams: the WatchHealth calls of every board, on one thread. Each
// call has its own mutual-TLS connection (OpenSSL) carrying one HTTP/2 stream
// (nghttp2) with gRPC framing; one epoll loop serves all of them.
//
// Example:
//
//   auto streams = std::make_shared<HealthStreams>(LinkCredentials{ca, cert, key});
//   pb::WatchHealthRequest request;
//   request.set_period_ms(1000);
//   uint64_t id = streams->Watch("127.0.0.1:7001", request, absl::Seconds(2),
//       [](const pb::WatchHealthResponse& m) { ... },    // each message, on the stream thread
//       [](const absl::Status& end) { ... });            // once, last
//   streams->Cancel(id);                                 // on_done(CANCELLED) follows
//
// Why not gRPC C++ for these calls (it serves every other board call): a
// health message is small and comes every period from every board, so its
// per-message cost is fleetd's cost at scale. gRPC 1.51 spends ~200 µs of CPU
// per message here: a WINDOW_UPDATE frame sent back for every DATA frame, and
// a hand-off of the poller between its threads on every wake-up
// (docs/architecture.md, "What a health message costs"). This client reads a
// message with one epoll wake-up and one TLS read, parses it into a per-call
// arena, and announces a 1 MiB window, so WINDOW_UPDATEs come every few
// hundred messages. When messages come faster than one per 20 ms, the loop
// reads them in batches of 20 ms (one wake-up for many boards).
//
// Callbacks run on the stream thread: they must not block for long (every
// board's health waits behind them) and must not destroy the HealthStreams.
// Watch() and Cancel() never block on the thread and may be called from
// callbacks.
//
// How a call ends, in on_done's status:
// - the board ended it: the board's gRPC status;
// - UNAVAILABLE "cannot resolve \"HOST\": ..." (a host name, looked up on a
//   thread of its own so that a slow lookup holds up no other board);
// - UNAVAILABLE "TCP connect to ADDR failed: ..." / "... closed the connection";
// - UNAVAILABLE "TLS handshake failed: ..." (certificate refused by either side);
// - DEADLINE_EXCEEDED "... timed out after ..." (lookup + connect + handshake took
//   longer than the call's connect timeout);
// - CANCELLED after Cancel() or when the HealthStreams is destroyed;
// - INTERNAL / RESOURCE_EXHAUSTED for a response that breaks HTTP/2 or gRPC.
#ifndef THREADFLEET_SERVER_FLEETD_LINKS_HEALTH_STREAMS_H_
#define THREADFLEET_SERVER_FLEETD_LINKS_HEALTH_STREAMS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/fleetd/links/link_credentials.h"
#include "server/fleetd/links/name_resolver.h"
#include "threadfleet/board/v1/board.pb.h"

namespace threadfleet::fleetd {

class HealthStreams {
 public:
  using MessageFn = std::function<void(const threadfleet::board::v1::WatchHealthResponse& message)>;
  using DoneFn = std::function<void(const absl::Status& status)>;

  // Starts the stream thread. Credentials that OpenSSL cannot load make every
  // call end at once with setup_status() (so a board shows why it is offline).
  // Host names are looked up with `resolve` (tests slow it down).
  explicit HealthStreams(const LinkCredentials& credentials, ResolveFn resolve = SystemResolve);
  // Ends every call (their on_done runs, CANCELLED) and stops the thread.
  // REQUIRES: not called from a callback.
  ~HealthStreams();

  HealthStreams(const HealthStreams&) = delete;
  HealthStreams& operator=(const HealthStreams&) = delete;

  // OK, or why the credentials cannot be used (INVALID_ARGUMENT).
  const absl::Status& setup_status() const { return setup_status_; }

  // Starts WatchHealth on the board at `address` ("host:port", "[v6]:port")
  // over a new connection: name lookup, TCP connect and TLS handshake within
  // `connect_timeout`; after that the call runs until it ends or is
  // cancelled. `on_message` runs for each message, `on_done` once, after
  // the last. Returns the call's id (never 0, never reused).
  uint64_t Watch(const std::string& address, const threadfleet::board::v1::WatchHealthRequest& request,
                 absl::Duration connect_timeout, MessageFn on_message, DoneFn on_done);

  // Ends call `id` with CANCELLED unless it has ended; its on_done follows on
  // the stream thread. Unknown or ended ids are ignored.
  void Cancel(uint64_t id);

 private:
  class Call;
  // What the stream thread is asked to do with call `id`: start it, give it
  // its looked-up address, or (neither) cancel it.
  struct Command {
    uint64_t id = 0;
    std::unique_ptr<Call> start;
    std::optional<absl::StatusOr<SocketAddress>> resolved;
  };

  void Run();
  void Wake();

  absl::Status setup_status_;
  // OpenSSL's SSL_CTX, shared by every connection; null when setup failed.
  std::shared_ptr<void> tls_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;

  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Command> commands_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  // Declared last: destroyed first, so no lookup answer comes in while the
  // rest is torn down.
  std::unique_ptr<NameResolver> resolver_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_LINKS_HEALTH_STREAMS_H_
