// fleetd's configuration file, fleetd.yaml: where the Fleet API and the HTTP
// endpoint listen, the TLS material for callers and boards, the lab file and
// the database. Parsing only: nothing here opens a socket or reads a
// certificate (fleetd_main does, and reports those failures on its own).
//
//   api:
//     listen: 127.0.0.1:7443   # port 0: pick a free one
//     cert: pki/fleetd-api.pem
//     key: pki/fleetd-api.key
//   http:                      # /healthz, /metrics and the dashboard
//     listen: 127.0.0.1:7480     # plain HTTP only on loopback unless allow_plaintext
//     tls_cert: pki/fleetd-http.pem   # optional, with tls_key: HTTPS only
//     tls_key: pki/fleetd-http.key
//     allow_plaintext: false     # optional: plain HTTP on a non-loopback listen
//     cors_origins: []           # optional: other origins whose pages may call fleetd
//     web_root: web-ui/dist      # optional: the built dashboard (at most 32 MiB)
//   boards:
//     ca: pki/ca.pem
//     cert: pki/fleetd.pem
//     key: pki/fleetd.key
//     lab: lab.yaml            # optional
//     health_period_ms: 500    # optional
//   database: fleetd.db
//   limits:                    # optional, and so is every key in it
//     request:                 # checked before any work (request_limits.h)
//       max_field_bytes: 1024      # any string/bytes field (names, paths, labels)
//       max_repeated: 4096         # entries of any list or map
//       max_push_bytes: 1048576    # a pushed file (PushFileRequest.content)
//       max_job_spec_bytes: 65536  # a job spec (ApplyJobRequest.spec_yaml)
//       max_job_file_bytes: 1048576   # a file uploaded with a job spec
//       max_job_files_bytes: 4194304  # all files of one job spec together
//     http:                    # the HTTP listener (http_server.h)
//       max_header_bytes: 8192     # request line + headers: 431 above
//       max_body_bytes: 2097152    # announced body: 413 above, never read (a 1 MiB push as JSON fits)
//       max_connections: 64        # at the cap the quietest one is closed
//       idle_timeout_ms: 2000      # keep-alive without a request
//       request_timeout_ms: 5000   # a request in, its response out (a stream is exempt)
//       max_stream_buffer_bytes: 1048576  # a streamed answer unsent: closed above
//       max_connect_streams: 32    # Connect streaming calls open at once: resource_exhausted above
//     api:                     # the Fleet API's gRPC server
//       max_streams_per_connection: 64  # calls open at once on one connection
//       max_metadata_bytes: 16384       # a call's headers (the bearer token among them)
//       max_memory_mb: 256              # buffers of every connection together
//       idle_timeout_ms: 300000         # a connection without calls is closed
//     boards:                  # calls to each board (board_link.h, fleet_service.h)
//       max_calls_in_flight: 8     # per board; more wait in the board's queue
//       max_queued_calls: 32       # per board; more are RESOURCE_EXHAUSTED
//       max_open_streams: 8        # per board: followed outputs at once
//       call_timeout_ms: 10000     # a call whose caller set no deadline
//       max_kill_grace_ms: 10000   # KillThread/KillProgram grace_ms above: INVALID_ARGUMENT
//     health_history:          # GetHealthHistory's samples, in memory (health_history.h)
//       window_s: 900              # how long samples are kept (900 to 86400)
//       max_bytes: 67108864        # all boards together; past it the largest board's oldest go
//     retention:               # pruned in the background (retention.h)
//       events_max_age_days: 30
//       events_max_rows: 1000000
//       audit_max_age_days: 365
//       audit_max_rows: 1000000
//   jobs:                      # optional, and so is every key in it (job_runner.h)
//     max_active_runs: 32          # runs queued or running at once; more: RESOURCE_EXHAUSTED
//     max_threads_per_run: 256     # boards one run works on at once, whatever its rollout
//     quarantine_after: 3          # ERROR results in a row that take a board out of service
//     runs_kept_per_job: 200       # older runs are pruned with their results
//     spec:                    # bounds on an applied spec (job_spec.h)
//       max_steps: 64
//       max_files: 32
//       max_regex_bytes: 1024
//       max_args: 32
//       max_timeout_s: 86400       # the run's and every step's timeout
//       max_retries: 5
//       max_notify_retries: 5
//
// A spec's size is bounded by limits.request.max_job_spec_bytes.
//
// gRPC's largest request message is derived from limits.request (the
// largest field, or a job spec with all its files, plus 64 KiB); a bigger one
// is refused RESOURCE_EXHAUSTED.
//
// Example:
//
//   absl::StatusOr<FleetdConfig> config = ReadFleetdConfig("/etc/fleetd/fleetd.yaml");
//   if (!config.ok()) {  // "/etc/fleetd/fleetd.yaml:3: api.listen: ..."
//     std::cerr << "fleetd: error: " << config.status().message() << "\n";
//     return 2;
//   }
//   SqliteStore::Open(config->database);  // an absolute path
//
// Every path in the result is absolute: a relative one in the file is taken
// relative to the directory of the file itself, so fleetd may be started from
// anywhere.

#ifndef THREADFLEET_SERVER_FLEETD_CONFIG_H_
#define THREADFLEET_SERVER_FLEETD_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/fleetd/auth/request_limits.h"
#include "server/fleetd/health/health_history.h"
#include "server/fleetd/http/http_server.h"
#include "server/fleetd/jobs/job_runner.h"
#include "server/fleetd/store/retention.h"

namespace threadfleet::fleetd {

// The health period used when the file does not set boards.health_period_ms.
inline constexpr absl::Duration kDefaultHealthPeriod = absl::Milliseconds(500);
// Bounds of boards.health_period_ms: faster floods the links, slower makes
// a board look offline (board_link.h: offline after 3 s without a snapshot).
inline constexpr int kMinHealthPeriodMs = 50;
inline constexpr int kMaxHealthPeriodMs = 2500;

// fleetd.yaml's limits.boards. An unset value keeps its component's default:
// LinkOptions (links/board_link.h) for the first four, BoardCallLimits
// (api/fleet_service.h) for max_kill_grace.
struct BoardLimitOptions {
  std::optional<int> max_calls_in_flight;
  std::optional<int> max_queued_calls;
  std::optional<int> max_open_streams;
  std::optional<absl::Duration> call_timeout;
  std::optional<absl::Duration> max_kill_grace;
};

// fleetd.yaml's limits.api: what the Fleet API's gRPC server lets one client
// hold. gRPC C++ has no cap on connections; its memory quota bounds them
// together instead (over it, new connections and calls are refused).
struct ApiLimits {
  int max_streams_per_connection = 64;
  size_t max_metadata_bytes = 16 << 10;
  size_t max_memory_bytes = size_t{256} << 20;
  absl::Duration idle_timeout = absl::Minutes(5);
};

struct FleetdConfig {
  // The Fleet API: gRPC over TLS with server authentication only.
  std::string api_listen;  // "host:port"; port 0 picks a free port
  std::string api_cert;    // PEM certificate chain presented to callers
  std::string api_key;     // its private key
  // The HTTP listener: /metrics, /healthz, the dashboard.
  std::string http_listen;  // "host:port"; port 0 picks a free port
  // PEM certificate chain and key; both set (or both empty: plain HTTP,
  // which the config allows on a non-loopback host only with
  // http_allow_plaintext).
  std::string http_tls_cert;
  std::string http_tls_key;
  bool http_allow_plaintext = false;
  // Origins (scheme://host[:port]) besides the listener's own that may call it.
  std::vector<std::string> http_cors_origins;
  // The built dashboard; empty: none (/ says how to build it).
  std::string http_web_root;
  // Mutual TLS to the boards.
  std::string boards_ca;    // the lab CA boards' certificates chain to
  std::string boards_cert;  // fleetd's client certificate
  std::string boards_key;   // its private key
  // The lab file (inventory.h); empty when the config names none.
  std::string lab_file;
  // The WatchHealth period asked of every board.
  absl::Duration health_period = kDefaultHealthPeriod;
  // The SQLite database, created if absent.
  std::string database;
  // fleetd.yaml's `limits:`; each part's defaults are in its own header.
  struct Limits {
    RequestLimitOptions request;
    HttpLimits http;
    RetentionOptions retention;
    BoardLimitOptions boards;
    ApiLimits api;
    HealthHistory::Options health_history;
  } limits;
  // fleetd.yaml's `jobs:`; defaults in job_runner.h and job_spec.h. Its
  // spec_limits.max_spec_bytes is limits.request.max_job_spec_bytes and
  // spec_limits.max_files_bytes limits.request.max_job_files_bytes (one key
  // per bound).
  jobs::JobRunnerOptions jobs;
};

// The largest limits.retention.*_max_age_days.
inline constexpr int64_t kMaxRetentionDays = 36500;

// OK if `address` is "host:port" a server can listen on: a host name, IPv4
// address or [IPv6] address, and a port 0-65535 (0: any free port).
// INVALID_ARGUMENT saying what is wrong otherwise.
[[nodiscard]] absl::Status ValidateListenAddress(absl::string_view address);

// Parses fleetd.yaml's text. `file_name` labels the messages; relative paths
// are resolved against `base_dir` (made absolute against the working
// directory if it is relative). INVALID_ARGUMENT, as
// "<file_name>:<line>: <key>: <what>" (key dotted, e.g. "api.listen"), for
// YAML syntax errors, a top level or section that is not a map, unknown keys,
// missing required keys (the line of the enclosing map), values that are not
// non-empty strings, bad listen addresses, a health_period_ms that is not
// an integer from kMinHealthPeriodMs to kMaxHealthPeriodMs, and a limits.*
// value that is not an integer in its range (the message gives the range).
[[nodiscard]] absl::StatusOr<FleetdConfig> ParseFleetdConfig(absl::string_view text,
                                                             absl::string_view file_name,
                                                             absl::string_view base_dir);

// Reads and parses the config file at `path` (its directory is the base of
// relative paths). Errors reading it as common::ReadTextFile (NOT_FOUND if it
// does not exist, PERMISSION_DENIED, FAILED_PRECONDITION for a directory,
// INTERNAL), then as ParseFleetdConfig.
[[nodiscard]] absl::StatusOr<FleetdConfig> ReadFleetdConfig(const std::string& path);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_CONFIG_H_
