#include "server/fleetd/config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace threadfleet::fleetd {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::string_view kFullConfig = R"(api:
  listen: 127.0.0.1:7443
  cert: pki/fleetd-api.pem
  key: pki/fleetd-api.key
http:
  listen: 127.0.0.1:0
boards:
  ca: pki/ca.pem
  cert: /abs/fleetd.pem
  key: pki/../pki/fleetd.key
  lab: lab.yaml
  health_period_ms: 250
database: fleetd.db
)";

absl::StatusOr<FleetdConfig> Parse(absl::string_view text) {
  return ParseFleetdConfig(text, "fleetd.yaml", "/etc/fleet");
}

// The full config with one line replaced.
std::string With(absl::string_view from, absl::string_view to) {
  return absl::StrReplaceAll(kFullConfig, {{from, to}});
}

TEST(ParseFleetdConfig, ReadsEveryKeyAndResolvesRelativePathsAgainstTheConfigDirectory) {
  absl::StatusOr<FleetdConfig> config = Parse(kFullConfig);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->api_listen, "127.0.0.1:7443");
  EXPECT_EQ(config->api_cert, "/etc/fleet/pki/fleetd-api.pem");
  EXPECT_EQ(config->api_key, "/etc/fleet/pki/fleetd-api.key");
  EXPECT_EQ(config->http_listen, "127.0.0.1:0");
  EXPECT_EQ(config->boards_ca, "/etc/fleet/pki/ca.pem");
  EXPECT_EQ(config->boards_cert, "/abs/fleetd.pem");
  EXPECT_EQ(config->boards_key, "/etc/fleet/pki/fleetd.key");
  EXPECT_EQ(config->lab_file, "/etc/fleet/lab.yaml");
  EXPECT_EQ(config->health_period, absl::Milliseconds(250));
  EXPECT_EQ(config->database, "/etc/fleet/fleetd.db");
}

TEST(ParseFleetdConfig, LabAndHealthPeriodAreOptional) {
  absl::StatusOr<FleetdConfig> config = Parse(With("  lab: lab.yaml\n  health_period_ms: 250\n", ""));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->lab_file, "");
  EXPECT_EQ(config->health_period, kDefaultHealthPeriod);
}

TEST(ParseFleetdConfig, UnknownKeyIsNamedWithItsLine) {
  absl::StatusOr<FleetdConfig> config = Parse(With("  key: pki/fleetd-api.key\n", "  key: k\n  kee: k\n"));
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), StartsWith("fleetd.yaml:5: api.kee: unknown key"));
}

TEST(ParseFleetdConfig, UnknownTopLevelKeyIsNamedWithItsLine) {
  absl::StatusOr<FleetdConfig> config = Parse(absl::StrCat(kFullConfig, "jobs: x\n"));
  EXPECT_THAT(std::string(config.status().message()), StartsWith("fleetd.yaml:14: jobs: unknown key"));
}

TEST(ParseFleetdConfig, MissingRequiredKeyNamesTheKeyAndItsSection) {
  absl::StatusOr<FleetdConfig> config = Parse(With("  ca: pki/ca.pem\n", ""));
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), StartsWith("fleetd.yaml:8: boards.ca: missing"));
}

TEST(ParseFleetdConfig, MissingSectionIsAnError) {
  absl::StatusOr<FleetdConfig> config = Parse(With("http:\n  listen: 127.0.0.1:0\n", ""));
  EXPECT_THAT(std::string(config.status().message()), StartsWith("fleetd.yaml:1: http: missing"));
}

TEST(ParseFleetdConfig, BadListenAddressIsRefusedWithItsLine) {
  for (absl::string_view bad : {"127.0.0.1", "127.0.0.1:65536", "127.0.0.1:http", ":7443", "a b:1"}) {
    absl::StatusOr<FleetdConfig> config = Parse(With("127.0.0.1:7443", bad));
    ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(config.status().message()), StartsWith("fleetd.yaml:2: api.listen: ")) << bad;
  }
}

TEST(ParseFleetdConfig, PortZeroIsAllowed) {
  absl::StatusOr<FleetdConfig> config = Parse(With("127.0.0.1:7443", "127.0.0.1:0"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->api_listen, "127.0.0.1:0");
}

TEST(ParseFleetdConfig, HealthPeriodMustBeAnIntegerInRange) {
  for (absl::string_view bad : {"fast", "0", "10", "100000", "1.5"}) {
    absl::StatusOr<FleetdConfig> config = Parse(With("250", bad));
    EXPECT_THAT(std::string(config.status().message()),
                StartsWith("fleetd.yaml:12: boards.health_period_ms: must be"))
        << bad;
  }
}

TEST(ParseFleetdConfig, ValueThatIsNotAStringIsRefused) {
  absl::StatusOr<FleetdConfig> config = Parse(With("database: fleetd.db", "database: [a, b]"));
  EXPECT_THAT(std::string(config.status().message()),
              StartsWith("fleetd.yaml:13: database: must be a non-empty string"));
  config = Parse(With("database: fleetd.db", "database:"));
  EXPECT_THAT(std::string(config.status().message()),
              StartsWith("fleetd.yaml:13: database: must be a non-empty string"));
}

TEST(ParseFleetdConfig, SectionThatIsNotAMapIsRefused) {
  absl::StatusOr<FleetdConfig> config = Parse("api: 3\nhttp: {listen: 127.0.0.1:0}\n");
  EXPECT_THAT(std::string(config.status().message()), StartsWith("fleetd.yaml:1: api: must be a map"));
}

TEST(ParseFleetdConfig, KeyDefinedTwiceIsRefused) {
  absl::StatusOr<FleetdConfig> config = Parse(absl::StrCat(kFullConfig, "database: other.db\n"));
  EXPECT_THAT(std::string(config.status().message()), StartsWith("fleetd.yaml:14: database: defined twice"));
}

TEST(ParseFleetdConfig, YamlSyntaxErrorNamesTheLine) {
  absl::StatusOr<FleetdConfig> config = Parse("api:\n  listen: [127.0.0.1:1\nhttp: {}\n");
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("not valid YAML"));
  EXPECT_THAT(std::string(config.status().message()), StartsWith("fleetd.yaml:"));
}

TEST(ParseFleetdConfig, EmptyFileIsRefused) {
  EXPECT_EQ(Parse("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse("just text").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateListenAddress, AcceptsHostsAndPortsFromZero) {
  EXPECT_TRUE(ValidateListenAddress("127.0.0.1:0").ok());
  EXPECT_TRUE(ValidateListenAddress("localhost:7443").ok());
  EXPECT_TRUE(ValidateListenAddress("[::1]:65535").ok());
  EXPECT_FALSE(ValidateListenAddress("[::1]").ok());
  EXPECT_FALSE(ValidateListenAddress("127.0.0.1:-1").ok());
}

class ReadFleetdConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/config_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

TEST_F(ReadFleetdConfigTest, ResolvesPathsAgainstTheFilesDirectoryAndNamesTheFileInErrors) {
  std::filesystem::create_directories(dir_ / "etc");
  const std::string path = (dir_ / "etc" / "fleetd.yaml").string();
  std::ofstream(path) << kFullConfig;
  absl::StatusOr<FleetdConfig> config = ReadFleetdConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->database, (dir_ / "etc" / "fleetd.db").string());

  std::ofstream(path) << kFullConfig << "extra: 1\n";
  config = ReadFleetdConfig(path);
  EXPECT_THAT(std::string(config.status().message()),
              StartsWith(absl::StrCat(path, ":14: extra: unknown key")));
}

TEST_F(ReadFleetdConfigTest, RelativeConfigPathResolvesAgainstTheWorkingDirectory) {
  const std::string path = (dir_ / "fleetd.yaml").string();
  std::ofstream(path) << kFullConfig;
  const std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  absl::StatusOr<FleetdConfig> config = ReadFleetdConfig("fleetd.yaml");
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->database, (dir_ / "fleetd.db").string());
}

TEST_F(ReadFleetdConfigTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadFleetdConfig((dir_ / "nope.yaml").string()).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace threadfleet::fleetd
