// fleetd: the fleet server. Wires the store, inventory, board links, health,
// events, fleet test jobs, the Fleet API (gRPC over TLS) and the HTTP
// endpoint together, then waits for SIGTERM/SIGINT.
//
//   fleetd --config fleetd.yaml
//       runs in the foreground; once serving, prints one line on stderr:
//       fleetd: ready grpc=127.0.0.1:PORT http=127.0.0.1:PORT boards=N
//       fleetd: dashboard: http://127.0.0.1:PORT/   (https:// with http.tls_cert)
//   fleetd token create --config fleetd.yaml --name ci --role operator
//       creates a bearer token in the store (fleetd may be running) and
//       prints only its secret on stdout.
//
// Exit codes: 0 after a clean stop; 1 when something fails at start (store,
// TLS material, a port); 2 for bad flags or a bad config (`fleetd: error: ...`).
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/host_port.h"
#include "server/common/read_text_file.h"
#include "server/fleetd/api/fleet_service.h"
#include "server/fleetd/auth/reflection_gate.h"
#include "server/fleetd/auth/token.h"
#include "server/fleetd/config.h"
#include "server/fleetd/connect/connect_gateway.h"
#include "server/fleetd/health/event_hub.h"
#include "server/fleetd/health/health.h"
#include "server/fleetd/health/lab_monitor.h"
#include "server/fleetd/http/dashboard_route.h"
#include "server/fleetd/http/http_server.h"
#include "server/fleetd/http/metrics.h"
#include "server/fleetd/http/static_site.h"
#include "server/fleetd/inventory/inventory.h"
#include "server/fleetd/jobs/clock.h"
#include "server/fleetd/jobs/job_runner.h"
#include "server/fleetd/jobs/linked_job_boards.h"
#include "server/fleetd/jobs/run_notifier.h"
#include "server/fleetd/links/board_link.h"
#include "server/fleetd/store/retention.h"
#include "server/fleetd/store/sqlite_store.h"

namespace threadfleet::fleetd {
namespace {

constexpr int kExitStartFailure = 1;
constexpr int kExitUsage = 2;
// How long open calls get to finish once a stop is asked for.
constexpr auto kShutdownGrace = std::chrono::seconds(5);
// How long the lab monitor gets to store what it has queued.
constexpr absl::Duration kMonitorDrain = absl::Seconds(3);

int Fail(int code, absl::string_view message) {
  std::cerr << "fleetd: error: " << message << "\n";
  return code;
}

// "host:port" with the port replaced by `port` (the one a listener bound
// when asked for port 0). REQUIRES: `listen` passed config validation.
std::string WithPort(const std::string& listen, int port) {
  absl::StatusOr<common::HostPort> address = common::ParseHostPort(listen, common::PortRule::kListen);
  if (!address.ok()) return listen;
  address->port = port;
  return address->ToString();
}

int CreateToken(const FleetdConfig& config, const std::string& name, const std::string& role_name) {
  absl::StatusOr<threadfleet::fleet::v1::Role> role = ParseRole(role_name);
  if (!role.ok()) return Fail(kExitUsage, role.status().message());
  // Checked before the store is touched: a bad name is a usage error, not an
  // audit entry.
  if (absl::Status valid = CheckTokenName(name); !valid.ok()) return Fail(kExitUsage, valid.message());
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(config.database);
  if (!store.ok()) return Fail(kExitStartFailure, store.status().ToString());
  TokenAuthority tokens(**store);
  const absl::Time now = absl::Now();
  absl::StatusOr<IssuedToken> issued = tokens.Create(name, *role, "local", now);
  AuditRecord audit{.time = now,
                    .actor = "local",
                    .action = "Fleet.CreateToken",
                    .target = absl::StrCat("token ", name),
                    .result_code = issued.status().code(),
                    .result_message = std::string(issued.status().message())};
  absl::StatusOr<int64_t> audited = (*store)->AppendAudit(audit);
  if (!issued.ok()) {
    return Fail(issued.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitStartFailure,
                issued.status().ToString());
  }
  if (!audited.ok()) {
    // The token exists; say so rather than hide the secret.
    std::cerr << "fleetd: warning: token created but not audited: " << audited.status() << "\n";
  }
  std::cout << issued->secret << "\n" << std::flush;
  return 0;
}

// Blocks SIGTERM and SIGINT in this thread and every thread started after,
// so that only Serve's sigwait sees them.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int Serve(const FleetdConfig& config) {
  const sigset_t stop_signals = BlockStopSignals();

  // The dashboard's files, read whole now: a bad web root stops fleetd
  // before anything starts.
  absl::StatusOr<std::shared_ptr<const StaticSite>> site = StaticSite::Load(config.http_web_root);
  if (!site.ok()) return Fail(kExitUsage, site.status().message());

  // What fleetd knows.
  std::vector<BoardRecord> lab_boards;
  if (!config.lab_file.empty()) {
    absl::StatusOr<std::vector<BoardRecord>> lab = ReadLabFile(config.lab_file);
    if (!lab.ok()) return Fail(kExitUsage, lab.status().message());
    lab_boards = *std::move(lab);
  }
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(config.database);
  if (!store.ok()) return Fail(kExitStartFailure, store.status().ToString());
  // No call of an earlier fleetd runs any more: what it left STARTED may or
  // may not have happened.
  absl::StatusOr<int64_t> abandoned = (*store)->AbandonStartedAudits(
      "fleetd stopped before this call ended (crash, kill or power loss): it may have taken effect on some, "
      "all or none of its boards; check them");
  if (!abandoned.ok()) return Fail(kExitStartFailure, abandoned.status().ToString());
  if (*abandoned > 0)
    std::cerr << "fleetd: audit entries left unfinished by the last run=" << *abandoned << "\n";
  Retention retention(**store, config.limits.retention);
  retention.Start();
  absl::StatusOr<std::unique_ptr<Inventory>> inventory = Inventory::Open(**store, lab_boards, absl::Now());
  if (!inventory.ok()) return Fail(kExitStartFailure, inventory.status().ToString());
  TokenAuthority tokens(**store);
  EventHub hub(**store);
  HealthAggregator health;
  MetricCounters counters;
  const uint64_t event_counter = hub.SubscribeEvents(
      [&counters](const threadfleet::fleet::v1::Event& event) { counters.CountEvent(event.severity()); });
  HealthHistory history(config.limits.health_history);
  LabMonitor monitor(**store, health, hub, LabMonitor::Options{.history = &history});

  // TLS material, before anything connects or listens.
  absl::StatusOr<LinkCredentials> link_credentials =
      LinkCredentials::FromFiles(config.boards_ca, config.boards_cert, config.boards_key);
  if (!link_credentials.ok()) return Fail(kExitStartFailure, link_credentials.status().ToString());
  absl::StatusOr<std::string> api_cert = common::ReadPemFile(config.api_cert, "API certificate");
  if (!api_cert.ok()) return Fail(kExitStartFailure, api_cert.status().message());
  absl::StatusOr<std::string> api_key = common::ReadPemFile(config.api_key, "API private key");
  if (!api_key.ok()) return Fail(kExitStartFailure, api_key.status().message());

  // The boards. Add() only records each one: the manager's timer thread
  // connects them in the background, at most LinkOptions::max_connecting
  // handshakes at a time, so the ready line does not wait for any board.
  LinkOptions link_options;
  link_options.snapshot_period = config.health_period;
  const BoardLimitOptions& board_limits = config.limits.boards;
  link_options.max_calls_in_flight =
      board_limits.max_calls_in_flight.value_or(link_options.max_calls_in_flight);
  link_options.max_queued_calls = board_limits.max_queued_calls.value_or(link_options.max_queued_calls);
  link_options.max_open_streams = board_limits.max_open_streams.value_or(link_options.max_open_streams);
  link_options.rpc_timeout = board_limits.call_timeout.value_or(link_options.rpc_timeout);
  BoardCallLimits board_calls;
  board_calls.max_kill_grace = board_limits.max_kill_grace.value_or(board_calls.max_kill_grace);
  auto links = std::make_unique<LinkManager>(*std::move(link_credentials), link_options, &monitor);
  absl::StatusOr<std::vector<BoardRecord>> boards = (*inventory)->Select({});
  if (!boards.ok()) return Fail(kExitStartFailure, boards.status().ToString());
  for (const BoardRecord& board : *boards) {
    if (absl::Status s = links->Add(board.name, board.address); !s.ok()) {
      return Fail(kExitStartFailure, s.ToString());
    }
  }

  // Fleet test jobs: runs reach the boards only through the links
  // (LinkedJobBoards). Start() ends the runs a dead fleetd left as ERROR
  // "interrupted" and fires the schedules it missed.
  auto job_boards = std::make_unique<jobs::LinkedJobBoards>(*links, health, hub);
  jobs::RunNotifier notifier({});
  const jobs::RealClock clock;
  auto runner = std::make_unique<jobs::JobRunner>(
      jobs::JobRunnerDeps{
          .store = store->get(),
          .inventory = inventory->get(),
          .boards = job_boards.get(),
          .hub = &hub,
          .clock = &clock,
          .notify = [&notifier](const jobs::NotifySpec& spec,
                                const threadfleet::fleet::v1::Run& run) { notifier.Notify(spec, run); }},
      config.jobs);
  if (absl::Status started = runner->Start(); !started.ok()) {
    return Fail(kExitStartFailure, started.ToString());
  }

  // The Fleet API.
  auto service = std::make_unique<FleetService>(FleetServiceDeps{.store = store->get(),
                                                                 .inventory = inventory->get(),
                                                                 .links = links.get(),
                                                                 .health = &health,
                                                                 .history = &history,
                                                                 .tokens = &tokens,
                                                                 .hub = &hub,
                                                                 .jobs = runner.get(),
                                                                 .request_limits = config.limits.request,
                                                                 .board_calls = board_calls});
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  tls.pem_key_cert_pairs.push_back({*api_key, *api_cert});
  std::shared_ptr<grpc::ServerCredentials> api_credentials = grpc::SslServerCredentials(tls);
  api_credentials->SetAuthMetadataProcessor(std::make_shared<ReflectionGate>(tokens));
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(config.api_listen, api_credentials, &grpc_port);
  // Bigger requests are refused by gRPC before they are parsed; the fields
  // of the rest are checked by the service's gate.
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.limits.request.MaxMessageBytes()));
  // What one client can hold (limits.api): gRPC C++ has no connection cap, so
  // its memory quota bounds every connection's buffers together.
  const ApiLimits& api_limits = config.limits.api;
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, api_limits.max_streams_per_connection);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, static_cast<int>(api_limits.max_metadata_bytes));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(api_limits.idle_timeout)));
  grpc::ResourceQuota api_memory("fleetd-api");
  api_memory.Resize(api_limits.max_memory_bytes);
  builder.SetResourceQuota(api_memory);
  builder.RegisterService(service.get());
  builder.experimental().SetInterceptorCreators(RpcCountingInterceptors(counters));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    return Fail(kExitStartFailure,
                absl::StrCat("cannot serve the Fleet API on ", config.api_listen,
                             " (port in use, address not local, or bad certificate/key in ", config.api_cert,
                             " / ", config.api_key, ")"));
  }

  // /healthz, /metrics and the dashboard.
  SqliteStore* const sqlite = store->get();
  // The Fleet API in the Connect protocol, for the dashboard: the same
  // service over its in-process channel, so tokens, roles and the audit log
  // apply as they do for gRPC clients. The channel takes answers up to the
  // gateway's own limit (gRPC's default would stop at 4 MiB).
  const ConnectGatewayLimits connect_limits{.max_open_streams = config.limits.http.max_connect_streams};
  grpc::ChannelArguments in_process_args;
  in_process_args.SetMaxReceiveMessageSize(static_cast<int>(connect_limits.max_response_message_bytes));
  ConnectGateway gateway(server->InProcessChannel(in_process_args), connect_limits);
  HttpRoute connect_gateway = [&gateway](HttpRequest request, std::shared_ptr<HttpResponder> responder) {
    gateway.Serve(std::move(request), std::move(responder));
  };
  HttpServer::Handlers handlers{
      .health = [sqlite]() { return sqlite->CheckHealth(); },
      .metrics =
          [&]() {
            MetricsView view{.boards = links->Statuses(),
                             .health = &health,
                             .health_snapshots_total = monitor.snapshots_total(),
                             .counters = &counters,
                             .process = std::nullopt};
            if (absl::StatusOr<ProcessStats> process = ReadProcessStats(); process.ok())
              view.process = *process;
            return RenderMetrics(view);
          },
      .route = DashboardRoute(*site, std::move(connect_gateway)),
  };
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start(config.http_listen, handlers, config.limits.http,
                        HttpServerOptions{.tls_cert_file = config.http_tls_cert,
                                          .tls_key_file = config.http_tls_key,
                                          .cors_origins = config.http_cors_origins});
  if (!http.ok()) {
    runner->Shutdown();
    service->Shutdown();
    server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
    return Fail(kExitStartFailure, http.status().ToString());
  }

  std::cerr << "fleetd: ready grpc=" << WithPort(config.api_listen, grpc_port)
            << " http=" << WithPort(config.http_listen, (*http)->port()) << " boards=" << boards->size()
            << std::endl;
  std::cerr << "fleetd: dashboard: " << ((*http)->tls() ? "https" : "http") << "://"
            << WithPort(config.http_listen, (*http)->port()) << "/" << std::endl;

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::cerr << "fleetd: stopping signal=" << (signal_number == SIGTERM ? "SIGTERM" : "SIGINT") << std::endl;

  // Runs first (their programs killed, each ends ERROR "interrupted"; calls
  // waiting for a run answer), then streams (they would hold Shutdown up),
  // then the server with a deadline for unary calls, then what the service
  // used.
  runner->Shutdown();
  service->Shutdown();
  if (grpc::HealthCheckServiceInterface* health_check = server->GetHealthCheckService()) {
    health_check->SetServingStatus(false);
  }
  server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  server->Wait();
  (*http)->Stop();
  service.reset();
  runner.reset();
  notifier.Shutdown();
  job_boards.reset();
  links.reset();  // no listener call after this
  if (!monitor.Flush(kMonitorDrain)) std::cerr << "fleetd: warning: lab monitor did not drain in time\n";
  hub.Unsubscribe(event_counter);
  std::cerr << "fleetd: stopped" << std::endl;
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app("fleetd: the threadfleet server", "fleetd");
  std::string config_path;
  app.add_option("--config", config_path, "fleetd.yaml");
  app.require_subcommand(0, 1);
  CLI::App* token = app.add_subcommand("token", "Manage bearer tokens in the store");
  token->require_subcommand(1);
  CLI::App* create = token->add_subcommand("create", "Create a token and print its secret");
  std::string token_config;
  std::string token_name;
  std::string token_role;
  create->add_option("--config", token_config, "fleetd.yaml")->required();
  create->add_option("--name", token_name, "who the token is for")->required();
  create->add_option("--role", token_role, "viewer, operator or admin")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    return Fail(kExitUsage, e.what());
  }

  if (create->parsed()) {
    absl::StatusOr<FleetdConfig> config = ReadFleetdConfig(token_config);
    if (!config.ok()) return Fail(kExitUsage, config.status().message());
    return CreateToken(*config, token_name, token_role);
  }
  if (config_path.empty()) return Fail(kExitUsage, "--config FILE is required (see --help)");
  absl::StatusOr<FleetdConfig> config = ReadFleetdConfig(config_path);
  if (!config.ok()) return Fail(kExitUsage, config.status().message());
  return Serve(*config);
}

}  // namespace
}  // namespace threadfleet::fleetd

int main(int argc, char** argv) {
  // Debian's Abseil checks every mutex acquisition for lock-order cycles;
  // that was fleetd's top symbol with hundreds of boards. fleetd skips it; the
  // unit tests of every component keep the check on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return threadfleet::fleetd::Main(argc, argv);
}
