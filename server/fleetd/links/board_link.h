// Board links: how fleetd talks to its boards. One BoardLink per board keeps
// one mutual-TLS connection to it (BoardConnections, board_connections.h:
// one thread for every board) carrying its health stream (WatchHealth, every
// 500 ms) and every call of BoardClient as HTTP/2 streams, and derives the
// board's state from the health stream. The LinkManager owns every link and
// one timer thread for all of them, and is the BoardDirectory the Fleet API
// uses.
//
// Example:
//
//   LinkManager links(*LinkCredentials::FromFiles(ca, cert, key), LinkOptions{}, &listener);
//   links.Add("b01", "127.0.0.1:7001");            // connects in the background
//   std::shared_ptr<BoardLink> b01 = links.Get("b01");
//   b01->KillThread(7, absl::Seconds(1), {}, [](absl::StatusOr<pb::ThreadInfo> t) { ... });
//   LinkStatus s = b01->status();                  // ONLINE once snapshots arrive
//
// Board state, from the health stream only:
// - ONLINE:   snapshots arrive (and the board answered GetInfo, or failed to);
// - DEGRADED: snapshots arrive but report unkillable threads or free heap
//             below 10 % (health.h: DegradedReason);
// - OFFLINE:  not connected yet, the connection failed (board killed, TLS
//             refused, ...), or no snapshot for LinkOptions::offline_after
//             (3 s: a board that hangs without closing its connection; the
//             link then closes it).
// An offline board is reconnected with exponential backoff (100 ms doubling to
// 5 s, ±20 % jitter), forever, until its link is removed.
//
// Calls: only while the board is ONLINE or DEGRADED; else they fail at once
// with UNAVAILABLE and the reason. When the connection goes, every call on
// it fails at once with the reason ("connection lost: ...", "the board
// stopped answering: no health snapshot for 3s"), never at its deadline.
// Per board at most LinkOptions::max_calls_in_flight calls run and
// max_queued_calls wait (max_open_streams output follows); beyond that a
// call fails with RESOURCE_EXHAUSTED naming the board and the limits, so a
// busy board slows only calls to that board.
//
// Connection attempts: LinkManager::Add() only records the board; the
// manager's timer thread starts its attempts. At most
// LinkOptions::max_connecting attempts (TCP connect, TLS handshake, first
// snapshot and info) run at once across all links; links due for an attempt
// wait their turn first come, first served. So adding 1000 boards returns at
// once, and a reconnect storm costs at most max_connecting handshakes at a
// time.
//
// Threads: no thread per board. Connections, calls and their callbacks run on
// the BoardConnections thread; the LinkManager's single timer thread runs the
// watchdog and the reconnects of every link. A link's destructor waits for
// the callbacks of its calls, so the last reference to a link must not be
// dropped on that thread: a removed link is destroyed on the manager's timer
// thread once nobody else holds it.
//
// Memory per board: the link (~9 KB, most of it the 8 KB first block of the
// arena health snapshots are parsed into), the connection's TLS and HTTP/2
// state (OpenSSL's buffers are released while idle) and its calls.
#ifndef THREADFLEET_SERVER_FLEETD_LINKS_BOARD_LINK_H_
#define THREADFLEET_SERVER_FLEETD_LINKS_BOARD_LINK_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/arena.h"
#include "server/fleetd/links/board_client.h"
#include "server/fleetd/links/board_connections.h"
#include "server/fleetd/links/board_directory.h"
#include "threadfleet/board/v1/board.pb.h"

namespace threadfleet::fleetd {

namespace internal {
// Counts the connection attempts in flight across the links of one manager
// and caps them. Thread-safe.
class ConnectGate {
 public:
  explicit ConnectGate(int capacity) : capacity_(capacity < 1 ? 1 : capacity) {}
  // Takes a slot; false when all are taken.
  bool TryAcquire();
  // Returns a slot taken by TryAcquire().
  void Release();
  int in_flight() const;

 private:
  const int capacity_;
  mutable absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};
}  // namespace internal

struct LinkOptions {
  // Period asked of each board's health stream.
  absl::Duration snapshot_period = absl::Milliseconds(500);
  // A board with no snapshot for this long is OFFLINE (and its connection is
  // closed: its calls fail at once, saying so).
  absl::Duration offline_after = absl::Seconds(3);
  // Reconnect backoff: initial delay, multiplied by backoff_multiplier after
  // each failed attempt up to max_backoff, each delay varied by ±jitter.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  double backoff_multiplier = 2.0;
  double backoff_jitter = 0.2;
  // How long the name lookup, TCP connect and TLS handshake of one attempt
  // may take; a board that does not finish its handshake by then is reported
  // as timed out (not as a certificate problem).
  absl::Duration connect_timeout = absl::Seconds(2);
  // At most this many connection attempts (connect, handshake, first
  // snapshot) run at once across all links of a LinkManager; the others wait
  // in FIFO order.
  int max_connecting = 32;
  // Deadline of calls whose caller set none (KillThread/KillProgram add two
  // grace periods, WriteFile a second per 64 KiB).
  absl::Duration rpc_timeout = absl::Seconds(10);
  // How long after a call's deadline fleetd waits for the board's own
  // DEADLINE_EXCEEDED before it ends the call itself.
  absl::Duration deadline_slack = absl::Milliseconds(500);
  // Per board: calls running at once, and calls waiting behind them; beyond
  // both a call fails with RESOURCE_EXHAUSTED. The board serves 32 streams a
  // connection, so these plus max_open_streams plus the link's own two stay
  // below that.
  int max_calls_in_flight = 8;
  int max_queued_calls = 32;
  // Per board: StreamOutput follows open at once.
  int max_open_streams = 8;
  // How often the LinkManager's timer checks every link (watchdog, reconnect).
  absl::Duration tick = absl::Milliseconds(50);
};

// What a link reports. Calls for one board never overlap and arrive in order
// (a snapshot that makes a board ONLINE comes after that state change); calls
// for different boards may run concurrently. They run on the BoardConnections
// thread or on the LinkManager's timer thread: they must not block for long,
// and must not call LinkManager::Remove(), BoardLink::Stop() or destroy the
// manager (that waits for the very callback that is running).
class LinkListener {
 public:
  virtual ~LinkListener() = default;
  // A snapshot of the board's health stream. Valid during the call only.
  virtual void OnSnapshot(absl::string_view board, const threadfleet::board::v1::HealthSnapshot& snapshot) {}
  // An event of the board's health stream (thread started/ended/failed,
  // deadlock, stall, ...). Valid during the call only.
  virtual void OnEvent(absl::string_view board, const threadfleet::board::v1::Event& event) {}
  // The board's state or its message changed.
  virtual void OnStateChange(absl::string_view board, const LinkStatus& status) {}
};

// How much earlier than a caller's deadline (`timeout` from now) the board is
// asked to answer, so that its answer reaches the caller in time: a tenth of
// the time, at least 20 ms, at most 250 ms.
absl::Duration AnswerReturnMargin(absl::Duration timeout);

// The link to one board. Created and driven by LinkManager; other code gets
// it from LinkManager::Get() and uses its BoardClient calls. Never drop the last
// reference to a link on the BoardConnections thread (in a LinkListener or
// BoardClient callback): its destructor waits for those callbacks.
class BoardLink : public BoardClient {
 public:
  // Records the board; cheap: the connection is opened by Connect(). Its
  // connections run on `connections` (required); attempts take a slot of
  // `gate` (null: no cap). `listener` may be null; it must outlive the
  // link's Stop().
  [[nodiscard]] static std::shared_ptr<BoardLink> Create(
      std::string name, std::string address, const LinkOptions& options, LinkListener* listener,
      std::shared_ptr<BoardConnections> connections, std::shared_ptr<internal::ConnectGate> gate = nullptr);
  // Stops the link; waits until the callbacks of its calls have run.
  ~BoardLink() override;

  BoardLink(const BoardLink&) = delete;
  BoardLink& operator=(const BoardLink&) = delete;

  const std::string& name() const override { return name_; }
  // "host:port" of the board.
  const std::string& address() const { return address_; }
  // Current state; safe from any thread.
  LinkStatus status() const;

  // Starts watching the board's health: the first attempt is due at once
  // (Tick() says so). Idempotent.
  void Start();
  // Watchdog: marks the board OFFLINE when its health stream has been silent
  // for offline_after and closes its connection. Returns true once each time
  // an attempt becomes due (the backoff has passed): the caller then calls
  // Connect() when a slot is free. LinkManager's timer calls it every
  // LinkOptions::tick.
  bool Tick();
  // Starts a connection attempt (connection, health stream, board info)
  // holding a slot of the gate, which the link returns once the board is up
  // or the attempt failed. Returns false, taking no slot, when no attempt is
  // due (stopped, already connected).
  bool Connect();
  // Stops the link: closes its connection (its calls end CANCELLED "the link
  // was removed"), later calls fail at once, and waits until every callback
  // of its calls has run, so no listener call follows. Idempotent.
  // REQUIRES: not called on the BoardConnections thread.
  void Stop();

  // BoardClient
  void GetInfo(CallOptions options, Done<threadfleet::board::v1::BoardInfo> done) override;
  void ListFiles(const threadfleet::board::v1::ListFilesRequest& request, CallOptions options,
                 Done<threadfleet::board::v1::ListFilesResponse> done) override;
  void WriteFile(const threadfleet::board::v1::WriteFileHeader& header,
                 std::shared_ptr<const std::string> content, CallOptions options,
                 Done<threadfleet::board::v1::WriteFileResponse> done) override;
  void ReadFile(std::string path, CallOptions options, Done<std::string> done) override;
  void DeleteFile(std::string path, CallOptions options, StatusDone done) override;
  void StartProgram(const threadfleet::board::v1::StartProgramRequest& request, CallOptions options,
                    Done<threadfleet::board::v1::StartProgramResponse> done) override;
  void StartThread(const threadfleet::board::v1::StartThreadRequest& request, CallOptions options,
                   Done<threadfleet::board::v1::StartThreadResponse> done) override;
  void KillThread(uint32_t thread_id, absl::Duration grace, CallOptions options,
                  Done<threadfleet::board::v1::ThreadInfo> done) override;
  void KillProgram(uint32_t program_id, absl::Duration grace, CallOptions options,
                   Done<threadfleet::board::v1::KillProgramResponse> done) override;
  void ListThreads(const threadfleet::board::v1::ListThreadsRequest& request, CallOptions options,
                   Done<threadfleet::board::v1::ListThreadsResponse> done) override;
  void Exec(std::string source, CallOptions options,
            Done<threadfleet::board::v1::ExecResponse> done) override;
  void Reset(const threadfleet::board::v1::ResetRequest& request, CallOptions options,
             Done<threadfleet::board::v1::ResetResponse> done) override;
  void GetMachine(CallOptions options, Done<threadfleet::board::v1::MachineState> done) override;
  void SetPin(const threadfleet::board::v1::SetPinRequest& request, CallOptions options,
              Done<threadfleet::board::v1::PinState> done) override;
  void SetAdc(const threadfleet::board::v1::SetAdcRequest& request, CallOptions options,
              Done<threadfleet::board::v1::AdcState> done) override;
  std::shared_ptr<OutputStream> StreamOutput(const threadfleet::board::v1::StreamOutputRequest& request,
                                             CallOptions options, OutputChunkFn on_chunk,
                                             StatusDone on_done) override;

 private:
  using Clock = std::chrono::steady_clock;

  BoardLink(std::string name, std::string address, const LinkOptions& options, LinkListener* listener,
            std::shared_ptr<BoardConnections> connections, std::shared_ptr<internal::ConnectGate> gate);

  // A pending state change, delivered outside mu_ (but inside notify_mu_).
  struct Change {
    bool changed = false;
    LinkStatus status;
  };

  // Starts a call on the current connection (`body`, then `chunked` as
  // WriteFileRequest.data messages when set); `done` gets the call's status
  // in the words of board_client.h. Refused at once (done on this thread)
  // while the board is not up or the link stops. Returns the call's id, 0
  // when refused.
  uint64_t StartCall(absl::string_view method, std::string body, std::shared_ptr<const std::string> chunked,
                     BoardConnections::CallKind kind, CallOptions options, absl::Duration default_timeout,
                     BoardConnections::MessageFn on_message, StatusDone done) ABSL_LOCKS_EXCLUDED(mu_);
  // A unary call whose one response message is a `Response`.
  template <typename Response>
  void Unary(absl::string_view method, const google::protobuf::Message& request, CallOptions options,
             absl::Duration default_timeout, Done<Response> done);
  // The caller-facing status of a call that ended with `status`.
  absl::Status CallStatus(absl::string_view method, const absl::Status& status, absl::Duration timeout,
                          bool callers_deadline) const;
  // A call of this link has delivered its outcome.
  void CallEnded() ABSL_LOCKS_EXCLUDED(mu_);

  void ReleaseSlotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Change SetStateLocked(BoardState state, std::string message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The state the latest snapshot says, once the board is up.
  Change UpdateStateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver(const Change& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(notify_mu_);
  absl::Duration NextBackoffLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Recomputes tick_due_ from the state; after every change that can bring
  // Tick()'s work closer.
  void UpdateTickDueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // From the connection's calls and its end (the BoardConnections thread).
  absl::Status OnHealthMessage(uint64_t generation, absl::string_view bytes);
  void OnHealthDone(uint64_t generation, const absl::Status& status);
  void OnInfoDone(uint64_t generation, absl::StatusOr<threadfleet::board::v1::BoardInfo> info);
  void OnConnectionClosed(uint64_t generation, const absl::Status& why);
  bool Idle() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return connection_ == 0 && pending_ == 0; }

  const std::string name_;
  const std::string address_;
  const LinkOptions options_;
  LinkListener* const listener_;
  const std::shared_ptr<BoardConnections> connections_;
  const std::shared_ptr<internal::ConnectGate> gate_;

  // Serialises listener calls of this link, in order. Taken before mu_.
  absl::Mutex notify_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  LinkStatus status_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The connection of the current attempt, 0 when none; reset when its
  // on_closed has run.
  uint64_t connection_ ABSL_GUARDED_BY(mu_) = 0;
  // Identifies connection_; callbacks of an older one are ignored.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // Callbacks still to come: the connection's on_closed and every call's
  // done. Stop() waits for none.
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  // The watchdog gave up on connection_ (it is being closed).
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  bool got_snapshot_ ABSL_GUARDED_BY(mu_) = false;
  bool info_done_ ABSL_GUARDED_BY(mu_) = false;
  // The board is up on connection_: calls may start.
  bool up_ ABSL_GUARDED_BY(mu_) = false;
  // What the latest snapshot says is wrong, if anything (health.h).
  std::optional<std::string> degraded_ ABSL_GUARDED_BY(mu_);
  Clock::time_point activity_ ABSL_GUARDED_BY(mu_);  // attempt start or latest snapshot
  Clock::time_point next_attempt_ ABSL_GUARDED_BY(mu_);
  // Tick() reported the attempt due and Connect() has not run since.
  bool attempt_queued_ ABSL_GUARDED_BY(mu_) = false;
  // The running attempt holds a slot of gate_.
  bool holds_slot_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  // Steady-clock ticks before which Tick() has nothing to do (no watchdog
  // deadline, no attempt): read without mu_.
  std::atomic<Clock::rep> tick_due_{Clock::time_point::max().time_since_epoch().count()};
  absl::BitGen rng_ ABSL_GUARDED_BY(mu_);
  // Health snapshots are parsed into this arena, on the BoardConnections
  // thread only (one health stream at a time): its first block is the
  // link's own, so a snapshot's dozens of small objects cost no malloc.
  static constexpr size_t kArenaBlockBytes = 8 * 1024;
  alignas(8) char arena_block_[kArenaBlockBytes];
  google::protobuf::Arena arena_;
};

// Owns the links of every board fleetd knows, their connections' thread and
// one timer thread that drives their watchdogs and reconnects. Boards are
// added and removed at run time. Thread-safe.
class LinkManager : public BoardDirectory {
 public:
  // `listener` may be null; it must outlive the manager. Host names are
  // looked up with `resolve`.
  LinkManager(LinkCredentials credentials, LinkOptions options, LinkListener* listener,
              ResolveFn resolve = SystemResolve);
  // Stops every link (no listener call after it returns) and the threads.
  ~LinkManager() override;

  LinkManager(const LinkManager&) = delete;
  LinkManager& operator=(const LinkManager&) = delete;

  // BoardDirectory. Remove() returns once no listener call for the board
  // can follow. REQUIRES for Remove(): not called from a LinkListener or
  // BoardClient callback.
  [[nodiscard]] absl::Status Add(std::string name, std::string address) override;
  [[nodiscard]] absl::Status Remove(absl::string_view name) override;
  std::optional<LinkStatus> Status(absl::string_view name) const override;
  std::map<std::string, LinkStatus> Statuses() const override;
  std::shared_ptr<BoardClient> Client(absl::string_view name) const override;

  // The board's link; null if unknown. The link stays usable for calls after
  // a Remove() while the caller holds it.
  std::shared_ptr<BoardLink> Get(absl::string_view name) const;

  // Connection attempts running now (at most LinkOptions::max_connecting).
  int ConnectsInFlight() const { return gate_->in_flight(); }

  // Board connections open or opening, and calls on them not yet ended.
  size_t OpenConnections() const { return connections_->connections(); }
  size_t OpenCalls() const { return connections_->calls(); }

 private:
  void RunTimer();
  // Drops the removed links nobody else holds (on the timer thread).
  void ReapRetired() ABSL_LOCKS_EXCLUDED(mu_);

  const LinkOptions options_;
  LinkListener* const listener_;
  // Every link's connections; links hold it too, so it outlives them.
  const std::shared_ptr<BoardConnections> connections_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<BoardLink>, std::less<>> links_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Removed links, kept until only this list holds them so that they are
  // destroyed on the timer thread, never on a callback thread.
  std::vector<std::shared_ptr<BoardLink>> retired_ ABSL_GUARDED_BY(mu_);
  const std::shared_ptr<internal::ConnectGate> gate_;
  std::thread timer_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_LINKS_BOARD_LINK_H_
