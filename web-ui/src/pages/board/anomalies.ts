// The board's open anomalies: GetHealth's list (what fleetd's rules hold open
// now) with live events folded in between two fetches, so a deadlock shows
// the moment fleetd relays it and goes once fleetd clears it.
import { EventKind, Severity, type Event } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import { anomalyKindName } from "./format";

export interface Anomaly {
  key: string; // kind and thread: one occurrence, as fleetd identifies it
  kind: string; // data-kind, e.g. "deadlock"
  severity: Severity;
  threadId: number;
  message: string;
  event: Event;
}

function keyOf(kind: string, threadId: number): string {
  return `${kind}/${threadId}`;
}

// fleetd's messages start "board b01: "; the board page names the board
// already.
function withoutBoardPrefix(message: string, board: string): string {
  const prefix = `board ${board}: `;
  return board && message.startsWith(prefix) ? message.slice(prefix.length) : message;
}

export function anomalyFromEvent(event: Event): Anomaly {
  const kind = anomalyKindName(event);
  return {
    key: keyOf(kind, event.threadId),
    kind,
    severity: event.severity,
    threadId: event.threadId,
    message: withoutBoardPrefix(event.message, event.board),
    event,
  };
}

// Whether a live event raises an anomaly: warnings and errors, except a job
// run ending (not the board's condition) and state changes, which the
// header's badge already shows.
function raises(event: Event): boolean {
  return (
    event.severity >= Severity.WARNING && event.kind !== EventKind.RUN_ENDED && event.kind !== EventKind.BOARD_STATE
  );
}

// Folds one live event in: a raised anomaly is added (newest first, once per
// key); fleetd's clearing edge of the same kind and thread (an INFO event)
// removes it.
export function foldEvent(open: Anomaly[], event: Event): Anomaly[] {
  const anomaly = anomalyFromEvent(event);
  const rest = open.filter((a) => a.key !== anomaly.key);
  if (raises(event)) return [anomaly, ...rest];
  if (event.severity === Severity.INFO && rest.length !== open.length) return rest;
  return open;
}
