// The events page's logic: naming an event's kind the way the rest of the
// dashboard does, the bounded newest-first list live events are merged
// into, the Board / Kind / Severity filters, and finding where the stored
// events end (ListEvents pages only forwards from a cursor).
import { EventKind, Severity, type Event } from "../gen/threadfleet/fleet/v1/fleet_pb";
import { EventKind as BoardEventKind } from "../gen/threadfleet/board/v1/board_pb";

// A board event's own kind ("deadlock", "thread_failed"), else fleetd's
// ("stack_high", "board_state"): the EventKind without prefix, lowercased,
// as ui-contract.md's data-kind.
export function eventKindName(e: Event): string {
  if (e.kind === EventKind.BOARD_EVENT && e.boardEvent) {
    return (BoardEventKind[e.boardEvent.kind] ?? "board_event").toLowerCase();
  }
  return (EventKind[e.kind] ?? "unspecified").toLowerCase();
}

export type SeverityName = "info" | "warning" | "error" | "unspecified";

export function severityName(s: Severity): SeverityName {
  switch (s) {
    case Severity.INFO:
      return "info";
    case Severity.WARNING:
      return "warning";
    case Severity.ERROR:
      return "error";
    default:
      return "unspecified";
  }
}

// Every kind an event can have, for the Kind filter: board event kinds and
// fleetd's own, sorted.
export const ALL_KINDS: readonly string[] = [
  ...Object.entries(BoardEventKind)
    .filter(([name, v]) => typeof v === "number" && v !== 0 && Number.isNaN(Number(name)))
    .map(([name]) => name.toLowerCase()),
  ...Object.entries(EventKind)
    .filter(([name, v]) => typeof v === "number" && v !== 0 && v !== EventKind.BOARD_EVENT && Number.isNaN(Number(name)))
    .map(([name]) => name.toLowerCase()),
].sort();

// Merges newly arrived events (any order) into a newest-first list, without
// duplicates (a replay after a reconnect may resend some), keeping at most
// `cap`. Returns `list` itself when nothing new came.
export function mergeEvents(list: readonly Event[], incoming: readonly Event[], cap: number): readonly Event[] {
  const known = new Set(list.map((e) => e.id));
  const fresh = incoming.filter((e) => {
    if (known.has(e.id)) return false;
    known.add(e.id);
    return true;
  });
  if (fresh.length === 0) return list;
  const merged = [...fresh, ...list].sort((a, b) => (a.id > b.id ? -1 : a.id < b.id ? 1 : 0));
  return merged.length > cap ? merged.slice(0, cap) : merged;
}

export interface EventFilter {
  // "" means any; board "-" means fleet-wide events (no board).
  board: string;
  kind: string;
  severity: "" | SeverityName;
}

export const FLEET_WIDE = "-";

export function matchesFilter(e: Event, f: EventFilter): boolean {
  if (f.board !== "" && (f.board === FLEET_WIDE ? e.board !== "" : e.board !== f.board)) return false;
  if (f.kind !== "" && eventKindName(e) !== f.kind) return false;
  if (f.severity !== "" && severityName(e.severity) !== f.severity) return false;
  return true;
}

export function filterEvents(list: readonly Event[], f: EventFilter): readonly Event[] {
  if (f.board === "" && f.kind === "" && f.severity === "") return list;
  return list.filter((e) => matchesFilter(e, f));
}

// The largest stored event id, found with `firstAfter(id)` (the id of the
// first stored event after `id`, or null: ListEvents with limit 1) by
// galloping up from the oldest event and then bisecting: about 2·log2(n)
// calls. 0n when no event is stored. Ids increase; gaps are fine.
export async function findNewestEventId(firstAfter: (id: bigint) => Promise<bigint | null>): Promise<bigint> {
  const first = await firstAfter(0n);
  if (first === null) return 0n;
  // Invariant: `lo` is a stored id and no stored id is above `hi`.
  let lo = first;
  let step = 256n;
  let hi: bigint;
  for (;;) {
    const next = await firstAfter(lo + step);
    if (next === null) {
      hi = lo + step;
      break;
    }
    lo = next;
    step *= 2n;
  }
  while (lo < hi) {
    const mid = (lo + hi + 1n) / 2n;
    const next = await firstAfter(mid - 1n);
    if (next === null) hi = mid - 1n;
    else lo = next;
  }
  return lo;
}
