// The lab's inputs to a board's simulated hardware (BoardControl SetPin and
// SetAdc, board.proto): the bounds fleetd's API, fleetctl and job specs all
// check before a board is asked, so the three refuse the same input with the
// same words. The board checks its own profile (which pins and channels it
// has) on top.
//
// Example:
//
//   absl::Status s = CheckPinNumber("pin", 300);
//   // INVALID_ARGUMENT "pin 300 is out of range: pins are 0..255"
//   CheckPinLevel("value", 2);       // "value 2 is not a level: 0 or 1"
//   CheckAdcValue("value_u16", 70000);  // "... the limit is 65535"
#ifndef THREADFLEET_SERVER_COMMON_MACHINE_INPUT_H_
#define THREADFLEET_SERVER_COMMON_MACHINE_INPUT_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace threadfleet::common {

// Pin numbers are below this (machine.Pin ids on the profiles we simulate
// are far smaller; a board refuses pins its profile lacks).
inline constexpr uint64_t kPinNumberLimit = 256;
// ADC channels are below this (the same bound as pins).
inline constexpr uint64_t kAdcChannelLimit = 256;
// The largest ADC value: what read_u16() returns at full scale.
inline constexpr uint64_t kMaxAdcValue = 65535;

// OK for 0..kPinNumberLimit-1; else INVALID_ARGUMENT naming `field`.
absl::Status CheckPinNumber(absl::string_view field, uint64_t pin);

// OK for 0 and 1; else INVALID_ARGUMENT naming `field`.
absl::Status CheckPinLevel(absl::string_view field, uint64_t value);

// OK for 0..kAdcChannelLimit-1; else INVALID_ARGUMENT naming `field`.
absl::Status CheckAdcChannel(absl::string_view field, uint64_t channel);

// OK for 0..kMaxAdcValue; else INVALID_ARGUMENT naming `field`.
absl::Status CheckAdcValue(absl::string_view field, uint64_t value);

}  // namespace threadfleet::common

#endif  // THREADFLEET_SERVER_COMMON_MACHINE_INPUT_H_
