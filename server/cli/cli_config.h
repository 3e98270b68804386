// fleetctl's connection settings: where fleetd listens, which CA to trust and
// which bearer token to present. They come from three places, strongest
// first: the flags (--server, --ca, --token), the environment
// (FLEETCTL_TOKEN for the token) and a YAML file: --config FILE, else
// $FLEETCTL_CONFIG, else ~/.config/threadfleet/fleetctl.yaml (that default
// may be absent; a file named by --config or FLEETCTL_CONFIG may not).
//
//   server: 127.0.0.1:7443
//   ca: /abs/path/pki/ca.pem      # relative paths: to the file's directory
//   token: tf_...
//
// Example:
//
//   ConfigFlags flags;
//   flags.server = "127.0.0.1:7443";  // from --server
//   absl::StatusOr<ClientConfig> config = ResolveClientConfig(flags, ProcessEnvironment);
//   if (!config.ok()) ...  // "/home/a/.config/threadfleet/fleetctl.yaml:3: unknown key 'sever'"
//
// Nothing here opens a connection (that is fleet_client.h).

#ifndef THREADFLEET_SERVER_CLI_CLI_CONFIG_H_
#define THREADFLEET_SERVER_CLI_CLI_CONFIG_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace threadfleet::cli {

// Reads one environment variable; nullopt when it is unset. Injectable so
// tests do not depend on the process environment.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;

// The real process environment (getenv).
std::optional<std::string> ProcessEnvironment(const char* name);

// What the global flags said; empty means "not given".
struct ConfigFlags {
  std::string config_path;
  std::string server;
  std::string ca;
  std::string token;
};

// The settings a connection uses, after precedence and path expansion.
struct ClientConfig {
  // "host:port".
  std::string server;
  // Path of the PEM CA certificate fleetd's API certificate chains to.
  std::string ca_path;
  // The bearer secret; empty means "call without a token".
  std::string token;
  // The config file that was read; empty when none was.
  std::string config_file;
};

// What a config file holds; empty fields are absent keys.
struct FileConfig {
  std::string server;
  std::string ca;
  std::string token;
};

// "~" or "~/x" becomes $HOME or $HOME/x; other paths are returned unchanged.
// An unset HOME leaves the path unchanged.
std::string ExpandHome(absl::string_view path, const EnvLookup& env);

// Parses the YAML text of a config file named `file_name` (used in messages
// only). INVALID_ARGUMENT naming "file:line" for YAML errors, a document that
// is not a mapping, unknown keys and values that are not strings.
[[nodiscard]] absl::StatusOr<FileConfig> ParseConfigText(absl::string_view text, absl::string_view file_name);

// Applies the precedence described at the top of this file. Errors, each
// naming the file or flag concerned: a file named by --config or
// FLEETCTL_CONFIG, or a default file that exists, that cannot be read (the
// code of common::ReadTextFile: NOT_FOUND, PERMISSION_DENIED, ...); a file
// that does not parse, no server, no CA (INVALID_ARGUMENT). A relative `ca` from a file is
// taken relative to that file's directory; `~` is expanded in every path.
// The CA file itself is not opened here.
[[nodiscard]] absl::StatusOr<ClientConfig> ResolveClientConfig(const ConfigFlags& flags,
                                                               const EnvLookup& env);

}  // namespace threadfleet::cli

#endif  // THREADFLEET_SERVER_CLI_CLI_CONFIG_H_
