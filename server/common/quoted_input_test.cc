#include "server/common/quoted_input.h"

#include <string>

#include "gtest/gtest.h"

namespace threadfleet::common {
namespace {

TEST(QuoteInput, ShortInputIsQuotedWhole) { EXPECT_EQ(QuoteInput("b01"), "\"b01\""); }

TEST(QuoteInput, LongInputKeepsAPrefixAndNamesItsSize) {
  const std::string name(3 << 20, 'b');
  EXPECT_EQ(QuoteInput(name, 6), "\"bbbbbb…\" (3145728 bytes)");
  EXPECT_LT(QuoteInput(name).size(), 100u);
}

TEST(QuoteInput, ControlBytesAndQuotesAreEscapedOnOneLine) {
  EXPECT_EQ(QuoteInput(std::string("/app.py\0.bak", 12)), "\"/app.py\\0.bak\"");
  EXPECT_EQ(QuoteInput("a\nb\t\"c\"\\\x01"), "\"a\\nb\\t\\\"c\\\"\\\\\\x01\"");
}

TEST(QuoteInput, CutNeverSplitsAUtf8Character) {
  // "é" is two bytes: a cut at 2 keeps "a" and no half character.
  EXPECT_EQ(QuoteInput("aé-long", 2), "\"a…\" (8 bytes)");
}

TEST(CutInput, LeavesShortTextAndCutsLongText) {
  EXPECT_EQ(CutInput("b01/7", 10), "b01/7");
  EXPECT_EQ(CutInput(std::string(100, 'x') + "/7", 4), "xxxx… (102 bytes)");
}

}  // namespace
}  // namespace threadfleet::common
