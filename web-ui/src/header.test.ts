import { describe, expect, it } from "vitest";
import { sectionOf } from "./header";

describe("sectionOf", () => {
  it("marks a board page as part of the lab and a run as part of jobs", () => {
    expect(sectionOf("/")).toBe("lab");
    expect(sectionOf("/boards/b01")).toBe("lab");
    expect(sectionOf("/events")).toBe("events");
    expect(sectionOf("/jobs")).toBe("jobs");
    expect(sectionOf("/jobs/smoke")).toBe("jobs");
    expect(sectionOf("/runs/17")).toBe("jobs");
  });
  it("marks nothing for a page outside the three sections", () => {
    expect(sectionOf("/nowhere")).toBeNull();
    expect(sectionOf("/eventsx")).toBeNull();
  });
});
