#include "server/cli/cli_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/read_text_file.h"

namespace threadfleet::cli {
namespace {

constexpr char kDefaultConfigPath[] = "~/.config/threadfleet/fleetctl.yaml";

absl::Status AtLine(absl::string_view file, const YAML::Mark& mark, absl::string_view what) {
  if (mark.is_null()) return absl::InvalidArgumentError(absl::StrCat(file, ": ", what));
  return absl::InvalidArgumentError(absl::StrCat(file, ":", mark.line + 1, ": ", what));
}

}  // namespace

std::optional<std::string> ProcessEnvironment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

std::string ExpandHome(absl::string_view path, const EnvLookup& env) {
  if (path != "~" && !absl::StartsWith(path, "~/")) return std::string(path);
  std::optional<std::string> home = env("HOME");
  if (!home.has_value() || home->empty()) return std::string(path);
  return absl::StrCat(*home, path.substr(1));
}

absl::StatusOr<FileConfig> ParseConfigText(absl::string_view text, absl::string_view file_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    return AtLine(file_name, e.mark, e.msg);
  }
  FileConfig config;
  if (root.IsNull()) return config;  // an empty file sets nothing
  if (!root.IsMap()) {
    return AtLine(file_name, root.Mark(), "expected a mapping with keys server, ca and token");
  }
  for (const auto& entry : root) {
    const std::string key = entry.first.Scalar();
    std::string* field = nullptr;
    if (key == "server") field = &config.server;
    if (key == "ca") field = &config.ca;
    if (key == "token") field = &config.token;
    if (field == nullptr) {
      return AtLine(file_name, entry.first.Mark(),
                    absl::StrCat("unknown key '", key, "' (expected server, ca or token)"));
    }
    if (!entry.second.IsScalar()) {
      return AtLine(file_name, entry.second.Mark(), absl::StrCat("'", key, "' must be a string"));
    }
    *field = entry.second.Scalar();
  }
  return config;
}

absl::StatusOr<ClientConfig> ResolveClientConfig(const ConfigFlags& flags, const EnvLookup& env) {
  // Which file, and whether its absence is an error.
  std::string config_path = flags.config_path;
  bool required = !config_path.empty();
  std::string named_by = "--config";
  if (config_path.empty()) {
    if (std::optional<std::string> from_env = env("FLEETCTL_CONFIG"); from_env && !from_env->empty()) {
      config_path = *from_env;
      required = true;
      named_by = "FLEETCTL_CONFIG";
    } else {
      config_path = kDefaultConfigPath;
      named_by = "the default location";
    }
  }
  config_path = ExpandHome(config_path, env);

  ClientConfig config;
  FileConfig file;
  std::error_code exists_error;
  if (required || std::filesystem::exists(config_path, exists_error)) {
    absl::StatusOr<std::string> text = common::ReadTextFile(config_path, "config file");
    if (!text.ok()) {
      return absl::Status(text.status().code(),
                          absl::StrCat(text.status().message(), " (from ", named_by, ")"));
    }
    absl::StatusOr<FileConfig> parsed = ParseConfigText(*text, config_path);
    if (!parsed.ok()) return parsed.status();
    file = *std::move(parsed);
    config.config_file = config_path;
  }

  config.server = !flags.server.empty() ? flags.server : file.server;
  if (!flags.ca.empty()) {
    config.ca_path = ExpandHome(flags.ca, env);
  } else if (!file.ca.empty()) {
    std::filesystem::path ca = ExpandHome(file.ca, env);
    if (ca.is_relative()) ca = std::filesystem::path(config_path).parent_path() / ca;
    config.ca_path = ca.string();
  }
  std::optional<std::string> env_token = env("FLEETCTL_TOKEN");
  if (!flags.token.empty()) {
    config.token = flags.token;
  } else if (env_token.has_value() && !env_token->empty()) {
    config.token = *env_token;
  } else {
    config.token = file.token;
  }

  const std::string where =
      config.config_file.empty() ? absl::StrCat("a config file (", config_path, " is absent)") : config_path;
  if (config.server.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no server address: pass --server HOST:PORT or set 'server:' in ", where));
  }
  if (config.ca_path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no CA certificate: pass --ca FILE or set 'ca:' in ", where));
  }
  return config;
}

}  // namespace threadfleet::cli
