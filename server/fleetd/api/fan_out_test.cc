// WorkerPool and FanOut: tasks run in parallel up to the pool's size, never
// more, and the pool drains its queue when destroyed; FanOut's `all_done`
// runs once, on the pool, after every task said it is done from any thread.
#include "server/fleetd/api/fan_out.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace threadfleet::fleetd {
namespace {

using namespace std::chrono_literals;

// Polls `fn` every millisecond for up to 10 s.
bool WaitUntil(const std::function<bool()>& fn) {
  for (int i = 0; i < 10000; ++i) {
    if (fn()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return fn();
}

TEST(WorkerPoolTest, RunsAtMostItsThreadCountOfTasksAtOnce) {
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<int> finished{0};
  {
    WorkerPool pool(4);
    for (int i = 0; i < 20; ++i) {
      pool.Submit([&] {
        const int now = running.fetch_add(1) + 1;
        int seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(20ms);
        running.fetch_sub(1);
        finished.fetch_add(1);
      });
    }
  }  // drains, then joins
  EXPECT_EQ(finished.load(), 20);
  EXPECT_EQ(peak.load(), 4);
}

TEST(FanOutTest, AllDoneRunsOnThePoolOnceAfterEveryTaskSaidDoneFromAnyThread) {
  WorkerPool pool(2);
  constexpr size_t kTasks = 6;
  std::atomic<int> done_calls{0};
  absl::Notification finished;
  std::thread::id all_done_thread;
  std::vector<std::thread> others;
  absl::Mutex mu;
  std::vector<std::function<void()>> later;
  FanOut(
      pool, kTasks,
      [&](size_t i, std::function<void()> done) {
        if (i % 2 == 0) {
          done_calls.fetch_add(1);
          done();  // at once, on the pool
        } else {
          absl::MutexLock lock(&mu);
          later.push_back([&, done] {
            done_calls.fetch_add(1);
            done();
          });
        }
      },
      [&] {
        all_done_thread = std::this_thread::get_id();
        finished.Notify();
      });
  // The odd tasks end from threads of their own, as board callbacks do.
  ASSERT_TRUE(WaitUntil([&] {
    absl::MutexLock lock(&mu);
    return later.size() == kTasks / 2;
  }));
  EXPECT_FALSE(finished.HasBeenNotified());
  {
    absl::MutexLock lock(&mu);
    for (auto& fn : later) others.emplace_back(fn);
  }
  std::vector<std::thread::id> other_ids;
  for (auto& t : others) other_ids.push_back(t.get_id());
  for (auto& t : others) t.join();
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(done_calls.load(), static_cast<int>(kTasks));
  for (const std::thread::id& id : other_ids) EXPECT_NE(all_done_thread, id);
}

TEST(FanOutTest, NoTasksRunsAllDoneOnThePool) {
  WorkerPool pool(1);
  absl::Notification finished;
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran_on;
  FanOut(
      pool, 0, [](size_t, std::function<void()>) {},
      [&] {
        ran_on = std::this_thread::get_id();
        finished.Notify();
      });
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_NE(ran_on, caller);
}

}  // namespace
}  // namespace threadfleet::fleetd
