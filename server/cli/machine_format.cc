#include "server/cli/machine_format.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/cli/format.h"
#include "server/cli/table.h"

namespace threadfleet::cli {

namespace pb = board::v1;

std::string PinDriverText(const pb::PinState& pin) {
  if (pin.mode() == pb::PIN_MODE_OUT || pin.mode() == pb::PIN_MODE_OPEN_DRAIN) return "program";
  if (pin.lab_driven()) return "lab";
  if (pin.pull() != pb::PIN_PULL_NONE) return "pull";
  return "-";
}

std::string RenderPins(const std::vector<pb::PinState>& pins) {
  Table table({"PIN", "MODE", "PULL", "LEVEL", "DRIVEN BY", "IRQ"});
  for (const pb::PinState& pin : pins) {
    table.AddRow({absl::StrCat(pin.pin()), EnumText(pb::PinMode_Name(pin.mode()), "PIN_MODE_"),
                  EnumText(pb::PinPull_Name(pin.pull()), "PIN_PULL_"), absl::StrCat(pin.value()),
                  PinDriverText(pin), pin.irq() ? absl::StrCat(pin.irq_count()) : "-"});
  }
  return table.Render();
}

std::string RenderAdcs(const std::vector<pb::AdcState>& adcs) {
  Table table({"ADC", "VALUE", "SET BY"});
  for (const pb::AdcState& adc : adcs) {
    table.AddRow(
        {absl::StrCat(adc.channel()), absl::StrCat(adc.value_u16()), adc.lab_set() ? "lab" : "idle"});
  }
  return table.Render();
}

std::string WatchdogText(const pb::WatchdogState& watchdog) {
  std::string text =
      watchdog.armed()
          ? absl::StrCat("armed, timeout ", FormatDuration(uint64_t{watchdog.timeout_ms()} * 1000), ", fed ",
                         FormatDuration(uint64_t{watchdog.since_feed_ms()} * 1000), " ago")
          : "off";
  if (watchdog.resets() > 0) {
    absl::StrAppend(&text, ", ", watchdog.resets(), watchdog.resets() == 1 ? " reset" : " resets");
  }
  return text;
}

std::string RenderMachine(const pb::MachineState& machine) {
  const std::vector<std::pair<std::string, std::string>> lines = {
      {"Reset cause", EnumText(pb::ResetCause_Name(machine.reset_cause()), "RESET_CAUSE_")},
      {"Freq", machine.freq_hz() == 0 ? "-" : absl::StrCat(machine.freq_hz() / 1000000, " MHz")},
      {"Watchdog", WatchdogText(machine.watchdog())},
  };
  size_t width = 0;
  for (const auto& [key, value] : lines) width = std::max(width, key.size());
  std::string text;
  for (const auto& [key, value] : lines) {
    absl::StrAppend(&text, key, ":", std::string(width - key.size() + 2, ' '), value, "\n");
  }
  text += "\n";
  if (machine.pins().empty()) {
    text += "no pins in use\n";
  } else {
    text += RenderPins({machine.pins().begin(), machine.pins().end()});
  }
  if (!machine.adcs().empty()) text += "\n" + RenderAdcs({machine.adcs().begin(), machine.adcs().end()});
  if (!machine.timers().empty()) {
    Table timers({"TIMER", "MODE", "PERIOD", "RUNNING", "FIRED"});
    for (const pb::TimerState& timer : machine.timers()) {
      timers.AddRow({timer.id() < 0 ? "virtual" : absl::StrCat(timer.id()),
                     EnumText(pb::TimerMode_Name(timer.mode()), "TIMER_MODE_"),
                     FormatDuration(uint64_t{timer.period_ms()} * 1000), timer.running() ? "yes" : "no",
                     absl::StrCat(timer.fired())});
    }
    text += "\n" + timers.Render();
  }
  return text;
}

}  // namespace threadfleet::cli
