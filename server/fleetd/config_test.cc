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
  absl::StatusOr<FleetdConfig> config = Parse(absl::StrCat(kFullConfig, "jobz: x\n"));
  EXPECT_THAT(std::string(config.status().message()), StartsWith("fleetd.yaml:14: jobz: unknown key"));
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

TEST(ParseFleetdConfig, LimitsDefaultWhenAbsent) {
  absl::StatusOr<FleetdConfig> config = Parse(kFullConfig);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->limits.request.max_field_bytes, RequestLimitOptions().max_field_bytes);
  EXPECT_EQ(config->limits.http.max_connections, HttpLimits().max_connections);
  EXPECT_EQ(config->limits.retention.events.max_rows, RetentionOptions().events.max_rows);
  EXPECT_EQ(config->limits.health_history.window, absl::Minutes(15));
  EXPECT_EQ(config->limits.health_history.max_bytes, size_t{64} << 20);
  EXPECT_FALSE(config->limits.boards.max_calls_in_flight.has_value()) << "the links' own default applies";
  EXPECT_FALSE(config->limits.boards.max_kill_grace.has_value());
}

TEST(ParseFleetdConfig, ReadsEveryLimit) {
  absl::StatusOr<FleetdConfig> config = Parse(absl::StrCat(kFullConfig, R"(limits:
  request:
    max_field_bytes: 256
    max_repeated: 100
    max_push_bytes: 2097152
    max_job_spec_bytes: 4096
    max_job_file_bytes: 8192
    max_job_files_bytes: 16384
  http:
    max_header_bytes: 4096
    max_body_bytes: 0
    max_connections: 16
    idle_timeout_ms: 500
    request_timeout_ms: 3000
    answer_timeout_ms: 20000
    max_stream_buffer_bytes: 262144
    max_connect_streams: 8
  api:
    max_streams_per_connection: 16
    max_metadata_bytes: 4096
    max_memory_mb: 64
    idle_timeout_ms: 60000
  boards:
    max_calls_in_flight: 4
    max_queued_calls: 100
    max_open_streams: 2
    call_timeout_ms: 5000
    max_kill_grace_ms: 2000
  retention:
    events_max_age_days: 7
    events_max_rows: 5000
    audit_max_age_days: 90
    audit_max_rows: 20000
  health_history:
    window_s: 1800
    max_bytes: 16777216
)"));
  ASSERT_TRUE(config.ok()) << config.status();
  const FleetdConfig::Limits& l = config->limits;
  EXPECT_EQ(l.health_history.window, absl::Minutes(30));
  EXPECT_EQ(l.health_history.max_bytes, size_t{16} << 20);
  EXPECT_EQ(l.request.max_field_bytes, 256u);
  EXPECT_EQ(l.request.max_repeated, 100u);
  EXPECT_EQ(l.request.max_push_bytes, 2097152u);
  EXPECT_EQ(l.request.max_job_spec_bytes, 4096u);
  EXPECT_EQ(l.request.max_job_file_bytes, 8192u);
  EXPECT_EQ(l.request.max_job_files_bytes, 16384u);
  EXPECT_EQ(l.http.max_header_bytes, 4096u);
  EXPECT_EQ(l.http.max_body_bytes, 0u);
  EXPECT_EQ(l.http.max_connections, 16);
  EXPECT_EQ(l.http.idle_timeout, absl::Milliseconds(500));
  EXPECT_EQ(l.http.request_timeout, absl::Seconds(3));
  EXPECT_EQ(l.http.answer_timeout, absl::Seconds(20));
  EXPECT_EQ(l.http.max_stream_buffer_bytes, 262144u);
  EXPECT_EQ(l.http.max_connect_streams, 8);
  EXPECT_EQ(l.retention.events.max_age, absl::Hours(24 * 7));
  EXPECT_EQ(l.retention.events.max_rows, 5000);
  EXPECT_EQ(l.retention.audit.max_age, absl::Hours(24 * 90));
  EXPECT_EQ(l.retention.audit.max_rows, 20000);
  EXPECT_EQ(l.api.max_streams_per_connection, 16);
  EXPECT_EQ(l.api.max_metadata_bytes, 4096u);
  EXPECT_EQ(l.api.max_memory_bytes, size_t{64} << 20);
  EXPECT_EQ(l.api.idle_timeout, absl::Minutes(1));
  EXPECT_EQ(l.boards.max_calls_in_flight, 4);
  EXPECT_EQ(l.boards.max_queued_calls, 100);
  EXPECT_EQ(l.boards.max_open_streams, 2);
  EXPECT_EQ(l.boards.call_timeout, absl::Seconds(5));
  EXPECT_EQ(l.boards.max_kill_grace, absl::Seconds(2));
}

TEST(ParseFleetdConfig, JobsDefaultWhenAbsentAndSpecSizesFollowTheRequestLimits) {
  absl::StatusOr<FleetdConfig> config = Parse(absl::StrCat(
      kFullConfig, "limits:\n  request:\n    max_job_spec_bytes: 4096\n    max_job_files_bytes: 8192\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->jobs.max_active_runs, jobs::JobRunnerOptions().max_active_runs);
  EXPECT_EQ(config->jobs.quarantine_after, 3);
  EXPECT_EQ(config->jobs.spec_limits.max_steps, jobs::JobSpecLimits().max_steps);
  EXPECT_EQ(config->jobs.spec_limits.max_spec_bytes, 4096u);
  EXPECT_EQ(config->jobs.spec_limits.max_files_bytes, 8192u);
}

TEST(ParseFleetdConfig, ReadsEveryJobsKey) {
  absl::StatusOr<FleetdConfig> config = Parse(absl::StrCat(kFullConfig, R"(jobs:
  max_active_runs: 4
  max_threads_per_run: 8
  quarantine_after: 5
  runs_kept_per_job: 50
  spec:
    max_steps: 10
    max_files: 3
    max_regex_bytes: 100
    max_args: 2
    max_timeout_s: 600
    max_retries: 1
    max_notify_retries: 0
)"));
  ASSERT_TRUE(config.ok()) << config.status();
  const jobs::JobRunnerOptions& j = config->jobs;
  EXPECT_EQ(j.max_active_runs, 4);
  EXPECT_EQ(j.max_threads_per_run, 8);
  EXPECT_EQ(j.quarantine_after, 5);
  EXPECT_EQ(j.runs_kept_per_job, 50);
  EXPECT_EQ(j.spec_limits.max_steps, 10u);
  EXPECT_EQ(j.spec_limits.max_files, 3u);
  EXPECT_EQ(j.spec_limits.max_regex_bytes, 100u);
  EXPECT_EQ(j.spec_limits.max_args, 2u);
  EXPECT_EQ(j.spec_limits.max_timeout, absl::Minutes(10));
  EXPECT_EQ(j.spec_limits.max_retries, 1);
  EXPECT_EQ(j.spec_limits.max_notify_retries, 0);
}

TEST(ParseFleetdConfig, AJobsKeyOutOfRangeOrUnknownIsNamed) {
  absl::StatusOr<FleetdConfig> zero = Parse(absl::StrCat(kFullConfig, "jobs:\n  quarantine_after: 0\n"));
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(zero.status().message()),
              HasSubstr("jobs.quarantine_after: must be an integer from 1"));
  absl::StatusOr<FleetdConfig> unknown =
      Parse(absl::StrCat(kFullConfig, "jobs:\n  spec:\n    max_stepz: 3\n"));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("max_stepz"));
}

TEST(ParseFleetdConfig, ALimitOutOfRangeOrUnknownIsNamedWithItsLineAndRange) {
  absl::StatusOr<FleetdConfig> config =
      Parse(absl::StrCat(kFullConfig, "limits:\n  request:\n    max_field_bytes: 10\n"));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            "fleetd.yaml:16: limits.request.max_field_bytes: must be an integer from 64 to 1048576");
  config = Parse(absl::StrCat(kFullConfig, "limits:\n  health_history:\n    window_s: 60\n"));
  EXPECT_EQ(config.status().message(),
            "fleetd.yaml:16: limits.health_history.window_s: must be an integer from 900 to 86400");
  config = Parse(absl::StrCat(kFullConfig, "limits:\n  boards:\n    max_calls_in_flight: 64\n"));
  EXPECT_EQ(config.status().message(),
            "fleetd.yaml:16: limits.boards.max_calls_in_flight: must be an integer from 1 to 16");
  config = Parse(absl::StrCat(kFullConfig, "limits:\n  http:\n    max_conns: 10\n"));
  EXPECT_THAT(config.status().message(), HasSubstr("limits.http.max_conns: unknown key"));
}

// The http section with `lines` (each "  key: value\n") in place of its
// listen line.
std::string WithHttp(absl::string_view lines) { return With("  listen: 127.0.0.1:0\n", lines); }

TEST(ParseFleetdConfig, TheDashboardKeysAreOptionalAndDefaultToPlainLoopbackWithoutFiles) {
  absl::StatusOr<FleetdConfig> config = Parse(kFullConfig);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->http_tls_cert, "");
  EXPECT_EQ(config->http_tls_key, "");
  EXPECT_FALSE(config->http_allow_plaintext);
  EXPECT_TRUE(config->http_cors_origins.empty());
  EXPECT_EQ(config->http_web_root, "");
  EXPECT_EQ(config->limits.http.max_body_bytes, size_t{2} << 20);
  EXPECT_EQ(config->limits.http.max_stream_buffer_bytes, size_t{1} << 20);
  EXPECT_EQ(config->limits.http.max_connect_streams, 32);
}

TEST(ParseFleetdConfig, ReadsEveryHttpKeyAndResolvesItsFiles) {
  absl::StatusOr<FleetdConfig> config =
      Parse(WithHttp("  listen: 0.0.0.0:7480\n  tls_cert: pki/http.pem\n  tls_key: pki/http.key\n"
                     "  cors_origins: [\"https://lab.example:8443\", \"http://localhost:5173\"]\n  web_root: "
                     "../web-ui/dist\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->http_listen, "0.0.0.0:7480");
  EXPECT_EQ(config->http_tls_cert, "/etc/fleet/pki/http.pem");
  EXPECT_EQ(config->http_tls_key, "/etc/fleet/pki/http.key");
  EXPECT_THAT(config->http_cors_origins,
              ::testing::ElementsAre("https://lab.example:8443", "http://localhost:5173"));
  EXPECT_EQ(config->http_web_root, "/etc/web-ui/dist");
}

TEST(ParseFleetdConfig, PlainHttpOffLoopbackIsRefusedNamingTheTlsAndPlaintextKeys) {
  for (absl::string_view host : {"0.0.0.0:7480", "192.168.1.10:7480", "[::]:7480", "fleetd.lab:7480"}) {
    absl::StatusOr<FleetdConfig> config = Parse(WithHttp(absl::StrCat("  listen: \"", host, "\"\n")));
    ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << host;
    EXPECT_THAT(config.status().message(), HasSubstr("fleetd.yaml:6: http.listen: ")) << host;
    EXPECT_THAT(config.status().message(), HasSubstr("http.tls_cert")) << host;
    EXPECT_THAT(config.status().message(), HasSubstr("http.allow_plaintext: true")) << host;
  }
  for (absl::string_view host : {"127.0.0.1:0", "127.1.2.3:7480", "[::1]:7480", "localhost:7480"}) {
    EXPECT_TRUE(Parse(WithHttp(absl::StrCat("  listen: \"", host, "\"\n"))).ok()) << host;
  }
  absl::StatusOr<FleetdConfig> allowed = Parse(WithHttp("  listen: 0.0.0.0:7480\n  allow_plaintext: true\n"));
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_TRUE(allowed->http_allow_plaintext);
}

TEST(ParseFleetdConfig, BadHttpKeysAreNamed) {
  const struct {
    absl::string_view lines;
    absl::string_view message;
  } cases[] = {
      {"  listen: 127.0.0.1:0\n  tls_cert: http.pem\n",
       "http.tls_key: missing: http.tls_cert and http.tls_key go together"},
      {"  listen: 127.0.0.1:0\n  tls_key: http.key\n", "http.tls_cert: missing"},
      {"  listen: 127.0.0.1:0\n  tls_cert: \"\"\n", "http.tls_cert: must be a non-empty string"},
      {"  listen: 127.0.0.1:0\n  allow_plaintext: yes please\n",
       "http.allow_plaintext: must be true or false"},
      {"  listen: 127.0.0.1:0\n  cors_origins: https://a.example\n", "http.cors_origins: must be a list"},
      {"  listen: 127.0.0.1:0\n  cors_origins: [\"https://a.example/\"]\n", "no path or trailing '/'"},
      {"  listen: 127.0.0.1:0\n  cors_origins: [\"*\"]\n", "http.cors_origins: * is not an origin"},
      {"  listen: 127.0.0.1:0\n  cors_origins: [\"a.example\"]\n", "a.example is not an origin"},
      {"  listen: 127.0.0.1:0\n  web_root: [a]\n", "http.web_root: must be a non-empty string"},
      {"  listen: 127.0.0.1:0\n  tls: on\n", "http.tls: unknown key"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<FleetdConfig> config = Parse(WithHttp(c.lines));
    ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.lines;
    EXPECT_THAT(config.status().message(), HasSubstr(c.message)) << c.lines;
  }
  absl::StatusOr<FleetdConfig> small =
      Parse(absl::StrCat(kFullConfig, "limits:\n  http:\n    max_stream_buffer_bytes: 1000\n"));
  EXPECT_THAT(small.status().message(),
              HasSubstr("limits.http.max_stream_buffer_bytes: must be an integer from 65536"));
  for (const char* answer_timeout : {"999", "600001", "-1", "soon"}) {
    absl::StatusOr<FleetdConfig> bad =
        Parse(absl::StrCat(kFullConfig, "limits:\n  http:\n    answer_timeout_ms: ", answer_timeout, "\n"));
    ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << answer_timeout;
    EXPECT_THAT(bad.status().message(), HasSubstr("limits.http.answer_timeout_ms")) << answer_timeout;
  }
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
