// Column-aligned text tables for fleetctl's human output: a header row in
// capitals, columns separated by two spaces, no trailing spaces, and cells
// longer than their column's limit cut with "...". Control characters in a
// cell (newlines of an exception message, tabs) become spaces so a row stays
// one line.
//
// Example:
//
//   Table table({"BOARD", "STATE"});
//   table.AddRow({"b01", "online"});
//   table.AddRow({"b02-long-name", "offline"});
//   std::cout << table.Render();
//   // BOARD          STATE
//   // b01            online
//   // b02-long-name  offline
//
// When rows arrive over time (a followed stream) their widths cannot be
// known in advance: StreamingTable prints a row at a time at fixed widths.

#ifndef THREADFLEET_SERVER_CLI_TABLE_H_
#define THREADFLEET_SERVER_CLI_TABLE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace threadfleet::cli {

// Longest cell, in characters, unless a table says otherwise.
inline constexpr size_t kDefaultMaxCellWidth = 40;

// `cell` made printable on one line (control characters become spaces) and
// cut to at most `max_width` characters (UTF-8 code points), the last three
// being "..." when cut. REQUIRES: max_width >= 4.
std::string FitCell(absl::string_view cell, size_t max_width);

// Width of `text` in characters (UTF-8 code points).
size_t DisplayWidth(absl::string_view text);

class Table {
 public:
  explicit Table(std::vector<std::string> headers);

  // Sets the longest a cell of `column` may be (default kDefaultMaxCellWidth).
  void SetMaxWidth(size_t column, size_t max_width);

  // Adds a row; missing cells are empty, cells beyond the headers dropped.
  void AddRow(std::vector<std::string> cells);

  size_t row_count() const { return rows_.size(); }

  // The header and every row, each line ending in '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<size_t> max_widths_;
  std::vector<std::vector<std::string>> rows_;
};

// A table printed row by row: column i is widths[i] wide (or its header's
// width if wider); a longer cell is cut to that width, except in the last
// column, which is only cut at `last_max_width`.
class StreamingTable {
 public:
  StreamingTable(std::vector<std::string> headers, std::vector<size_t> widths, size_t last_max_width = 120);

  // The header line, ending in '\n'.
  std::string Header() const;

  // One row, ending in '\n'.
  std::string Row(const std::vector<std::string>& cells) const;

 private:
  std::vector<std::string> headers_;
  std::vector<size_t> widths_;
  size_t last_max_width_;
};

}  // namespace threadfleet::cli

#endif  // THREADFLEET_SERVER_CLI_TABLE_H_
