// fleetctl's commands, one file per group, and what they share.
//
// Each Add*Commands registers a group's CLI11 subcommands on the top-level
// app. A subcommand's parse callback checks its words (throwing
// CLI::ValidationError, which main reports as a usage error, exit 2) and
// stores in `action` what to do once the connection exists; main then runs
// that action with a Session and exits with what it returns.
//
//   board_commands.cc    board ls|get|add|rm|label
//   program_commands.cc  push, run
//   file_commands.cc     ls, rm
//   thread_commands.cc   threads, kill, start
//   machine_commands.cc  machine, pin, adc, reset
//   monitor_commands.cc  logs, health, events
//   admin_commands.cc    token create|ls|revoke, audit, whoami
//   job_commands.cc      job apply|ls|run|runs|show|logs|cancel|rm|junit|report
//
// A command that needs no fleetd (a job spec refused locally, a report from
// a file) stores a LocalAction instead; main runs it without reading the
// connection settings.
//
// Example (main.cc):
//
//   CLI::App app{"fleetctl"};
//   Action action;
//   AddBoardCommands(app, action);
//   app.parse(argc, argv);
//   Session session(client, OutputFormat::kTable, std::cout, std::cerr);
//   return action(session);

#ifndef THREADFLEET_SERVER_CLI_COMMANDS_H_
#define THREADFLEET_SERVER_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "server/cli/fleet_client.h"
#include "server/cli/json_output.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::cli {

// Exit codes of fleetctl (see contracts: fleetctl).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;         // an RPC failed, or a board in a fan-out
inline constexpr int kExitUsage = 2;          // bad words or configuration
inline constexpr int kExitInterrupted = 130;  // Ctrl-C on a following command

enum class OutputFormat { kTable, kJson };

// What a command runs with: the connection, the output format and where to
// write (stdout for results, stderr for errors and progress).
class Session {
 public:
  Session(FleetClient& client, OutputFormat format, std::ostream& out, std::ostream& err)
      : client_(client), format_(format), out_(out), err_(err) {}

  FleetClient& client() { return client_; }
  bool json() const { return format_ == OutputFormat::kJson; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // Writes `message` as JSON to out() and flushes.
  void PrintJson(const google::protobuf::Message& message, JsonLayout layout);

  // Writes "fleetctl: error: CODE: message" to err(); returns kExitFailed.
  int Fail(const grpc::Status& status);

  // Writes "fleetctl: error: <what>" to err(); returns kExitFailed.
  int Fail(absl::string_view what);

 private:
  FleetClient& client_;
  OutputFormat format_;
  std::ostream& out_;
  std::ostream& err_;
};

// A command ready to run; returns the process exit code.
using Action = std::function<int(Session&)>;

// A command that runs without a connection: writes to `out` (results) and
// `err` (errors); returns the process exit code.
using LocalAction = std::function<int(std::ostream& out, std::ostream& err)>;

// -l LABELS and -b LIST of the commands that fan out.
struct SelectorFlags {
  std::string labels;
  std::string boards;

  // Adds -l/--labels and -b/--boards to `command`.
  void AddTo(CLI::App& command);

  // The selector; throws CLI::ValidationError for a malformed board list.
  fleet::v1::Selector Build() const;
};

// Throws CLI::ValidationError with `status`'s message unless it is OK.
void ThrowUsageErrorUnlessOk(const absl::Status& status);

// Streams a program's output from offset 0 to out(): the raw bytes as the
// program wrote them, or with -o json one StreamOutputResponse per line.
// With `follow`, until the program has ended (no deadline). Returns the
// stream's final status.
grpc::Status CopyProgramOutput(Session& session, const std::string& board, uint32_t program_id, bool follow);

// One board's threads and programs (ListThreads with boards = {board}).
// NOT_FOUND when fleetd's answer does not list the board.
grpc::Status GetBoardThreads(Session& session, const std::string& board, bool include_finished,
                             fleet::v1::BoardThreads& result);

void AddBoardCommands(CLI::App& app, Action& action);
// `program_args`: what followed "--" on the command line (run's ARGS); must
// outlive the parse.
void AddProgramCommands(CLI::App& app, Action& action, const std::vector<std::string>& program_args);
void AddFileCommands(CLI::App& app, Action& action);
void AddThreadCommands(CLI::App& app, Action& action);
void AddMachineCommands(CLI::App& app, Action& action);
void AddMonitorCommands(CLI::App& app, Action& action);
void AddAdminCommands(CLI::App& app, Action& action);
void AddJobCommands(CLI::App& app, Action& action, LocalAction& local_action);

}  // namespace threadfleet::cli

#endif  // THREADFLEET_SERVER_CLI_COMMANDS_H_
