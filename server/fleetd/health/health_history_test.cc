// HealthHistory fed with snapshots built here: no board, no sockets.
#include "server/fleetd/health/health_history.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdint>
#include <string>
#include <vector>

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;
namespace fleet = threadfleet::fleet::v1;
using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Pointwise;
using ::testing::SizeIs;

constexpr char kBoard[] = "b01";
constexpr absl::Duration kPeriod = absl::Milliseconds(500);
const absl::Time kStart = absl::FromUnixSeconds(1800000000);

struct ThreadAt {
  uint32_t id;
  uint64_t cpu_time_us = 0;
  uint64_t start_time_us = 0;
  uint32_t stack_used = 1000;
  pb::ThreadState state = pb::THREAD_STATE_RUNNING;
};

pb::HealthSnapshot Snapshot(uint64_t uptime_us, const std::vector<ThreadAt>& threads,
                            uint32_t heap_used = 4000) {
  pb::HealthSnapshot s;
  s.set_uptime_us(uptime_us);
  s.mutable_heap()->set_total_bytes(65536);
  s.mutable_heap()->set_used_bytes(heap_used);
  s.mutable_heap()->set_free_bytes(65536 - heap_used);
  s.set_cpu_usage_percent(12.5f);
  for (const ThreadAt& at : threads) {
    pb::ThreadInfo* t = s.add_threads();
    t->set_id(at.id);
    t->set_name("worker" + std::to_string(at.id));
    t->set_program_id(3);
    t->set_state(at.state);
    t->set_cpu_time_us(at.cpu_time_us);
    t->set_start_time_us(at.start_time_us);
    t->set_stack_size_bytes(8192);
    t->set_stack_used_bytes(at.stack_used);
    t->set_stack_peak_bytes(at.stack_used + 100);
  }
  return s;
}

// The snapshot `i` periods after the board started, with `threads` threads
// each using 10 ms of CPU per period.
pb::HealthSnapshot Busy(int i, int threads) {
  std::vector<ThreadAt> at;
  for (int t = 1; t <= threads; ++t) {
    at.push_back({.id = static_cast<uint32_t>(t), .cpu_time_us = static_cast<uint64_t>(i) * 10000});
  }
  return Snapshot(static_cast<uint64_t>(i) * 500000, at);
}

fleet::GetHealthHistoryResponse Query(HealthHistory& history, absl::Time now,
                                      absl::Duration window = absl::ZeroDuration()) {
  fleet::GetHealthHistoryResponse out;
  history.Query(kBoard, window, now, out);
  return out;
}

TEST(HealthHistoryTest, AnswersTheBoardsColumnsOldestFirst) {
  HealthHistory history;
  history.Record(kBoard, Snapshot(500000, {}, 1000), kStart);
  history.Record(kBoard, Snapshot(1000000, {}, 2000), kStart + kPeriod);

  fleet::GetHealthHistoryResponse h = Query(history, kStart + kPeriod);

  EXPECT_EQ(h.board(), kBoard);
  EXPECT_EQ(h.start_time_ms(), absl::ToUnixMillis(kStart));
  EXPECT_THAT(h.offset_ms(), ElementsAre(0, 500));
  EXPECT_THAT(h.heap_used_bytes(), ElementsAre(1000, 2000));
  EXPECT_THAT(h.heap_total_bytes(), ElementsAre(65536, 65536));
  EXPECT_THAT(h.cpu_percent(), ElementsAre(12.5f, 12.5f));
}

TEST(HealthHistoryTest, UnknownBoardAnswersNoSamples) {
  HealthHistory history;
  fleet::GetHealthHistoryResponse h = Query(history, kStart);
  EXPECT_EQ(h.board(), kBoard);
  EXPECT_EQ(h.start_time_ms(), 0);
  EXPECT_THAT(h.offset_ms(), SizeIs(0));
}

TEST(HealthHistoryTest, KeepsOnlyTheWindow) {
  HealthHistory history(HealthHistory::Options{.window = absl::Minutes(15)});
  const int samples = 2 * 20 * 60;  // 20 minutes at 500 ms
  for (int i = 0; i < samples; ++i) history.Record(kBoard, Busy(i, 1), kStart + i * kPeriod);
  const absl::Time now = kStart + (samples - 1) * kPeriod;

  fleet::GetHealthHistoryResponse all = Query(history, now);
  EXPECT_THAT(all.offset_ms(), SizeIs(1801));  // 15 minutes, both ends included
  EXPECT_EQ(all.start_time_ms(), absl::ToUnixMillis(now - absl::Minutes(15)));
  EXPECT_EQ(all.offset_ms(1800), 900000u);

  fleet::GetHealthHistoryResponse minute = Query(history, now, absl::Minutes(1));
  EXPECT_THAT(minute.offset_ms(), SizeIs(121));
  ASSERT_THAT(minute.threads(), SizeIs(1));
  EXPECT_EQ(minute.threads(0).first_sample(), 0u);
  EXPECT_THAT(minute.threads(0).cpu_percent(), SizeIs(121));

  // A board that went quiet keeps nothing older than the window either.
  EXPECT_THAT(Query(history, now + absl::Minutes(16)).offset_ms(), SizeIs(0));
}

TEST(HealthHistoryTest, ThreadCpuIsItsCpuTimeDeltaOverTheUptimeDelta) {
  HealthHistory history;
  history.Record(kBoard, Snapshot(1000000, {{.id = 7, .cpu_time_us = 100000}}), kStart);
  history.Record(kBoard, Snapshot(1500000, {{.id = 7, .cpu_time_us = 350000}}), kStart + kPeriod);
  history.Record(kBoard, Snapshot(2000000, {{.id = 7, .cpu_time_us = 350000}}), kStart + 2 * kPeriod);

  fleet::GetHealthHistoryResponse h = Query(history, kStart + 2 * kPeriod);

  ASSERT_THAT(h.threads(), SizeIs(1));
  const fleet::ThreadHistory& t = h.threads(0);
  EXPECT_EQ(t.thread_id(), 7u);
  EXPECT_EQ(t.name(), "worker7");
  EXPECT_EQ(t.program_id(), 3u);
  EXPECT_EQ(t.stack_size_bytes(), 8192u);
  // First seen: 100 ms over its 1 s of life; then 250 ms in 500 ms; then idle.
  EXPECT_THAT(t.cpu_percent(), Pointwise(FloatNear(0.01), std::vector<float>{10, 50, 0}));
  EXPECT_THAT(t.stack_used_bytes(), ElementsAre(1000, 1000, 1000));
  EXPECT_THAT(t.stack_peak_bytes(), ElementsAre(1100, 1100, 1100));
}

TEST(HealthHistoryTest, ThreadStartedWithinThePeriodCountsItsCpuOverThePeriod) {
  HealthHistory history;
  history.Record(kBoard, Snapshot(1000000, {}), kStart);
  history.Record(kBoard, Snapshot(1500000, {{.id = 2, .cpu_time_us = 100000, .start_time_us = 1200000}}),
                 kStart + kPeriod);

  fleet::GetHealthHistoryResponse h = Query(history, kStart + kPeriod);

  ASSERT_THAT(h.threads(), SizeIs(1));
  EXPECT_THAT(h.threads(0).cpu_percent(), Pointwise(FloatNear(0.01), std::vector<float>{20}));
}

TEST(HealthHistoryTest, ThreadsAreAlignedWithTheSamplesTheyAppearIn) {
  HealthHistory history;
  history.Record(kBoard, Snapshot(500000, {{.id = 1}}), kStart);
  history.Record(kBoard, Snapshot(1000000, {{.id = 1}, {.id = 3, .start_time_us = 600000}}),
                 kStart + kPeriod);
  history.Record(kBoard,
                 Snapshot(1500000, {{.id = 2, .start_time_us = 1100000},
                                    {.id = 3, .start_time_us = 600000},
                                    {.id = 1, .state = pb::THREAD_STATE_FINISHED}}),
                 kStart + 2 * kPeriod);

  fleet::GetHealthHistoryResponse h = Query(history, kStart + 2 * kPeriod);

  ASSERT_THAT(h.threads(), SizeIs(3));
  EXPECT_EQ(h.threads(0).thread_id(), 1u);
  EXPECT_EQ(h.threads(0).first_sample(), 0u);
  EXPECT_THAT(h.threads(0).stack_used_bytes(), SizeIs(2));  // ended: not live in the last sample
  EXPECT_EQ(h.threads(1).thread_id(), 3u);
  EXPECT_EQ(h.threads(1).first_sample(), 1u);
  EXPECT_THAT(h.threads(1).stack_used_bytes(), SizeIs(2));
  EXPECT_EQ(h.threads(2).thread_id(), 2u);
  EXPECT_EQ(h.threads(2).first_sample(), 2u);
  EXPECT_THAT(h.threads(2).stack_used_bytes(), SizeIs(1));

  // A window that starts after thread 1 ended leaves it out; the others'
  // first_sample count from the window's first sample.
  fleet::GetHealthHistoryResponse last = Query(history, kStart + 2 * kPeriod, absl::Milliseconds(1));
  ASSERT_THAT(last.threads(), SizeIs(2));
  EXPECT_EQ(last.threads(0).thread_id(), 2u);
  EXPECT_EQ(last.threads(0).first_sample(), 0u);
  EXPECT_EQ(last.threads(1).thread_id(), 3u);
  EXPECT_EQ(last.threads(1).first_sample(), 0u);
}

TEST(HealthHistoryTest, RestartedBoardStartsItsThreadsAfresh) {
  HealthHistory history;
  history.Record(kBoard, Snapshot(10000000, {{.id = 1, .cpu_time_us = 9000000}}), kStart);
  history.Record(kBoard, Snapshot(10500000, {{.id = 1, .cpu_time_us = 9400000}}), kStart + kPeriod);
  // Uptime went back: thread 1 is another thread, 100 ms of CPU in its 1 s.
  history.Record(kBoard, Snapshot(1000000, {{.id = 1, .cpu_time_us = 100000}}), kStart + 2 * kPeriod);

  fleet::GetHealthHistoryResponse h = Query(history, kStart + 2 * kPeriod);

  ASSERT_THAT(h.threads(), SizeIs(2));
  EXPECT_EQ(h.threads(0).first_sample(), 0u);
  EXPECT_THAT(h.threads(0).cpu_percent(), Pointwise(FloatNear(0.01), std::vector<float>{90, 80}));
  EXPECT_EQ(h.threads(1).thread_id(), 1u);
  EXPECT_EQ(h.threads(1).first_sample(), 2u);
  EXPECT_THAT(h.threads(1).cpu_percent(), Pointwise(FloatNear(0.01), std::vector<float>{10}));
}

TEST(HealthHistoryTest, RecordsAtMostMaxThreadsPerSample) {
  HealthHistory history(HealthHistory::Options{.max_threads_per_sample = 256});
  history.Record(kBoard, Busy(1, 1000), kStart);

  fleet::GetHealthHistoryResponse h = Query(history, kStart);

  EXPECT_THAT(h.threads(), SizeIs(256));
  EXPECT_EQ(history.threads_not_recorded_total(), 744u);
}

TEST(HealthHistoryTest, OverTheBudgetTheLargestBoardLosesItsOldestSamplesFirst) {
  // Room for ~100 samples of a 10-thread board.
  HealthHistory history(HealthHistory::Options{.max_bytes = 100 * (24 + 10 * 12) + 10 * 200});
  for (int i = 0; i < 50; ++i) history.Record("small", Busy(i, 0), kStart + i * kPeriod);
  for (int i = 0; i < 200; ++i) history.Record("large", Busy(i, 10), kStart + i * kPeriod);

  EXPECT_LE(history.bytes(), size_t{100 * (24 + 10 * 12) + 10 * 200});
  EXPECT_EQ(history.samples("small"), 50u);
  fleet::GetHealthHistoryResponse large;
  history.Query("large", absl::ZeroDuration(), kStart + 199 * kPeriod, large);
  ASSERT_GT(large.offset_ms_size(), 0);
  EXPECT_LT(large.offset_ms_size(), 200);
  // What is left is the newest.
  EXPECT_EQ(large.start_time_ms() + large.offset_ms(large.offset_ms_size() - 1),
            absl::ToUnixMillis(kStart + 199 * kPeriod));
  ASSERT_THAT(large.threads(), SizeIs(10));
  EXPECT_THAT(large.threads(0).cpu_percent(), SizeIs(large.offset_ms_size()));
}

TEST(HealthHistoryTest, RemovedBoardsHistoryIsDropped) {
  HealthHistory history;
  for (int i = 0; i < 10; ++i) history.Record(kBoard, Busy(i, 5), kStart + i * kPeriod);
  ASSERT_GT(history.bytes(), 0u);

  history.RemoveBoard(kBoard);

  EXPECT_EQ(history.bytes(), 0u);
  EXPECT_THAT(Query(history, kStart + 10 * kPeriod).offset_ms(), SizeIs(0));
}

// The sizing the header states: 200 boards x 10 threads x 15 minutes at
// 500 ms fit the default budget with every sample kept.
TEST(HealthHistoryTest, TwoHundredBoardsOfTenThreadsKeepFifteenMinutesWithinTheDefaultBudget) {
  constexpr int kBoards = 200;
  constexpr int kSamples = 1800;
  std::vector<pb::HealthSnapshot> snapshots;
  for (int i = 0; i < kSamples; ++i) snapshots.push_back(Busy(i + 1, 10));
  // What the process really allocates for it, containers' overhead included
  // (reported, not asserted: a sanitizer's allocator does not count here).
  const size_t heap_before = mallinfo2().uordblks;
  HealthHistory history;
  for (int i = 0; i < kSamples; ++i) {
    for (int b = 0; b < kBoards; ++b) {
      history.Record("b" + std::to_string(b), snapshots[i], kStart + i * kPeriod);
    }
  }

  const size_t per_board =
      kSamples * (sizeof(HealthHistory::Sample) + 10 * sizeof(HealthHistory::ThreadSample));
  EXPECT_EQ(per_board, 259200u);
  // Plus each board's 10 thread records (short names: no heap block).
  EXPECT_LE(history.bytes(), kBoards * (per_board + 10 * 64));
  EXPECT_GE(history.bytes(), kBoards * per_board);
  EXPECT_LE(history.bytes(), size_t{64} << 20);
  for (int b = 0; b < kBoards; b += 50) EXPECT_EQ(history.samples("b" + std::to_string(b)), size_t{kSamples});
  RecordProperty("history_bytes", std::to_string(history.bytes()));
  RecordProperty("heap_bytes", std::to_string(mallinfo2().uordblks - heap_before));
}

}  // namespace
}  // namespace threadfleet::fleetd
