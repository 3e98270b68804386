import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { GetHealthHistoryResponseSchema, ThreadHistorySchema } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import { HealthSnapshotSchema, HeapStatsSchema, ThreadInfoSchema, ThreadState } from "../../gen/threadfleet/board/v1/board_pb";
import { appendSnapshot, emptyHistory, fromHistoryResponse, heapColumns, threadColumns, trimWindow } from "./history";

function response() {
  return create(GetHealthHistoryResponseSchema, {
    board: "b01",
    startTimeMs: 1_000_000n,
    offsetMs: [0, 500, 1000, 1500],
    heapUsedBytes: [10, 20, 30, 40],
    heapTotalBytes: [100, 100, 100, 100],
    cpuPercent: [1, 2, 3, 4],
    threads: [
      create(ThreadHistorySchema, { threadId: 1, name: "main", firstSample: 0, cpuPercent: [5, 6], stackUsedBytes: [50, 60] }),
      create(ThreadHistorySchema, { threadId: 2, name: "worker", firstSample: 1, cpuPercent: [7, 8, 9], stackUsedBytes: [70, 80, 90] }),
    ],
  });
}

describe("fromHistoryResponse", () => {
  it("aligns each thread on its first sample, null outside the run it lived", () => {
    const h = fromHistoryResponse(response());
    expect(h.times).toEqual([1000, 1000.5, 1001, 1001.5]);
    const cpu = threadColumns(h, "cpuPercent");
    expect(cpu.labels).toEqual(["main (1)", "worker (2)"]);
    expect(cpu.data).toEqual([
      [1000, 1000.5, 1001, 1001.5],
      [5, 6, null, null],
      [null, 7, 8, 9],
    ]);
    expect(heapColumns(h).data[1]).toEqual([10, 20, 30, 40]);
  });

  it("is empty when fleetd has no sample", () => {
    const h = fromHistoryResponse(create(GetHealthHistoryResponseSchema, {}));
    expect(threadColumns(h, "stackUsedBytes").data).toEqual([[]]);
  });
});

describe("appendSnapshot", () => {
  it("appends live threads, starts new series padded with null and leaves ended ones null", () => {
    const h = fromHistoryResponse(response());
    const snapshot = create(HealthSnapshotSchema, {
      heap: create(HeapStatsSchema, { usedBytes: 55, totalBytes: 100 }),
      cpuUsagePercent: 12,
      threads: [
        create(ThreadInfoSchema, { id: 2, name: "worker", state: ThreadState.RUNNING, stackUsedBytes: 95 }),
        create(ThreadInfoSchema, { id: 3, name: "new", state: ThreadState.SLEEPING, stackUsedBytes: 30 }),
        create(ThreadInfoSchema, { id: 1, name: "main", state: ThreadState.FINISHED, stackUsedBytes: 0 }),
      ],
    });
    appendSnapshot(h, 1_002_000, snapshot, new Map([[2, 10], [3, null]]));
    const cpu = threadColumns(h, "cpuPercent");
    expect(cpu.labels).toEqual(["main (1)", "worker (2)", "new (3)"]);
    expect(cpu.data).toEqual([
      [1000, 1000.5, 1001, 1001.5, 1002],
      [5, 6, null, null, null],
      [null, 7, 8, 9, 10],
      [null, null, null, null, null],
    ]);
    expect(threadColumns(h, "stackUsedBytes").data[3]).toEqual([null, null, null, null, 30]);
    expect(heapColumns(h).data.map((c) => c[4])).toEqual([1002, 55, 100]);
  });

  it("starts from nothing", () => {
    const h = emptyHistory();
    appendSnapshot(h, 5000, create(HealthSnapshotSchema, { threads: [create(ThreadInfoSchema, { id: 4, state: ThreadState.RUNNING })] }), new Map());
    expect(threadColumns(h, "cpuPercent").data).toEqual([[5], [null]]);
  });
});

describe("trimWindow", () => {
  it("drops samples older than the window and threads with none left", () => {
    const h = fromHistoryResponse(response());
    // A 1 s window ending at 1001.5 s keeps 1000.5 .. 1001.5.
    trimWindow(h, 1_001_500, 1000);
    expect(h.times).toEqual([1000.5, 1001, 1001.5]);
    expect(threadColumns(h, "cpuPercent").data).toEqual([
      [1000.5, 1001, 1001.5],
      [6, null, null],
      [7, 8, 9],
    ]);
    trimWindow(h, 1_002_000, 1000);
    expect(h.threads.map((t) => t.id)).toEqual([2]);
    expect(h.heapUsedBytes).toEqual([30, 40]);
  });
});
