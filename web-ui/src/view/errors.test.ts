import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { describeError } from "./errors";

describe("describeError", () => {
  it("says fleetd does not know the token when it is refused", () => {
    expect(describeError(new ConnectError("unknown token", Code.Unauthenticated))).toBe("fleetd does not know this token");
  });
  it("says fleetd is unreachable when nothing answers", () => {
    expect(describeError(new TypeError("Failed to fetch"))).toBe("fleetd is unreachable (Failed to fetch)");
    expect(describeError(new ConnectError("connection refused", Code.Unavailable))).toBe(
      "fleetd is unreachable (connection refused)",
    );
  });
  it("does not blame the network for an unknown error fleetd answered", () => {
    expect(describeError(new ConnectError("store broke", Code.Unknown))).toBe("store broke");
  });
  it("keeps fleetd's own message otherwise", () => {
    expect(describeError(new ConnectError("no board named \"b9\"", Code.NotFound))).toBe('no board named "b9"');
    expect(describeError(new ConnectError("operator needed", Code.PermissionDenied))).toBe("Not allowed: operator needed");
  });
});
