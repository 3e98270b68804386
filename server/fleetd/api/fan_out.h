// WorkerPool: a fixed set of threads that run fleetd's short blocking work
// (authorization, store queries, audit) off gRPC's callback threads and off
// the board links' thread; and FanOut, which starts one task per board on it
// and calls back once every task said it is done (later, from a board call's
// callback).
//
// Example:
//
//   WorkerPool pool(32);
//   pool.Submit([] { store->AppendAudit(record); });  // never blocks the caller
//   FanOut(pool, boards.size(),
//          [&](size_t i, std::function<void()> done) {    // on the pool
//            board[i]->KillThread(7, grace, {}, [done](auto r) { ...; done(); });
//          },
//          [=] { reactor->Finish(grpc::Status::OK); });   // on the pool, once, after the last
//
// A pool never grows: with N threads, at most N tasks run at once and the
// rest wait in order (FIFO). Tasks must not wait for other tasks of the same
// pool (that can deadlock once every thread waits), nor for a board (board
// calls are asynchronous: board_client.h); chain work with `done` instead.
#ifndef THREADFLEET_SERVER_FLEETD_API_FAN_OUT_H_
#define THREADFLEET_SERVER_FLEETD_API_FAN_OUT_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace threadfleet::fleetd {

class WorkerPool {
 public:
  // Starts `threads` threads. REQUIRES: threads > 0.
  explicit WorkerPool(size_t threads);
  // Runs every task already submitted, then joins the threads.
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task` to run on one of the pool's threads and returns at once.
  // REQUIRES: the pool is not being destroyed.
  void Submit(std::function<void()> task);

  // Tasks queued and not yet started.
  size_t queued() const;

 private:
  void Run();

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// Runs task(i, done_i) for i in 0 .. n - 1 on `pool`; each task calls its
// done_i exactly once, then or later, from any thread (e.g. a board call's
// callback on the links thread). `all_done` runs once on `pool` after the
// last done_i (on the pool at once when n == 0). Returns at once.
void FanOut(WorkerPool& pool, size_t n, std::function<void(size_t i, std::function<void()> done)> task,
            std::function<void()> all_done);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_API_FAN_OUT_H_
