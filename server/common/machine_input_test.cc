#include "server/common/machine_input.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace threadfleet::common {
namespace {

using ::testing::HasSubstr;

TEST(MachineInputTest, PinsBelow256AreTakenAndAboveRefusedNamingTheFieldAndRange) {
  EXPECT_TRUE(CheckPinNumber("pin", 0).ok());
  EXPECT_TRUE(CheckPinNumber("pin", 255).ok());
  absl::Status refused = CheckPinNumber("expect.pin.pin", 256);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("expect.pin.pin 256"));
  EXPECT_THAT(refused.message(), HasSubstr("0..255"));
}

TEST(MachineInputTest, LevelsAreZeroOrOne) {
  EXPECT_TRUE(CheckPinLevel("value", 0).ok());
  EXPECT_TRUE(CheckPinLevel("value", 1).ok());
  absl::Status refused = CheckPinLevel("value", 2);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("value 2 is not a level: 0 or 1"));
}

TEST(MachineInputTest, AdcValuesUpTo65535AreTaken) {
  EXPECT_TRUE(CheckAdcValue("value_u16", 65535).ok());
  absl::Status refused = CheckAdcValue("value_u16", 65536);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("value_u16 65536"));
  EXPECT_THAT(refused.message(), HasSubstr("65535"));
  EXPECT_TRUE(CheckAdcChannel("channel", 255).ok());
  EXPECT_FALSE(CheckAdcChannel("channel", 256).ok());
}

}  // namespace
}  // namespace threadfleet::common
