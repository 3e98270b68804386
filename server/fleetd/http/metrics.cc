#include "server/fleetd/http/metrics.h"

#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace threadfleet::fleetd {
namespace {

namespace fv1 = threadfleet::fleet::v1;

constexpr AnomalyKind kAnomalyKinds[] = {
    AnomalyKind::kThreadFailed,     AnomalyKind::kStackHigh,   AnomalyKind::kHeapLow,
    AnomalyKind::kDeadlock,         AnomalyKind::kStall,       AnomalyKind::kBoardOffline,
    AnomalyKind::kThreadUnkillable, AnomalyKind::kNativeStuck,
};

// Label values may hold anything; the format escapes \, " and newline.
std::string EscapeLabel(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Family(std::string& out, absl::string_view name, absl::string_view type, absl::string_view help) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void Sample(std::string& out, absl::string_view name, absl::string_view labels, uint64_t value) {
  absl::StrAppend(&out, name, labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", " ", value, "\n");
}

class RpcCountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcCountingInterceptor(grpc::experimental::ServerRpcInfo* info, MetricCounters& counters)
      : method_(info->method() == nullptr ? "" : info->method()), counters_(counters) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      counters_.CountRpc(method_, methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  MetricCounters& counters_;
};

class RpcCountingFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcCountingFactory(MetricCounters& counters) : counters_(counters) {}
  // gRPC owns the interceptor it gets.
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new RpcCountingInterceptor(info, counters_);
  }

 private:
  MetricCounters& counters_;
};

}  // namespace

void MetricCounters::CountRpc(absl::string_view method, grpc::StatusCode code) {
  absl::MutexLock lock(&mu_);
  ++rpcs_[{std::string(method), std::string(StatusCodeName(code))}];
}

void MetricCounters::CountEvent(fv1::Severity severity) {
  absl::MutexLock lock(&mu_);
  ++events_[severity];
}

std::map<std::pair<std::string, std::string>, uint64_t> MetricCounters::Rpcs() const {
  absl::MutexLock lock(&mu_);
  return rpcs_;
}

std::map<fv1::Severity, uint64_t> MetricCounters::Events() const {
  absl::MutexLock lock(&mu_);
  return events_;
}

absl::string_view StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "UNKNOWN";
  }
}

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> RpcCountingInterceptors(
    MetricCounters& counters) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<RpcCountingFactory>(counters));
  return factories;
}

absl::StatusOr<ProcessStats> ReadProcessStats() {
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // The command name (field 2) is in parentheses and may hold spaces: the
  // fields after its closing parenthesis start with field 3 (state).
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return absl::InternalError("cannot parse /proc/self/stat");
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(close + 1), ' ', absl::SkipEmpty());
  // utime and stime are fields 14 and 15: indexes 11 and 12 from field 3.
  uint64_t utime = 0;
  uint64_t stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) || !absl::SimpleAtoi(fields[12], &stime)) {
    return absl::InternalError("cannot parse /proc/self/stat");
  }
  std::ifstream statm_file("/proc/self/statm");
  uint64_t size_pages = 0;
  uint64_t resident_pages = 0;
  if (!(statm_file >> size_pages >> resident_pages))
    return absl::InternalError("cannot parse /proc/self/statm");
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  if (ticks <= 0 || page <= 0) return absl::InternalError("sysconf failed");
  ProcessStats stats;
  stats.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(ticks);
  stats.resident_memory_bytes = resident_pages * static_cast<uint64_t>(page);
  return stats;
}

std::string RenderMetrics(const MetricsView& view) {
  std::string out;

  Family(out, "fleetd_boards", "gauge", "Boards in the inventory by link state.");
  std::map<std::string, uint64_t> boards = {{"online", 0}, {"offline", 0}, {"degraded", 0}};
  for (const auto& [name, status] : view.boards) ++boards[std::string(BoardStateName(status.state))];
  for (const auto& [state, n] : boards)
    Sample(out, "fleetd_boards", absl::StrCat("state=\"", state, "\""), n);

  Family(out, "fleetd_threads", "gauge",
         "Threads by state, summed over every board's latest health snapshot.");
  std::vector<std::pair<std::string, uint64_t>> threads = {
      {"running", 0}, {"sleeping", 0}, {"waiting_lock", 0}, {"finished", 0},
      {"failed", 0},  {"killed", 0},   {"unkillable", 0}};
  if (view.health != nullptr) {
    for (const std::string& board : view.health->Boards()) {
      std::optional<threadfleet::board::v1::HealthSnapshot> latest = view.health->Latest(board);
      if (!latest.has_value()) continue;
      const threadfleet::board::v1::ThreadCounts& c = latest->thread_counts();
      threads[0].second += c.running();
      threads[1].second += c.sleeping();
      threads[2].second += c.waiting_lock();
      threads[3].second += c.finished();
      threads[4].second += c.failed();
      threads[5].second += c.killed();
      threads[6].second += c.unkillable();
    }
  }
  for (const auto& [state, n] : threads)
    Sample(out, "fleetd_threads", absl::StrCat("state=\"", state, "\""), n);

  Family(out, "fleetd_anomalies_active", "gauge", "Anomalies raised and not yet cleared, by kind.");
  std::map<AnomalyKind, uint64_t> anomalies;
  if (view.health != nullptr) {
    for (const AnomalyEvent& a : view.health->ActiveAnomalies()) ++anomalies[a.kind];
  }
  for (AnomalyKind kind : kAnomalyKinds) {
    Sample(out, "fleetd_anomalies_active", absl::StrCat("kind=\"", AnomalyKindName(kind), "\""),
           anomalies[kind]);
  }

  Family(out, "fleetd_events_total", "counter", "Fleet events recorded since fleetd started, by severity.");
  std::map<fv1::Severity, uint64_t> events;
  if (view.counters != nullptr) events = view.counters->Events();
  for (auto [severity, name] :
       {std::pair{fv1::SEVERITY_INFO, "info"}, std::pair{fv1::SEVERITY_WARNING, "warning"},
        std::pair{fv1::SEVERITY_ERROR, "error"}}) {
    Sample(out, "fleetd_events_total", absl::StrCat("severity=\"", name, "\""), events[severity]);
  }

  Family(out, "fleetd_rpcs_total", "counter",
         "gRPC calls served since fleetd started, by method and status code.");
  if (view.counters != nullptr) {
    for (const auto& [key, n] : view.counters->Rpcs()) {
      Sample(out, "fleetd_rpcs_total",
             absl::StrCat("method=\"", EscapeLabel(key.first), "\",code=\"", EscapeLabel(key.second), "\""),
             n);
    }
  }

  Family(out, "fleetd_health_snapshots_total", "counter",
         "Health snapshots received from boards since start.");
  Sample(out, "fleetd_health_snapshots_total", "", view.health_snapshots_total);

  if (view.process.has_value()) {
    Family(out, "fleetd_process_cpu_seconds_total", "counter",
           "User and system CPU time fleetd used, in seconds.");
    absl::StrAppend(&out, "fleetd_process_cpu_seconds_total ",
                    absl::StrFormat("%.2f", view.process->cpu_seconds), "\n");
    Family(out, "fleetd_process_resident_memory_bytes", "gauge", "Resident memory of fleetd, in bytes.");
    Sample(out, "fleetd_process_resident_memory_bytes", "", view.process->resident_memory_bytes);
  }
  return out;
}

}  // namespace threadfleet::fleetd
