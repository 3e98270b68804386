// TimerQueue: runs tasks on a WorkerPool after a delay, e.g. a push that
// tries an offline board again in 250 ms, without holding a pool thread
// while it waits. One thread for all pending tasks.
//
// Example:
//
//   WorkerPool pool(32);
//   TimerQueue timers(pool);
//   timers.After(absl::Milliseconds(250), [] { TryAgain(); });  // on the pool, ~250 ms later
//
// Thread-safe.
#ifndef THREADFLEET_SERVER_FLEETD_API_TIMER_QUEUE_H_
#define THREADFLEET_SERVER_FLEETD_API_TIMER_QUEUE_H_

#include <cstddef>
#include <functional>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/fleetd/api/fan_out.h"

namespace threadfleet::fleetd {

class TimerQueue {
 public:
  // REQUIRES: `pool` outlives the queue.
  explicit TimerQueue(WorkerPool& pool);
  // Hands every task still waiting to the pool at once (so whoever waits for
  // them is not left waiting), then joins its thread.
  ~TimerQueue();

  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Submits `task` to the pool once `delay` has passed (at once for a delay
  // <= 0). Tasks due at the same time keep the order they were added in.
  void After(absl::Duration delay, std::function<void()> task);

  // Tasks waiting for their time.
  size_t pending() const;

 private:
  void Run();

  WorkerPool& pool_;
  mutable absl::Mutex mu_;
  std::multimap<absl::Time, std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_API_TIMER_QUEUE_H_
