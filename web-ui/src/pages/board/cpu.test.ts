import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { HealthSnapshotSchema, ThreadInfoSchema, type ThreadInfo } from "../../gen/threadfleet/board/v1/board_pb";
import { cpuBaseline, threadCpuPercent } from "./cpu";

function thread(id: number, cpuTimeUs: bigint, startTimeUs = 0n, endTimeUs = 0n): ThreadInfo {
  return create(ThreadInfoSchema, { id, cpuTimeUs, startTimeUs, endTimeUs });
}

function baseline(uptimeUs: bigint, threads: ThreadInfo[]) {
  return cpuBaseline(create(HealthSnapshotSchema, { uptimeUs, threads }));
}

describe("threadCpuPercent", () => {
  it("is the CPU time a thread used over the board time that passed", () => {
    const before = baseline(1_000_000n, [thread(7, 100_000n)]);
    // 250 ms of CPU in 500 ms of uptime: half a core.
    expect(threadCpuPercent(before, 1_500_000n, thread(7, 350_000n))).toBeCloseTo(50);
  });

  it("is unknown on the first sample", () => {
    expect(threadCpuPercent(null, 1_500_000n, thread(7, 350_000n))).toBeNull();
  });

  it("is unknown after the board restarted (uptime went back, ids start over)", () => {
    const before = baseline(9_000_000n, [thread(7, 5_000_000n)]);
    expect(threadCpuPercent(before, 400_000n, thread(7, 100_000n))).toBeNull();
  });

  it("is unknown when no time passed or the counter went back", () => {
    const before = baseline(1_000_000n, [thread(7, 100_000n)]);
    expect(threadCpuPercent(before, 1_000_000n, thread(7, 200_000n))).toBeNull();
    expect(threadCpuPercent(before, 1_500_000n, thread(7, 50_000n))).toBeNull();
  });

  it("counts a thread started since the last snapshot from its start", () => {
    const before = baseline(1_000_000n, []);
    // Started at 1.25 s, used 125 ms by 1.5 s: half a core while it lived.
    expect(threadCpuPercent(before, 1_500_000n, thread(9, 125_000n, 1_250_000n))).toBeCloseTo(50);
  });

  it("is unknown for a thread that existed before but was not listed (no baseline)", () => {
    const before = baseline(1_000_000n, []);
    expect(threadCpuPercent(before, 1_500_000n, thread(9, 125_000n, 200_000n))).toBeNull();
  });

  it("counts an ended thread up to its end only", () => {
    const before = baseline(1_000_000n, [thread(7, 100_000n)]);
    // Ended at 1.1 s having used 100 ms more: a full core for its last 100 ms.
    expect(threadCpuPercent(before, 1_500_000n, thread(7, 200_000n, 0n, 1_100_000n))).toBeCloseTo(100);
  });

  it("forgets threads gone from the board's list", () => {
    const before = baseline(1_000_000n, [thread(7, 100_000n)]);
    const after = cpuBaseline(create(HealthSnapshotSchema, { uptimeUs: 1_500_000n, threads: [] }));
    expect(after.cpuTimeUsByThread.has(7)).toBe(false);
    expect(before.cpuTimeUsByThread.has(7)).toBe(true);
  });
});
