// How fleetctl shows a board's simulated hardware (board.proto
// MachineState): `fleetctl machine`, `pin` and `adc` print these tables.
//
// Example:
//
//   RenderPins({pin4})  // PIN  MODE  PULL  LEVEL  DRIVEN BY  IRQ
//                       // 4    in    up    1      lab        3
//   RenderMachine(machine)  // summary lines, then pins, ADCs, timers
#ifndef THREADFLEET_SERVER_CLI_MACHINE_FORMAT_H_
#define THREADFLEET_SERVER_CLI_MACHINE_FORMAT_H_

#include <string>
#include <vector>

#include "threadfleet/board/v1/board.pb.h"

namespace threadfleet::cli {

// Who sets a pin's level: "program" (an output), "lab" (SetPin), "pull"
// (an input with a pull resistor), "-" (a floating input, reads 0).
std::string PinDriverText(const board::v1::PinState& pin);

// The pins as a table (PIN MODE PULL LEVEL DRIVEN BY IRQ); IRQ is the count
// of handler runs scheduled, "-" without a handler.
std::string RenderPins(const std::vector<board::v1::PinState>& pins);

// The ADC channels as a table (ADC VALUE SET BY).
std::string RenderAdcs(const std::vector<board::v1::AdcState>& adcs);

// The watchdog in one line: "off", or "armed, timeout 2.0s, fed 120ms ago,
// 1 reset".
std::string WatchdogText(const board::v1::WatchdogState& watchdog);

// The whole machine: reset cause, freq and watchdog lines, then the pins,
// ADC and timer tables (each left out when empty, "no pins in use" etc.).
std::string RenderMachine(const board::v1::MachineState& machine);

}  // namespace threadfleet::cli

#endif  // THREADFLEET_SERVER_CLI_MACHINE_FORMAT_H_
