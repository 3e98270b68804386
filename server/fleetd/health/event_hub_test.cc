// EventHub over a real SqliteStore in a temporary directory: events are
// stored before they are delivered, in id order, board events also reach the
// health subscribers, and Unsubscribe stops delivery.
#include "server/fleetd/health/event_hub.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/fleetd/store/sqlite_store.h"
#include "server/fleetd/testing/temp_store.h"

namespace threadfleet::fleetd {
namespace {

namespace fleet = ::threadfleet::fleet::v1;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

fleet::Event BoardEvent(const std::string& board, const std::string& message) {
  fleet::Event e;
  e.set_board(board);
  e.set_kind(fleet::EVENT_KIND_BOARD_STATE);
  e.set_severity(fleet::SEVERITY_INFO);
  e.set_message(message);
  return e;
}

class EventHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(temp_.Init("event_hub_test"));
    store_ = &temp_.store();
    hub_ = std::make_unique<EventHub>(*store_);
  }

  testing::TempStore temp_;  // first: outlives everything using its store
  SqliteStore* store_ = nullptr;
  std::unique_ptr<EventHub> hub_;
};

TEST_F(EventHubTest, RecordStoresTheEventWithIdAndTimeThenDeliversIt) {
  std::vector<fleet::Event> seen;
  const uint64_t sub = hub_->SubscribeEvents([&](const fleet::Event& e) { seen.push_back(e); });

  absl::StatusOr<fleet::Event> stored = hub_->Record(BoardEvent("b01", "b01 is online"));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_GT(stored->id(), 0u);
  EXPECT_TRUE(stored->has_time());
  EXPECT_GT(stored->time().seconds(), 0);

  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].id(), stored->id());
  EXPECT_EQ(seen[0].message(), "b01 is online");

  absl::StatusOr<std::vector<fleet::Event>> listed = store_->ListEvents(EventQuery{});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id(), stored->id());
  EXPECT_EQ((*listed)[0].message(), "b01 is online");
  hub_->Unsubscribe(sub);
}

TEST_F(EventHubTest, RecordKeepsATimeTheCallerSet) {
  fleet::Event e = BoardEvent("b01", "x");
  e.mutable_time()->set_seconds(1700000000);
  absl::StatusOr<fleet::Event> stored = hub_->Record(e);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->time().seconds(), 1700000000);
}

TEST_F(EventHubTest, BoardEventsReachHealthSubscribersFleetWideOnesDoNot) {
  std::vector<fleet::WatchHealthResponse> health;
  const uint64_t sub =
      hub_->SubscribeHealth([&](const fleet::WatchHealthResponse& u) { health.push_back(u); });

  ASSERT_TRUE(hub_->Record(BoardEvent("b02", "b02 went offline")).ok());
  fleet::Event fleet_wide;
  fleet_wide.set_kind(fleet::EVENT_KIND_RUN_ENDED);
  fleet_wide.set_message("run 1 passed");
  ASSERT_TRUE(hub_->Record(fleet_wide).ok());

  ASSERT_EQ(health.size(), 1u);
  EXPECT_EQ(health[0].board(), "b02");
  ASSERT_TRUE(health[0].has_event());
  EXPECT_EQ(health[0].event().message(), "b02 went offline");
  EXPECT_GT(health[0].event().id(), 0u);
  hub_->Unsubscribe(sub);
}

TEST_F(EventHubTest, PublishHealthReachesHealthSubscribersOnlyAndIsNotStored) {
  std::vector<std::string> health_boards;
  int events = 0;
  const uint64_t h =
      hub_->SubscribeHealth([&](const fleet::WatchHealthResponse& u) { health_boards.push_back(u.board()); });
  const uint64_t e = hub_->SubscribeEvents([&](const fleet::Event&) { ++events; });

  fleet::WatchHealthResponse update;
  update.set_board("b01");
  update.set_state(fleet::BOARD_STATE_ONLINE);
  hub_->PublishHealth(update);

  EXPECT_THAT(health_boards, ElementsAre("b01"));
  EXPECT_EQ(events, 0);
  absl::StatusOr<std::vector<fleet::Event>> listed = store_->ListEvents(EventQuery{});
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
  hub_->Unsubscribe(h);
  hub_->Unsubscribe(e);
}

TEST_F(EventHubTest, UnsubscribedCallbackSeesNothingMoreAndUnknownIdsAreIgnored) {
  int a = 0, b = 0;
  const uint64_t sub_a = hub_->SubscribeEvents([&](const fleet::Event&) { ++a; });
  const uint64_t sub_b = hub_->SubscribeEvents([&](const fleet::Event&) { ++b; });
  EXPECT_NE(sub_a, sub_b);
  ASSERT_TRUE(hub_->Record(BoardEvent("b01", "one")).ok());
  hub_->Unsubscribe(sub_a);
  hub_->Unsubscribe(12345);
  ASSERT_TRUE(hub_->Record(BoardEvent("b01", "two")).ok());
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  hub_->Unsubscribe(sub_b);
}

TEST_F(EventHubTest, ConcurrentPublishersDeliverInIdOrder) {
  absl::Mutex mu;
  std::vector<uint64_t> ids;
  const uint64_t sub = hub_->SubscribeEvents([&](const fleet::Event& e) {
    absl::MutexLock lock(&mu);
    ids.push_back(e.id());
  });
  std::vector<std::thread> publishers;
  for (int p = 0; p < 4; ++p) {
    publishers.emplace_back([&, p] {
      for (int i = 0; i < 25; ++i) ASSERT_TRUE(hub_->Record(BoardEvent("b0" + std::to_string(p), "e")).ok());
    });
  }
  for (std::thread& t : publishers) t.join();
  hub_->Unsubscribe(sub);

  absl::MutexLock lock(&mu);
  ASSERT_EQ(ids.size(), 100u);
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_LT(ids[i - 1], ids[i]) << "at " << i;
}

TEST_F(EventHubTest, HasHealthSubscribersFollowsSubscribeAndUnsubscribe) {
  EXPECT_FALSE(hub_->HasHealthSubscribers());
  const uint64_t events = hub_->SubscribeEvents([](const fleet::Event&) {});
  EXPECT_FALSE(hub_->HasHealthSubscribers());
  const uint64_t a = hub_->SubscribeHealth([](const fleet::WatchHealthResponse&) {});
  const uint64_t b = hub_->SubscribeHealth([](const fleet::WatchHealthResponse&) {});
  EXPECT_TRUE(hub_->HasHealthSubscribers());
  hub_->Unsubscribe(a);
  EXPECT_TRUE(hub_->HasHealthSubscribers());
  hub_->Unsubscribe(b);
  EXPECT_FALSE(hub_->HasHealthSubscribers());
  hub_->Unsubscribe(events);
}

}  // namespace
}  // namespace threadfleet::fleetd
