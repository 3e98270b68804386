// The anomaly rules of HealthAggregator, fed with snapshots and
// events built here: no board, no sockets.
#include "server/fleetd/health/health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kBoard[] = "b01";
constexpr uint32_t kHeapTotal = 100000;
constexpr uint32_t kStack = 10000;

pb::ThreadInfo Thread(uint32_t id, pb::ThreadState state, std::string name = "worker") {
  pb::ThreadInfo t;
  t.set_id(id);
  t.set_name(std::move(name));
  t.set_program_id(1);
  t.set_state(state);
  t.set_stack_size_bytes(kStack);
  t.set_stack_used_bytes(1000);
  t.set_stack_peak_bytes(2000);
  return t;
}

pb::ThreadInfo Running(uint32_t id) { return Thread(id, pb::THREAD_STATE_RUNNING); }

pb::ThreadInfo Failed(uint32_t id) {
  pb::ThreadInfo t = Thread(id, pb::THREAD_STATE_FAILED);
  t.mutable_exception()->set_type("ValueError");
  t.mutable_exception()->set_message("boom");
  return t;
}

pb::ThreadInfo Waiting(uint32_t id, uint32_t lock_id, absl::Duration waited) {
  pb::ThreadInfo t = Thread(id, pb::THREAD_STATE_WAITING_LOCK);
  t.set_waiting_lock_id(lock_id);
  t.set_wait_time_us(absl::ToInt64Microseconds(waited));
  return t;
}

// A snapshot at `uptime_s` seconds of uptime with these threads and free heap;
// their program (1) is running.
pb::HealthSnapshot Snapshot(int uptime_s, std::vector<pb::ThreadInfo> threads, uint32_t heap_free = 50000) {
  pb::HealthSnapshot s;
  pb::ProgramInfo* program = s.add_programs();
  program->set_id(1);
  program->set_state(pb::PROGRAM_STATE_RUNNING);
  s.set_board_name(kBoard);
  s.set_uptime_us(static_cast<uint64_t>(uptime_s) * 1000000);
  s.mutable_heap()->set_total_bytes(kHeapTotal);
  s.mutable_heap()->set_free_bytes(heap_free);
  s.mutable_heap()->set_used_bytes(kHeapTotal - heap_free);
  for (pb::ThreadInfo& t : threads) {
    if (t.unkillable()) s.mutable_thread_counts()->set_unkillable(s.thread_counts().unkillable() + 1);
    *s.add_threads() = std::move(t);
  }
  return s;
}

pb::Event Event(pb::EventKind kind, uint32_t thread_id, std::string message = "") {
  pb::Event e;
  e.set_kind(kind);
  e.set_thread_id(thread_id);
  e.set_program_id(1);
  e.set_message(std::move(message));
  return e;
}

class HealthAggregatorTest : public ::testing::Test {
 protected:
  std::vector<AnomalyEvent> Feed(const pb::HealthSnapshot& s) {
    return health_.OnSnapshot(kBoard, s, Tick());
  }
  std::vector<AnomalyEvent> Feed(const pb::Event& e) { return health_.OnEvent(kBoard, e, Tick()).anomalies; }
  absl::Time Tick() { return now_ += absl::Milliseconds(500); }

  HealthAggregator health_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

MATCHER_P3(IsAnomaly, edge, kind, thread_id, "") {
  return arg.edge == edge && arg.kind == kind && arg.thread_id == static_cast<uint32_t>(thread_id);
}
auto Raised(AnomalyKind kind, uint32_t thread_id = 0) {
  return IsAnomaly(AnomalyEdge::kRaised, kind, thread_id);
}
auto Cleared(AnomalyKind kind, uint32_t thread_id = 0) {
  return IsAnomaly(AnomalyEdge::kCleared, kind, thread_id);
}

TEST_F(HealthAggregatorTest, FailedThreadRaisesOnceClearsWhenForgottenAndAnotherFailureRaisesAgain) {
  EXPECT_THAT(Feed(Snapshot(1, {Running(3)})), IsEmpty());

  const std::vector<AnomalyEvent> raised = Feed(Snapshot(2, {Failed(3)}));
  ASSERT_THAT(raised, ElementsAre(Raised(AnomalyKind::kThreadFailed, 3)));
  EXPECT_EQ(raised[0].message, "board b01: thread 3 (worker) failed: ValueError: boom");
  EXPECT_THAT(Feed(Snapshot(3, {Failed(3)})), IsEmpty());

  EXPECT_THAT(Feed(Snapshot(4, {})), ElementsAre(Cleared(AnomalyKind::kThreadFailed, 3)));
  EXPECT_THAT(Feed(Snapshot(5, {Failed(3)})), IsEmpty()) << "one thread fails only once";
  EXPECT_THAT(Feed(Snapshot(6, {Failed(3), Failed(4)})), ElementsAre(Raised(AnomalyKind::kThreadFailed, 4)));
}

TEST_F(HealthAggregatorTest, FailedThreadClearsOnceItsProgramHasEnded) {
  Feed(Snapshot(1, {Running(3), Running(4)}));
  EXPECT_THAT(Feed(Snapshot(2, {Failed(3), Running(4)})), ElementsAre(Raised(AnomalyKind::kThreadFailed, 3)));
  EXPECT_THAT(Feed(Snapshot(3, {Failed(3), Running(4)})), IsEmpty()) << "its program still runs";

  pb::HealthSnapshot ended = Snapshot(4, {Failed(3), Thread(4, pb::THREAD_STATE_FINISHED)});
  ended.mutable_programs(0)->set_state(pb::PROGRAM_STATE_FAILED);
  const std::vector<AnomalyEvent> cleared = Feed(ended);
  ASSERT_THAT(cleared, ElementsAre(Cleared(AnomalyKind::kThreadFailed, 3)));
  EXPECT_THAT(cleared[0].message, HasSubstr("program 1 ended"));
  EXPECT_THAT(health_.ActiveAnomalies(kBoard), IsEmpty());
}

TEST_F(HealthAggregatorTest, ThreadLongInNativeCodeRaisesOnceAndClearsWhenItReturns) {
  pb::ThreadInfo busy = Running(7);
  busy.set_native_time_us(4'000'000);
  EXPECT_THAT(Feed(Snapshot(1, {busy})), IsEmpty()) << "below the threshold";
  busy.set_native_time_us(12'000'000);
  const std::vector<AnomalyEvent> raised = Feed(Snapshot(2, {busy}));
  ASSERT_THAT(raised, ElementsAre(Raised(AnomalyKind::kNativeStuck, 7)));
  EXPECT_THAT(raised[0].message, HasSubstr("thread 7 (worker) in native code for 12 s"));
  busy.set_native_time_us(13'000'000);
  EXPECT_THAT(Feed(Snapshot(3, {busy})), IsEmpty());

  busy.set_native_time_us(0);
  EXPECT_THAT(Feed(Snapshot(4, {busy})), ElementsAre(Cleared(AnomalyKind::kNativeStuck, 7)));
}

TEST_F(HealthAggregatorTest, FailureEventAndTheNextSnapshotRaiseOneAnomaly) {
  Feed(Snapshot(1, {Running(5)}));
  const std::vector<AnomalyEvent> raised =
      Feed(Event(pb::EVENT_KIND_THREAD_FAILED, 5, "ZeroDivisionError: divide by zero"));
  ASSERT_THAT(raised, ElementsAre(Raised(AnomalyKind::kThreadFailed, 5)));
  EXPECT_EQ(raised[0].message, "board b01: thread 5 (worker) failed: ZeroDivisionError: divide by zero");
  EXPECT_THAT(Feed(Snapshot(2, {Failed(5)})), IsEmpty());
}

TEST_F(HealthAggregatorTest, StackAboveEightyPercentRaisesOnceClearsWhenThreadEndsAndRaisesForAnother) {
  pb::ThreadInfo deep = Running(7);
  deep.set_stack_peak_bytes(8500);
  EXPECT_THAT(Feed(Snapshot(1, {Running(7)})), IsEmpty());

  const std::vector<AnomalyEvent> raised = Feed(Snapshot(2, {deep}));
  ASSERT_THAT(raised, ElementsAre(Raised(AnomalyKind::kStackHigh, 7)));
  EXPECT_THAT(raised[0].message,
              HasSubstr("board b01: thread 7 (worker) stack high-water 8500 of 10000 bytes"));
  EXPECT_THAT(Feed(Snapshot(3, {deep})), IsEmpty());

  EXPECT_THAT(Feed(Snapshot(4, {Thread(7, pb::THREAD_STATE_FINISHED)})),
              ElementsAre(Cleared(AnomalyKind::kStackHigh, 7)));
  deep.set_id(8);
  EXPECT_THAT(Feed(Snapshot(5, {deep})), ElementsAre(Raised(AnomalyKind::kStackHigh, 8)));
}

TEST_F(HealthAggregatorTest, StackAtExactlyEightyPercentIsNoAnomaly) {
  pb::ThreadInfo t = Running(7);
  t.set_stack_peak_bytes(8000);
  EXPECT_THAT(Feed(Snapshot(1, {t})), IsEmpty());
}

TEST_F(HealthAggregatorTest, LowHeapRaisesOnceClearsAboveTwelvePercentAndRaisesAgain) {
  const std::vector<AnomalyEvent> raised = Feed(Snapshot(1, {}, 9000));
  ASSERT_THAT(raised, ElementsAre(Raised(AnomalyKind::kHeapLow)));
  EXPECT_THAT(raised[0].message, HasSubstr("board b01: heap free 9.0% (9000 of 100000 bytes)"));
  EXPECT_THAT(Feed(Snapshot(2, {}, 8000)), IsEmpty());
  EXPECT_THAT(Feed(Snapshot(3, {}, 11000)), IsEmpty()) << "between 10 % and 12 % nothing changes";

  EXPECT_THAT(Feed(Snapshot(4, {}, 13000)), ElementsAre(Cleared(AnomalyKind::kHeapLow)));
  EXPECT_THAT(Feed(Snapshot(5, {}, 11000)), IsEmpty());
  EXPECT_THAT(Feed(Snapshot(6, {}, 5000)), ElementsAre(Raised(AnomalyKind::kHeapLow)));
}

TEST_F(HealthAggregatorTest, LongLockWaitRaisesStallOnceClearsWhenWaitEndsAndRaisesForANewWait) {
  EXPECT_THAT(Feed(Snapshot(1, {Waiting(4, 2, absl::Seconds(4))})), IsEmpty());

  const std::vector<AnomalyEvent> raised = Feed(Snapshot(2, {Waiting(4, 2, absl::Seconds(5))}));
  ASSERT_THAT(raised, ElementsAre(Raised(AnomalyKind::kStall, 4)));
  EXPECT_EQ(raised[0].message, "board b01: thread 4 (worker) stalled: waiting on lock 2 for 5.0 s");
  EXPECT_THAT(Feed(Snapshot(3, {Waiting(4, 2, absl::Seconds(6))})), IsEmpty());

  EXPECT_THAT(Feed(Snapshot(4, {Running(4)})), ElementsAre(Cleared(AnomalyKind::kStall, 4)));
  EXPECT_THAT(Feed(Snapshot(5, {Waiting(4, 2, absl::Seconds(7))})),
              ElementsAre(Raised(AnomalyKind::kStall, 4)));
}

TEST_F(HealthAggregatorTest, ANewWaitBetweenTwoSnapshotsEndsTheOldStall) {
  Feed(Snapshot(1, {Waiting(4, 2, absl::Seconds(9))}));
  EXPECT_THAT(Feed(Snapshot(2, {Waiting(4, 2, absl::Seconds(1))})),
              ElementsAre(Cleared(AnomalyKind::kStall, 4)));
}

TEST_F(HealthAggregatorTest, StallEventRaisesAtOnceAndTheSnapshotDoesNotRepeatIt) {
  Feed(Snapshot(1, {Waiting(4, 2, absl::Seconds(4))}));
  EXPECT_THAT(Feed(Event(pb::EVENT_KIND_STALL, 4, "waited 5000 ms for lock 2")),
              ElementsAre(Raised(AnomalyKind::kStall, 4)));
  EXPECT_THAT(Feed(Snapshot(2, {Waiting(4, 2, absl::Seconds(5))})), IsEmpty());
  EXPECT_THAT(Feed(Snapshot(3, {Thread(4, pb::THREAD_STATE_KILLED)})),
              ElementsAre(Cleared(AnomalyKind::kStall, 4)));
}

TEST_F(HealthAggregatorTest, DeadlockEventRaisesOnceClearsWhenTheCycleBreaksAndRaisesAgain) {
  Feed(Snapshot(1, {Waiting(5, 1, absl::Seconds(1)), Waiting(6, 2, absl::Seconds(1))}));
  pb::Event deadlock = Event(pb::EVENT_KIND_DEADLOCK, 0);
  deadlock.add_cycle_thread_ids(6);
  deadlock.add_cycle_thread_ids(5);

  const std::vector<AnomalyEvent> raised = Feed(deadlock);
  ASSERT_THAT(raised, ElementsAre(Raised(AnomalyKind::kDeadlock, 5)));
  EXPECT_THAT(raised[0].cycle_thread_ids, ElementsAre(6, 5));
  EXPECT_EQ(raised[0].message,
            "board b01: deadlock: thread 6 (worker), thread 5 (worker) wait on each other's locks");
  EXPECT_THAT(Feed(deadlock), IsEmpty());
  EXPECT_THAT(Feed(Snapshot(2, {Waiting(5, 1, absl::Seconds(2)), Waiting(6, 2, absl::Seconds(2))})),
              IsEmpty());

  EXPECT_THAT(Feed(Snapshot(3, {Thread(5, pb::THREAD_STATE_KILLED), Waiting(6, 2, absl::Seconds(3))})),
              ElementsAre(Cleared(AnomalyKind::kDeadlock, 5)));
  EXPECT_THAT(Feed(deadlock), ElementsAre(Raised(AnomalyKind::kDeadlock, 5)));
}

TEST_F(HealthAggregatorTest, UnkillableThreadRaisesOnceAndClearsWhenItEnds) {
  pb::ThreadInfo stuck = Running(9);
  stuck.set_unkillable(true);
  const std::vector<AnomalyEvent> raised = Feed(Snapshot(1, {stuck}));
  ASSERT_THAT(raised, ElementsAre(Raised(AnomalyKind::kThreadUnkillable, 9)));
  EXPECT_THAT(raised[0].message, HasSubstr("board b01: thread 9 (worker) is unkillable"));
  EXPECT_THAT(Feed(Event(pb::EVENT_KIND_THREAD_UNKILLABLE, 9)), IsEmpty());
  EXPECT_THAT(Feed(Snapshot(2, {stuck})), IsEmpty());

  EXPECT_THAT(Feed(Snapshot(3, {Thread(9, pb::THREAD_STATE_KILLED)})),
              ElementsAre(Cleared(AnomalyKind::kThreadUnkillable, 9)));
  EXPECT_THAT(Feed(Event(pb::EVENT_KIND_THREAD_UNKILLABLE, 10)),
              ElementsAre(Raised(AnomalyKind::kThreadUnkillable, 10)));
}

TEST_F(HealthAggregatorTest, OfflineRaisesOnceAndTheNextSnapshotClearsIt) {
  Feed(Snapshot(1, {}));
  const std::vector<AnomalyEvent> raised =
      health_.OnBoardOffline(kBoard, "no health snapshot for 3s", Tick());
  ASSERT_THAT(raised, ElementsAre(Raised(AnomalyKind::kBoardOffline)));
  EXPECT_EQ(raised[0].message, "board b01: offline: no health snapshot for 3s");
  EXPECT_THAT(health_.OnBoardOffline(kBoard, "connection refused", Tick()), IsEmpty());

  EXPECT_THAT(Feed(Snapshot(2, {})), ElementsAre(Cleared(AnomalyKind::kBoardOffline)));
  EXPECT_THAT(health_.OnBoardOffline(kBoard, "connection refused", Tick()),
              ElementsAre(Raised(AnomalyKind::kBoardOffline)));
}

TEST_F(HealthAggregatorTest, RestartedBoardClearsThreadAnomaliesAndItsThreadIdsFailAgain) {
  Feed(Snapshot(100, {Failed(3)}));
  EXPECT_THAT(Feed(Snapshot(1, {Running(1)})), ElementsAre(Cleared(AnomalyKind::kThreadFailed, 3)));
  EXPECT_THAT(Feed(Snapshot(2, {Failed(3)})), ElementsAre(Raised(AnomalyKind::kThreadFailed, 3)));
}

TEST_F(HealthAggregatorTest, ClearedBeforeRaisedInOneSnapshot) {
  Feed(Snapshot(1, {}, 5000));
  pb::ThreadInfo deep = Running(2);
  deep.set_stack_peak_bytes(9000);
  EXPECT_THAT(Feed(Snapshot(2, {deep}, 50000)),
              ElementsAre(Cleared(AnomalyKind::kHeapLow), Raised(AnomalyKind::kStackHigh, 2)));
}

TEST_F(HealthAggregatorTest, ActiveAnomaliesListsWhatIsRaisedAndNotCleared) {
  Feed(Snapshot(1, {Failed(3)}, 5000));
  EXPECT_THAT(health_.ActiveAnomalies(kBoard),
              ElementsAre(Raised(AnomalyKind::kThreadFailed, 3), Raised(AnomalyKind::kHeapLow)));
  Feed(Snapshot(2, {}, 50000));
  EXPECT_THAT(health_.ActiveAnomalies(), IsEmpty());
  EXPECT_THAT(health_.ActiveAnomalies("b02"), IsEmpty());
}

TEST_F(HealthAggregatorTest, KeepsTheLatestSnapshotAndTheLatestRecordOfEachThread) {
  EXPECT_FALSE(health_.Latest(kBoard).has_value());
  Feed(Snapshot(1, {Running(1), Running(2)}));
  Feed(Snapshot(2, {Failed(2)}));

  ASSERT_TRUE(health_.Latest(kBoard).has_value());
  EXPECT_EQ(health_.Latest(kBoard)->uptime_us(), 2000000u);
  ASSERT_TRUE(health_.Thread(kBoard, 2).has_value());
  EXPECT_EQ(health_.Thread(kBoard, 2)->state(), pb::THREAD_STATE_FAILED);
  ASSERT_TRUE(health_.Thread(kBoard, 1).has_value()) << "no longer listed, still remembered";
  EXPECT_EQ(health_.Thread(kBoard, 1)->state(), pb::THREAD_STATE_RUNNING);
  EXPECT_FALSE(health_.Thread(kBoard, 99).has_value());
  EXPECT_THAT(health_.Boards(), ElementsAre("b01"));
}

TEST_F(HealthAggregatorTest, RemovedBoardIsForgotten) {
  Feed(Snapshot(1, {Failed(1)}));
  health_.RemoveBoard(kBoard);
  EXPECT_FALSE(health_.Latest(kBoard).has_value());
  EXPECT_THAT(health_.ActiveAnomalies(), IsEmpty());
  EXPECT_THAT(health_.Boards(), IsEmpty());
}

TEST_F(HealthAggregatorTest, UpdatedThreadReplacesItsRecordAndCountsInTheLatestSnapshotAtOnce) {
  pb::HealthSnapshot s = Snapshot(1, {Thread(1, pb::THREAD_STATE_SLEEPING), Running(2)});
  s.mutable_thread_counts()->set_sleeping(1);
  s.mutable_thread_counts()->set_running(1);
  Feed(s);

  pb::ThreadInfo killed = Thread(1, pb::THREAD_STATE_KILLED);
  killed.set_end_time_us(1500000);
  health_.UpdateThread(kBoard, killed);

  const std::optional<pb::HealthSnapshot> latest = health_.Latest(kBoard);
  ASSERT_TRUE(latest.has_value());
  ASSERT_EQ(latest->threads_size(), 2);
  EXPECT_EQ(latest->threads(0).id(), 1u);
  EXPECT_EQ(latest->threads(0).state(), pb::THREAD_STATE_KILLED);
  EXPECT_EQ(latest->threads(0).end_time_us(), 1500000u);
  EXPECT_EQ(latest->threads(1).state(), pb::THREAD_STATE_RUNNING);
  EXPECT_EQ(latest->thread_counts().sleeping(), 0u);
  EXPECT_EQ(latest->thread_counts().killed(), 1u);
  EXPECT_EQ(latest->thread_counts().running(), 1u);
  EXPECT_EQ(latest->uptime_us(), 1000000u) << "the rest of the snapshot stays";
  ASSERT_TRUE(health_.Thread(kBoard, 1).has_value());
  EXPECT_EQ(health_.Thread(kBoard, 1)->state(), pb::THREAD_STATE_KILLED);

  // The board's next snapshot is the truth again.
  Feed(Snapshot(2, {Running(2)}));
  EXPECT_EQ(health_.Latest(kBoard)->threads_size(), 1);
}

TEST_F(HealthAggregatorTest, UpdatedThreadUnknownToTheSnapshotIsAppendedAndNeedsASnapshotFirst) {
  health_.UpdateThread(kBoard, Thread(7, pb::THREAD_STATE_KILLED));
  EXPECT_FALSE(health_.Latest(kBoard).has_value());
  EXPECT_FALSE(health_.Thread(kBoard, 7).has_value());
  EXPECT_THAT(health_.Boards(), IsEmpty());

  Feed(Snapshot(1, {Running(2)}));
  health_.UpdateThread(kBoard, Thread(7, pb::THREAD_STATE_KILLED));
  const std::optional<pb::HealthSnapshot> latest = health_.Latest(kBoard);
  ASSERT_TRUE(latest.has_value());
  ASSERT_EQ(latest->threads_size(), 2);
  EXPECT_EQ(latest->threads(1).id(), 7u);
  EXPECT_EQ(latest->thread_counts().killed(), 1u);
  ASSERT_TRUE(health_.Thread(kBoard, 7).has_value());
}

TEST_F(HealthAggregatorTest, UpdatedThreadLeavesAnomaliesAlone) {
  Feed(Snapshot(1, {Running(3)}));
  Feed(Snapshot(2, {Failed(3), Running(4)}));
  ASSERT_THAT(health_.ActiveAnomalies(kBoard), ElementsAre(Raised(AnomalyKind::kThreadFailed, 3)));

  health_.UpdateThread(kBoard, Thread(3, pb::THREAD_STATE_KILLED));
  health_.UpdateThread(kBoard, Thread(4, pb::THREAD_STATE_KILLED));

  EXPECT_THAT(health_.ActiveAnomalies(kBoard), ElementsAre(Raised(AnomalyKind::kThreadFailed, 3)));
}

TEST_F(HealthAggregatorTest, UpdatedProgramReplacesItsRecordOrIsAppended) {
  pb::HealthSnapshot s = Snapshot(1, {Running(2)});
  pb::ProgramInfo* running = s.mutable_programs(0);
  running->set_name("loop.py");
  running->set_state(pb::PROGRAM_STATE_RUNNING);
  Feed(s);

  pb::ProgramInfo killed = *running;
  killed.set_state(pb::PROGRAM_STATE_KILLED);
  killed.set_exit_code(1);
  health_.UpdateProgram(kBoard, killed);
  pb::ProgramInfo other;
  other.set_id(5);
  other.set_state(pb::PROGRAM_STATE_FINISHED);
  health_.UpdateProgram(kBoard, other);

  const std::optional<pb::HealthSnapshot> latest = health_.Latest(kBoard);
  ASSERT_TRUE(latest.has_value());
  ASSERT_EQ(latest->programs_size(), 2);
  EXPECT_EQ(latest->programs(0).name(), "loop.py");
  EXPECT_EQ(latest->programs(0).state(), pb::PROGRAM_STATE_KILLED);
  EXPECT_EQ(latest->programs(0).exit_code(), 1);
  EXPECT_EQ(latest->programs(1).id(), 5u);
  EXPECT_EQ(latest->threads_size(), 1);
}

TEST(DegradedReasonTest, NamesUnkillableThreadsAndLowHeapAndNothingForAHealthyBoard) {
  EXPECT_EQ(DegradedReason(Snapshot(1, {Running(1)})), std::nullopt);

  pb::ThreadInfo stuck = Running(2);
  stuck.set_unkillable(true);
  EXPECT_EQ(DegradedReason(Snapshot(1, {stuck})), "1 unkillable thread");
  EXPECT_EQ(DegradedReason(Snapshot(1, {}, 2000)), "heap free 2.0% (2000 of 100000 bytes)");
  EXPECT_EQ(DegradedReason(Snapshot(1, {stuck, stuck}, 2000)),
            "2 unkillable threads; heap free 2.0% (2000 of 100000 bytes)");
}

TEST(AnomalyKindNameTest, StableNames) {
  EXPECT_EQ(AnomalyKindName(AnomalyKind::kThreadFailed), "thread_failed");
  EXPECT_EQ(AnomalyKindName(AnomalyKind::kStackHigh), "stack_high");
  EXPECT_EQ(AnomalyKindName(AnomalyKind::kHeapLow), "heap_low");
  EXPECT_EQ(AnomalyKindName(AnomalyKind::kDeadlock), "deadlock");
  EXPECT_EQ(AnomalyKindName(AnomalyKind::kStall), "stall");
  EXPECT_EQ(AnomalyKindName(AnomalyKind::kBoardOffline), "board_offline");
  EXPECT_EQ(AnomalyKindName(AnomalyKind::kThreadUnkillable), "thread_unkillable");
  EXPECT_EQ(AnomalyKindName(AnomalyKind::kNativeStuck), "native_stuck");
}

}  // namespace
}  // namespace threadfleet::fleetd
