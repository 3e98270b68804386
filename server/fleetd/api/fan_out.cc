#include "server/fleetd/api/fan_out.h"

#include <atomic>
#include <memory>
#include <utility>

namespace threadfleet::fleetd {

WorkerPool::WorkerPool(size_t threads) {
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

WorkerPool::~WorkerPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void WorkerPool::Submit(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

size_t WorkerPool::queued() const {
  absl::MutexLock lock(&mu_);
  return tasks_.size();
}

void WorkerPool::Run() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      // Wakes for work, or to stop once the queue is drained.
      mu_.Await(absl::Condition(
          +[](WorkerPool* pool)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mu_) { return !pool->tasks_.empty() || pool->stopping_; },
          this));
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

void FanOut(WorkerPool& pool, size_t n, std::function<void(size_t i, std::function<void()> done)> task,
            std::function<void()> all_done) {
  if (n == 0) {
    pool.Submit(std::move(all_done));
    return;
  }
  struct Shared {
    WorkerPool* pool;
    std::function<void()> all_done;
    std::atomic<size_t> remaining;
  };
  auto shared = std::make_shared<Shared>();
  shared->pool = &pool;
  shared->all_done = std::move(all_done);
  shared->remaining.store(n);
  auto task_shared = std::make_shared<std::function<void(size_t, std::function<void()>)>>(std::move(task));
  for (size_t i = 0; i < n; ++i) {
    pool.Submit([shared, task_shared, i] {
      (*task_shared)(i, [shared] {
        if (shared->remaining.fetch_sub(1) == 1) shared->pool->Submit(std::move(shared->all_done));
      });
    });
  }
}

}  // namespace threadfleet::fleetd
