#include "server/cli/table.h"

#include <gtest/gtest.h>

namespace threadfleet::cli {
namespace {

TEST(TableTest, ColumnsAlignAndLinesHaveNoTrailingSpaces) {
  Table table({"BOARD", "STATE", "NOTE"});
  table.AddRow({"b01", "online", ""});
  table.AddRow({"b02-long", "offline", "x"});
  EXPECT_EQ(table.Render(),
            "BOARD     STATE    NOTE\n"
            "b01       online\n"
            "b02-long  offline  x\n");
}

TEST(TableTest, MissingCellsAreEmptyAndExtraCellsDropped) {
  Table table({"A", "B"});
  table.AddRow({"1"});
  table.AddRow({"1", "2", "3"});
  EXPECT_EQ(table.Render(), "A  B\n1\n1  2\n");
}

TEST(TableTest, LongCellsAreCutWithDots) {
  Table table({"MESSAGE"});
  table.SetMaxWidth(0, 8);
  table.AddRow({"abcdefghijkl"});
  EXPECT_EQ(table.Render(), "MESSAGE\nabcde...\n");
}

TEST(TableTest, ControlCharactersBecomeSpaces) {
  EXPECT_EQ(FitCell("Traceback:\n  line\t1", 40), "Traceback:   line 1");
}

TEST(TableTest, CuttingNeverSplitsAUtf8Character) {
  EXPECT_EQ(FitCell("\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9", 5), "\u00e9\u00e9...");
  EXPECT_EQ(DisplayWidth("\u00e9t\u00e9"), 3u);
}

TEST(TableTest, WideUtf8CellsAlignByCharacters) {
  Table table({"A", "B"});
  table.AddRow({"\u00e9\u00e9", "x"});
  EXPECT_EQ(table.Render(), "A   B\n\u00e9\u00e9  x\n");
}

TEST(TableTest, StreamingRowsUseFixedWidthsAndCutOnlyTheLastColumnLate) {
  StreamingTable table({"ID", "KIND", "MESSAGE"}, {4, 6}, 10);
  EXPECT_EQ(table.Header(), "ID    KIND    MESSAGE\n");
  EXPECT_EQ(table.Row({"1", "stack_high", "0123456789abc"}), "1     sta...  0123456...\n");
  EXPECT_EQ(table.Row({"22", "reset", ""}), "22    reset\n");
}

}  // namespace
}  // namespace threadfleet::cli
