// Board links: how fleetd talks to its boards. One BoardLink per board keeps
// one long-lived mutual-TLS gRPC channel to it for calls, watches its health
// stream (WatchHealth, every 500 ms, on the manager's HealthStreams: one
// thread for every board's stream) and derives the board's state from it;
// the LinkManager owns every link and one timer thread for all of them.
//
// Example:
//
//   LinkManager links(*LinkCredentials::FromFiles(ca, cert, key), LinkOptions{}, &listener);
//   links.Add("b01", "127.0.0.1:7001");            // connects in the background
//   std::shared_ptr<BoardLink> b01 = links.Get("b01");
//   absl::StatusOr<pb::BoardInfo> info = b01->GetInfo();
//   LinkStatus s = b01->status();                  // ONLINE once snapshots arrive
//
// Board state, from the health stream only:
// - ONLINE:   snapshots arrive;
// - DEGRADED: snapshots arrive but report unkillable threads or free heap
//             below 10 % (health.h: DegradedReason);
// - OFFLINE:  not connected yet, the stream failed (board killed, TLS refused,
//             ...), or no snapshot for LinkOptions::offline_after (3 s: a board
//             that hangs without closing its connection).
// An offline board is reconnected with exponential backoff (100 ms doubling to
// 5 s, ±20 % jitter), forever, until its link is removed.
//
// Connection attempts: LinkManager::Add() only records the board; the
// manager's timer thread opens its channel and starts its health stream. At
// most LinkOptions::max_connecting attempts (TCP connect, TLS handshake, first
// snapshot) run at once across all links; links due for an attempt wait their
// turn first come, first served. So adding 1000 boards returns at once, and a
// reconnect storm costs at most max_connecting handshakes at a time.
//
// Threads: no thread per board. The health streams run on one HealthStreams
// thread (health_streams.h says why not gRPC C++: cost per message); the
// StreamOutput calls are gRPC callback reactors; the LinkManager's single
// timer thread runs the watchdog and the reconnects of every link. A reactor
// ends its own call, but the link deletes it, never a gRPC thread: deleting it
// there could drop the last reference to the channel on a gRPC callback
// thread, which gRPC 1.51 does not survive (grpc/grpc#32584). For the same
// reason a removed link is destroyed on the manager's timer thread once nobody
// else holds it.
//
// Connections: two per board. The health stream has its own (one call per
// connection, a new one per attempt); the gRPC channel carries every other
// call and is connected when the first snapshot arrives.
#ifndef THREADFLEET_SERVER_FLEETD_LINKS_BOARD_LINK_H_
#define THREADFLEET_SERVER_FLEETD_LINKS_BOARD_LINK_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
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
#include "server/fleetd/links/board_client.h"
#include "server/fleetd/links/health_streams.h"
#include "threadfleet/board/v1/board.grpc.pb.h"
#include "threadfleet/board/v1/board.pb.h"

namespace threadfleet::fleetd {

namespace internal {
class HealthWatch;
class OutputCall;

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

enum class BoardState { kOffline, kOnline, kDegraded };

// "offline", "online", "degraded".
absl::string_view BoardStateName(BoardState state);

struct LinkStatus {
  BoardState state = BoardState::kOffline;
  // Why the board is offline or degraded, one line, e.g. "health stream
  // failed: UNAVAILABLE: Connection refused"; empty when online.
  std::string message;
  // When the state last changed.
  absl::Time since = absl::InfinitePast();
  // When the latest snapshot arrived; InfinitePast before the first.
  absl::Time last_snapshot = absl::InfinitePast();
  // Health streams that delivered a snapshot: 1 after the first connection,
  // +1 after each reconnection.
  uint64_t connections = 0;
};

struct LinkOptions {
  // Period asked of each board's health stream.
  absl::Duration snapshot_period = absl::Milliseconds(500);
  // A board with no snapshot for this long is OFFLINE (and its stream is
  // restarted).
  absl::Duration offline_after = absl::Seconds(3);
  // Reconnect backoff: initial delay, multiplied by backoff_multiplier after
  // each failed attempt up to max_backoff, each delay varied by ±jitter.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  double backoff_multiplier = 2.0;
  double backoff_jitter = 0.2;
  // HTTP/2 keepalive pings, also while no call is open. They only catch a
  // connection that died silently while no health stream runs; a hung board
  // is caught by offline_after. So they are rare: each one is a frame, an ACK
  // and a timer on both sides, ~20 % of fleetd's cost per board when they
  // came every 5 s. A short timeout would tear down healthy connections
  // whenever the machine is busy (seen with 200+ boards on 2 cores:
  // "keepalive watchdog timeout" and a reconnect storm).
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  // How long the TCP connect and TLS handshake of one attempt may take; a
  // board that does not finish its handshake by then is reported as timed out
  // (not as a certificate problem).
  absl::Duration connect_timeout = absl::Seconds(2);
  // At most this many connection attempts (connect, handshake, first
  // snapshot) run at once across all links of a LinkManager; the others wait
  // in FIFO order.
  int max_connecting = 32;
  // Deadline of unary calls (KillThread/KillProgram add their grace period).
  absl::Duration rpc_timeout = absl::Seconds(10);
  // How often the LinkManager's timer checks every link (watchdog, reconnect).
  absl::Duration tick = absl::Milliseconds(50);
};

// What a link reports. Calls for one board never overlap and arrive in order
// (a snapshot that makes a board ONLINE comes after that state change); calls
// for different boards may run concurrently. They run on the HealthStreams thread or on
// the LinkManager's timer thread: they must not block for long, and must not
// call LinkManager::Remove(), BoardLink::Stop() or destroy the manager (that
// waits for the very callback that is running).
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

// The link to one board. Created and driven by LinkManager; other code gets
// it from LinkManager::Get() and uses its BoardClient calls. Never drop the last
// reference to a link in a LinkListener or StreamOutput callback: its
// destructor waits for those calls to end.
class BoardLink : public BoardClient {
 public:
  // Records the board; cheap: the channel is opened on the first snapshot or
  // call. Its health streams run on `streams` (required); attempts take a
  // slot of `gate` (null: no cap). `listener` may be null; it must outlive
  // the link's Stop().
  [[nodiscard]] static std::shared_ptr<BoardLink> Create(
      std::string name, std::string address, const LinkCredentials& credentials, const LinkOptions& options,
      LinkListener* listener, std::shared_ptr<HealthStreams> streams,
      std::shared_ptr<internal::ConnectGate> gate = nullptr);
  // Stops the link, cancels its StreamOutput calls and waits for them to end.
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
  // Watchdog: marks the board OFFLINE when its stream has been silent for
  // offline_after (and ends the stream); deletes the reactors of finished
  // calls. Returns true once each time an attempt becomes due (the backoff
  // has passed): the caller then calls Connect() when a slot is free.
  // LinkManager's timer calls it every LinkOptions::tick.
  bool Tick();
  // Starts a connection attempt (opens the channel if needed and starts the
  // health stream) holding a slot of the gate, which the link returns at the
  // first snapshot or when the attempt fails. Returns false, taking no slot,
  // when no attempt is due (stopped, already connected).
  bool Connect();
  // Stops watching: cancels the health stream and waits until it has ended,
  // so no listener call follows. Idempotent; the BoardClient calls keep
  // working. REQUIRES: not called from a LinkListener callback.
  void Stop();

  // BoardClient
  absl::StatusOr<threadfleet::board::v1::BoardInfo> GetInfo() override;
  absl::StatusOr<threadfleet::board::v1::ListFilesResponse> ListFiles(absl::string_view dir) override;
  absl::StatusOr<threadfleet::board::v1::WriteFileResponse> WriteFile(absl::string_view path,
                                                                      absl::string_view content) override;
  absl::StatusOr<std::string> ReadFile(absl::string_view path) override;
  absl::Status DeleteFile(absl::string_view path) override;
  absl::StatusOr<threadfleet::board::v1::StartProgramResponse> StartProgram(
      const threadfleet::board::v1::StartProgramRequest& request) override;
  absl::StatusOr<threadfleet::board::v1::StartThreadResponse> StartThread(
      const threadfleet::board::v1::StartThreadRequest& request) override;
  absl::StatusOr<threadfleet::board::v1::ThreadInfo> KillThread(uint32_t thread_id,
                                                                absl::Duration grace) override;
  absl::StatusOr<threadfleet::board::v1::KillProgramResponse> KillProgram(uint32_t program_id,
                                                                          absl::Duration grace) override;
  absl::StatusOr<threadfleet::board::v1::ListThreadsResponse> ListThreads(
      const threadfleet::board::v1::ListThreadsRequest& request) override;
  absl::StatusOr<threadfleet::board::v1::ExecResponse> Exec(absl::string_view source,
                                                            absl::Duration timeout) override;
  absl::Status Reset() override;
  std::shared_ptr<OutputStream> StreamOutput(const threadfleet::board::v1::StreamOutputRequest& request,
                                             OutputChunkFn on_chunk, StreamDoneFn on_done) override;

 private:
  friend class internal::HealthWatch;
  friend class internal::OutputCall;
  using Clock = std::chrono::steady_clock;

  BoardLink(std::string name, std::string address, const LinkCredentials& credentials,
            const LinkOptions& options, LinkListener* listener, std::shared_ptr<HealthStreams> streams,
            std::shared_ptr<internal::ConnectGate> gate);

  // A pending state change, delivered outside mu_ (but inside notify_mu_).
  struct Change {
    bool changed = false;
    LinkStatus status;
  };

  void StartWatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseSlotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The channel's stub, opening the channel on first use.
  threadfleet::board::v1::BoardControl::Stub* Stub() ABSL_LOCKS_EXCLUDED(channel_mu_);
  // Calls wait for the channel to connect while the health stream says the
  // board is up (its channel may still be reconnecting after the board came
  // back); they fail at once while it is offline.
  bool WaitForReady() const ABSL_LOCKS_EXCLUDED(mu_);
  // Opens the channel if needed and has it connect in the background now,
  // past any reconnect backoff.
  void WarmChannel() ABSL_LOCKS_EXCLUDED(channel_mu_);
  Change SetStateLocked(BoardState state, std::string message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver(const Change& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(notify_mu_);
  absl::Duration NextBackoffLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Recomputes tick_due_ from the state; after every change that can bring
  // Tick()'s work closer.
  void UpdateTickDueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // From the health watch (the HealthStreams thread).
  void OnWatchMessage(uint64_t generation, const threadfleet::board::v1::WatchHealthResponse& message);
  // `watch` is done: the link deletes it later, on its own thread.
  void OnWatchDone(internal::HealthWatch* watch, uint64_t generation, const absl::Status& status);
  // From a StreamOutput call that is done (a gRPC thread).
  void OnOutputCallDone(internal::OutputCall* call);
  // Deletes the reactors whose calls are done.
  void DeleteFinishedCalls() ABSL_LOCKS_EXCLUDED(mu_);
  bool WatchEnded() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return watch_ == nullptr; }
  bool OutputCallsEnded() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return output_calls_.empty(); }

  const std::string name_;
  const std::string address_;
  const LinkOptions options_;
  LinkListener* const listener_;
  const LinkCredentials credentials_;
  const std::shared_ptr<HealthStreams> streams_;
  const std::shared_ptr<internal::ConnectGate> gate_;
  // Opened once, on first use, and kept for the link's life (one channel per
  // link: its connections are closed with it). Taken after mu_.
  absl::Mutex channel_mu_;
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(channel_mu_);
  std::unique_ptr<threadfleet::board::v1::BoardControl::Stub> stub_ ABSL_GUARDED_BY(channel_mu_);

  // Serialises listener calls of this link, in order. Taken before mu_.
  absl::Mutex notify_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  LinkStatus status_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The running health stream, or null; OnWatchDone() clears it under mu_
  // and queues it for deletion.
  internal::HealthWatch* watch_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Identifies watch_; messages of an older (cancelled) watch are ignored.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // The watchdog cancelled watch_: its messages no longer count.
  bool watch_abandoned_ ABSL_GUARDED_BY(mu_) = false;
  bool watch_got_snapshot_ ABSL_GUARDED_BY(mu_) = false;
  Clock::time_point watch_activity_ ABSL_GUARDED_BY(mu_);  // stream start or latest snapshot
  Clock::time_point next_attempt_ ABSL_GUARDED_BY(mu_);
  // Tick() reported the attempt due and Connect() has not run since.
  bool attempt_queued_ ABSL_GUARDED_BY(mu_) = false;
  // The running attempt holds a slot of gate_.
  bool holds_slot_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  // Steady-clock ticks before which Tick() has nothing to do (no watchdog
  // deadline, no attempt, no finished call): read without mu_.
  std::atomic<Clock::rep> tick_due_{Clock::time_point::max().time_since_epoch().count()};
  absl::BitGen rng_ ABSL_GUARDED_BY(mu_);
  // Running StreamOutput calls.
  std::set<internal::OutputCall*> output_calls_ ABSL_GUARDED_BY(mu_);
  // Reactors whose calls are done, to delete outside gRPC's threads.
  std::vector<std::unique_ptr<internal::HealthWatch>> finished_watches_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<internal::OutputCall>> finished_output_calls_ ABSL_GUARDED_BY(mu_);
};

// Owns the links of every board fleetd knows and one timer thread that drives
// their watchdogs and reconnects. Boards are added and removed at run time.
// Thread-safe.
class LinkManager {
 public:
  // `listener` may be null; it must outlive the manager.
  LinkManager(LinkCredentials credentials, LinkOptions options, LinkListener* listener);
  // Stops every link (no listener call after it returns) and the timer.
  ~LinkManager();

  LinkManager(const LinkManager&) = delete;
  LinkManager& operator=(const LinkManager&) = delete;

  // Adds a board and returns at once; the timer thread connects to it in the
  // background (within LinkOptions::max_connecting). It is OFFLINE
  // ("connecting") until its first snapshot. INVALID_ARGUMENT for an empty
  // name or address; ALREADY_EXISTS if the name is taken.
  [[nodiscard]] absl::Status Add(std::string name, std::string address);

  // Stops the board's link and forgets it; returns once no listener call for
  // it can follow. NOT_FOUND if unknown. REQUIRES: not called from a
  // LinkListener callback.
  [[nodiscard]] absl::Status Remove(absl::string_view name);

  // The board's link; null if unknown. The link stays usable for calls after
  // a Remove() while the caller holds it.
  std::shared_ptr<BoardLink> Get(absl::string_view name) const;

  // The board's state; nullopt if unknown.
  std::optional<LinkStatus> Status(absl::string_view name) const;

  // The state of every board, by name.
  std::map<std::string, LinkStatus> Statuses() const;

  // Connection attempts running now (at most LinkOptions::max_connecting).
  int ConnectsInFlight() const { return gate_->in_flight(); }

 private:
  void RunTimer();
  // Drops the removed links nobody else holds (on the timer thread).
  void ReapRetired() ABSL_LOCKS_EXCLUDED(mu_);

  const LinkCredentials credentials_;
  const LinkOptions options_;
  LinkListener* const listener_;
  // Every link's health streams; links hold it too, so it outlives them.
  const std::shared_ptr<HealthStreams> streams_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<BoardLink>, std::less<>> links_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Removed links, kept until only this list holds them so that they are
  // destroyed on the timer thread, never on a caller's gRPC thread.
  std::vector<std::shared_ptr<BoardLink>> retired_ ABSL_GUARDED_BY(mu_);
  const std::shared_ptr<internal::ConnectGate> gate_;
  std::thread timer_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_LINKS_BOARD_LINK_H_
