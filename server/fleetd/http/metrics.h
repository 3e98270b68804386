// fleetd's Prometheus metrics: counters fleetd keeps as it runs (RPCs by
// method and code, fleet events by severity) and the text exposition
// (format 0.0.4) of those plus gauges read at scrape time from the board
// links, the health aggregator and /proc/self.
//
// Example:
//
//   MetricCounters counters;
//   builder.experimental().SetInterceptorCreators(RpcCountingInterceptors(counters));
//   uint64_t sub = hub.SubscribeEvents([&](const fleet::v1::Event& e) { counters.CountEvent(e.severity());
//   });
//   ...
//   std::string text = RenderMetrics(MetricsView{
//       .boards = links.Statuses(), .health = &health,
//       .health_snapshots_total = monitor.snapshots_total(),
//       .counters = &counters, .process = ReadProcessStats()});
//
// Series (every label value of a fixed set is always present, 0 if none):
//   fleetd_boards{state="online|offline|degraded"}            gauge
//   fleetd_threads{state="running|sleeping|waiting_lock|finished|failed|killed|unkillable"}
//                                                             gauge, summed over each board's latest snapshot
//   fleetd_anomalies_active{kind="thread_failed|..."}         gauge (health.h AnomalyKindName)
//   fleetd_events_total{severity="info|warning|error"}        counter
//   fleetd_rpcs_total{method="/pkg.Service/Method",code="OK|..."}  counter, only pairs seen
//   fleetd_health_snapshots_total                             counter
//   fleetd_process_cpu_seconds_total                          counter
//   fleetd_process_resident_memory_bytes                      gauge
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_METRICS_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_METRICS_H_

#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/fleetd/health/health.h"
#include "server/fleetd/links/board_link.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {

// Counters fleetd increments as things happen. Thread-safe.
class MetricCounters {
 public:
  // One RPC finished with `code`; `method` is gRPC's full name
  // ("/threadfleet.fleet.v1.Fleet/ListBoards").
  void CountRpc(absl::string_view method, grpc::StatusCode code);
  // One fleet event was recorded.
  void CountEvent(threadfleet::fleet::v1::Severity severity);

  // (method, code name) -> count.
  std::map<std::pair<std::string, std::string>, uint64_t> Rpcs() const;
  // Severity -> count.
  std::map<threadfleet::fleet::v1::Severity, uint64_t> Events() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> rpcs_ ABSL_GUARDED_BY(mu_);
  std::map<threadfleet::fleet::v1::Severity, uint64_t> events_ ABSL_GUARDED_BY(mu_);
};

// "OK", "CANCELLED", ..., "UNAUTHENTICATED": the names gRPC's docs use.
absl::string_view StatusCodeName(grpc::StatusCode code);

// Server interceptor factories (for ServerBuilder::experimental().
// SetInterceptorCreators) that count every RPC when the server sends its
// status. Calls that end without a status being sent (the client cancelled
// first) are not counted. REQUIRES: `counters` outlives the server.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> RpcCountingInterceptors(
    MetricCounters& counters);

// This process's resource use, from /proc/self.
struct ProcessStats {
  double cpu_seconds = 0;  // user + system
  uint64_t resident_memory_bytes = 0;
};

// Reads /proc/self/stat and /proc/self/statm. INTERNAL if they cannot be
// read or parsed.
absl::StatusOr<ProcessStats> ReadProcessStats();

// What one scrape shows.
struct MetricsView {
  // Every board's link state (LinkManager::Statuses()).
  std::map<std::string, LinkStatus> boards;
  // Latest snapshots and active anomalies; null shows zeros.
  const HealthAggregator* health = nullptr;
  uint64_t health_snapshots_total = 0;
  // Null shows zeros.
  const MetricCounters* counters = nullptr;
  // Unset when /proc could not be read: the process series are left out.
  std::optional<ProcessStats> process;
};

// The Prometheus text exposition (format 0.0.4) of `view`, each family with
// HELP and TYPE lines, label values escaped.
std::string RenderMetrics(const MetricsView& view);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_METRICS_H_
