#include "server/cli/cli_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace threadfleet::cli {
namespace {

using ::testing::HasSubstr;

ConfigFlags Flags(std::string config_path, std::string server, std::string ca, std::string token) {
  ConfigFlags flags;
  flags.config_path = std::move(config_path);
  flags.server = std::move(server);
  flags.ca = std::move(ca);
  flags.token = std::move(token);
  return flags;
}

// A temporary HOME with helpers to write config files into it.
class CliConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = std::filesystem::temp_directory_path() /
            ("fleetctl_config_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(home_);
    std::filesystem::create_directories(home_);
    env_["HOME"] = home_.string();
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  std::string Write(const std::string& relative, const std::string& text) {
    std::filesystem::path path = home_ / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path.string();
  }

  EnvLookup Env() {
    return [this](const char* name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
  }

  std::filesystem::path home_;
  std::map<std::string, std::string> env_;
};

TEST_F(CliConfigTest, DefaultFileUnderHomeIsReadWhenPresent) {
  Write(".config/threadfleet/fleetctl.yaml", "server: 127.0.0.1:7443\nca: /pki/ca.pem\ntoken: tf_file\n");
  absl::StatusOr<ClientConfig> config = ResolveClientConfig({}, Env());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "127.0.0.1:7443");
  EXPECT_EQ(config->ca_path, "/pki/ca.pem");
  EXPECT_EQ(config->token, "tf_file");
  EXPECT_EQ(config->config_file, (home_ / ".config/threadfleet/fleetctl.yaml").string());
}

TEST_F(CliConfigTest, AbsentDefaultFileIsFineWhenFlagsSayEverything) {
  ConfigFlags flags = Flags("", "127.0.0.1:1", "/x/ca.pem", "tf_flag");
  absl::StatusOr<ClientConfig> config = ResolveClientConfig(flags, Env());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "127.0.0.1:1");
  EXPECT_EQ(config->token, "tf_flag");
  EXPECT_EQ(config->config_file, "");
}

TEST_F(CliConfigTest, FlagsOverrideEnvironmentWhichOverridesFileToken) {
  const std::string file = Write("a.yaml", "server: 127.0.0.1:7443\nca: /pki/ca.pem\ntoken: tf_file\n");
  ConfigFlags flags = Flags(file, "", "", "");
  EXPECT_EQ(ResolveClientConfig(flags, Env())->token, "tf_file");
  env_["FLEETCTL_TOKEN"] = "tf_env";
  EXPECT_EQ(ResolveClientConfig(flags, Env())->token, "tf_env");
  flags.token = "tf_flag";
  flags.server = "127.0.0.1:9";
  flags.ca = "/other/ca.pem";
  absl::StatusOr<ClientConfig> config = ResolveClientConfig(flags, Env());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->token, "tf_flag");
  EXPECT_EQ(config->server, "127.0.0.1:9");
  EXPECT_EQ(config->ca_path, "/other/ca.pem");
}

TEST_F(CliConfigTest, ConfigFlagBeatsEnvironmentWhichBeatsDefaultFile) {
  Write(".config/threadfleet/fleetctl.yaml", "server: default:1\nca: /ca.pem\n");
  const std::string from_env = Write("env.yaml", "server: env:2\nca: /ca.pem\n");
  const std::string from_flag = Write("flag.yaml", "server: flag:3\nca: /ca.pem\n");
  EXPECT_EQ(ResolveClientConfig({}, Env())->server, "default:1");
  env_["FLEETCTL_CONFIG"] = from_env;
  EXPECT_EQ(ResolveClientConfig({}, Env())->server, "env:2");
  EXPECT_EQ(ResolveClientConfig(Flags(from_flag, "", "", ""), Env())->server, "flag:3");
}

TEST_F(CliConfigTest, RelativeCaIsTakenFromTheConfigFilesDirectory) {
  const std::string file = Write("lab/fleetctl.yaml", "server: 127.0.0.1:7443\nca: pki/ca.pem\n");
  absl::StatusOr<ClientConfig> config = ResolveClientConfig(Flags(file, "", "", ""), Env());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ca_path, (home_ / "lab/pki/ca.pem").string());
}

TEST_F(CliConfigTest, TildeIsExpandedInConfigPathAndCa) {
  Write("my.yaml", "server: 127.0.0.1:7443\nca: ~/pki/ca.pem\n");
  absl::StatusOr<ClientConfig> config = ResolveClientConfig(Flags("~/my.yaml", "", "", ""), Env());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ca_path, (home_ / "pki/ca.pem").string());
  config = ResolveClientConfig(Flags("~/my.yaml", "", "~/flag-ca.pem", ""), Env());
  EXPECT_EQ(config->ca_path, (home_ / "flag-ca.pem").string());
}

TEST_F(CliConfigTest, MissingExplicitConfigFileIsAnErrorNamingIt) {
  absl::StatusOr<ClientConfig> config = ResolveClientConfig(Flags("/nonexistent/f.yaml", "", "", ""), Env());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("/nonexistent/f.yaml"));
  EXPECT_THAT(config.status().message(), HasSubstr("--config"));
  env_["FLEETCTL_CONFIG"] = "/nonexistent/e.yaml";
  config = ResolveClientConfig({}, Env());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("FLEETCTL_CONFIG"));
}

TEST_F(CliConfigTest, UnknownKeyIsAnErrorWithFileAndLine) {
  const std::string file = Write("bad.yaml", "server: 127.0.0.1:1\n\nsever: x\n");
  absl::StatusOr<ClientConfig> config = ResolveClientConfig(Flags(file, "", "", ""), Env());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr(file + ":3: unknown key 'sever'"));
}

TEST_F(CliConfigTest, MalformedYamlAndNonStringValuesAreErrorsWithLine) {
  EXPECT_THAT(ParseConfigText("server: [1, 2\n", "f.yaml").status().message(), HasSubstr("f.yaml:"));
  EXPECT_THAT(ParseConfigText("server: x\nca:\n  a: b\n", "f.yaml").status().message(),
              HasSubstr("f.yaml:3: 'ca' must be a string"));
  EXPECT_THAT(ParseConfigText("- a\n- b\n", "f.yaml").status().message(), HasSubstr("expected a mapping"));
  EXPECT_TRUE(ParseConfigText("", "empty.yaml").ok());
}

TEST_F(CliConfigTest, MissingServerOrCaSaysHowToGiveThem) {
  absl::StatusOr<ClientConfig> config = ResolveClientConfig(Flags("", "", "/ca.pem", ""), Env());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("--server"));
  config = ResolveClientConfig(Flags("", "127.0.0.1:1", "", ""), Env());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("--ca"));
}

TEST_F(CliConfigTest, ExpandHomeLeavesOtherPathsAlone) {
  EXPECT_EQ(ExpandHome("~", Env()), home_.string());
  EXPECT_EQ(ExpandHome("/abs/~/x", Env()), "/abs/~/x");
  EXPECT_EQ(ExpandHome("~user/x", Env()), "~user/x");
  env_.erase("HOME");
  EXPECT_EQ(ExpandHome("~/x", Env()), "~/x");
}

}  // namespace
}  // namespace threadfleet::cli
