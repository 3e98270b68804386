#include "server/fleetd/health/event_hub.h"

#include <utility>

#include "google/protobuf/util/time_util.h"

namespace threadfleet::fleetd {

namespace fleet = threadfleet::fleet::v1;

absl::StatusOr<fleet::Event> EventHub::Record(fleet::Event event) {
  if (!event.has_time()) {
    *event.mutable_time() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
  }
  // Stored and delivered under one lock: subscribers see events in id order,
  // so a WatchEvents stream that replays the store and then goes live can
  // drop duplicates by comparing ids.
  absl::MutexLock lock(&mu_);
  absl::StatusOr<int64_t> id = store_.AppendEvent(event);
  if (!id.ok()) return id.status();
  event.set_id(static_cast<uint64_t>(*id));
  for (const auto& [sub, fn] : event_subs_) fn(event);
  if (!event.board().empty() && !health_subs_.empty()) {
    fleet::WatchHealthResponse update;
    update.set_board(event.board());
    *update.mutable_event() = event;
    for (const auto& [sub, fn] : health_subs_) fn(update);
  }
  return event;
}

void EventHub::PublishHealth(const fleet::WatchHealthResponse& update) {
  absl::MutexLock lock(&mu_);
  for (const auto& [sub, fn] : health_subs_) fn(update);
}

uint64_t EventHub::SubscribeEvents(EventFn fn) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  event_subs_.emplace(id, std::move(fn));
  return id;
}

uint64_t EventHub::SubscribeHealth(HealthFn fn) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  health_subs_.emplace(id, std::move(fn));
  health_subscribers_.store(health_subs_.size(), std::memory_order_release);
  return id;
}

void EventHub::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&mu_);
  event_subs_.erase(id);
  health_subs_.erase(id);
  health_subscribers_.store(health_subs_.size(), std::memory_order_release);
}

}  // namespace threadfleet::fleetd
