// LabMonitor fed directly (no sockets): a real SqliteStore in a temporary
// directory, a real HealthAggregator and EventHub. Checks which fleet events
// are stored, what WatchHealth subscribers see, and that PROGRAM_ENDED
// finishes the stored program.
#include "server/fleetd/health/lab_monitor.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/fleetd/store/sqlite_store.h"
#include "server/fleetd/testing/temp_store.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = ::threadfleet::board::v1;
namespace fleet = ::threadfleet::fleet::v1;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr uint32_t kStack = 10000;
constexpr uint32_t kHeap = 100000;

pb::ThreadInfo Thread(uint32_t id, uint32_t peak = 2000) {
  pb::ThreadInfo t;
  t.set_id(id);
  t.set_name("worker");
  t.set_program_id(1);
  t.set_state(pb::THREAD_STATE_RUNNING);
  t.set_stack_size_bytes(kStack);
  t.set_stack_used_bytes(1000);
  t.set_stack_peak_bytes(peak);
  return t;
}

pb::HealthSnapshot Snapshot(int uptime_s, std::vector<pb::ThreadInfo> threads, uint32_t heap_free = 50000) {
  pb::HealthSnapshot s;
  s.set_uptime_us(static_cast<uint64_t>(uptime_s) * 1000000);
  s.mutable_heap()->set_total_bytes(kHeap);
  s.mutable_heap()->set_free_bytes(heap_free);
  s.mutable_heap()->set_used_bytes(kHeap - heap_free);
  s.mutable_thread_counts()->set_running(static_cast<uint32_t>(threads.size()));
  for (pb::ThreadInfo& t : threads) *s.add_threads() = std::move(t);
  return s;
}

pb::Event BoardEvent(pb::EventKind kind, uint32_t thread_id, uint32_t program_id, std::string message) {
  pb::Event e;
  e.set_kind(kind);
  e.set_thread_id(thread_id);
  e.set_program_id(program_id);
  e.set_message(std::move(message));
  return e;
}

LinkStatus Status(BoardState state, std::string message = "") {
  LinkStatus s;
  s.state = state;
  s.message = std::move(message);
  s.since = absl::Now();
  return s;
}

class LabMonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(temp_.Init("lab_monitor_test"));
    store_ = &temp_.store();
    hub_ = std::make_unique<EventHub>(*store_);
    health_sub_ = hub_->SubscribeHealth([this](const fleet::WatchHealthResponse& u) {
      absl::MutexLock lock(&mu_);
      updates_.push_back(u);
    });
    monitor_ = std::make_unique<LabMonitor>(*store_, health_, *hub_);
  }
  void TearDown() override {
    monitor_.reset();
    hub_->Unsubscribe(health_sub_);
    hub_.reset();
  }

  // Every stored event, oldest first, once the monitor's queue is done.
  std::vector<fleet::Event> StoredEvents() {
    EXPECT_TRUE(monitor_->Flush(absl::Seconds(10)));
    absl::StatusOr<std::vector<fleet::Event>> events = store_->ListEvents(EventQuery{.limit = 1000});
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<fleet::Event>{};
  }

  std::vector<fleet::WatchHealthResponse> Updates() {
    EXPECT_TRUE(monitor_->Flush(absl::Seconds(10)));
    absl::MutexLock lock(&mu_);
    return updates_;
  }

  testing::TempStore temp_;  // first: outlives everything using its store
  SqliteStore* store_ = nullptr;
  HealthAggregator health_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<LabMonitor> monitor_;
  uint64_t health_sub_ = 0;
  absl::Mutex mu_;
  std::vector<fleet::WatchHealthResponse> updates_ ABSL_GUARDED_BY(mu_);
};

TEST_F(LabMonitorTest, SnapshotFeedsTheAggregatorAndIsPublishedButNotStored) {
  monitor_->OnSnapshot("b01", Snapshot(1, {Thread(1)}));

  std::vector<fleet::WatchHealthResponse> updates = Updates();
  ASSERT_THAT(updates, SizeIs(1));
  EXPECT_EQ(updates[0].board(), "b01");
  ASSERT_TRUE(updates[0].has_snapshot());
  EXPECT_EQ(updates[0].snapshot().threads(0).id(), 1u);
  EXPECT_TRUE(health_.Latest("b01").has_value());
  EXPECT_EQ(monitor_->snapshots_total(), 1u);
  EXPECT_THAT(StoredEvents(), SizeIs(0));
}

TEST_F(LabMonitorTest, StackHighIsStoredRaisedAsWarningAndClearedAsInfo) {
  monitor_->OnSnapshot("b01", Snapshot(1, {Thread(7, 9000)}));
  monitor_->OnSnapshot("b01", Snapshot(2, {}));

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_EQ(events[0].kind(), fleet::EVENT_KIND_STACK_HIGH);
  EXPECT_EQ(events[0].severity(), fleet::SEVERITY_WARNING);
  EXPECT_EQ(events[0].board(), "b01");
  EXPECT_EQ(events[0].thread_id(), 7u);
  EXPECT_EQ(events[1].kind(), fleet::EVENT_KIND_STACK_HIGH);
  EXPECT_EQ(events[1].severity(), fleet::SEVERITY_INFO);
  EXPECT_EQ(events[1].thread_id(), 7u);
}

TEST_F(LabMonitorTest, HeapLowIsStoredAsHeapLow) {
  monitor_->OnSnapshot("b01", Snapshot(1, {}, /*heap_free=*/1000));

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].kind(), fleet::EVENT_KIND_HEAP_LOW);
  EXPECT_EQ(events[0].severity(), fleet::SEVERITY_WARNING);
}

TEST_F(LabMonitorTest, BoardEventIsRelayedWithItsRecordAndDeliveredToHealthWatchers) {
  monitor_->OnEvent("b01", BoardEvent(pb::EVENT_KIND_THREAD_STARTED, 3, 1, "thread 3 started"));

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].kind(), fleet::EVENT_KIND_BOARD_EVENT);
  EXPECT_EQ(events[0].severity(), fleet::SEVERITY_INFO);
  EXPECT_EQ(events[0].thread_id(), 3u);
  EXPECT_EQ(events[0].board_event().kind(), pb::EVENT_KIND_THREAD_STARTED);
  EXPECT_THAT(events[0].message(), HasSubstr("thread 3 started"));
  std::vector<fleet::WatchHealthResponse> updates = Updates();
  ASSERT_THAT(updates, SizeIs(1));
  EXPECT_TRUE(updates[0].has_event());
}

TEST_F(LabMonitorTest, ThreadFailedIsOneWarningEventNotTwo) {
  monitor_->OnEvent("b01", BoardEvent(pb::EVENT_KIND_THREAD_FAILED, 3, 1, "ValueError: boom"));

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].kind(), fleet::EVENT_KIND_BOARD_EVENT);
  EXPECT_EQ(events[0].severity(), fleet::SEVERITY_WARNING);
  EXPECT_EQ(events[0].board_event().kind(), pb::EVENT_KIND_THREAD_FAILED);
  EXPECT_THAT(health_.ActiveAnomalies("b01"), SizeIs(1));
}

TEST_F(LabMonitorTest, ThreadFailedSeenInASnapshotBeforeItsEventIsStillOneEvent) {
  pb::ThreadInfo failed = Thread(3);
  failed.set_state(pb::THREAD_STATE_FAILED);
  failed.mutable_exception()->set_type("ValueError");
  monitor_->OnSnapshot("b01", Snapshot(1, {failed}));
  monitor_->OnEvent("b01", BoardEvent(pb::EVENT_KIND_THREAD_FAILED, 3, 1, "ValueError: boom"));

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].severity(), fleet::SEVERITY_WARNING);
  EXPECT_EQ(events[0].board_event().kind(), pb::EVENT_KIND_THREAD_FAILED);
  EXPECT_EQ(events[0].thread_id(), 3u);
}

TEST_F(LabMonitorTest, DeadlockIsAnError) {
  pb::Event deadlock = BoardEvent(pb::EVENT_KIND_DEADLOCK, 0, 1, "deadlock: 4 -> 5 -> 4");
  deadlock.add_cycle_thread_ids(4);
  deadlock.add_cycle_thread_ids(5);
  monitor_->OnEvent("b01", deadlock);

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].severity(), fleet::SEVERITY_ERROR);
  EXPECT_EQ(events[0].board_event().kind(), pb::EVENT_KIND_DEADLOCK);
  EXPECT_THAT(events[0].board_event().cycle_thread_ids(), SizeIs(2));
}

TEST_F(LabMonitorTest, StallAndUnkillableTakeTheAnomalysSeverity) {
  monitor_->OnEvent("b01", BoardEvent(pb::EVENT_KIND_STALL, 4, 1, "thread 4 waits on lock 2"));
  monitor_->OnEvent("b01", BoardEvent(pb::EVENT_KIND_THREAD_UNKILLABLE, 5, 1, "thread 5 survived a kill"));

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_EQ(events[0].severity(), fleet::SEVERITY_WARNING);
  EXPECT_EQ(events[1].severity(), fleet::SEVERITY_ERROR);
  EXPECT_EQ(events[1].board_event().kind(), pb::EVENT_KIND_THREAD_UNKILLABLE);
}

TEST_F(LabMonitorTest, WatchdogResetIsAWarningAndMachineResetIsInfo) {
  monitor_->OnEvent("b01", BoardEvent(pb::EVENT_KIND_WATCHDOG_RESET, 0, 0, "watchdog not fed for 2000 ms"));
  monitor_->OnEvent("b01", BoardEvent(pb::EVENT_KIND_MACHINE_RESET, 0, 0, "machine.reset()"));

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_EQ(events[0].kind(), fleet::EVENT_KIND_BOARD_EVENT);
  EXPECT_EQ(events[0].board_event().kind(), pb::EVENT_KIND_WATCHDOG_RESET);
  EXPECT_EQ(events[0].severity(), fleet::SEVERITY_WARNING);
  EXPECT_THAT(events[0].message(), HasSubstr("board b01: watchdog not fed for 2000 ms"));
  EXPECT_EQ(events[1].board_event().kind(), pb::EVENT_KIND_MACHINE_RESET);
  EXPECT_EQ(events[1].severity(), fleet::SEVERITY_INFO);
}

TEST_F(LabMonitorTest, StateChangesAreStoredAndPublishedAndMessageOnlyChangesAreNot) {
  monitor_->OnStateChange("b01", Status(BoardState::kOnline));
  monitor_->OnStateChange("b01", Status(BoardState::kOffline, "health stream failed: UNAVAILABLE"));
  monitor_->OnStateChange("b01", Status(BoardState::kOffline, "health stream failed: connection refused"));
  monitor_->OnStateChange("b01", Status(BoardState::kDegraded, "heap free 1%"));

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(3));
  EXPECT_EQ(events[0].kind(), fleet::EVENT_KIND_BOARD_STATE);
  EXPECT_EQ(events[0].severity(), fleet::SEVERITY_INFO);
  EXPECT_EQ(events[1].severity(), fleet::SEVERITY_ERROR);
  EXPECT_THAT(events[1].message(), HasSubstr("board b01 offline: health stream failed: UNAVAILABLE"));
  EXPECT_EQ(events[2].severity(), fleet::SEVERITY_WARNING);
  std::vector<fleet::WatchHealthResponse> updates = Updates();
  ASSERT_THAT(updates, SizeIs(6));  // each state: its event, then the state update
  EXPECT_EQ(updates[1].state(), fleet::BOARD_STATE_ONLINE);
  EXPECT_EQ(updates[3].state(), fleet::BOARD_STATE_OFFLINE);
  EXPECT_EQ(updates[5].state(), fleet::BOARD_STATE_DEGRADED);
}

TEST_F(LabMonitorTest, BoardRemovedAndAddedAgainHasItsStateRecordedAgain) {
  monitor_->OnStateChange("b01", Status(BoardState::kOnline));
  monitor_->OnSnapshot("b01", Snapshot(1, {}));
  ASSERT_TRUE(monitor_->Flush(absl::Seconds(10)));
  health_.RemoveBoard("b01");  // what RemoveBoard in the API does
  monitor_->OnStateChange("b01", Status(BoardState::kOnline));

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_EQ(events[1].kind(), fleet::EVENT_KIND_BOARD_STATE);
  EXPECT_THAT(events[1].message(), HasSubstr("board b01 online"));
}

TEST_F(LabMonitorTest, OfflineRaisesTheAnomalyInTheAggregatorWithoutASecondEvent) {
  monitor_->OnStateChange("b01", Status(BoardState::kOffline, "refused"));
  std::vector<AnomalyEvent> active = health_.ActiveAnomalies("b01");
  ASSERT_THAT(active, SizeIs(1));
  EXPECT_EQ(active[0].kind, AnomalyKind::kBoardOffline);

  monitor_->OnStateChange("b01", Status(BoardState::kOnline));
  monitor_->OnSnapshot("b01", Snapshot(1, {}));
  EXPECT_THAT(health_.ActiveAnomalies("b01"), SizeIs(0));
  EXPECT_THAT(StoredEvents(), SizeIs(2));  // offline, online
}

TEST_F(LabMonitorTest, ProgramEndedFinishesTheStoredProgram) {
  absl::StatusOr<int64_t> id = store_->AddProgram(
      ProgramRecord{.board = "b01", .board_program_id = 3, .main_thread_id = 9, .path = "/app.py"});
  ASSERT_TRUE(id.ok()) << id.status();
  monitor_->OnEvent("b01",
                    BoardEvent(pb::EVENT_KIND_PROGRAM_ENDED, 9, 3, "program 3 (app.py) failed, exit code 1"));
  ASSERT_TRUE(monitor_->Flush(absl::Seconds(10)));

  absl::StatusOr<std::vector<ProgramRecord>> programs = store_->ListPrograms("b01", 10);
  ASSERT_TRUE(programs.ok());
  ASSERT_THAT(*programs, SizeIs(1));
  EXPECT_EQ((*programs)[0].state, pb::PROGRAM_STATE_FAILED);
  EXPECT_EQ((*programs)[0].exit_code, 1);
  EXPECT_TRUE((*programs)[0].end_time.has_value());
}

TEST_F(LabMonitorTest, ProgramEndedBeforeTheProgramWasStoredFinishesItAtTheNextSnapshot) {
  monitor_->OnEvent("b01",
                    BoardEvent(pb::EVENT_KIND_PROGRAM_ENDED, 9, 4, "program 4 (x.py) finished, exit code 0"));
  ASSERT_TRUE(monitor_->Flush(absl::Seconds(10)));
  ASSERT_TRUE(store_->AddProgram(ProgramRecord{.board = "b01", .board_program_id = 4}).ok());
  monitor_->OnSnapshot("b01", Snapshot(1, {}));
  ASSERT_TRUE(monitor_->Flush(absl::Seconds(10)));

  absl::StatusOr<std::vector<ProgramRecord>> programs = store_->ListPrograms("b01", 10);
  ASSERT_TRUE(programs.ok());
  ASSERT_THAT(*programs, SizeIs(1));
  EXPECT_EQ((*programs)[0].state, pb::PROGRAM_STATE_FINISHED);
}

TEST_F(LabMonitorTest, ProgramEndedLeavesOtherBoardsAndEndedProgramsAlone) {
  ASSERT_TRUE(store_->AddProgram(ProgramRecord{.board = "b02", .board_program_id = 3}).ok());
  monitor_->OnEvent("b01",
                    BoardEvent(pb::EVENT_KIND_PROGRAM_ENDED, 9, 3, "program 3 (a) killed, exit code 1"));
  ASSERT_TRUE(monitor_->Flush(absl::Seconds(10)));

  absl::StatusOr<std::vector<ProgramRecord>> programs = store_->ListPrograms("b02", 10);
  ASSERT_TRUE(programs.ok());
  EXPECT_EQ((*programs)[0].state, pb::PROGRAM_STATE_RUNNING);
}

TEST_F(LabMonitorTest, SnapshotWithNoSubscriberNoAnomalyAndNoPendingEndIsNotQueued) {
  hub_->Unsubscribe(health_sub_);

  monitor_->OnSnapshot("b01", Snapshot(1, {Thread(1)}));

  ASSERT_TRUE(monitor_->Flush(absl::Seconds(10)));
  EXPECT_EQ(monitor_->snapshots_total(), 1u);
  EXPECT_EQ(monitor_->queued_total(), 0u);
  EXPECT_TRUE(health_.Latest("b01").has_value());
}

TEST_F(LabMonitorTest, SnapshotWithASubscriberIsQueuedAndPublished) {
  monitor_->OnSnapshot("b01", Snapshot(1, {Thread(1)}));

  EXPECT_THAT(Updates(), SizeIs(1));
  EXPECT_EQ(monitor_->queued_total(), 1u);
}

TEST_F(LabMonitorTest, AnomalyOfASnapshotIsStoredWithoutSubscribers) {
  hub_->Unsubscribe(health_sub_);

  monitor_->OnSnapshot("b01", Snapshot(1, {Thread(7, 9000)}));
  monitor_->OnSnapshot("b01", Snapshot(2, {Thread(7, 9000)}));  // still high: nothing new

  std::vector<fleet::Event> events = StoredEvents();
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].kind(), fleet::EVENT_KIND_STACK_HIGH);
  EXPECT_EQ(monitor_->queued_total(), 1u);
  EXPECT_THAT(Updates(), SizeIs(0));
}

TEST_F(LabMonitorTest, PendingProgramEndIsRetriedAtTheNextSnapshotWithoutSubscribers) {
  hub_->Unsubscribe(health_sub_);
  monitor_->OnEvent("b01",
                    BoardEvent(pb::EVENT_KIND_PROGRAM_ENDED, 9, 4, "program 4 (x.py) finished, exit code 0"));
  ASSERT_TRUE(monitor_->Flush(absl::Seconds(10)));
  ASSERT_TRUE(store_->AddProgram(ProgramRecord{.board = "b01", .board_program_id = 4}).ok());

  monitor_->OnSnapshot("b02", Snapshot(1, {}));  // another board's: nothing to retry
  EXPECT_EQ(monitor_->queued_total(), 1u);
  monitor_->OnSnapshot("b01", Snapshot(1, {}));
  ASSERT_TRUE(monitor_->Flush(absl::Seconds(10)));
  EXPECT_EQ(monitor_->queued_total(), 2u);
  monitor_->OnSnapshot("b01", Snapshot(2, {}));  // done: nothing left to retry
  EXPECT_EQ(monitor_->queued_total(), 2u);

  absl::StatusOr<std::vector<ProgramRecord>> programs = store_->ListPrograms("b01", 10);
  ASSERT_TRUE(programs.ok());
  ASSERT_THAT(*programs, SizeIs(1));
  EXPECT_EQ((*programs)[0].state, pb::PROGRAM_STATE_FINISHED);
}

TEST(ParseProgramEnded, ReadsStateAndExitCodeFromTheEnd) {
  std::optional<ProgramEnd> end = ParseProgramEnded("program 2 (odd, exit code 5 name) killed, exit code -3");
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->state, pb::PROGRAM_STATE_KILLED);
  EXPECT_EQ(end->exit_code, -3);
  EXPECT_FALSE(ParseProgramEnded("program 2 ended").has_value());
  EXPECT_FALSE(ParseProgramEnded("program 2 (a) exploded, exit code 1").has_value());
}

TEST(EventFromAnomaly, MapsEveryKindToTheClosestFleetKind) {
  AnomalyEvent a;
  a.board = "b01";
  a.thread_id = 3;
  a.time = absl::Now();
  auto kind_of = [&](AnomalyKind k) {
    a.kind = k;
    std::optional<fleet::Event> e = EventFromAnomaly(a);
    return e.has_value() ? e->kind() : fleet::EVENT_KIND_UNSPECIFIED;
  };
  EXPECT_EQ(kind_of(AnomalyKind::kStackHigh), fleet::EVENT_KIND_STACK_HIGH);
  EXPECT_EQ(kind_of(AnomalyKind::kHeapLow), fleet::EVENT_KIND_HEAP_LOW);
  EXPECT_EQ(kind_of(AnomalyKind::kThreadFailed), fleet::EVENT_KIND_BOARD_EVENT);
  EXPECT_EQ(kind_of(AnomalyKind::kDeadlock), fleet::EVENT_KIND_BOARD_EVENT);
  EXPECT_EQ(kind_of(AnomalyKind::kStall), fleet::EVENT_KIND_BOARD_EVENT);
  EXPECT_EQ(kind_of(AnomalyKind::kThreadUnkillable), fleet::EVENT_KIND_BOARD_STATE);
  EXPECT_EQ(kind_of(AnomalyKind::kBoardOffline), fleet::EVENT_KIND_UNSPECIFIED);  // not recorded apart

  a.kind = AnomalyKind::kStall;
  a.edge = AnomalyEdge::kCleared;
  std::optional<fleet::Event> cleared = EventFromAnomaly(a);
  ASSERT_TRUE(cleared.has_value());
  EXPECT_EQ(cleared->severity(), fleet::SEVERITY_INFO);
  EXPECT_EQ(cleared->board_event().kind(), pb::EVENT_KIND_STALL);
}

}  // namespace
}  // namespace threadfleet::fleetd
