// How the board page writes numbers, durations and states: short, unit-bearing
// text a glance can read, and the lowercase state names the DOM's data-state
// attributes and the thread table share.
import { ProgramState, ThreadState } from "../../gen/threadfleet/board/v1/board_pb";
import { BoardState, EventKind, type Event } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import { EventKind as BoardEventKind } from "../../gen/threadfleet/board/v1/board_pb";

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB"];

// 1536 → "1.5 KiB"; whole numbers below 1024 stay exact ("512 B").
export function formatBytes(bytes: number | bigint): string {
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${BYTE_UNITS[unit]}`;
}

// Microseconds as the two largest units that matter: "850 µs", "12 ms",
// "3.2 s", "4 m 05 s", "2 h 07 m", "3 d 04 h".
export function formatDurationUs(us: number | bigint): string {
  const n = Number(us);
  if (n < 1000) return `${Math.round(n)} µs`;
  if (n < 1_000_000) return `${Math.round(n / 1000)} ms`;
  const s = n / 1_000_000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.floor(s)} s`;
  const total = Math.floor(s);
  const pad = (v: number) => String(v).padStart(2, "0");
  if (total < 3600) return `${Math.floor(total / 60)} m ${pad(total % 60)} s`;
  if (total < 86400) return `${Math.floor(total / 3600)} h ${pad(Math.floor((total % 3600) / 60))} m`;
  return `${Math.floor(total / 86400)} d ${pad(Math.floor((total % 86400) / 3600))} h`;
}

// A CPU share where 100 is one core; null (no measurement yet) is "—".
export function formatPercent(percent: number | null): string {
  if (percent === null || !Number.isFinite(percent)) return "—";
  return `${percent < 10 ? percent.toFixed(1) : Math.round(percent)} %`;
}

// The contract's data-state of a thread row: "running", "sleeping",
// "waiting_lock", "finished", "failed", "killed"; "unknown" otherwise.
export function threadStateName(state: ThreadState): string {
  switch (state) {
    case ThreadState.RUNNING:
      return "running";
    case ThreadState.SLEEPING:
      return "sleeping";
    case ThreadState.WAITING_LOCK:
      return "waiting_lock";
    case ThreadState.FINISHED:
      return "finished";
    case ThreadState.FAILED:
      return "failed";
    case ThreadState.KILLED:
      return "killed";
    default:
      return "unknown";
  }
}

export function isLiveThread(state: ThreadState): boolean {
  return state === ThreadState.RUNNING || state === ThreadState.SLEEPING || state === ThreadState.WAITING_LOCK;
}

export function programStateName(state: ProgramState): string {
  switch (state) {
    case ProgramState.RUNNING:
      return "running";
    case ProgramState.FINISHED:
      return "finished";
    case ProgramState.FAILED:
      return "failed";
    case ProgramState.KILLED:
      return "killed";
    default:
      return "unknown";
  }
}

// The contract's data-state of a board: a quarantine outranks the link's
// state, since jobs skip the board whatever its link says.
export function boardStateName(state: BoardState | undefined, quarantined: boolean): string {
  if (quarantined) return "quarantined";
  switch (state) {
    case BoardState.ONLINE:
      return "online";
    case BoardState.OFFLINE:
      return "offline";
    case BoardState.DEGRADED:
      return "degraded";
    default:
      return "unknown";
  }
}

// An anomaly's data-kind: the EventKind without its prefix, lowercased; a
// relayed board event is named by the board's kind ("deadlock", "stall",
// "thread_failed") since that is what happened.
export function anomalyKindName(event: Event): string {
  if (event.kind === EventKind.BOARD_EVENT && event.boardEvent) {
    return enumName(BoardEventKind, event.boardEvent.kind);
  }
  return enumName(EventKind, event.kind);
}

function enumName(e: Record<number, string>, value: number): string {
  const name = e[value];
  return name === undefined ? "unspecified" : name.toLowerCase();
}
