// Live data from server streams that survive fleetd restarts and network
// blips: a stream that ends or fails is opened again after a backoff
// (0.5 s doubling to 5 s, reset once a message arrives), and `connection`
// says whether every open stream is currently live, for the header's badge.
import { signal } from "@preact/signals";
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";

export type ConnectionState = "live" | "reconnecting";
export const connection = signal<ConnectionState>("live");

const failing = new Set<object>();
function mark(stream: object, ok: boolean): void {
  if (ok) failing.delete(stream);
  else failing.add(stream);
  connection.value = failing.size === 0 ? "live" : "reconnecting";
}

export interface LiveOptions {
  // Called when the stream fails with an error that retrying cannot fix
  // (unauthenticated, permission denied, not found, invalid argument); the
  // stream then stops.
  onFatal?: (error: ConnectError) => void;
  // Called before each (re)open, e.g. to fetch a backfill first.
  onOpen?: () => void | Promise<void>;
  // Called when the stream ended without an error; true means it is done for
  // good (e.g. the output of a program that has ended) and stops it without
  // counting as a reconnect.
  finished?: () => boolean;
}

const FATAL = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.NotFound, Code.InvalidArgument]);
const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 5000;

// Runs `open` (a Connect server-streaming call; pass it the call options
// given, which carry the abort signal and mark the stream live when fleetd's
// response head arrives) until the returned stop() is called, handing each
// message to `onMessage`.
//
//   const stop = live((opts) => fleet.watchEvents({}, opts), (m) => events.value = [...]);
export function live<T>(
  open: (options: CallOptions) => AsyncIterable<T>,
  onMessage: (message: T) => void,
  options: LiveOptions = {},
): () => void {
  const controller = new AbortController();
  const me = {};
  let backoff = MIN_BACKOFF_MS;
  (async () => {
    while (!controller.signal.aborted) {
      try {
        await options.onOpen?.();
        const callOptions: CallOptions = { signal: controller.signal, onHeader: () => mark(me, true) };
        for await (const message of open(callOptions)) {
          mark(me, true);
          backoff = MIN_BACKOFF_MS;
          onMessage(message);
        }
        if (controller.signal.aborted) break;
        if (options.finished?.()) break;
      } catch (e) {
        if (controller.signal.aborted) break;
        const error = ConnectError.from(e);
        if (FATAL.has(error.code)) {
          mark(me, true);
          options.onFatal?.(error);
          return;
        }
      }
      mark(me, false);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
    mark(me, true);
  })();
  return () => controller.abort();
}
