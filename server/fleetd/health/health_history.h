// HealthHistory: each board's recent health, one sample per snapshot fleetd
// received, kept compact so a dashboard's charts are full the moment a page
// opens (GetHealthHistory in fleet.proto).
//
// Example:
//
//   HealthHistory history(HealthHistory::Options{});
//   history.Record("b01", snapshot, absl::Now());  // from the links' snapshot path
//   threadfleet::fleet::v1::GetHealthHistoryResponse chart;
//   history.Query("b01", absl::Minutes(5), absl::Now(), chart);
//
// A sample holds what the charts plot: the time fleetd received it, the
// board's heap used/total and CPU %, and per live thread its CPU %, stack used
// and stack high-water mark. A thread's name, program and stack size are kept
// once per thread, not per sample. Samples are fixed-size records (Sample: 24
// bytes, ThreadSample: 12 bytes), no protobuf per sample: 15 minutes of a
// 10-thread board at a 500 ms period take 1800 x (24 + 10 x 12) = 259,200
// bytes, so 200 such boards ~52 MB.
//
// A thread's CPU % is its cpu_time_us delta since the board's previous
// snapshot over the board's uptime delta (100 is one core, saturating at
// 655.35). A thread the previous snapshot did not list gets its CPU time
// since it started (over the period when it started within it, else over
// its life so far). A snapshot whose uptime went back means the board
// restarted: its thread ids start over, so no delta reaches across it and
// each thread starts a new series.
//
// Bounds:
// - Options::window: samples older than this are dropped (at each Record of
//   the board and at each Query).
// - Options::max_threads_per_sample: the live threads kept per sample, the
//   first ones the snapshot lists; the rest are not recorded.
// - a board keeps at most kMaxThreadSeries thread series (a thread's run of
//   consecutive samples); a thread beyond them is not recorded until older
//   samples age out.
// - Options::max_bytes: every board's records together. Past it, the oldest
//   samples of the board that holds the most bytes go first (so one board
//   with many threads loses history before the others do). bytes() counts the
//   records and the per-thread names; the containers' own block overhead
//   (~2%) is not counted.
//
// Thread-safe. Record is O(threads of the snapshot + log boards) and
// allocates only when a thread is new or a container grows a block: it runs
// on the links' snapshot path.
#ifndef THREADFLEET_SERVER_FLEETD_HEALTH_HEALTH_HISTORY_H_
#define THREADFLEET_SERVER_FLEETD_HEALTH_HEALTH_HISTORY_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "threadfleet/board/v1/board.pb.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {

// Thread series one board may hold at once (a ThreadSample names its series
// in 16 bits).
inline constexpr size_t kMaxThreadSeries = 65535;

class HealthHistory {
 public:
  struct Options {
    // How long samples are kept: fleetd.yaml's limits.health_history.window_s.
    absl::Duration window = absl::Seconds(900);
    // All boards' records together: limits.health_history.max_bytes.
    size_t max_bytes = size_t{64} << 20;
    // Live threads recorded per sample (at most 65535).
    size_t max_threads_per_sample = 256;
  };

  // The fixed-size records, public so their sizes can be stated and checked.
  struct Sample {
    int64_t time_ms;  // when fleetd received the snapshot, Unix epoch
    uint32_t heap_used_bytes;
    uint32_t heap_total_bytes;
    float cpu_percent;
    uint16_t thread_count;  // its ThreadSamples follow the previous sample's
  };
  struct ThreadSample {
    uint16_t series;     // index into the board's thread series
    uint16_t cpu_centi;  // CPU % x 100
    uint32_t stack_used_bytes;
    uint32_t stack_peak_bytes;
  };

  explicit HealthHistory(Options options);
  HealthHistory() : HealthHistory(Options{}) {}

  HealthHistory(const HealthHistory&) = delete;
  HealthHistory& operator=(const HealthHistory&) = delete;

  // Records one snapshot of `board` received at `now`, then drops what the
  // window and the byte budget no longer allow.
  void Record(absl::string_view board, const threadfleet::board::v1::HealthSnapshot& snapshot,
              absl::Time now);

  // Forgets the board's history (it left the inventory).
  void RemoveBoard(absl::string_view board);

  // Fills `out` with the board's samples received after `now - window`
  // (all kept when `window` is zero or longer than Options::window), oldest
  // first, as GetHealthHistoryResponse's columns. A board never recorded
  // gets only its name set. REQUIRES: window >= 0.
  void Query(absl::string_view board, absl::Duration window, absl::Time now,
             threadfleet::fleet::v1::GetHealthHistoryResponse& out);

  // Bytes held by every board's records (see the file comment).
  size_t bytes() const;
  // Samples held for one board.
  size_t samples(absl::string_view board) const;
  // Live threads not recorded since start (over max_threads_per_sample or
  // kMaxThreadSeries).
  uint64_t threads_not_recorded_total() const;

 private:
  // One thread's run of consecutive samples.
  struct Series {
    uint32_t thread_id = 0;
    uint32_t program_id = 0;
    uint32_t stack_size_bytes = 0;
    // ThreadSamples naming it; it is freed at 0.
    uint32_t samples = 0;
    std::string name;
  };
  // A thread of the board's latest snapshot, sorted by id: where its CPU
  // delta starts and which series it continues.
  struct LatestThread {
    uint32_t thread_id;
    uint16_t series;  // kNoSeries when its series has been dropped
    uint64_t cpu_time_us;
  };
  struct Board {
    std::deque<Sample> samples;
    std::deque<ThreadSample> threads;
    std::vector<Series> series;
    std::vector<uint16_t> free_series;
    std::vector<LatestThread> latest;
    std::vector<LatestThread> next;  // scratch, reused
    uint64_t latest_uptime_us = 0;
    bool has_latest = false;
    size_t bytes = 0;
  };
  static constexpr uint16_t kNoSeries = 0xFFFF;

  // Adds `delta` to a board's and the total byte counts, keeping the index
  // of boards by size in order.
  void AddBytes(Board& b, ptrdiff_t delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropOldest(Board& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropBefore(Board& b, int64_t time_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnforceBudget() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A series for a thread first seen now; kNoSeries when the board holds
  // kMaxThreadSeries.
  uint16_t NewSeries(Board& b, const threadfleet::board::v1::ThreadInfo& t)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static size_t SeriesBytes(const Series& s);

  const Options options_;
  // Options::max_threads_per_sample, at most what Sample::thread_count holds.
  const uint16_t max_threads_per_sample_;
  mutable absl::Mutex mu_;
  std::map<std::string, Board, std::less<>> boards_ ABSL_GUARDED_BY(mu_);
  // (bytes, board) for every board: the largest is evicted first.
  std::set<std::pair<size_t, Board*>> by_bytes_ ABSL_GUARDED_BY(mu_);
  size_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t threads_not_recorded_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HEALTH_HEALTH_HISTORY_H_
