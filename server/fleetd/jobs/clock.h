// Clock: where jobs read the time, so the scheduler and run timeouts are
// tested with a clock the test moves.
#ifndef THREADFLEET_SERVER_FLEETD_JOBS_CLOCK_H_
#define THREADFLEET_SERVER_FLEETD_JOBS_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace threadfleet::fleetd::jobs {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace threadfleet::fleetd::jobs

#endif  // THREADFLEET_SERVER_FLEETD_JOBS_CLOCK_H_
