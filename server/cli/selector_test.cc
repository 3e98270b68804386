#include "server/cli/selector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace threadfleet::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SelectorTest, BoardListSplitsOnCommasAndTrims) {
  EXPECT_THAT(*ParseBoardList("b01, b02 ,b03"), ElementsAre("b01", "b02", "b03"));
  EXPECT_TRUE(ParseBoardList("")->empty());
}

TEST(SelectorTest, BoardListWithAnEmptyNameIsRejected) {
  EXPECT_THAT(ParseBoardList("b01,,b02").status().message(), HasSubstr("empty name"));
  EXPECT_FALSE(ParseBoardList("b01,").ok());
}

TEST(SelectorTest, LabelsAndBoardsMapToTheSelector) {
  absl::StatusOr<fleet::v1::Selector> selector = BuildSelector("lab=a,role!=spare", "b01,b02");
  ASSERT_TRUE(selector.ok());
  EXPECT_EQ(selector->labels(), "lab=a,role!=spare");
  EXPECT_THAT(selector->boards(), ElementsAre("b01", "b02"));
  EXPECT_EQ(BuildSelector("", "")->ByteSizeLong(), 0u);  // empty: every board
}

TEST(SelectorTest, ThreadRefSplitsBoardAndId) {
  absl::StatusOr<ThreadRef> ref = ParseThreadRef("b01/7");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->board, "b01");
  EXPECT_EQ(ref->thread_id, 7u);
}

TEST(SelectorTest, ThreadRefErrorsSayWhatIsWrong) {
  EXPECT_THAT(ParseThreadRef("b01").status().message(), HasSubstr("expected BOARD/THREAD_ID"));
  EXPECT_THAT(ParseThreadRef("b01/x").status().message(),
              HasSubstr("thread id 'x' is not a positive number"));
  EXPECT_THAT(ParseThreadRef("/7").status().message(), HasSubstr("no board name"));
  EXPECT_FALSE(ParseThreadRef("b01/").ok());
  EXPECT_FALSE(ParseThreadRef("b01/0").ok());
  EXPECT_FALSE(ParseThreadRef("b01/-3").ok());
  EXPECT_FALSE(ParseThreadRef("b01/99999999999").ok());
}

TEST(SelectorTest, ModuleFunctionSplitsAtTheLastDot) {
  auto parts = ParseModuleFunction("app.sensors.run");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->first, "app.sensors");
  EXPECT_EQ(parts->second, "run");
  EXPECT_FALSE(ParseModuleFunction("blink").ok());
  EXPECT_FALSE(ParseModuleFunction("blink.").ok());
  EXPECT_FALSE(ParseModuleFunction(".run").ok());
}

TEST(SelectorTest, LabelNeedsAKeyAndAnEqualsSign) {
  EXPECT_EQ(ParseLabel("role=sensor")->second, "sensor");
  EXPECT_EQ(ParseLabel("empty=")->second, "");
  EXPECT_FALSE(ParseLabel("role").ok());
  EXPECT_FALSE(ParseLabel("=x").ok());
}

}  // namespace
}  // namespace threadfleet::cli
