// The board's simulated hardware (HealthSnapshot.machine) as the Machine
// panel shows it: a row per pin with its level and who drives it, the
// timers, the watchdog and the reset cause in words, and what an operator's
// toggle of a lab-driven input would do.
import {
  PinMode,
  PinPull,
  ResetCause,
  TimerMode,
  type MachineState,
  type PinState,
  type WatchdogState,
} from "../../gen/threadfleet/board/v1/board_pb";
import { formatDurationUs } from "./format";

// Who sets a pin's level: the program (an output), the lab (SetPin), the
// pull resistor, or nobody (a floating input reads 0).
export type PinDriver = "program" | "lab" | "pull" | "none";

export interface PinRow {
  pin: number;
  mode: string;
  pull: string;
  level: number;
  driver: PinDriver;
  // "—" without a handler, else how often it was scheduled.
  irq: string;
  // The lab may drive it: an input (the board refuses outputs).
  drivable: boolean;
  labDriven: boolean;
}

export interface TimerRow {
  id: string;
  mode: string;
  period: string;
  running: boolean;
  fired: string;
}

function enumWord(name: string | undefined): string {
  return name ? name.toLowerCase().replace(/_/g, " ") : "?";
}

export function pinDriver(pin: PinState): PinDriver {
  if (pin.mode === PinMode.OUT || pin.mode === PinMode.OPEN_DRAIN) return "program";
  if (pin.labDriven) return "lab";
  if (pin.pull !== PinPull.NONE) return "pull";
  return "none";
}

// The pins by number.
export function pinRows(machine: MachineState | undefined): PinRow[] {
  return [...(machine?.pins ?? [])]
    .sort((a, b) => a.pin - b.pin)
    .map((p) => ({
      pin: p.pin,
      mode: enumWord(PinMode[p.mode]),
      pull: enumWord(PinPull[p.pull]),
      level: p.value,
      driver: pinDriver(p),
      irq: p.irq ? String(p.irqCount) : "—",
      drivable: p.mode === PinMode.IN,
      labDriven: p.labDriven,
    }));
}

// Hardware timers first (the board lists them so), the virtual one as such.
export function timerRows(machine: MachineState | undefined): TimerRow[] {
  return (machine?.timers ?? []).map((t) => ({
    id: t.id < 0 ? "virtual" : String(t.id),
    mode: enumWord(TimerMode[t.mode]),
    period: formatDurationUs(t.periodMs * 1000),
    running: t.running,
    fired: String(t.fired),
  }));
}

// "off", or "armed: timeout 2.0 s, fed 120 ms ago", plus the resets it caused.
export function watchdogText(watchdog: WatchdogState | undefined): string {
  let text = watchdog?.armed
    ? `armed: timeout ${formatDurationUs(watchdog.timeoutMs * 1000)}, fed ${formatDurationUs(watchdog.sinceFeedMs * 1000)} ago`
    : "off";
  const resets = watchdog?.resets ?? 0;
  if (resets > 0) text += ` (${resets} ${resets === 1 ? "reset" : "resets"} so far)`;
  return text;
}

export function resetCauseText(cause: ResetCause | undefined): string {
  if (cause === undefined || cause === ResetCause.UNSPECIFIED) return "—";
  return enumWord(ResetCause[cause]);
}

// What the operator's toggle on an input pin does: drive the other level.
export function toggleLevel(row: PinRow): number {
  return row.level === 1 ? 0 : 1;
}

export function toggleQuestion(board: string, row: PinRow): string {
  return `Drive pin ${row.pin} of ${board} to ${toggleLevel(row)} from the lab?`;
}

// What the Reset buttons ask before Fleet.ResetBoard, in the words of
// `fleetctl reset`: a reset ends every program, so the question says so.
export function resetQuestion(board: string, safeBoot: boolean): string {
  return safeBoot
    ? `Reset ${board} in safe boot (every program ends; /boot.py and /main.py skipped this once)?`
    : `Reset ${board} (every program ends; the fresh VM runs /boot.py and /main.py again)?`;
}

// The result line of a ResetBoard, as `fleetctl reset` prints it.
export function resetResultLine(board: string, safeBoot: boolean, hard: boolean): string {
  if (hard) return `${board}: hard reset (threads stuck in native code; the board restarted)`;
  return safeBoot
    ? `${board}: reset (safe boot: /boot.py and /main.py skipped)`
    : `${board}: reset (fresh VM; /boot.py and /main.py run again)`;
}

// The result line of a SetPin, as the action result shows it.
export function pinResultLine(pin: PinState | undefined, requested: number | "release"): string {
  if (!pin) return "fleetd answered without the pin's state.";
  if (requested === "release") return `Pin ${pin.pin} released: it reads ${pin.value} (${pinDriver(pin)}).`;
  return `Pin ${pin.pin} driven to ${pin.value} by the lab.`;
}
