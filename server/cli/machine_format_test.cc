#include "server/cli/machine_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace threadfleet::cli {
namespace {

namespace pb = board::v1;
using ::testing::HasSubstr;

pb::PinState Pin(uint32_t number, pb::PinMode mode, pb::PinPull pull, uint32_t value, bool lab) {
  pb::PinState pin;
  pin.set_pin(number);
  pin.set_mode(mode);
  pin.set_pull(pull);
  pin.set_value(value);
  pin.set_lab_driven(lab);
  return pin;
}

TEST(MachineFormatTest, EachPinSaysWhoDrivesItsLevel) {
  EXPECT_EQ(PinDriverText(Pin(2, pb::PIN_MODE_OUT, pb::PIN_PULL_NONE, 1, false)), "program");
  EXPECT_EQ(PinDriverText(Pin(4, pb::PIN_MODE_IN, pb::PIN_PULL_UP, 0, true)), "lab");
  EXPECT_EQ(PinDriverText(Pin(5, pb::PIN_MODE_IN, pb::PIN_PULL_UP, 1, false)), "pull");
  EXPECT_EQ(PinDriverText(Pin(6, pb::PIN_MODE_IN, pb::PIN_PULL_NONE, 0, false)), "-");
}

TEST(MachineFormatTest, PinsTableShowsModePullLevelDriverAndIrqCount) {
  pb::PinState button = Pin(4, pb::PIN_MODE_IN, pb::PIN_PULL_UP, 0, true);
  button.set_irq(true);
  button.set_irq_count(3);
  EXPECT_EQ(RenderPins({button, Pin(2, pb::PIN_MODE_OUT, pb::PIN_PULL_NONE, 1, false)}),
            "PIN  MODE  PULL  LEVEL  DRIVEN BY  IRQ\n"
            "4    in    up    0      lab        3\n"
            "2    out   none  1      program    -\n");
}

TEST(MachineFormatTest, MachineShowsResetCauseFreqWatchdogAndTimers) {
  pb::MachineState machine;
  machine.set_reset_cause(pb::RESET_CAUSE_WATCHDOG);
  machine.set_freq_hz(240000000);
  machine.mutable_watchdog()->set_armed(true);
  machine.mutable_watchdog()->set_timeout_ms(2000);
  machine.mutable_watchdog()->set_since_feed_ms(120);
  machine.mutable_watchdog()->set_resets(1);
  pb::TimerState* timer = machine.add_timers();
  timer->set_id(-1);
  timer->set_mode(pb::TIMER_MODE_PERIODIC);
  timer->set_period_ms(100);
  timer->set_running(true);
  timer->set_fired(42);
  const std::string text = RenderMachine(machine);
  EXPECT_THAT(text, HasSubstr("Reset cause:  watchdog\n"));
  EXPECT_THAT(text, HasSubstr("Freq:         240 MHz\n"));
  EXPECT_THAT(text, HasSubstr("Watchdog:     armed, timeout 2.0s, fed 120ms ago, 1 reset\n"));
  EXPECT_THAT(text, HasSubstr("no pins in use\n"));
  EXPECT_THAT(text, HasSubstr("virtual  periodic  100ms   yes      42\n"));
}

TEST(MachineFormatTest, AnUnarmedWatchdogIsOff) { EXPECT_EQ(WatchdogText(pb::WatchdogState()), "off"); }

}  // namespace
}  // namespace threadfleet::cli
