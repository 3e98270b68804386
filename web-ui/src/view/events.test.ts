import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { EventKind, EventSchema, Severity, type Event } from "../gen/threadfleet/fleet/v1/fleet_pb";
import { EventKind as BoardEventKind } from "../gen/threadfleet/board/v1/board_pb";
import { ALL_KINDS, eventKindName, filterEvents, findNewestEventId, mergeEvents, severityName } from "./events";

function ev(id: number, o: Partial<{ board: string; kind: EventKind; severity: Severity; boardKind: BoardEventKind }> = {}): Event {
  return create(EventSchema, {
    id: BigInt(id),
    board: o.board ?? "b01",
    kind: o.kind ?? (o.boardKind ? EventKind.BOARD_EVENT : EventKind.BOARD_STATE),
    severity: o.severity ?? Severity.INFO,
    boardEvent: o.boardKind ? { kind: o.boardKind } : undefined,
  });
}

describe("eventKindName", () => {
  it("names a board event by its own kind and others by fleetd's", () => {
    expect(eventKindName(ev(1, { boardKind: BoardEventKind.DEADLOCK }))).toBe("deadlock");
    expect(eventKindName(ev(2, { kind: EventKind.STACK_HIGH }))).toBe("stack_high");
    expect(eventKindName(ev(3, { kind: EventKind.NATIVE_STUCK }))).toBe("native_stuck");
  });
  it("lists every kind for the filter, without the unspecified and the board_event wrapper", () => {
    expect(ALL_KINDS).toContain("deadlock");
    expect(ALL_KINDS).toContain("run_ended");
    expect(ALL_KINDS).not.toContain("unspecified");
    expect(ALL_KINDS).not.toContain("board_event");
  });
  it("names severities", () => {
    expect(severityName(Severity.ERROR)).toBe("error");
  });
});

describe("mergeEvents", () => {
  it("keeps the list newest first, drops replayed duplicates and stays bounded", () => {
    let list = mergeEvents([], [ev(1), ev(2)], 3);
    expect(list.map((e) => e.id)).toEqual([2n, 1n]);
    list = mergeEvents(list, [ev(2), ev(4), ev(3)], 3);
    expect(list.map((e) => e.id)).toEqual([4n, 3n, 2n]);
  });
  it("returns the same list when nothing new came", () => {
    const list = mergeEvents([], [ev(1)], 10);
    expect(mergeEvents(list, [ev(1)], 10)).toBe(list);
  });
});

describe("filterEvents", () => {
  const list = [
    ev(5, { board: "b02", boardKind: BoardEventKind.DEADLOCK, severity: Severity.ERROR }),
    ev(4, { board: "", kind: EventKind.RUN_ENDED }),
    ev(3, { board: "b01", kind: EventKind.STACK_HIGH, severity: Severity.WARNING }),
    ev(2, { board: "b02", kind: EventKind.STACK_HIGH, severity: Severity.WARNING }),
  ];
  const ids = (f: Parameters<typeof filterEvents>[1]) => filterEvents(list, f).map((e) => Number(e.id));
  it("filters by board, kind and severity together", () => {
    expect(ids({ board: "b02", kind: "", severity: "" })).toEqual([5, 2]);
    expect(ids({ board: "", kind: "stack_high", severity: "" })).toEqual([3, 2]);
    expect(ids({ board: "b02", kind: "stack_high", severity: "warning" })).toEqual([2]);
    expect(ids({ board: "", kind: "", severity: "error" })).toEqual([5]);
  });
  it("picks fleet-wide events with the '-' board", () => {
    expect(ids({ board: "-", kind: "", severity: "" })).toEqual([4]);
  });
  it("returns the list itself without a filter", () => {
    expect(filterEvents(list, { board: "", kind: "", severity: "" })).toBe(list);
  });
});

describe("findNewestEventId", () => {
  function store(ids: number[]) {
    const sorted = ids.map(BigInt).sort((a, b) => (a < b ? -1 : 1));
    let calls = 0;
    return {
      firstAfter: async (id: bigint) => {
        calls++;
        return sorted.find((x) => x > id) ?? null;
      },
      calls: () => calls,
    };
  }
  it("is 0 for an empty store", async () => {
    expect(await findNewestEventId(store([]).firstAfter)).toBe(0n);
  });
  it("finds the largest id with gaps and pruned old events, in about 2 log2(n) calls", async () => {
    const ids = Array.from({ length: 100_000 }, (_, i) => 5_000 + i).filter((id) => id % 7 !== 0);
    const s = store(ids);
    expect(await findNewestEventId(s.firstAfter)).toBe(104_999n);
    expect(s.calls()).toBeLessThanOrEqual(40);
  });
  it("finds a single event", async () => {
    expect(await findNewestEventId(store([42]).firstAfter)).toBe(42n);
  });
});
