// bench/fleetd_snapshot: what one health snapshot costs fleetd in-process,
// against parsing the same WatchHealthResponse from its wire bytes in the
// same run (the floor: fleetd must parse every snapshot anyway).
//
//   fleetd_snapshot_bench [--snapshots N] [--boards B] [--rounds R]
//
// Rows, each in µs per snapshot and as a ratio to the parse:
//   parse            WatchHealthResponse::ParseFromString of the snapshot
//   aggregator       HealthAggregator::OnSnapshot (the anomaly rules)
//   history          HealthHistory::Record (GetHealthHistory's samples), which
//                    fleetd's LabMonitor adds to every snapshot
//   monitor          LabMonitor::OnSnapshot, no WatchHealth subscriber
//   monitor+watch    LabMonitor::OnSnapshot, one subscriber (copy + publish)
// The snapshot is what a board running bench/fleet_scale/ten_sleepers.py
// sends: 11 live threads, one program, a healthy heap. B boards take turns,
// each snapshot's uptime one period later than the board's previous one.
// Exits 1 if a snapshot went uncounted or the monitor did not drain.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/fleetd/health/event_hub.h"
#include "server/fleetd/health/health.h"
#include "server/fleetd/health/health_history.h"
#include "server/fleetd/health/lab_monitor.h"
#include "server/fleetd/store/sqlite_store.h"

namespace {

namespace pb = threadfleet::board::v1;
namespace fleet = threadfleet::fleet::v1;
using threadfleet::fleetd::EventHub;
using threadfleet::fleetd::HealthAggregator;
using threadfleet::fleetd::HealthHistory;
using threadfleet::fleetd::LabMonitor;
using threadfleet::fleetd::SqliteStore;

constexpr uint64_t kPeriodUs = 1000000;

pb::WatchHealthResponse TenSleepersSnapshot() {
  pb::WatchHealthResponse r;
  pb::HealthSnapshot& s = *r.mutable_snapshot();
  s.set_board_name("b01");
  s.set_uptime_us(kPeriodUs);
  s.mutable_heap()->set_total_bytes(262144);
  s.mutable_heap()->set_free_bytes(180000);
  s.mutable_heap()->set_used_bytes(262144 - 180000);
  s.mutable_heap()->set_largest_free_bytes(150000);
  s.mutable_thread_counts()->set_running(1);
  s.mutable_thread_counts()->set_sleeping(10);
  s.set_cpu_time_us(1234567);
  s.set_cpu_usage_percent(0.7f);
  for (uint32_t id = 1; id <= 11; ++id) {
    pb::ThreadInfo& t = *s.add_threads();
    t.set_id(id);
    t.set_name(id == 1 ? "main" : absl::StrCat("sleeper_", id - 1));
    t.set_program_id(1);
    t.set_state(id == 1 ? pb::THREAD_STATE_RUNNING : pb::THREAD_STATE_SLEEPING);
    t.set_start_time_us(5000 + id);
    t.set_cpu_time_us(1000 * id);
    t.set_stack_size_bytes(16384);
    t.set_stack_used_bytes(900);
    t.set_stack_peak_bytes(2400);
  }
  pb::ProgramInfo& p = *s.add_programs();
  p.set_id(1);
  p.set_name("ten_sleepers.py");
  p.set_state(pb::PROGRAM_STATE_RUNNING);
  return r;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Feeds `n` snapshots, boards in turn, to `feed(board, snapshot)`; µs each.
template <typename Feed>
double PerSnapshotUs(const pb::HealthSnapshot& base, const std::vector<std::string>& boards, int n, int round,
                     Feed feed) {
  pb::HealthSnapshot s = base;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    const size_t b = static_cast<size_t>(i) % boards.size();
    const uint64_t step = static_cast<uint64_t>(round) * static_cast<uint64_t>(n) + static_cast<uint64_t>(i);
    s.set_uptime_us(kPeriodUs * (2 + step));
    feed(boards[b], s);
  }
  return 1e6 * Seconds(start) / n;
}

int Run(int snapshots, int board_count, int rounds) {
  char dir[] = "/tmp/fleetd_snapshot_bench.XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  int rc = 0;
  {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(absl::StrCat(dir, "/fleet.db"));
    if (!store.ok()) {
      std::fprintf(stderr, "fleetd_snapshot_bench: %s\n", store.status().ToString().c_str());
      return 1;
    }
    std::vector<std::string> boards;
    for (int b = 1; b <= board_count; ++b) boards.push_back(absl::StrCat("b", b));
    const pb::WatchHealthResponse response = TenSleepersSnapshot();
    const std::string wire = response.SerializeAsString();

    HealthAggregator health;
    EventHub hub(**store);
    LabMonitor monitor(**store, health, hub);
    HealthAggregator alone;
    HealthHistory history;
    std::printf("snapshot: %zu bytes on the wire, %d threads; %d snapshots a row over %d boards\n",
                wire.size(), response.snapshot().threads_size(), snapshots, board_count);
    std::printf("%-6s %10s %12s %10s %12s %14s %10s %10s %10s %10s\n", "round", "parse_us", "aggregator",
                "history", "monitor", "monitor+watch", "agg/parse", "hist/parse", "mon/parse", "watch/parse");
    uint64_t published = 0;
    for (int round = 0; round < rounds; ++round) {
      pb::WatchHealthResponse parsed;
      const double parse = PerSnapshotUs(response.snapshot(), boards, snapshots, round,
                                         [&](const std::string&, const pb::HealthSnapshot&) {
                                           if (!parsed.ParseFromString(wire)) rc = 1;
                                         });
      const double aggregator = PerSnapshotUs(response.snapshot(), boards, snapshots, round,
                                              [&](const std::string& b, const pb::HealthSnapshot& s) {
                                                if (!alone.OnSnapshot(b, s, absl::Now()).empty())
                                                  rc = 1;  // a healthy board
                                              });
      const double recorded = PerSnapshotUs(
          response.snapshot(), boards, snapshots, round,
          [&](const std::string& b, const pb::HealthSnapshot& s) { history.Record(b, s, absl::Now()); });
      // Both monitor rows feed the same aggregator: uptimes keep rising.
      const double plain =
          PerSnapshotUs(response.snapshot(), boards, snapshots, 2 * round + rounds,
                        [&](const std::string& b, const pb::HealthSnapshot& s) { monitor.OnSnapshot(b, s); });
      if (!monitor.Flush(absl::Seconds(60))) rc = 1;
      const uint64_t sub =
          hub.SubscribeHealth([&published](const fleet::WatchHealthResponse&) { ++published; });
      const auto watched_start = std::chrono::steady_clock::now();
      PerSnapshotUs(response.snapshot(), boards, snapshots, 2 * round + rounds + 1,
                    [&](const std::string& b, const pb::HealthSnapshot& s) { monitor.OnSnapshot(b, s); });
      if (!monitor.Flush(absl::Seconds(60))) rc = 1;  // the worker's part counts too
      const double watched = 1e6 * Seconds(watched_start) / snapshots;
      hub.Unsubscribe(sub);
      std::printf("%-6d %10.2f %12.2f %10.2f %12.2f %14.2f %10.1f %10.1f %10.1f %10.1f\n", round, parse,
                  aggregator, recorded, plain, watched, aggregator / parse, recorded / parse, plain / parse,
                  watched / parse);
    }
    const uint64_t expected = static_cast<uint64_t>(snapshots) * static_cast<uint64_t>(rounds);
    if (monitor.snapshots_total() != 2 * expected || published != expected || monitor.dropped_total() != 0) {
      std::fprintf(stderr, "fleetd_snapshot_bench: counted %lu snapshots, published %lu, dropped %lu\n",
                   static_cast<unsigned long>(monitor.snapshots_total()),
                   static_cast<unsigned long>(published),
                   static_cast<unsigned long>(monitor.dropped_total()));
      rc = 1;
    }
  }
  std::filesystem::remove_all(dir);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  int snapshots = 100000;
  int boards = 100;
  int rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const int value = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--snapshots") == 0 && value > 0) {
      snapshots = value;
    } else if (std::strcmp(argv[i], "--boards") == 0 && value > 0) {
      boards = value;
    } else if (std::strcmp(argv[i], "--rounds") == 0 && value > 0) {
      rounds = value;
    } else {
      std::fprintf(stderr, "usage: fleetd_snapshot_bench [--snapshots N] [--boards B] [--rounds R]\n");
      return 2;
    }
  }
  return Run(snapshots, boards, rounds);
}
