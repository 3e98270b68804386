// EventHub: where what fleetd learns about its boards meets the API streams
// that want it. Fleet events (board events, anomalies, state changes, run
// results) are stored first, then delivered; health updates (snapshots, state
// changes) are delivered only, never stored.
//
// Example:
//
//   EventHub hub(store);
//   uint64_t sub = hub.SubscribeEvents([&](const fleet::v1::Event& e) { ... });
//   absl::StatusOr<fleet::v1::Event> stored = hub.Record(event);  // id and time set
//   hub.Unsubscribe(sub);  // no callback of `sub` runs after this returns
//
// Publishers are the LabMonitor (board links) and the API; subscribers are
// WatchEvents and WatchHealth streams. Thread-safe. Callbacks run on the
// publisher's thread, in publishing order per publisher, and must not block
// (queue the message and return) nor call back into the hub.
#ifndef THREADFLEET_SERVER_FLEETD_HEALTH_EVENT_HUB_H_
#define THREADFLEET_SERVER_FLEETD_HEALTH_EVENT_HUB_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/fleetd/store/store.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {

class EventHub {
 public:
  using EventFn = std::function<void(const threadfleet::fleet::v1::Event& event)>;
  using HealthFn = std::function<void(const threadfleet::fleet::v1::WatchHealthResponse& update)>;

  // REQUIRES: `store` outlives the hub.
  explicit EventHub(Store& store) : store_(store) {}

  // Stores `event` (its time set to now if unset; its id assigned by the
  // store), then delivers the stored event to every event subscriber and, for
  // a board's event, to every health subscriber as a WatchHealthResponse with
  // `event` set. Returns the stored event. A store error is returned and
  // nothing is delivered.
  [[nodiscard]] absl::StatusOr<threadfleet::fleet::v1::Event> Record(threadfleet::fleet::v1::Event event);

  // Delivers a snapshot or state update to every health subscriber.
  void PublishHealth(const threadfleet::fleet::v1::WatchHealthResponse& update);

  // True when at least one health subscriber exists: a publisher may skip
  // building an update nobody would receive. A subscription that returned
  // before the call is seen; one that starts concurrently may or may not be.
  // Lock-free.
  bool HasHealthSubscribers() const { return health_subscribers_.load(std::memory_order_acquire) > 0; }

  // Subscribes; returns an id for Unsubscribe. The callback sees everything
  // published after this returns.
  [[nodiscard]] uint64_t SubscribeEvents(EventFn fn);
  [[nodiscard]] uint64_t SubscribeHealth(HealthFn fn);

  // Ends a subscription; when it returns, no callback of it runs or will
  // run. Unknown ids are ignored. REQUIRES: not called from a hub callback.
  void Unsubscribe(uint64_t id);

 private:
  Store& store_;
  // Held while storing and delivering an event (so subscribers see events in
  // id order: a stream that replays the store, then goes live, drops
  // duplicates by id) and while delivering health updates (so Unsubscribe
  // waits for running callbacks).
  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, EventFn> event_subs_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, HealthFn> health_subs_ ABSL_GUARDED_BY(mu_);
  // health_subs_.size(), readable without mu_ (HasHealthSubscribers).
  std::atomic<size_t> health_subscribers_{0};
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HEALTH_EVENT_HUB_H_
