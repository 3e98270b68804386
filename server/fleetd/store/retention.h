// Retention: keeps the events table and the audit log from growing without
// bound. A background thread prunes each table, every `interval`, by age and
// by row count (RetentionRule), the newest rows always kept: one bounded
// batch per transaction with a pause between batches, so a prune never
// holds SQLite's write lock for long and API calls interleave with it.
//
// Example (fleetd_main):
//
//   Retention retention(*store, config.limits.retention);
//   retention.Start();  // prunes now, then every interval
//   ...
//   retention.Stop();  // or the destructor
//
// A failed batch is logged (one line) and the pass ends; the next pass
// tries again.
#ifndef THREADFLEET_SERVER_FLEETD_STORE_RETENTION_H_
#define THREADFLEET_SERVER_FLEETD_STORE_RETENTION_H_

#include <cstdint>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/fleetd/store/store.h"

namespace threadfleet::fleetd {

// fleetd.yaml's `limits.retention`; the defaults are fleetd's. At thread
// churn's ~1.5 MiB/s of events the row limit is what binds (a few hundred
// MB of events at most).
struct RetentionOptions {
  RetentionRule events{.max_age = absl::Hours(24 * 30), .max_rows = 1'000'000, .batch = 1000};
  RetentionRule audit{.max_age = absl::Hours(24 * 365), .max_rows = 1'000'000, .batch = 1000};
  // Between passes.
  absl::Duration interval = absl::Seconds(60);
  // Between batches of a pass: other writers take the lock meanwhile.
  absl::Duration pause = absl::Milliseconds(20);
  // Batches per table per pass: bounds one pass even on a huge backlog (the
  // next pass goes on).
  int max_batches = 1000;
};

// Prunes in the background from Start() until Stop().
class Retention {
 public:
  // REQUIRES: `store` outlives the Retention.
  Retention(Store& store, RetentionOptions options) : store_(store), options_(options) {}
  ~Retention();

  Retention(const Retention&) = delete;
  Retention& operator=(const Retention&) = delete;

  // Starts the background thread: a pass at once, then one every interval.
  // REQUIRES: called at most once.
  void Start();

  // Ends the thread after its current batch. Idempotent.
  void Stop();

  // One pass over both tables now, on the caller's thread; returns the rows
  // deleted. For tests and the thread.
  int64_t PruneOnce(absl::Time now);

 private:
  // Store::PruneEvents or Store::PruneAudit.
  using PruneBatch = absl::StatusOr<int64_t> (Store::*)(const RetentionRule&, absl::Time);
  int64_t PruneTable(const char* table, PruneBatch prune, const RetentionRule& rule, absl::Time now);
  // Waits `d` or until Stop(); false once stopping.
  bool Wait(absl::Duration d);

  Store& store_;
  const RetentionOptions options_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_STORE_RETENTION_H_
