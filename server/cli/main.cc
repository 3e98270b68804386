// fleetctl: the command line of fleetd (see contracts: fleetctl). This file
// only wires the global flags, the command groups (commands.h), the
// configuration (cli_config.h) and the connection (fleet_client.h).

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/cli/cli_config.h"
#include "server/cli/commands.h"
#include "server/cli/fleet_client.h"
#include "server/cli/interrupt.h"

int main(int argc, char** argv) {
  using namespace threadfleet::cli;
  ExitQuietlyOnInterrupt();

  CLI::App app{"fleetctl: run, watch and steer MicroPython threads on a lab of boards through fleetd"};
  app.name("fleetctl");
  app.fallthrough();  // global flags work after a subcommand: `fleetctl board ls -o json`
  app.require_subcommand(0, 1);
  ConfigFlags flags;
  std::string output = "table";
  double timeout_seconds = 30;
  app.add_option("--config", flags.config_path,
                 "Config file (default: $FLEETCTL_CONFIG, else ~/.config/threadfleet/fleetctl.yaml)");
  app.add_option("--server", flags.server, "fleetd's API address, HOST:PORT");
  app.add_option("--ca", flags.ca, "CA certificate (PEM) fleetd's API certificate chains to");
  app.add_option("--token", flags.token, "Bearer token (default: $FLEETCTL_TOKEN, else the config file's)");
  app.add_option("-o,--output", output, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}));
  app.add_option("--timeout", timeout_seconds, "Seconds each call may take (default 30)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            try {
              if (std::stod(text) > 0) return "";
            } catch (const std::exception&) {
            }
            return "must be a positive number of seconds, got " + text;
          },
          "SECONDS"));

  // Everything after the first "--" is the program's arguments of `run`
  // (CLI11 would not add them to a positional list that already has values).
  std::vector<std::string> words(argv + 1, argv + argc);
  std::vector<std::string> program_args;
  const auto dashes = std::find(words.begin(), words.end(), "--");
  const bool has_dashes = dashes != words.end();
  if (has_dashes) {
    program_args.assign(dashes + 1, words.end());
    words.erase(dashes, words.end());
  }
  std::reverse(words.begin(), words.end());  // CLI11 takes its arguments last first

  Action action;
  LocalAction local_action;
  AddBoardCommands(app, action);
  AddProgramCommands(app, action, program_args);
  AddFileCommands(app, action);
  AddThreadCommands(app, action);
  AddMachineCommands(app, action);
  AddMonitorCommands(app, action);
  AddAdminCommands(app, action);
  AddJobCommands(app, action, local_action);

  try {
    app.parse(words);
    // Checked here rather than by require_subcommand(1) so that an unknown
    // word is reported as such, not as a missing subcommand.
    if (!action && !local_action) throw CLI::RequiredError("A subcommand");
    if (has_dashes && !app.got_subcommand("run")) {
      throw CLI::ValidationError("'--' is only for the program arguments of fleetctl run");
    }
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? kExitOk : kExitUsage;
  }

  if (local_action) {
    const int code = local_action(std::cout, std::cerr);
    std::cout.flush();
    std::cerr.flush();
    return code;
  }

  absl::StatusOr<ClientConfig> config = ResolveClientConfig(flags, ProcessEnvironment);
  if (!config.ok()) {
    std::cerr << "fleetctl: error: " << config.status().message() << std::endl;
    return kExitUsage;
  }
  absl::StatusOr<std::unique_ptr<FleetClient>> client =
      FleetClient::Connect(*config, absl::Seconds(timeout_seconds));
  if (!client.ok()) {
    std::cerr << "fleetctl: error: " << client.status().message() << std::endl;
    return kExitUsage;
  }
  Session session(**client, output == "json" ? OutputFormat::kJson : OutputFormat::kTable, std::cout,
                  std::cerr);
  int code;
  try {
    code = action(session);
  } catch (const std::exception& error) {
    code = session.Fail(error.what());
  }
  // Exits without tearing gRPC down (joining its threads, closing its
  // channel): once the output is out nothing is left to do, and the teardown
  // took ~2.5 ms of a ~25 ms command.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}
