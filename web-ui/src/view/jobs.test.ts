import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { RunCountsSchema, RunSchema, RunState } from "../gen/threadfleet/fleet/v1/fleet_pb";
import { countsText, isActive, parseRunId, progress, runDurationMs, runStateName } from "./jobs";

describe("run states", () => {
  it("names them and knows which can still change", () => {
    expect(runStateName(RunState.CANCELLED)).toBe("cancelled");
    expect(isActive(RunState.QUEUED)).toBe(true);
    expect(isActive(RunState.RUNNING)).toBe(true);
    expect(isActive(RunState.PASSED)).toBe(false);
  });
});

describe("countsText", () => {
  it("lists only the outcomes that occurred, and what is still to go", () => {
    expect(countsText(create(RunCountsSchema, { boards: 4, passed: 3, failed: 1, flaky: 1 }))).toBe(
      "4 boards: 3 passed, 1 failed (1 flaky)",
    );
    expect(countsText(create(RunCountsSchema, { boards: 5, passed: 1, error: 1 }))).toBe(
      "5 boards: 1 passed, 1 error, 3 to go",
    );
    expect(countsText(undefined)).toBe("no boards");
  });
});

describe("progress", () => {
  it("counts ended boards from the results when the run has them", () => {
    const run = create(RunSchema, {
      state: RunState.RUNNING,
      results: [{ state: RunState.PASSED }, { state: RunState.RUNNING }, { state: RunState.FAILED }],
      counts: { boards: 3 },
    });
    expect(progress(run)).toEqual({ ended: 2, total: 3 });
  });
  it("falls back to the counts of a listed run", () => {
    const run = create(RunSchema, { counts: { boards: 4, passed: 2, skipped: 1 } });
    expect(progress(run)).toEqual({ ended: 3, total: 4 });
  });
});

describe("runDurationMs", () => {
  it("is end minus start, or now minus start while running", () => {
    expect(runDurationMs(1000, 4000, 9000)).toBe(3000);
    expect(runDurationMs(1000, null, 9000)).toBe(8000);
    expect(runDurationMs(null, null, 9000)).toBeNull();
  });
});

describe("parseRunId", () => {
  it("takes a positive decimal id and refuses anything else", () => {
    expect(parseRunId("17")).toBe(17n);
    expect(parseRunId("0")).toBeNull();
    expect(parseRunId("-3")).toBeNull();
    expect(parseRunId("1e3")).toBeNull();
    expect(parseRunId("99999999999999999999")).toBeNull();
  });
});
