// The live thread and program tables: each health snapshot folded into rows
// the page renders as they are (the board's order: live threads first, then
// the most recently ended ones, which stay listed dimmed), with CPU % from the
// previous snapshot.
import type { HealthSnapshot, ProgramInfo } from "../../gen/threadfleet/board/v1/board_pb";
import { cpuBaseline, threadCpuPercent, type CpuBaseline } from "./cpu";
import { isLiveThread, programStateName, threadStateName } from "./format";
import { ProgramState } from "../../gen/threadfleet/board/v1/board_pb";

// A thread's stack high-water mark above this share of its stack shows amber
// (fleetd raises its stack_high anomaly at the same 80 %).
export const STACK_HIGH_FRACTION = 0.8;

export interface ThreadRow {
  id: number;
  name: string;
  programId: number;
  state: string; // data-state, e.g. "waiting_lock"
  live: boolean;
  unkillable: boolean;
  cpuPercent: number | null;
  stackUsedBytes: number;
  stackPeakBytes: number;
  stackSizeBytes: number;
  stackHigh: boolean;
  waitingLockId: number;
  waitTimeUs: bigint;
  nativeTimeUs: bigint;
  // FAILED threads only.
  exception: { type: string; message: string; traceback: string } | null;
}

export interface ProgramRow {
  id: number;
  name: string;
  state: string;
  running: boolean;
  threadCount: number;
  outputBytes: bigint;
  exitCode: number;
}

export interface TableState {
  threads: ThreadRow[];
  programs: ProgramRow[];
  // For the next snapshot's CPU %.
  baseline: CpuBaseline;
}

export function foldSnapshot(previous: TableState | null, snapshot: HealthSnapshot): TableState {
  const before = previous?.baseline ?? null;
  const threads = snapshot.threads.map((t): ThreadRow => {
    const live = isLiveThread(t.state);
    return {
      id: t.id,
      name: t.name,
      programId: t.programId,
      state: threadStateName(t.state),
      live,
      unkillable: t.unkillable,
      cpuPercent: threadCpuPercent(before, snapshot.uptimeUs, t),
      stackUsedBytes: t.stackUsedBytes,
      stackPeakBytes: t.stackPeakBytes,
      stackSizeBytes: t.stackSizeBytes,
      stackHigh: t.stackSizeBytes > 0 && t.stackPeakBytes > STACK_HIGH_FRACTION * t.stackSizeBytes,
      waitingLockId: t.waitingLockId,
      waitTimeUs: t.waitTimeUs,
      nativeTimeUs: t.nativeTimeUs,
      exception: t.exception
        ? { type: t.exception.type, message: t.exception.message, traceback: t.exception.traceback }
        : null,
    };
  });
  return { threads, programs: snapshot.programs.map(programRow), baseline: cpuBaseline(snapshot) };
}

function programRow(p: ProgramInfo): ProgramRow {
  return {
    id: p.id,
    name: p.name,
    state: programStateName(p.state),
    running: p.state === ProgramState.RUNNING,
    threadCount: p.threadIds.length,
    outputBytes: p.outputBytes,
    exitCode: p.exitCode,
  };
}

// The stack bar's parts as percentages of the stack's size (0 when unknown).
export function stackBar(row: ThreadRow): { usedPercent: number; peakPercent: number } {
  if (row.stackSizeBytes <= 0) return { usedPercent: 0, peakPercent: 0 };
  const clamp = (v: number) => Math.min(100, Math.max(0, (v / row.stackSizeBytes) * 100));
  return { usedPercent: clamp(row.stackUsedBytes), peakPercent: clamp(row.stackPeakBytes) };
}
