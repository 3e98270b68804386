import { describe, expect, it } from "vitest";
import { matchesSelector, parseLabelSelector } from "./labels";

describe("parseLabelSelector", () => {
  it("accepts an empty selector as every board", () => {
    expect(parseLabelSelector("  ")).toEqual({ ok: true, terms: [] });
  });
  it("parses equal and not-equal terms, ignoring spaces around them", () => {
    expect(parseLabelSelector("lab=a, role!=spare")).toEqual({
      ok: true,
      terms: [
        { key: "lab", value: "a", equal: true },
        { key: "role", value: "spare", equal: false },
      ],
    });
  });
  it("names the term and what is wrong with it", () => {
    expect(parseLabelSelector("lab=a,")).toEqual({
      ok: false,
      error: "term 2 is empty; write key=value or key!=value, separated by commas",
    });
    expect(parseLabelSelector("lab")).toMatchObject({ ok: false, error: expect.stringContaining('term 1 ("lab") has no "="') });
    expect(parseLabelSelector("=a")).toMatchObject({ ok: false, error: expect.stringContaining("empty key") });
    expect(parseLabelSelector("lab!=")).toMatchObject({ ok: false, error: expect.stringContaining("empty value") });
    expect(parseLabelSelector("lab=a b")).toMatchObject({
      ok: false,
      error: expect.stringContaining(`value "a b" may only contain letters`),
    });
  });
  it("names the limit of a label that is too long", () => {
    const r = parseLabelSelector(`lab=${"x".repeat(64)}`);
    expect(r).toMatchObject({ ok: false, error: expect.stringContaining("longer than 63 characters") });
  });
});

describe("matchesSelector", () => {
  const p = (s: string) => {
    const r = parseLabelSelector(s);
    if (!r.ok) throw new Error(r.error);
    return r.terms;
  };
  it("ANDs its terms", () => {
    expect(matchesSelector(p("lab=a,role=x"), { lab: "a", role: "x" })).toBe(true);
    expect(matchesSelector(p("lab=a,role=x"), { lab: "a", role: "y" })).toBe(false);
  });
  it("lets a board without the key match key!=value", () => {
    expect(matchesSelector(p("role!=spare"), { lab: "a" })).toBe(true);
    expect(matchesSelector(p("role!=spare"), { role: "spare" })).toBe(false);
  });
});
