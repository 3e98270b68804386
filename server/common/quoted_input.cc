#include "server/common/quoted_input.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace threadfleet::common {
namespace {

// The longest prefix of `text` of at most `max_bytes` bytes that does not
// end inside a UTF-8 character.
absl::string_view Utf8Prefix(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  // Back off continuation bytes (10xxxxxx): at most 3 in valid UTF-8.
  for (int i = 0; i < 3 && end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80; ++i) --end;
  return text.substr(0, end);
}

}  // namespace

std::string QuoteInput(absl::string_view input, size_t max_bytes) {
  const absl::string_view kept = Utf8Prefix(input, max_bytes);
  std::string out = "\"";
  for (unsigned char c : kept) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\0':
        out += "\\0";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          absl::StrAppendFormat(&out, "\\x%02x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  if (kept.size() < input.size()) {
    absl::StrAppend(&out, "…\" (", input.size(), " bytes)");
  } else {
    out += '"';
  }
  return out;
}

std::string CutInput(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  return absl::StrCat(Utf8Prefix(text, max_bytes), "… (", text.size(), " bytes)");
}

}  // namespace threadfleet::common
