#include "server/common/machine_input.h"

#include "absl/strings/str_cat.h"

namespace threadfleet::common {

absl::Status CheckPinNumber(absl::string_view field, uint64_t pin) {
  if (pin < kPinNumberLimit) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " ", pin, " is out of range: pins are 0..", kPinNumberLimit - 1));
}

absl::Status CheckPinLevel(absl::string_view field, uint64_t value) {
  if (value <= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " ", value, " is not a level: 0 or 1"));
}

absl::Status CheckAdcChannel(absl::string_view field, uint64_t channel) {
  if (channel < kAdcChannelLimit) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " ", channel, " is out of range: ADC channels are 0..", kAdcChannelLimit - 1));
}

absl::Status CheckAdcValue(absl::string_view field, uint64_t value) {
  if (value <= kMaxAdcValue) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " ", value, " is out of range: the limit is ", kMaxAdcValue, " (read_u16)"));
}

}  // namespace threadfleet::common
