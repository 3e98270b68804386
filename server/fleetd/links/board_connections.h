// BoardConnections: fleetd's connections to its boards, on one thread. Each
// connection is mutual TLS (OpenSSL) to one board and carries every call to
// it as an HTTP/2 stream (nghttp2) with gRPC framing of our own
// (grpc_response.h): the health stream, and the unary and streaming calls
// of the Fleet API, side by side. One epoll loop serves every connection.
//
// Example:
//
//   auto connections = std::make_shared<BoardConnections>(LinkCredentials{ca, cert, key});
//   uint64_t c = connections->Connect({.address = "127.0.0.1:7001"},
//                                     [](const absl::Status& why) { ... });   // once, last
//   connections->Call(c, {.method = "GetInfo", .body = FrameGrpcMessage(""), .deadline = ...},
//       [](absl::string_view message) { ...; return absl::OkStatus(); },    // each message
//       [](const absl::Status& end) { ... });                               // once, last
//   connections->Close(c, absl::UnavailableError("the board stopped answering"));
//
// Why our own client and not gRPC C++ (docs/architecture.md, "Board links"):
// a health message comes every period from every board, so its per-message
// cost is fleetd's cost at scale. gRPC 1.51 spends ~200 µs of CPU a message
// here (a WINDOW_UPDATE for every DATA frame, a hand-off of the poller between
// its threads on every wake-up); this loop reads a message with one epoll
// wake-up and one TLS read and announces a 1 MiB window, so WINDOW_UPDATEs
// come every few hundred messages. When messages come faster than one per
// 20 ms, the loop reads them in batches of 20 ms (one wake-up for many
// boards); a board with a call out is read at once all the same, so a kill
// does not wait for the batch. The other calls ride the same connection, so
// a board has one connection from fleetd, and a connection that fails fails
// every call on it at once, with the reason.
//
// Limits per connection (ConnectionSpec): at most max_calls_in_flight unary
// calls (kCall) run at once; more wait in order, up to max_queued_calls, and
// beyond that a call ends at once with RESOURCE_EXHAUSTED naming both
// limits. At most max_open_streams long streams (kStream: output follows)
// run at once; beyond that RESOURCE_EXHAUSTED. Calls of kind kControl (the
// link's own: health, info) are not counted. A call waits for the connection
// to be up (TLS done) like a queued one.
//
// Deadlines: a call's deadline goes to the board as grpc-timeout (the board
// ends the call there with DEADLINE_EXCEEDED); if no answer has come by
// CallSpec::give_up, fleetd resets the stream and ends the call with
// DEADLINE_EXCEEDED and an empty message (the caller words it). A queued
// call whose time runs out ends the same way without being sent.
//
// Callbacks run on the connections' thread ("board-links"): they must not
// block (every board's health waits behind them: no SQLite, no waiting for
// a lock held across blocking work) and must not destroy the
// BoardConnections. Connect(), Call(), Cancel() and Close() never block on
// the thread and may be called from callbacks; their effects follow on the
// thread, in the order they were asked for.
//
// How a connection ends, in on_closed's status (and in the status of every
// call still open on it, prefixed "connection lost: " once it was up):
// - Close(why): `why`, as given;
// - UNAVAILABLE "cannot resolve \"HOST\": ..." (a host name, looked up on a
//   thread of its own so that a slow lookup holds up no other board);
// - UNAVAILABLE "TCP connect to ADDR failed: ..." / "the board closed the
//   connection" / "the board closed the HTTP/2 session";
// - UNAVAILABLE "TLS handshake failed: ..." (certificate refused by either side);
// - DEADLINE_EXCEEDED "... timed out after ..." (lookup + connect + handshake
//   took longer than the connect timeout);
// - INVALID_ARGUMENT for an address that does not parse;
// - CANCELLED when the BoardConnections is destroyed;
// - INTERNAL for a board that breaks HTTP/2.
// A call also ends on its own: the board's gRPC status; DEADLINE_EXCEEDED
// (above); CANCELLED after Cancel(); UNAVAILABLE "the board reset the
// stream ..."; INTERNAL / RESOURCE_EXHAUSTED for a response that breaks gRPC
// framing or a message that on_message refused.
#ifndef THREADFLEET_SERVER_FLEETD_LINKS_BOARD_CONNECTIONS_H_
#define THREADFLEET_SERVER_FLEETD_LINKS_BOARD_CONNECTIONS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/fleetd/links/link_credentials.h"
#include "server/fleetd/links/name_resolver.h"

namespace threadfleet::fleetd {

class BoardConnections {
 public:
  // One complete response message (valid during the call only). A non-OK
  // status ends the call with it.
  using MessageFn = std::function<absl::Status(absl::string_view message)>;
  // A call ended; once, after its last message.
  using DoneFn = std::function<void(const absl::Status& status)>;
  // A connection ended; once, after the on_done of every call it carried.
  using ClosedFn = std::function<void(const absl::Status& why)>;

  struct ConnectionSpec {
    // "host:port" or "[v6]:port"; the board's certificate must name the host.
    std::string address;
    // Name lookup, TCP connect and TLS handshake together.
    absl::Duration connect_timeout = absl::Seconds(2);
    // kCall calls running at once, and waiting behind them.
    size_t max_calls_in_flight = 8;
    size_t max_queued_calls = 32;
    // kStream calls open at once.
    size_t max_open_streams = 8;
  };

  enum class CallKind {
    // A call that ends on its own soon (unary, a bounded stream): counted
    // against max_calls_in_flight, queued behind it.
    kCall,
    // A stream that may stay open for long (an output follow): counted
    // against max_open_streams, never queued.
    kStream,
    // The link's own (health stream, board info): not counted.
    kControl,
  };

  struct CallSpec {
    // The BoardControl method, e.g. "KillThread".
    std::string method;
    // The request: one or more framed messages (FrameGrpcMessage); the
    // request ends (END_STREAM) after the last byte, or after `chunked`.
    std::string body;
    CallKind kind = CallKind::kCall;
    // Sent to the board as grpc-timeout; InfiniteFuture for none.
    absl::Time deadline = absl::InfiniteFuture();
    // fleetd ends the call itself (DEADLINE_EXCEEDED, empty message) when no
    // answer has come by then: a little after `deadline`, so the board's own
    // answer normally comes first. InfiniteFuture for never.
    absl::Time give_up = absl::InfiniteFuture();
    // Longer response messages end the call with RESOURCE_EXHAUSTED.
    size_t max_message_bytes = 1 << 20;
    // Sent after `body` when set: cut into pieces of `chunk_bytes`, each
    // framed as a message whose only field is bytes field `chunk_field`
    // (WriteFileRequest.data), made as the stream is sent, so calls that
    // send the same large payload (a push to many boards) share one copy.
    std::shared_ptr<const std::string> chunked = nullptr;
    size_t chunk_bytes = 4096;
    uint32_t chunk_field = 0;
  };

  // Starts the thread. Credentials that OpenSSL cannot load make every
  // connection end at once with setup_status() (so a board shows why it is
  // offline). Host names are looked up with `resolve` (tests slow it down).
  explicit BoardConnections(const LinkCredentials& credentials, ResolveFn resolve = SystemResolve);
  // Ends every connection (CANCELLED; every callback runs) and stops the
  // thread. REQUIRES: not called from a callback.
  ~BoardConnections();

  BoardConnections(const BoardConnections&) = delete;
  BoardConnections& operator=(const BoardConnections&) = delete;

  // OK, or why the credentials cannot be used (INVALID_ARGUMENT).
  const absl::Status& setup_status() const { return setup_status_; }

  // Opens a connection to a board: name lookup, TCP connect and TLS
  // handshake within spec.connect_timeout; after that it stays until it
  // fails or is closed. Returns its id (never 0, never reused) at once.
  uint64_t Connect(ConnectionSpec spec, ClosedFn on_closed);

  // Starts a call on `connection` (waiting for it to be up, or behind its
  // limits). `on_message` runs for each response message, `on_done` once,
  // after the last. A connection that has ended (or was never opened) ends
  // the call at once with UNAVAILABLE. Returns the call's id (never 0).
  uint64_t Call(uint64_t connection, CallSpec spec, MessageFn on_message, DoneFn on_done);

  // Ends call `id` with CANCELLED unless it has ended (the board's stream is
  // reset). Unknown or ended ids are ignored.
  void Cancel(uint64_t id);

  // Ends `connection` and every call on it with `why`. Unknown or ended ids
  // are ignored.
  void Close(uint64_t connection, absl::Status why);

  // Connections open or opening, and calls not yet ended, as of the loop's
  // last turn; for tests and metrics.
  size_t connections() const;
  size_t calls() const;

 private:
  class Connection;
  class Stream;
  // What the loop is asked to do (board_connections.cc).
  struct Command;

  void Post(Command command);
  void Run();
  void Wake();

  absl::Status setup_status_;
  // OpenSSL's SSL_CTX, shared by every connection; null when setup failed.
  std::shared_ptr<void> tls_;
  int epoll_fd_ = -1;
  // The wake-up eventfd and the sockets of connections with calls out: the
  // loop waits on these alone while it batches health messages, so a new
  // call or an answer someone waits for is handled at once.
  int urgent_fd_ = -1;
  int wake_fd_ = -1;

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Command> commands_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  size_t open_connections_ ABSL_GUARDED_BY(mu_) = 0;
  size_t open_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
  // Declared last: destroyed first, so no lookup answer comes in while the
  // rest is torn down.
  std::unique_ptr<NameResolver> resolver_;
};

// The grpc-timeout header value for `timeout` (> 0): whole milliseconds
// rounded up ("1500m"), or seconds when that needs more than 8 digits.
std::string GrpcTimeoutValue(absl::Duration timeout);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_LINKS_BOARD_CONNECTIONS_H_
