#include "server/cli/table.h"

#include <algorithm>
#include <utility>

namespace threadfleet::cli {
namespace {

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Joins cells padded to `widths`, without padding after the last non-empty
// one, so lines never end in spaces.
std::string JoinPadded(const std::vector<std::string>& cells, const std::vector<size_t>& widths) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i > 0) line += "  ";
    line += cells[i];
    if (i + 1 < cells.size()) line.append(widths[i] - std::min(widths[i], DisplayWidth(cells[i])), ' ');
  }
  line.erase(line.find_last_not_of(' ') + 1);
  line += '\n';
  return line;
}

}  // namespace

size_t DisplayWidth(absl::string_view text) {
  return static_cast<size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return !IsContinuationByte(c); }));
}

std::string FitCell(absl::string_view cell, size_t max_width) {
  std::string printable(cell);
  for (char& c : printable) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  }
  if (DisplayWidth(printable) <= max_width) return printable;
  // Keep max_width - 3 code points, then "...".
  size_t kept = 0;
  size_t end = 0;
  while (end < printable.size()) {
    if (!IsContinuationByte(printable[end])) {
      if (kept == max_width - 3) break;
      ++kept;
    }
    ++end;
  }
  return printable.substr(0, end) + "...";
}

Table::Table(std::vector<std::string> headers)
    : headers_(std::move(headers)), max_widths_(headers_.size(), kDefaultMaxCellWidth) {}

void Table::SetMaxWidth(size_t column, size_t max_width) {
  if (column < max_widths_.size()) max_widths_[column] = std::max<size_t>(max_width, 4);
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  for (size_t i = 0; i < cells.size(); ++i) cells[i] = FitCell(cells[i], max_widths_[i]);
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) widths[i] = DisplayWidth(headers_[i]);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  std::string text = JoinPadded(headers_, widths);
  for (const auto& row : rows_) text += JoinPadded(row, widths);
  return text;
}

StreamingTable::StreamingTable(std::vector<std::string> headers, std::vector<size_t> widths,
                               size_t last_max_width)
    : headers_(std::move(headers)),
      widths_(std::move(widths)),
      last_max_width_(std::max<size_t>(last_max_width, 4)) {
  widths_.resize(headers_.size(), 4);
  for (size_t i = 0; i < headers_.size(); ++i)
    widths_[i] = std::max({widths_[i], DisplayWidth(headers_[i]), size_t{4}});
}

std::string StreamingTable::Header() const { return JoinPadded(headers_, widths_); }

std::string StreamingTable::Row(const std::vector<std::string>& cells) const {
  std::vector<std::string> fitted(headers_.size());
  for (size_t i = 0; i < fitted.size() && i < cells.size(); ++i) {
    fitted[i] = FitCell(cells[i], i + 1 == fitted.size() ? last_max_width_ : widths_[i]);
  }
  return JoinPadded(fitted, widths_);
}

}  // namespace threadfleet::cli
