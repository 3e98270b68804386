import { describe, expect, it } from "vitest";
import { afterSignIn } from "./session";

describe("afterSignIn", () => {
  it("returns to the page the user wanted", () => {
    expect(afterSignIn({ afterSignIn: "/boards/b01" })).toBe("/boards/b01");
    expect(afterSignIn({ afterSignIn: "/?labels=lab%3Da" })).toBe("/?labels=lab%3Da");
  });
  it("goes to the lab for anything that is not a path of this dashboard", () => {
    expect(afterSignIn(null)).toBe("/");
    expect(afterSignIn({})).toBe("/");
    expect(afterSignIn({ afterSignIn: 7 })).toBe("/");
    expect(afterSignIn({ afterSignIn: "https://evil.example" })).toBe("/");
    expect(afterSignIn({ afterSignIn: "//evil.example" })).toBe("/");
    expect(afterSignIn({ afterSignIn: "/\\evil.example" })).toBe("/");
    expect(afterSignIn({ afterSignIn: "/signin" })).toBe("/");
  });
});
