import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import {
  ExceptionInfoSchema,
  HealthSnapshotSchema,
  ProgramInfoSchema,
  ProgramState,
  ThreadInfoSchema,
  ThreadState,
} from "../../gen/threadfleet/board/v1/board_pb";
import { foldSnapshot, stackBar } from "./table";

function snapshot(uptimeUs: bigint, threads: Parameters<typeof create<typeof ThreadInfoSchema>>[1][]) {
  return create(HealthSnapshotSchema, {
    uptimeUs,
    threads: threads.map((t) => create(ThreadInfoSchema, t)),
    programs: [create(ProgramInfoSchema, { id: 3, name: "main.py", state: ProgramState.RUNNING, threadIds: [7, 8] })],
  });
}

describe("foldSnapshot", () => {
  it("lists threads in the board's order with CPU % from the previous snapshot", () => {
    const first = foldSnapshot(null, snapshot(1_000_000n, [{ id: 7, name: "worker", state: ThreadState.RUNNING, cpuTimeUs: 0n }]));
    expect(first.threads[0].cpuPercent).toBeNull();
    const second = foldSnapshot(
      first,
      snapshot(1_500_000n, [
        { id: 7, name: "worker", state: ThreadState.RUNNING, cpuTimeUs: 100_000n },
        { id: 5, name: "done", state: ThreadState.FINISHED, endTimeUs: 900_000n },
      ]),
    );
    expect(second.threads.map((t) => [t.id, t.state, t.live])).toEqual([
      [7, "running", true],
      [5, "finished", false],
    ]);
    expect(second.threads[0].cpuPercent).toBeCloseTo(20);
    expect(second.programs).toEqual([
      { id: 3, name: "main.py", state: "running", running: true, threadCount: 2, outputBytes: 0n, exitCode: 0 },
    ]);
  });

  it("keeps a failed thread's exception and marks stacks above 80 % of their size", () => {
    const state = foldSnapshot(
      null,
      snapshot(1n, [
        {
          id: 9,
          state: ThreadState.FAILED,
          stackSizeBytes: 1000,
          stackUsedBytes: 0,
          stackPeakBytes: 810,
          exception: create(ExceptionInfoSchema, { type: "ValueError", message: "boom", traceback: "Traceback..." }),
        },
        { id: 10, state: ThreadState.SLEEPING, stackSizeBytes: 1000, stackPeakBytes: 800 },
      ]),
    );
    expect(state.threads[0].exception).toEqual({ type: "ValueError", message: "boom", traceback: "Traceback..." });
    expect(state.threads[0].stackHigh).toBe(true);
    expect(state.threads[1].stackHigh).toBe(false);
    expect(state.threads[1].exception).toBeNull();
  });

  it("drops threads the board no longer lists", () => {
    const first = foldSnapshot(null, snapshot(1_000_000n, [{ id: 7, state: ThreadState.RUNNING }]));
    const second = foldSnapshot(first, snapshot(1_500_000n, []));
    expect(second.threads).toEqual([]);
    expect(second.baseline.cpuTimeUsByThread.size).toBe(0);
  });
});

describe("stackBar", () => {
  it("gives used and peak as shares of the size, clamped", () => {
    const [row] = foldSnapshot(
      null,
      snapshot(1n, [{ id: 1, state: ThreadState.RUNNING, stackSizeBytes: 2000, stackUsedBytes: 500, stackPeakBytes: 2500 }]),
    ).threads;
    expect(stackBar(row)).toEqual({ usedPercent: 25, peakPercent: 100 });
  });
});
