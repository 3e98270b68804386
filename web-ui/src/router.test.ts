import { describe, expect, it } from "vitest";
import { match } from "./router";

describe("match", () => {
  it("takes the params of a matching path, decoded", () => {
    expect(match("/boards/:name", "/boards/b%2001")).toEqual({ name: "b 01" });
  });
  it("refuses other paths, empty params and bad escapes", () => {
    expect(match("/boards/:name", "/boards")).toBeNull();
    expect(match("/boards/:name", "/boards/")).toBeNull();
    expect(match("/boards/:name", "/jobs/x")).toBeNull();
    expect(match("/boards/:name", "/boards/%E0%A4%A")).toBeNull();
  });
});
