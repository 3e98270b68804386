#include "server/fleetd/store/retention.h"

#include <cstdio>

#include "absl/time/clock.h"

namespace threadfleet::fleetd {

void Retention::Start() {
  thread_ = std::thread([this] {
    do {
      PruneOnce(absl::Now());
    } while (Wait(options_.interval));
  });
}

Retention::~Retention() { Stop(); }

void Retention::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool Retention::Wait(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&stopping), d);
  return !stopping_;
}

int64_t Retention::PruneOnce(absl::Time now) {
  return PruneTable("events", &Store::PruneEvents, options_.events, now) +
         PruneTable("audit_log", &Store::PruneAudit, options_.audit, now);
}

int64_t Retention::PruneTable(const char* table, PruneBatch prune, const RetentionRule& rule,
                              absl::Time now) {
  int64_t total = 0;
  for (int batch = 0; batch < options_.max_batches; ++batch) {
    absl::StatusOr<int64_t> deleted = (store_.*prune)(rule, now);
    if (!deleted.ok()) {
      std::fprintf(stderr, "fleetd: retention table=%s pass ended: %s\n", table,
                   deleted.status().ToString().c_str());
      break;
    }
    total += *deleted;
    if (*deleted < rule.batch) break;
    if (!Wait(options_.pause)) break;
  }
  if (total > 0)
    std::fprintf(stderr, "fleetd: retention table=%s deleted=%lld\n", table, static_cast<long long>(total));
  return total;
}

}  // namespace threadfleet::fleetd
