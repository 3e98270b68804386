import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import {
  MachineStateSchema,
  PinMode,
  PinPull,
  PinStateSchema,
  ResetCause,
  TimerMode,
  WatchdogStateSchema,
} from "../../gen/threadfleet/board/v1/board_pb";
import {
  pinResultLine,
  pinRows,
  resetCauseText,
  resetQuestion,
  resetResultLine,
  timerRows,
  toggleLevel,
  toggleQuestion,
  watchdogText,
} from "./machine";

const machine = create(MachineStateSchema, {
  pins: [
    { pin: 4, mode: PinMode.IN, pull: PinPull.DOWN, value: 1, labDriven: true, irq: true, irqCount: 3n },
    { pin: 2, mode: PinMode.OUT, pull: PinPull.NONE, value: 1 },
    { pin: 5, mode: PinMode.IN, pull: PinPull.UP, value: 1 },
    { pin: 6, mode: PinMode.IN, pull: PinPull.NONE, value: 0 },
  ],
  timers: [
    { id: 0, mode: TimerMode.PERIODIC, periodMs: 100, running: true, fired: 42n },
    { id: -1, mode: TimerMode.ONE_SHOT, periodMs: 2500, running: false, fired: 1n },
  ],
  watchdog: { armed: true, timeoutMs: 2000, sinceFeedMs: 120, resets: 1 },
  resetCause: ResetCause.WATCHDOG,
});

describe("pinRows", () => {
  it("lists pins by number with their level and who drives them", () => {
    const rows = pinRows(machine);
    expect(rows.map((r) => [r.pin, r.mode, r.pull, r.level, r.driver, r.irq])).toEqual([
      [2, "out", "none", 1, "program", "—"],
      [4, "in", "down", 1, "lab", "3"],
      [5, "in", "up", 1, "pull", "—"],
      [6, "in", "none", 0, "none", "—"],
    ]);
  });

  it("offers the lab only inputs, and an empty list without a machine", () => {
    expect(pinRows(machine).filter((r) => r.drivable).map((r) => r.pin)).toEqual([4, 5, 6]);
    expect(pinRows(undefined)).toEqual([]);
  });
});

describe("the toggle", () => {
  it("drives the other level, asking first", () => {
    const [, button] = pinRows(machine);
    expect(toggleLevel(button)).toBe(0);
    expect(toggleQuestion("b01", button)).toBe("Drive pin 4 of b01 to 0 from the lab?");
  });

  it("says what the board answered", () => {
    expect(pinResultLine(create(PinStateSchema, { pin: 4, value: 0, labDriven: true, mode: PinMode.IN }), 0)).toBe(
      "Pin 4 driven to 0 by the lab.",
    );
    expect(pinResultLine(create(PinStateSchema, { pin: 5, value: 1, mode: PinMode.IN, pull: PinPull.UP }), "release")).toBe(
      "Pin 5 released: it reads 1 (pull).",
    );
  });
});

describe("timers, watchdog and reset cause", () => {
  it("shows timers with the virtual one named", () => {
    expect(timerRows(machine)).toEqual([
      { id: "0", mode: "periodic", period: "100 ms", running: true, fired: "42" },
      { id: "virtual", mode: "one shot", period: "2.5 s", running: false, fired: "1" },
    ]);
  });

  it("says whether the watchdog is armed and how long since it was fed", () => {
    expect(watchdogText(machine.watchdog)).toBe("armed: timeout 2.0 s, fed 120 ms ago (1 reset so far)");
    expect(watchdogText(create(WatchdogStateSchema, {}))).toBe("off");
    expect(watchdogText(undefined)).toBe("off");
  });

  it("names the reset cause", () => {
    expect(resetCauseText(ResetCause.WATCHDOG)).toBe("watchdog");
    expect(resetCauseText(ResetCause.POWER_ON)).toBe("power on");
    expect(resetCauseText(undefined)).toBe("—");
  });
});

describe("reset", () => {
  it("asks whether the boot scripts run again or are skipped, as the question ends the busy line", () => {
    expect(resetQuestion("b01", false)).toBe("Reset b01 (every program ends; the fresh VM runs /boot.py and /main.py again)?");
    expect(resetQuestion("b01", true)).toBe("Reset b01 in safe boot (every program ends; /boot.py and /main.py skipped this once)?");
  });

  it("reports a reset in fleetctl reset's words, a hard one whatever was asked", () => {
    expect(resetResultLine("b01", false, false)).toBe("b01: reset (fresh VM; /boot.py and /main.py run again)");
    expect(resetResultLine("b01", true, false)).toBe("b01: reset (safe boot: /boot.py and /main.py skipped)");
    expect(resetResultLine("b01", true, true)).toBe("b01: hard reset (threads stuck in native code; the board restarted)");
  });
});
