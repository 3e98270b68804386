// TimerQueue: a task runs on the pool no sooner than its delay, tasks run in
// the order they fall due, and tasks still waiting when the queue goes are
// run at once rather than dropped.
#include "server/fleetd/api/timer_queue.h"

#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace threadfleet::fleetd {
namespace {

TEST(TimerQueueTest, RunsATaskOnThePoolNoSoonerThanItsDelay) {
  WorkerPool pool(2);
  TimerQueue timers(pool);
  absl::Notification ran;
  const absl::Time start = absl::Now();
  absl::Time when;
  timers.After(absl::Milliseconds(50), [&] {
    when = absl::Now();
    ran.Notify();
  });
  EXPECT_EQ(timers.pending(), 1u);

  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(when - start, absl::Milliseconds(50));
  EXPECT_EQ(timers.pending(), 0u);
}

TEST(TimerQueueTest, TasksRunInTheOrderTheyFallDueNotTheOrderAdded) {
  WorkerPool pool(1);  // one thread: the pool runs them in submission order
  TimerQueue timers(pool);
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification last;
  timers.After(absl::Milliseconds(120), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(3);
    last.Notify();
  });
  timers.After(absl::Milliseconds(60), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(2);
  });
  timers.After(absl::ZeroDuration(), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(1);
  });

  ASSERT_TRUE(last.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimerQueueTest, TasksStillWaitingRunWhenTheQueueIsDestroyed) {
  WorkerPool pool(2);
  absl::Notification ran;
  {
    TimerQueue timers(pool);
    timers.After(absl::Hours(1), [&] { ran.Notify(); });
  }
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)))
      << "whoever holds a stream open for the task must not wait an hour";
}

}  // namespace
}  // namespace threadfleet::fleetd
