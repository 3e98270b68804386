// Formatters every page shares: sizes, durations, percentages and times as an
// operator reads them, dense and unambiguous ("12.3 KiB", "4 m 05 s", "3 s ago").
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

// Bytes in binary units, one decimal below 100 of a unit: "512 B",
// "12.3 KiB", "140 MiB".
export function formatBytes(bytes: number | bigint): string {
  let n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return "–";
  let unit = 0;
  while (n >= 1024 && unit < UNITS.length - 1) {
    n /= 1024;
    unit++;
  }
  if (unit === 0) return `${n} B`;
  return `${n < 100 ? n.toFixed(1) : Math.round(n)} ${UNITS[unit]}`;
}

// A duration in milliseconds, at most two units: "850 ms", "12.4 s",
// "4 m 05 s", "3 h 02 m", "2 d 05 h".
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const total = Math.floor(s);
  const pad = (v: number) => String(v).padStart(2, "0");
  if (total < 3600) return `${Math.floor(total / 60)} m ${pad(total % 60)} s`;
  if (total < 86400) return `${Math.floor(total / 3600)} h ${pad(Math.floor((total % 3600) / 60))} m`;
  return `${Math.floor(total / 86400)} d ${pad(Math.floor((total % 86400) / 3600))} h`;
}

// A percentage with one decimal below 10 ("3.5 %", "42 %"); "–" when unknown.
export function formatPercent(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  const v = Math.max(0, value);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} %`;
}

// used / total as a fraction in [0, 1]; 0 when total is unknown.
export function fraction(used: number, total: number): number {
  if (!(total > 0)) return 0;
  return Math.min(1, Math.max(0, used / total));
}

// How long ago `thenMs` was, relative to `nowMs`: "just now", "42 s ago",
// "5 m ago", "3 h ago", "2 d ago"; a time in the future (clock skew) is
// "just now".
export function formatRelative(thenMs: number, nowMs: number): string {
  const s = Math.floor((nowMs - thenMs) / 1000);
  if (!Number.isFinite(s) || s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// A protobuf Timestamp in ms since the epoch; null when unset.
export function toMs(t: Timestamp | undefined): number | null {
  return t ? timestampMs(t) : null;
}

// A wall-clock time as an ISO-like local string without the T and zone
// ("2026-12-06 08:41:07"), for tables and titles.
export function formatTime(ms: number | null): string {
  if (ms === null) return "–";
  const d = new Date(ms);
  const pad = (v: number) => String(v).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

// An enum value's name for people: "WAITING_LOCK" -> "waiting lock".
export function enumLabel(name: string | undefined): string {
  return (name ?? "unknown").toLowerCase().replace(/_/g, " ");
}
