import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import {
  BoardHealthSchema,
  BoardSchema,
  BoardState,
  EventKind,
  EventSchema,
  QuarantineSchema,
  Severity,
  WatchHealthResponseSchema,
  type Event,
  type WatchHealthResponse,
} from "../gen/threadfleet/fleet/v1/fleet_pb";
import {
  EventKind as BoardEventKind,
  EventSchema as BoardEventSchema,
  HealthSnapshotSchema,
} from "../gen/threadfleet/board/v1/board_pb";
import { applyBoard, foldHealth, heatClass, initialTiles, stateCounts, tileState, type Tiles } from "./health";

type SnapshotOptions = { uptimeUs?: bigint; used?: number; total?: number; cpu?: number; running?: number };

function healthSnapshot(board: string, o: SnapshotOptions = {}) {
  return create(HealthSnapshotSchema, {
    boardName: board,
    uptimeUs: o.uptimeUs ?? 1_000_000n,
    heap: { totalBytes: o.total ?? 1000, usedBytes: o.used ?? 250 },
    threadCounts: { running: o.running ?? 2, sleeping: 1, finished: 3 },
    cpuUsagePercent: o.cpu ?? 12.5,
  });
}

function snapshot(board: string, o: SnapshotOptions = {}) {
  return create(WatchHealthResponseSchema, { board, update: { case: "snapshot", value: healthSnapshot(board, o) } });
}

function eventUpdate(board: string, e: Event): WatchHealthResponse {
  return create(WatchHealthResponseSchema, { board, update: { case: "event", value: e } });
}

function stackHigh(board: string, thread: number, severity: Severity, message = "stack high") {
  return create(EventSchema, { board, kind: EventKind.STACK_HIGH, severity, threadId: thread, message });
}

function stateUpdate(board: string, state: BoardState) {
  return create(WatchHealthResponseSchema, { board, update: { case: "state", value: state } });
}

function lab(): Tiles {
  return initialTiles(
    [
      create(BoardSchema, { name: "b02", labels: { lab: "a" }, state: BoardState.ONLINE }),
      create(BoardSchema, { name: "b01", labels: { lab: "b" }, state: BoardState.ONLINE }),
    ],
    [create(BoardHealthSchema, { board: "b01", state: BoardState.ONLINE })],
  );
}

describe("initialTiles", () => {
  it("makes one tile per listed board, sorted by name, with GetHealth's state, snapshot and anomalies", () => {
    const tiles = initialTiles(
      [
        create(BoardSchema, { name: "b02", labels: { lab: "a" }, state: BoardState.OFFLINE, stateReason: "refused" }),
        create(BoardSchema, { name: "b01", state: BoardState.ONLINE }),
      ],
      [
        create(BoardHealthSchema, {
          board: "b01",
          state: BoardState.DEGRADED,
          snapshot: healthSnapshot("b01", { used: 400 }),
          anomalies: [stackHigh("b01", 7, Severity.WARNING)],
        }),
      ],
    );
    expect([...tiles.keys()]).toEqual(["b01", "b02"]);
    const b01 = tiles.get("b01")!;
    expect(tileState(b01)).toBe("degraded");
    expect(b01.heapUsed).toBe(400);
    expect(b01.threads).toEqual({ running: 2, sleeping: 1, waitingLock: 0, finished: 3, failed: 0, killed: 0 });
    expect(b01.anomalies.size).toBe(1);
    const b02 = tiles.get("b02")!;
    expect(tileState(b02)).toBe("offline");
    expect(b02.reason).toBe("refused");
    expect(b02.labels).toEqual({ lab: "a" });
    expect(b02.threads).toBeNull();
  });

  it("shows a quarantined board as quarantined while it is reachable, offline when it is not", () => {
    const q = create(QuarantineSchema, { reason: "3 runs" });
    const tiles = initialTiles(
      [
        create(BoardSchema, { name: "b01", state: BoardState.ONLINE, quarantine: q }),
        create(BoardSchema, { name: "b02", state: BoardState.OFFLINE, quarantine: q }),
      ],
      [],
    );
    expect(tileState(tiles.get("b01")!)).toBe("quarantined");
    expect(tileState(tiles.get("b02")!)).toBe("offline");
  });
});

describe("foldHealth", () => {
  it("takes counts, heap and CPU from summary snapshots", () => {
    const tiles = foldHealth(lab(), [snapshot("b02", { used: 600, total: 1200, cpu: 40, running: 5 })]);
    const b02 = tiles.get("b02")!;
    expect(b02.heapUsed).toBe(600);
    expect(b02.heapTotal).toBe(1200);
    expect(b02.cpuPercent).toBe(40);
    expect(b02.threads?.running).toBe(5);
  });

  it("replaces only the tiles a message touched and keeps the map when nothing changed", () => {
    const before = lab();
    const after = foldHealth(before, [snapshot("b02")]);
    expect(after).not.toBe(before);
    expect(after.get("b01")).toBe(before.get("b01"));
    expect(after.get("b02")).not.toBe(before.get("b02"));
    const same = foldHealth(after, [stateUpdate("b01", BoardState.ONLINE), eventUpdate("b01", create(EventSchema, { kind: EventKind.RUN_ENDED }))]);
    expect(same).toBe(after);
  });

  it("follows state changes in order", () => {
    const tiles = foldHealth(lab(), [stateUpdate("b01", BoardState.OFFLINE), stateUpdate("b01", BoardState.ONLINE), stateUpdate("b02", BoardState.OFFLINE)]);
    expect(tileState(tiles.get("b01")!)).toBe("online");
    expect(tileState(tiles.get("b02")!)).toBe("offline");
  });

  it("counts an anomaly once while it is raised and drops it when cleared", () => {
    let tiles = foldHealth(lab(), [
      eventUpdate("b01", stackHigh("b01", 7, Severity.WARNING)),
      eventUpdate("b01", stackHigh("b01", 7, Severity.WARNING)),
      eventUpdate("b01", stackHigh("b01", 8, Severity.WARNING)),
      eventUpdate(
        "b01",
        create(EventSchema, {
          kind: EventKind.BOARD_EVENT,
          severity: Severity.ERROR,
          threadId: 3,
          message: "deadlock",
          boardEvent: create(BoardEventSchema, { kind: BoardEventKind.DEADLOCK, cycleThreadIds: [3, 4] }),
        }),
      ),
    ]);
    expect(tiles.get("b01")!.anomalies.size).toBe(3);
    tiles = foldHealth(tiles, [eventUpdate("b01", stackHigh("b01", 7, Severity.INFO, "cleared"))]);
    expect([...tiles.get("b01")!.anomalies.keys()].sort()).toEqual(["deadlock:3", "stack_high:8"]);
  });

  it("ignores events that are not anomalies (a killed thread, a state change)", () => {
    const before = lab();
    const after = foldHealth(before, [
      eventUpdate("b01", create(EventSchema, { kind: EventKind.BOARD_EVENT, severity: Severity.INFO, boardEvent: { kind: BoardEventKind.THREAD_KILLED } })),
      eventUpdate("b01", create(EventSchema, { kind: EventKind.BOARD_STATE, severity: Severity.ERROR, message: "offline" })),
    ]);
    expect(after).toBe(before);
  });

  it("forgets thread anomalies, not board-wide ones, when a board restarts", () => {
    let tiles = foldHealth(lab(), [
      snapshot("b01", { uptimeUs: 9_000_000n }),
      eventUpdate("b01", stackHigh("b01", 7, Severity.WARNING)),
      eventUpdate("b01", create(EventSchema, { kind: EventKind.HEAP_LOW, severity: Severity.WARNING, message: "heap low" })),
    ]);
    expect(tiles.get("b01")!.anomalies.size).toBe(2);
    tiles = foldHealth(tiles, [snapshot("b01", { uptimeUs: 1_000n })]);
    expect([...tiles.get("b01")!.anomalies.keys()]).toEqual(["heap_low:0"]);
  });

  it("adds a tile for a board that joined the lab meanwhile", () => {
    const tiles = foldHealth(lab(), [snapshot("b03")]);
    expect(tileState(tiles.get("b03")!)).toBe("online");
  });
});

describe("applyBoard", () => {
  it("takes a board's new quarantine and labels", () => {
    const tiles = applyBoard(lab(), create(BoardSchema, { name: "b01", state: BoardState.ONLINE, labels: { lab: "z" }, quarantine: {} }));
    expect(tileState(tiles.get("b01")!)).toBe("quarantined");
    expect(tiles.get("b01")!.labels).toEqual({ lab: "z" });
  });
});

describe("heatClass and stateCounts", () => {
  it("colours by state, or by a tenth of CPU or heap for reachable boards", () => {
    const tiles = foldHealth(lab(), [snapshot("b01", { cpu: 73, used: 900, total: 1000 }), stateUpdate("b02", BoardState.OFFLINE)]);
    expect(heatClass(tiles.get("b01")!, "state")).toBe("state-online");
    expect(heatClass(tiles.get("b01")!, "cpu")).toBe("heat-7");
    expect(heatClass(tiles.get("b01")!, "heap")).toBe("heat-9");
    expect(heatClass(tiles.get("b02")!, "cpu")).toBe("state-offline");
    expect(stateCounts(tiles.values())).toEqual({ online: 1, offline: 1, degraded: 0, quarantined: 0, unknown: 0 });
  });
});
