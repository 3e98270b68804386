#include "server/fleetd/api/timer_queue.h"

#include <utility>
#include <vector>

namespace threadfleet::fleetd {

TimerQueue::TimerQueue(WorkerPool& pool) : pool_(pool), thread_([this] { Run(); }) {}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void TimerQueue::After(absl::Duration delay, std::function<void()> task) {
  if (delay <= absl::ZeroDuration()) {
    pool_.Submit(std::move(task));
    return;
  }
  absl::MutexLock lock(&mu_);
  tasks_.emplace(absl::Now() + delay, std::move(task));
}

size_t TimerQueue::pending() const {
  absl::MutexLock lock(&mu_);
  return tasks_.size();
}

void TimerQueue::Run() {
  for (;;) {
    std::vector<std::function<void()>> due;
    {
      absl::MutexLock lock(&mu_);
      // Wakes when stopping, when a task is added (the earliest may have
      // changed) or when the earliest is due.
      const size_t seen = tasks_.size();
      const absl::Time wake = tasks_.empty() ? absl::InfiniteFuture() : tasks_.begin()->first;
      auto changed = [this, seen]()
                         ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || tasks_.size() != seen; };
      mu_.AwaitWithDeadline(absl::Condition(&changed), wake);
      const absl::Time now = absl::Now();
      while (!tasks_.empty() && (stopping_ || tasks_.begin()->first <= now)) {
        due.push_back(std::move(tasks_.begin()->second));
        tasks_.erase(tasks_.begin());
      }
      if (stopping_ && due.empty()) return;
    }
    // Submitted outside mu_: a task may add the next one.
    for (std::function<void()>& task : due) pool_.Submit(std::move(task));
  }
}

}  // namespace threadfleet::fleetd
