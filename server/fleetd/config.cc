#include "server/fleetd/config.h"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "server/common/host_port.h"
#include "server/common/read_text_file.h"

namespace threadfleet::fleetd {
namespace {

// Line numbers of yaml-cpp marks are 0-based; people count from 1.
std::string Where(absl::string_view file_name, const YAML::Node& node) {
  if (node.Mark().is_null()) return std::string(file_name);
  return absl::StrCat(file_name, ":", node.Mark().line + 1);
}

absl::Status Invalid(absl::string_view file_name, const YAML::Node& node, absl::string_view key,
                     absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Where(file_name, node), ": ", key, ": ", what));
}

// One YAML map whose keys are checked against a fixed set: unknown and
// repeated keys are errors, and each value is looked up by key.
class Section {
 public:
  Section(absl::string_view file_name, const YAML::Node& node, std::string path)
      : file_name_(file_name), node_(node), path_(std::move(path)) {}

  // Checks that the node is a map whose keys are all in `allowed`.
  absl::Status Check(const std::vector<std::string>& allowed) {
    const std::string name = path_.empty() ? "top level" : path_;
    if (!node_.IsMap()) return Invalid(file_name_, node_, name, "must be a map of keys to values");
    for (const auto& entry : node_) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) return Invalid(file_name_, key, name, "keys must be plain names");
      const std::string& text = key.Scalar();
      if (std::find(allowed.begin(), allowed.end(), text) == allowed.end()) {
        return Invalid(file_name_, key, Key(text),
                       absl::StrCat("unknown key (expected one of: ", absl::StrJoin(allowed, ", "), ")"));
      }
      if (!seen_.insert(text).second) return Invalid(file_name_, key, Key(text), "defined twice");
      values_.emplace(text, std::pair<YAML::Node, YAML::Node>(key, entry.second));
    }
    return absl::OkStatus();
  }

  // The value of `key`, or a missing node.
  const YAML::Node* Find(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? nullptr : &it->second.second;
  }

  // The value of a required key.
  absl::StatusOr<YAML::Node> Required(const std::string& key) const {
    const YAML::Node* value = Find(key);
    if (value == nullptr) return Invalid(file_name_, node_, Key(key), "missing (required)");
    return *value;
  }

  // A required (or, with `optional`, possibly absent: then "") non-empty
  // string.
  absl::StatusOr<std::string> String(const std::string& key, bool optional = false) const {
    const YAML::Node* value = Find(key);
    if (value == nullptr) {
      if (optional) return std::string();
      return Invalid(file_name_, node_, Key(key), "missing (required)");
    }
    if (!value->IsScalar() || value->Scalar().empty()) {
      return Invalid(file_name_, KeyNode(key), Key(key), "must be a non-empty string");
    }
    return value->Scalar();
  }

  // The key node of a present key.
  const YAML::Node& KeyNode(const std::string& key) const { return values_.at(key).first; }

  std::string Key(absl::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

 private:
  absl::string_view file_name_;
  YAML::Node node_;
  std::string path_;
  std::set<std::string> seen_;
  // Key -> (key node, value node): messages about a value name the key's
  // line (an empty value has no line of its own).
  std::map<std::string, std::pair<YAML::Node, YAML::Node>> values_;
};

// `path` made absolute against `base` (itself absolute).
std::string Resolve(const std::filesystem::path& base, const std::string& path) {
  return (base / std::filesystem::path(path)).lexically_normal().string();
}

// An optional integer key of `section` within [min, max]: absent leaves
// `out` as it is.
absl::Status Integer(absl::string_view file_name, const Section& section, const std::string& key, int64_t min,
                     int64_t max, int64_t& out) {
  const YAML::Node* value = section.Find(key);
  if (value == nullptr) return absl::OkStatus();
  int64_t parsed = 0;
  if (!value->IsScalar() || !absl::SimpleAtoi(value->Scalar(), &parsed) || parsed < min || parsed > max) {
    return Invalid(file_name, section.KeyNode(key), section.Key(key),
                   absl::StrCat("must be an integer from ", min, " to ", max));
  }
  out = parsed;
  return absl::OkStatus();
}

// Sizes as size_t, durations as absl::Duration: Integer() on a copy.
absl::Status Size(absl::string_view file_name, const Section& section, const std::string& key, int64_t min,
                  int64_t max, size_t& out) {
  int64_t value = static_cast<int64_t>(out);
  if (absl::Status s = Integer(file_name, section, key, min, max, value); !s.ok()) return s;
  out = static_cast<size_t>(value);
  return absl::OkStatus();
}
absl::Status Millis(absl::string_view file_name, const Section& section, const std::string& key, int64_t min,
                    int64_t max, absl::Duration& out) {
  int64_t ms = absl::ToInt64Milliseconds(out);
  if (absl::Status s = Integer(file_name, section, key, min, max, ms); !s.ok()) return s;
  out = absl::Milliseconds(ms);
  return absl::OkStatus();
}
absl::Status Days(absl::string_view file_name, const Section& section, const std::string& key,
                  absl::Duration& out) {
  int64_t days = absl::ToInt64Hours(out) / 24;
  if (absl::Status s = Integer(file_name, section, key, 1, kMaxRetentionDays, days); !s.ok()) return s;
  out = absl::Hours(24 * days);
  return absl::OkStatus();
}

// The listen host is this machine only: 127.0.0.0/8, ::1 or localhost.
bool IsLoopbackHost(absl::string_view host) {
  if (absl::EqualsIgnoreCase(host, "localhost") || host == "::1") return true;
  in_addr v4{};
  return ::inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

// A CORS origin as browsers send it: scheme://host[:port], nothing after.
absl::Status ValidateOrigin(absl::string_view origin) {
  absl::string_view rest = origin;
  if (!absl::ConsumePrefix(&rest, "https://") && !absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, " is not an origin (scheme://host[:port], e.g. https://lab.example:8443)"));
  }
  if (rest.empty() || rest.find_first_of("/?#*@ ") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, " is not an origin (scheme://host[:port], no path or trailing '/')"));
  }
  return absl::OkStatus();
}

absl::Status ParseHttp(absl::string_view file_name, const YAML::Node& node, const std::filesystem::path& base,
                       FleetdConfig& config) {
  Section http(file_name, node, "http");
  if (absl::Status s =
          http.Check({"listen", "tls_cert", "tls_key", "allow_plaintext", "cors_origins", "web_root"});
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> listen = http.String("listen");
  if (!listen.ok()) return listen.status();
  absl::StatusOr<common::HostPort> address = common::ParseHostPort(*listen, common::PortRule::kListen);
  if (!address.ok())
    return Invalid(file_name, http.KeyNode("listen"), "http.listen", address.status().message());
  config.http_listen = *listen;

  absl::StatusOr<std::string> cert = http.String("tls_cert", /*optional=*/true);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = http.String("tls_key", /*optional=*/true);
  if (!key.ok()) return key.status();
  if (cert->empty() != key->empty()) {
    const std::string missing = cert->empty() ? "http.tls_cert" : "http.tls_key";
    return Invalid(file_name, http.KeyNode(cert->empty() ? "tls_key" : "tls_cert"), missing,
                   "missing: http.tls_cert and http.tls_key go together");
  }
  if (!cert->empty()) {
    config.http_tls_cert = Resolve(base, *cert);
    config.http_tls_key = Resolve(base, *key);
  }

  if (const YAML::Node* plaintext = http.Find("allow_plaintext"); plaintext != nullptr) {
    if (!plaintext->IsScalar() || (plaintext->Scalar() != "true" && plaintext->Scalar() != "false")) {
      return Invalid(file_name, http.KeyNode("allow_plaintext"), "http.allow_plaintext",
                     "must be true or false");
    }
    config.http_allow_plaintext = plaintext->Scalar() == "true";
  }
  // Bearer tokens cross this listener: in the clear only on this machine.
  if (cert->empty() && !config.http_allow_plaintext && !IsLoopbackHost(address->host)) {
    return Invalid(file_name, http.KeyNode("listen"), "http.listen",
                   absl::StrCat(*listen,
                                " is not loopback: set http.tls_cert and http.tls_key for HTTPS, or "
                                "http.allow_plaintext: true to serve plain HTTP there anyway"));
  }

  if (const YAML::Node* origins = http.Find("cors_origins"); origins != nullptr) {
    if (!origins->IsSequence()) {
      return Invalid(file_name, http.KeyNode("cors_origins"), "http.cors_origins",
                     "must be a list of origins (e.g. [\"https://lab.example:8443\"])");
    }
    for (const YAML::Node& origin : *origins) {
      if (!origin.IsScalar()) {
        return Invalid(file_name, origin, "http.cors_origins", "each entry must be an origin string");
      }
      if (absl::Status s = ValidateOrigin(origin.Scalar()); !s.ok()) {
        return Invalid(file_name, origin, "http.cors_origins", s.message());
      }
      config.http_cors_origins.push_back(origin.Scalar());
    }
  }

  absl::StatusOr<std::string> web_root = http.String("web_root", /*optional=*/true);
  if (!web_root.ok()) return web_root.status();
  if (!web_root->empty()) config.http_web_root = Resolve(base, *web_root);
  return absl::OkStatus();
}

absl::Status ParseLimits(absl::string_view file_name, const YAML::Node& node, FleetdConfig& config) {
  Section limits(file_name, node, "limits");
  if (absl::Status s = limits.Check({"request", "http", "api", "boards", "retention", "health_history"});
      !s.ok())
    return s;
  constexpr int64_t kMiB = int64_t{1} << 20;
  if (const YAML::Node* request_node = limits.Find("request"); request_node != nullptr) {
    Section request(file_name, *request_node, "limits.request");
    if (absl::Status s = request.Check({"max_field_bytes", "max_repeated", "max_push_bytes",
                                        "max_job_spec_bytes", "max_job_file_bytes", "max_job_files_bytes"});
        !s.ok()) {
      return s;
    }
    RequestLimitOptions& r = config.limits.request;
    for (absl::Status s :
         {Size(file_name, request, "max_field_bytes", 64, kMiB, r.max_field_bytes),
          Size(file_name, request, "max_repeated", 16, 1 << 20, r.max_repeated),
          Size(file_name, request, "max_push_bytes", 1024, 64 * kMiB, r.max_push_bytes),
          Size(file_name, request, "max_job_spec_bytes", 1024, 16 * kMiB, r.max_job_spec_bytes),
          Size(file_name, request, "max_job_file_bytes", 1024, 64 * kMiB, r.max_job_file_bytes),
          Size(file_name, request, "max_job_files_bytes", 1024, 256 * kMiB, r.max_job_files_bytes)}) {
      if (!s.ok()) return s;
    }
  }
  if (const YAML::Node* http_node = limits.Find("http"); http_node != nullptr) {
    Section http(file_name, *http_node, "limits.http");
    if (absl::Status s =
            http.Check({"max_header_bytes", "max_body_bytes", "max_connections", "idle_timeout_ms",
                        "request_timeout_ms", "max_stream_buffer_bytes", "max_connect_streams"});
        !s.ok()) {
      return s;
    }
    HttpLimits& h = config.limits.http;
    int64_t connections = h.max_connections;
    int64_t connect_streams = h.max_connect_streams;
    for (absl::Status s :
         {Size(file_name, http, "max_header_bytes", 1024, kMiB, h.max_header_bytes),
          Size(file_name, http, "max_body_bytes", 0, 64 * kMiB, h.max_body_bytes),
          Integer(file_name, http, "max_connections", 4, 65536, connections),
          Millis(file_name, http, "idle_timeout_ms", 100, 600000, h.idle_timeout),
          Millis(file_name, http, "request_timeout_ms", 100, 600000, h.request_timeout),
          Size(file_name, http, "max_stream_buffer_bytes", 64 << 10, 256 * kMiB, h.max_stream_buffer_bytes),
          Integer(file_name, http, "max_connect_streams", 1, 4096, connect_streams)}) {
      if (!s.ok()) return s;
    }
    h.max_connections = static_cast<int>(connections);
    h.max_connect_streams = static_cast<int>(connect_streams);
  }
  if (const YAML::Node* api_node = limits.Find("api"); api_node != nullptr) {
    Section api(file_name, *api_node, "limits.api");
    if (absl::Status s = api.Check(
            {"max_streams_per_connection", "max_metadata_bytes", "max_memory_mb", "idle_timeout_ms"});
        !s.ok()) {
      return s;
    }
    ApiLimits& a = config.limits.api;
    int64_t streams = a.max_streams_per_connection;
    int64_t memory_mb = static_cast<int64_t>(a.max_memory_bytes >> 20);
    for (absl::Status s : {Integer(file_name, api, "max_streams_per_connection", 1, 1024, streams),
                           Size(file_name, api, "max_metadata_bytes", 1024, kMiB, a.max_metadata_bytes),
                           Integer(file_name, api, "max_memory_mb", 16, 65536, memory_mb),
                           Millis(file_name, api, "idle_timeout_ms", 1000, 86400000, a.idle_timeout)}) {
      if (!s.ok()) return s;
    }
    a.max_streams_per_connection = static_cast<int>(streams);
    a.max_memory_bytes = static_cast<size_t>(memory_mb) << 20;
  }
  if (const YAML::Node* boards_node = limits.Find("boards"); boards_node != nullptr) {
    Section boards(file_name, *boards_node, "limits.boards");
    if (absl::Status s = boards.Check({"max_calls_in_flight", "max_queued_calls", "max_open_streams",
                                       "call_timeout_ms", "max_kill_grace_ms"});
        !s.ok()) {
      return s;
    }
    BoardLimitOptions& b = config.limits.boards;
    // The board serves 32 streams a connection: calls, queue and follows stay
    // well below it (board_link.h).
    for (auto [key, max, out] : {std::tuple{"max_calls_in_flight", 16, &b.max_calls_in_flight},
                                 std::tuple{"max_queued_calls", 1024, &b.max_queued_calls},
                                 std::tuple{"max_open_streams", 16, &b.max_open_streams}}) {
      if (boards.Find(key) == nullptr) continue;
      int64_t value = 0;
      if (absl::Status s = Integer(file_name, boards, key, 1, max, value); !s.ok()) return s;
      *out = static_cast<int>(value);
    }
    for (auto [key, min_ms, max_ms, out] : {std::tuple{"call_timeout_ms", 100, 600000, &b.call_timeout},
                                            std::tuple{"max_kill_grace_ms", 10, 60000, &b.max_kill_grace}}) {
      if (boards.Find(key) == nullptr) continue;
      absl::Duration value;
      if (absl::Status s = Millis(file_name, boards, key, min_ms, max_ms, value); !s.ok()) return s;
      *out = value;
    }
  }
  if (const YAML::Node* retention_node = limits.Find("retention"); retention_node != nullptr) {
    Section retention(file_name, *retention_node, "limits.retention");
    if (absl::Status s = retention.Check(
            {"events_max_age_days", "events_max_rows", "audit_max_age_days", "audit_max_rows"});
        !s.ok()) {
      return s;
    }
    RetentionOptions& r = config.limits.retention;
    for (absl::Status s :
         {Days(file_name, retention, "events_max_age_days", r.events.max_age),
          Integer(file_name, retention, "events_max_rows", 1000, int64_t{1} << 40, r.events.max_rows),
          Days(file_name, retention, "audit_max_age_days", r.audit.max_age),
          Integer(file_name, retention, "audit_max_rows", 1000, int64_t{1} << 40, r.audit.max_rows)}) {
      if (!s.ok()) return s;
    }
  }
  if (const YAML::Node* history_node = limits.Find("health_history"); history_node != nullptr) {
    Section history(file_name, *history_node, "limits.health_history");
    if (absl::Status s = history.Check({"window_s", "max_bytes"}); !s.ok()) return s;
    HealthHistory::Options& h = config.limits.health_history;
    int64_t window_s = absl::ToInt64Seconds(h.window);
    // At least the 15 minutes the dashboard's charts promise; at most a day.
    for (absl::Status s : {Integer(file_name, history, "window_s", 900, 86400, window_s),
                           Size(file_name, history, "max_bytes", kMiB, int64_t{1} << 40, h.max_bytes)}) {
      if (!s.ok()) return s;
    }
    h.window = absl::Seconds(window_s);
  }
  return absl::OkStatus();
}

absl::Status ParseJobs(absl::string_view file_name, const YAML::Node& node, FleetdConfig& config) {
  Section jobs(file_name, node, "jobs");
  if (absl::Status s = jobs.Check(
          {"max_active_runs", "max_threads_per_run", "quarantine_after", "runs_kept_per_job", "spec"});
      !s.ok()) {
    return s;
  }
  jobs::JobRunnerOptions& o = config.jobs;
  int64_t active = o.max_active_runs;
  int64_t threads = o.max_threads_per_run;
  int64_t quarantine = o.quarantine_after;
  int64_t kept = o.runs_kept_per_job;
  for (absl::Status s : {Integer(file_name, jobs, "max_active_runs", 1, 1024, active),
                         Integer(file_name, jobs, "max_threads_per_run", 1, 1024, threads),
                         Integer(file_name, jobs, "quarantine_after", 1, 100, quarantine),
                         Integer(file_name, jobs, "runs_kept_per_job", 1, 1'000'000, kept)}) {
    if (!s.ok()) return s;
  }
  o.max_active_runs = static_cast<int>(active);
  o.max_threads_per_run = static_cast<int>(threads);
  o.quarantine_after = static_cast<int>(quarantine);
  o.runs_kept_per_job = static_cast<int>(kept);
  const YAML::Node* spec_node = jobs.Find("spec");
  if (spec_node == nullptr) return absl::OkStatus();
  Section spec(file_name, *spec_node, "jobs.spec");
  if (absl::Status s = spec.Check({"max_steps", "max_files", "max_regex_bytes", "max_args", "max_timeout_s",
                                   "max_retries", "max_notify_retries"});
      !s.ok()) {
    return s;
  }
  jobs::JobSpecLimits& l = o.spec_limits;
  int64_t timeout_s = absl::ToInt64Seconds(l.max_timeout);
  int64_t retries = l.max_retries;
  int64_t notify_retries = l.max_notify_retries;
  for (absl::Status s : {Size(file_name, spec, "max_steps", 1, 1000, l.max_steps),
                         Size(file_name, spec, "max_files", 1, 1000, l.max_files),
                         Size(file_name, spec, "max_regex_bytes", 16, 65536, l.max_regex_bytes),
                         Size(file_name, spec, "max_args", 0, 1024, l.max_args),
                         Integer(file_name, spec, "max_timeout_s", 1, 7 * 86400, timeout_s),
                         Integer(file_name, spec, "max_retries", 0, 100, retries),
                         Integer(file_name, spec, "max_notify_retries", 0, 100, notify_retries)}) {
    if (!s.ok()) return s;
  }
  l.max_timeout = absl::Seconds(timeout_s);
  l.max_retries = static_cast<int>(retries);
  l.max_notify_retries = static_cast<int>(notify_retries);
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateListenAddress(absl::string_view address) {
  return common::ParseHostPort(address, common::PortRule::kListen).status();
}

absl::StatusOr<FleetdConfig> ParseFleetdConfig(absl::string_view text, absl::string_view file_name,
                                               absl::string_view base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  std::error_code error;
  std::filesystem::path base = std::filesystem::absolute(std::filesystem::path(std::string(base_dir)), error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ": cannot resolve directory ", base_dir, ": ", error.message()));
  }

  FleetdConfig config;
  Section top(file_name, root, "");
  if (root.IsNull()) return absl::InvalidArgumentError(absl::StrCat(file_name, ": the file is empty"));
  if (absl::Status s = top.Check({"api", "http", "boards", "limits", "database", "jobs"}); !s.ok()) return s;

  // api
  absl::StatusOr<YAML::Node> api_node = top.Required("api");
  if (!api_node.ok()) return api_node.status();
  Section api(file_name, *api_node, "api");
  if (absl::Status s = api.Check({"listen", "cert", "key"}); !s.ok()) return s;
  absl::StatusOr<std::string> api_listen = api.String("listen");
  if (!api_listen.ok()) return api_listen.status();
  if (absl::Status s = ValidateListenAddress(*api_listen); !s.ok()) {
    return Invalid(file_name, api.KeyNode("listen"), "api.listen", s.message());
  }
  absl::StatusOr<std::string> api_cert = api.String("cert");
  if (!api_cert.ok()) return api_cert.status();
  absl::StatusOr<std::string> api_key = api.String("key");
  if (!api_key.ok()) return api_key.status();
  config.api_listen = *api_listen;
  config.api_cert = Resolve(base, *api_cert);
  config.api_key = Resolve(base, *api_key);

  // http
  absl::StatusOr<YAML::Node> http_node = top.Required("http");
  if (!http_node.ok()) return http_node.status();
  if (absl::Status s = ParseHttp(file_name, *http_node, base, config); !s.ok()) return s;

  // boards
  absl::StatusOr<YAML::Node> boards_node = top.Required("boards");
  if (!boards_node.ok()) return boards_node.status();
  Section boards(file_name, *boards_node, "boards");
  if (absl::Status s = boards.Check({"ca", "cert", "key", "lab", "health_period_ms"}); !s.ok()) return s;
  absl::StatusOr<std::string> ca = boards.String("ca");
  if (!ca.ok()) return ca.status();
  absl::StatusOr<std::string> cert = boards.String("cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = boards.String("key");
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> lab = boards.String("lab", /*optional=*/true);
  if (!lab.ok()) return lab.status();
  config.boards_ca = Resolve(base, *ca);
  config.boards_cert = Resolve(base, *cert);
  config.boards_key = Resolve(base, *key);
  if (!lab->empty()) config.lab_file = Resolve(base, *lab);
  if (const YAML::Node* period = boards.Find("health_period_ms"); period != nullptr) {
    int ms = 0;
    if (!period->IsScalar() || !absl::SimpleAtoi(period->Scalar(), &ms) || ms < kMinHealthPeriodMs ||
        ms > kMaxHealthPeriodMs) {
      return Invalid(
          file_name, *period, "boards.health_period_ms",
          absl::StrCat("must be an integer from ", kMinHealthPeriodMs, " to ", kMaxHealthPeriodMs));
    }
    config.health_period = absl::Milliseconds(ms);
  }

  // limits (optional, each key too)
  if (const YAML::Node* limits_node = top.Find("limits"); limits_node != nullptr) {
    if (absl::Status s = ParseLimits(file_name, *limits_node, config); !s.ok()) return s;
  }
  // jobs (optional, each key too); a spec is bounded like any request.
  config.jobs.spec_limits.max_spec_bytes = config.limits.request.max_job_spec_bytes;
  config.jobs.spec_limits.max_files_bytes = config.limits.request.max_job_files_bytes;
  if (const YAML::Node* jobs_node = top.Find("jobs"); jobs_node != nullptr) {
    if (absl::Status s = ParseJobs(file_name, *jobs_node, config); !s.ok()) return s;
  }

  // database
  absl::StatusOr<std::string> database = top.String("database");
  if (!database.ok()) return database.status();
  config.database = Resolve(base, *database);
  return config;
}

absl::StatusOr<FleetdConfig> ReadFleetdConfig(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadTextFile(path, "config file");
  if (!text.ok()) return text.status();
  // Built in one expression: GCC 12 at -O3 warns (-Wrestrict, a false
  // positive, GCC bug 105651) on assigning "." to the empty string.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return ParseFleetdConfig(*text, path, parent.empty() ? std::string(".") : parent.string());
}

}  // namespace threadfleet::fleetd
