// Per-thread CPU % from two health snapshots: the growth of each thread's
// cpu_time_us divided by the growth of the board's uptime between them (the
// board's own clock, so a late or bunched delivery does not skew it). 100 is
// one core.
import type { HealthSnapshot, ThreadInfo } from "../../gen/threadfleet/board/v1/board_pb";

// What one snapshot leaves for the next computation.
export interface CpuBaseline {
  uptimeUs: bigint;
  cpuTimeUsByThread: Map<number, bigint>;
}

export function cpuBaseline(snapshot: HealthSnapshot): CpuBaseline {
  const cpuTimeUsByThread = new Map<number, bigint>();
  for (const t of snapshot.threads) cpuTimeUsByThread.set(t.id, t.cpuTimeUs);
  return { uptimeUs: snapshot.uptimeUs, cpuTimeUsByThread };
}

// The thread's CPU % since `before`, or null when it cannot be known: no
// earlier snapshot, the board restarted (uptime went back, ids start over),
// no time passed, or the thread's counter went back. A thread that started
// after `before` counts from 0 over the part of the interval it lived.
export function threadCpuPercent(before: CpuBaseline | null, uptimeUs: bigint, thread: ThreadInfo): number | null {
  if (!before || uptimeUs <= before.uptimeUs) return null;
  const previous = before.cpuTimeUsByThread.get(thread.id);
  let fromUs = before.uptimeUs;
  let cpuBefore = previous;
  if (cpuBefore === undefined) {
    if (thread.startTimeUs < before.uptimeUs) return null; // existed but was not listed: no baseline
    cpuBefore = 0n;
    fromUs = thread.startTimeUs;
  }
  if (thread.cpuTimeUs < cpuBefore) return null;
  // An ended thread stops at its end time, not at the snapshot's.
  const toUs = thread.endTimeUs > 0n && thread.endTimeUs < uptimeUs ? thread.endTimeUs : uptimeUs;
  if (toUs <= fromUs) return null;
  return (Number(thread.cpuTimeUs - cpuBefore) / Number(toUs - fromUs)) * 100;
}
