#include "server/fleetd/jobs/stop_signal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/notification.h"

namespace threadfleet::fleetd::jobs {
namespace {

TEST(StopSignalTest, FirstStopWinsAndRunsEachCallbackOnce) {
  StopSignal stop;
  int runs = 0;
  (void)stop.OnStop([&runs] { ++runs; });

  stop.Stop("cancelled by alice");
  stop.Stop("timed out");

  EXPECT_TRUE(stop.stopped());
  EXPECT_EQ(stop.reason(), "cancelled by alice");
  EXPECT_EQ(runs, 1);
}

TEST(StopSignalTest, CallbackAddedAfterTheStopRunsAtOnce) {
  StopSignal stop;
  stop.Stop("aborted");
  bool ran = false;

  (void)stop.OnStop([&ran] { ran = true; });

  EXPECT_TRUE(ran);
}

TEST(StopSignalTest, RemovedCallbackDoesNotRun) {
  StopSignal stop;
  bool ran = false;
  const uint64_t id = stop.OnStop([&ran] { ran = true; });

  stop.RemoveOnStop(id);
  stop.Stop("cancelled");

  EXPECT_FALSE(ran);
}

TEST(StopSignalTest, SleepEndsWhenStopped) {
  StopSignal stop;
  absl::Notification sleeping;
  std::thread stopper([&] {
    sleeping.WaitForNotification();
    stop.Stop("fleetd is shutting down");
  });

  sleeping.Notify();
  const bool stopped = stop.SleepFor(absl::Hours(1));
  stopper.join();

  EXPECT_TRUE(stopped);
}

TEST(StopSignalTest, SleepWithoutAStopSleepsItsDuration) {
  StopSignal stop;

  EXPECT_FALSE(stop.SleepFor(absl::Milliseconds(1)));
}

}  // namespace
}  // namespace threadfleet::fleetd::jobs
