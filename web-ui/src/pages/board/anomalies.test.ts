import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { EventKind as BoardEventKind, EventSchema as BoardEventSchema } from "../../gen/threadfleet/board/v1/board_pb";
import { EventKind, EventSchema, Severity } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import { foldEvent } from "./anomalies";

const stackHigh = (severity: Severity, threadId = 7) =>
  create(EventSchema, { kind: EventKind.STACK_HIGH, severity, threadId, message: `thread ${threadId} stack 85 %` });

describe("foldEvent", () => {
  it("adds a raised anomaly newest first and once per kind and thread", () => {
    let open = foldEvent([], stackHigh(Severity.WARNING, 7));
    open = foldEvent(open, stackHigh(Severity.WARNING, 8));
    open = foldEvent(open, stackHigh(Severity.WARNING, 7));
    expect(open.map((a) => a.key)).toEqual(["stack_high/7", "stack_high/8"]);
  });

  it("removes it when fleetd clears it", () => {
    const open = foldEvent(foldEvent([], stackHigh(Severity.WARNING, 7)), stackHigh(Severity.INFO, 7));
    expect(open).toEqual([]);
  });

  it("names a relayed deadlock by the board's kind", () => {
    const deadlock = create(EventSchema, {
      kind: EventKind.BOARD_EVENT,
      severity: Severity.ERROR,
      boardEvent: create(BoardEventSchema, { kind: BoardEventKind.DEADLOCK, cycleThreadIds: [3, 4] }),
      board: "b01",
      message: "board b01: deadlock: 3 -> 4 -> 3",
    });
    const [a] = foldEvent([], deadlock);
    expect(a.kind).toBe("deadlock");
    expect(a.message).toBe("deadlock: 3 -> 4 -> 3");
  });

  it("ignores information, run endings and state changes", () => {
    const started = create(EventSchema, {
      kind: EventKind.BOARD_EVENT,
      severity: Severity.INFO,
      boardEvent: create(BoardEventSchema, { kind: BoardEventKind.THREAD_STARTED }),
    });
    const offline = create(EventSchema, { kind: EventKind.BOARD_STATE, severity: Severity.ERROR });
    const open = foldEvent([], stackHigh(Severity.WARNING));
    expect(foldEvent(open, started)).toBe(open);
    expect(foldEvent([], offline)).toEqual([]);
  });
});
