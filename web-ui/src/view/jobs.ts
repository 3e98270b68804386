// The jobs pages' logic: run and step states as names and colours, a run's
// board counts as a sentence, how far a run has got, and how long it took.
import { RunState, type Run, type RunCounts } from "../gen/threadfleet/fleet/v1/fleet_pb";

export function runStateName(s: RunState): string {
  return (RunState[s] ?? "UNSPECIFIED").toLowerCase();
}

// Queued or running: it can still change, and be cancelled.
export function isActive(s: RunState): boolean {
  return s === RunState.QUEUED || s === RunState.RUNNING;
}

// "4 boards: 3 passed, 1 failed (1 flaky)"; only the outcomes that occurred.
export function countsText(c: RunCounts | undefined): string {
  if (!c || c.boards === 0) return "no boards";
  const parts: string[] = [];
  if (c.passed) parts.push(`${c.passed} passed`);
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.error) parts.push(`${c.error} error`);
  if (c.skipped) parts.push(`${c.skipped} skipped`);
  if (c.cancelled) parts.push(`${c.cancelled} cancelled`);
  const ended = c.passed + c.failed + c.error + c.skipped + c.cancelled;
  if (ended < c.boards) parts.push(`${c.boards - ended} to go`);
  const flaky = c.flaky ? ` (${c.flaky} flaky)` : "";
  return `${c.boards} board${c.boards === 1 ? "" : "s"}: ${parts.join(", ")}${flaky}`;
}

// Boards that ended and boards in all, from the per-board results when the
// run has them (WatchRun, GetRun), else from its counts (ListRuns).
export function progress(run: Run): { ended: number; total: number } {
  if (run.results.length > 0) {
    return { ended: run.results.filter((r) => !isActive(r.state) && r.state !== RunState.UNSPECIFIED).length, total: run.results.length };
  }
  const c = run.counts;
  if (!c) return { ended: 0, total: 0 };
  return { ended: c.passed + c.failed + c.error + c.skipped + c.cancelled, total: c.boards };
}

// How long the run took, or has been going at `nowMs`; null before it
// started.
export function runDurationMs(startMs: number | null, endMs: number | null, nowMs: number): number | null {
  if (startMs === null) return null;
  return Math.max(0, (endMs ?? nowMs) - startMs);
}

// A run id from the URL: a positive decimal integer, else null.
export function parseRunId(text: string): bigint | null {
  if (!/^[1-9][0-9]{0,19}$/.test(text)) return null;
  const id = BigInt(text);
  return id <= 0xffff_ffff_ffff_ffffn ? id : null;
}
