#include "server/common/host_port.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace threadfleet::common {
namespace {

using ::testing::HasSubstr;

TEST(ParseHostPortTest, ReadsHostNameIpv4AndBracketedIpv6) {
  absl::StatusOr<HostPort> name = ParseHostPort("board-1.lab:7001");
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(name->host, "board-1.lab");
  EXPECT_EQ(name->port, 7001);
  EXPECT_FALSE(name->bracketed);

  absl::StatusOr<HostPort> v4 = ParseHostPort("127.0.0.1:1");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->ToString(), "127.0.0.1:1");

  absl::StatusOr<HostPort> v6 = ParseHostPort("[::1]:65535");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_TRUE(v6->bracketed);
  EXPECT_EQ(v6->ToString(), "[::1]:65535");
}

TEST(ParseHostPortTest, PortZeroOnlyForListening) {
  EXPECT_TRUE(ParseHostPort("127.0.0.1:0", PortRule::kListen).ok());
  absl::StatusOr<HostPort> dial = ParseHostPort("127.0.0.1:0");
  ASSERT_FALSE(dial.ok());
  EXPECT_THAT(dial.status().message(), HasSubstr("must be a number from 1 to 65535"));
}

TEST(ParseHostPortTest, RefusesWhatIsNotHostColonPort) {
  const struct {
    const char* address;
    const char* says;
  } cases[] = {
      {"localhost", "has no port"},
      {":7001", "has no host"},
      {"[]:7001", "has no host"},
      {"::1:7001", "is not a host name"},
      {"bad host:7001", "is not a host name"},
      {"[fe80::1%eth0]:7001", "is not a host name"},
      {"host:", "must be a number"},
      {"host:+80", "must be a number"},
      {"host:65536", "must be a number"},
      {"host:0000080", "must be a number"},
      {"host:99999999999999999999", "must be a number"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<HostPort> parsed = ParseHostPort(c.address);
    ASSERT_FALSE(parsed.ok()) << c.address;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.address;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.says)) << c.address;
  }
}

}  // namespace
}  // namespace threadfleet::common
