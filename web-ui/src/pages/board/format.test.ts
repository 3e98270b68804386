import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { ThreadState } from "../../gen/threadfleet/board/v1/board_pb";
import { EventKind as BoardEventKind, EventSchema as BoardEventSchema } from "../../gen/threadfleet/board/v1/board_pb";
import { BoardState, EventKind, EventSchema } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import {
  anomalyKindName,
  boardStateName,
  formatBytes,
  formatDurationUs,
  formatPercent,
  threadStateName,
} from "./format";

describe("formatBytes", () => {
  it("keeps small sizes exact and scales large ones to one decimal below 10", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(64 * 1024)).toBe("64 KiB");
    expect(formatBytes(3n * 1024n * 1024n)).toBe("3.0 MiB");
  });
});

describe("formatDurationUs", () => {
  it("names the two largest units", () => {
    expect(formatDurationUs(850)).toBe("850 µs");
    expect(formatDurationUs(12_000)).toBe("12 ms");
    expect(formatDurationUs(3_200_000)).toBe("3.2 s");
    expect(formatDurationUs(245_000_000n)).toBe("4 m 05 s");
    expect(formatDurationUs(7_620_000_000)).toBe("2 h 07 m");
    expect(formatDurationUs(273_600_000_000)).toBe("3 d 04 h");
  });
});

describe("formatPercent", () => {
  it("shows a dash when there is no measurement yet", () => {
    expect(formatPercent(null)).toBe("—");
    expect(formatPercent(2.345)).toBe("2.3 %");
    expect(formatPercent(99.6)).toBe("100 %");
  });
});

describe("state names", () => {
  it("match the contract's data-state values", () => {
    expect(threadStateName(ThreadState.WAITING_LOCK)).toBe("waiting_lock");
    expect(threadStateName(ThreadState.KILLED)).toBe("killed");
    expect(boardStateName(BoardState.ONLINE, false)).toBe("online");
    expect(boardStateName(BoardState.ONLINE, true)).toBe("quarantined");
    expect(boardStateName(undefined, false)).toBe("unknown");
  });

  it("names a relayed deadlock by the board's kind and fleet anomalies by theirs", () => {
    const deadlock = create(EventSchema, {
      kind: EventKind.BOARD_EVENT,
      boardEvent: create(BoardEventSchema, { kind: BoardEventKind.DEADLOCK }),
    });
    expect(anomalyKindName(deadlock)).toBe("deadlock");
    expect(anomalyKindName(create(EventSchema, { kind: EventKind.STACK_HIGH }))).toBe("stack_high");
    expect(anomalyKindName(create(EventSchema, { kind: EventKind.NATIVE_STUCK }))).toBe("native_stuck");
  });
});
