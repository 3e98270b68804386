import { describe, expect, it } from "vitest";
import { enumLabel, formatBytes, formatDuration, formatPercent, formatRelative, fraction } from "./format";

describe("formatBytes", () => {
  it("keeps bytes whole and gives one decimal below 100 of a larger unit", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1024)).toBe("1.0 KiB");
    expect(formatBytes(12_595)).toBe("12.3 KiB");
    expect(formatBytes(140 * 1024 * 1024)).toBe("140 MiB");
    expect(formatBytes(5n * 1024n ** 3n)).toBe("5.0 GiB");
  });
  it("shows a dash for nonsense", () => {
    expect(formatBytes(-1)).toBe("–");
    expect(formatBytes(Number.NaN)).toBe("–");
  });
});

describe("formatDuration", () => {
  it("uses at most two units", () => {
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(12_400)).toBe("12.4 s");
    expect(formatDuration(245_000)).toBe("4 m 05 s");
    expect(formatDuration(3 * 3600_000 + 2 * 60_000 + 59_000)).toBe("3 h 02 m");
    expect(formatDuration(2 * 86400_000 + 5 * 3600_000)).toBe("2 d 05 h");
  });
  it("shows a dash for negative durations", () => {
    expect(formatDuration(-5)).toBe("–");
  });
});

describe("formatPercent", () => {
  it("gives one decimal below 10 and none above", () => {
    expect(formatPercent(3.54)).toBe("3.5 %");
    expect(formatPercent(42.4)).toBe("42 %");
    expect(formatPercent(150)).toBe("150 %");
  });
  it("shows a dash when unknown", () => {
    expect(formatPercent(null)).toBe("–");
    expect(formatPercent(undefined)).toBe("–");
  });
});

describe("fraction", () => {
  it("is clamped to [0, 1] and 0 for an unknown total", () => {
    expect(fraction(50, 200)).toBe(0.25);
    expect(fraction(300, 200)).toBe(1);
    expect(fraction(5, 0)).toBe(0);
  });
});

describe("formatRelative", () => {
  const now = 1_000_000_000;
  it("counts back in the largest whole unit", () => {
    expect(formatRelative(now - 2_000, now)).toBe("just now");
    expect(formatRelative(now - 42_000, now)).toBe("42 s ago");
    expect(formatRelative(now - 5 * 60_000, now)).toBe("5 m ago");
    expect(formatRelative(now - 3 * 3600_000, now)).toBe("3 h ago");
    expect(formatRelative(now - 2 * 86400_000, now)).toBe("2 d ago");
  });
  it("treats a time ahead of the clock as just now", () => {
    expect(formatRelative(now + 60_000, now)).toBe("just now");
  });
});

describe("enumLabel", () => {
  it("lowercases and spaces an enum name", () => {
    expect(enumLabel("WAITING_LOCK")).toBe("waiting lock");
    expect(enumLabel(undefined)).toBe("unknown");
  });
});
