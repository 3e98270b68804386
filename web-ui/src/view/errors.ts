// What a failed call means for the person looking at the page: one sentence
// naming the problem (fleetd's own message kept), never a stack trace.
import { Code, ConnectError } from "@connectrpc/connect";

export function describeError(e: unknown, what = "fleetd"): string {
  const err = ConnectError.from(e);
  switch (err.code) {
    case Code.Unauthenticated:
      return "fleetd does not know this token";
    case Code.PermissionDenied:
      return `Not allowed: ${err.rawMessage}`;
    case Code.Unavailable:
      return `${what} is unreachable (${err.rawMessage || "no answer"})`;
    case Code.Unknown:
      // fetch() fails with a TypeError when nothing answers (fleetd down,
      // network gone): connect-web reports it as unknown.
      if (err.cause instanceof TypeError) return `${what} is unreachable (${err.rawMessage || "no answer"})`;
      return err.rawMessage || "unknown error";
    case Code.DeadlineExceeded:
      return `${what} did not answer in time`;
    default:
      return err.rawMessage || `${Code[err.code]}`;
  }
}
