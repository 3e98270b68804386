// Events: the last 200 stored events, then every new one live, newest
// first (at most 1000 kept), filtered by Board / Kind / Severity.
import { Component } from "preact";
import { useEffect, useState } from "preact/hooks";
import { useSignal } from "@preact/signals";
import { fleet } from "../api/fleet";
import type { Event } from "../gen/threadfleet/fleet/v1/fleet_pb";
import { live } from "../live";
import { describeError } from "../view/errors";
import {
  ALL_KINDS,
  FLEET_WIDE,
  eventKindName,
  filterEvents,
  findNewestEventId,
  mergeEvents,
  severityName,
  type EventFilter,
} from "../view/events";
import { formatTime, toMs } from "../view/format";
import "./events.css";

const BACKFILL = 200;
const KEPT = 1000;
// A busy lab stores many events a second: fold them in batches.
const FOLD_INTERVAL_MS = 250;

function filterFromUrl(): EventFilter {
  const q = new URLSearchParams(window.location.search);
  const severity = q.get("severity") ?? "";
  return {
    board: q.get("board") ?? "",
    kind: q.get("kind") ?? "",
    severity: severity === "info" || severity === "warning" || severity === "error" ? severity : "",
  };
}

function filterToUrl(f: EventFilter): void {
  const q = new URLSearchParams();
  if (f.board) q.set("board", f.board);
  if (f.kind) q.set("kind", f.kind);
  if (f.severity) q.set("severity", f.severity);
  const s = q.toString();
  window.history.replaceState(null, "", s ? `/events?${s}` : "/events");
}

export function EventsPage() {
  const events = useSignal<readonly Event[] | null>(null);
  const error = useSignal<string | null>(null);
  const boards = useSignal<string[]>([]);
  const [filter, setFilter] = useState<EventFilter>(filterFromUrl);
  document.title = "Events · threadfleet";

  useEffect(() => {
    let cursor = 0n;
    let pending: Event[] = [];
    let frame = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const flush = () => {
      frame = 0;
      timer = undefined;
      if (stopped || pending.length === 0) return;
      events.value = mergeEvents(events.value ?? [], pending, KEPT);
      pending = [];
    };
    const stop = live(
      // Resumes after the newest event seen, so a reconnect misses none.
      (options) => fleet.watchEvents({ afterId: cursor }, options),
      (m) => {
        if (!m.event) return;
        if (m.event.id > cursor) cursor = m.event.id;
        pending.push(m.event);
        if (pending.length >= KEPT) flush();
        else if (timer === undefined && frame === 0) {
          timer = setTimeout(() => (frame = requestAnimationFrame(flush)), FOLD_INTERVAL_MS);
        }
      },
      {
        onOpen: async () => {
          if (events.value !== null) return; // backfilled already
          try {
            const newest = await findNewestEventId(async (afterId) => {
              const r = await fleet.listEvents({ afterId, limit: 1 });
              return r.events[0]?.id ?? null;
            });
            const from = newest > BigInt(BACKFILL) ? newest - BigInt(BACKFILL) : 0n;
            const r = newest === 0n ? null : await fleet.listEvents({ afterId: from, limit: BACKFILL });
            if (stopped) return;
            const got = r?.events ?? [];
            for (const e of got) if (e.id > cursor) cursor = e.id;
            events.value = mergeEvents([], got, KEPT);
            error.value = null;
          } catch (e) {
            if (!stopped) error.value = describeError(e);
            throw e;
          }
        },
        onFatal: (e) => (error.value = describeError(e)),
      },
    );
    fleet
      .listBoards({})
      .then((r) => {
        if (!stopped) boards.value = r.boards.map((b) => b.name);
      })
      .catch(() => {
        // The Board filter then offers the boards seen in events only.
      });
    return () => {
      stopped = true;
      clearTimeout(timer);
      cancelAnimationFrame(frame);
      stop();
    };
  }, []);

  const update = (patch: Partial<EventFilter>) => {
    const next = { ...filter, ...patch };
    setFilter(next);
    filterToUrl(next);
  };
  const all = events.value;
  const boardNames = [...new Set([...boards.value, ...(all ?? []).map((e) => e.board).filter((b) => b !== "")])].sort();
  const shown = all ? filterEvents(all, filter) : [];
  const filtered = filter.board !== "" || filter.kind !== "" || filter.severity !== "";

  return (
    <section class="events-page" aria-busy={all === null && !error.value ? "true" : "false"}>
      <div class="toolbar">
        <h1>Events</h1>
        <div class="field">
          <label for="ev-board">Board</label>
          <select id="ev-board" value={filter.board} onChange={(e) => update({ board: (e.target as HTMLSelectElement).value })}>
            <option value="">All boards</option>
            <option value={FLEET_WIDE}>Fleet-wide (no board)</option>
            {boardNames.map((b) => (
              <option key={b} value={b}>
                {b}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="ev-kind">Kind</label>
          <select id="ev-kind" value={filter.kind} onChange={(e) => update({ kind: (e.target as HTMLSelectElement).value })}>
            <option value="">All kinds</option>
            {ALL_KINDS.map((k) => (
              <option key={k} value={k}>
                {k.replace(/_/g, " ")}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="ev-severity">Severity</label>
          <select
            id="ev-severity"
            value={filter.severity}
            onChange={(e) => update({ severity: (e.target as HTMLSelectElement).value as EventFilter["severity"] })}
          >
            <option value="">All severities</option>
            <option value="info">info</option>
            <option value="warning">warning</option>
            <option value="error">error</option>
          </select>
        </div>
        {filtered && (
          <button type="button" onClick={() => update({ board: "", kind: "", severity: "" })}>
            Clear filters
          </button>
        )}
      </div>
      {error.value && (
        <p role="alert" class="alert">
          {all === null ? "Cannot load events: " : ""}
          {error.value}
          {all === null ? ". Retrying by itself." : ""}
        </p>
      )}
      {all !== null && (
        <p class="muted count" role="status">
          {filtered ? `${shown.length} of ` : ""}
          {all.length} event{all.length === 1 ? "" : "s"}, newest first, live (the last {KEPT} are kept)
        </p>
      )}
      <div class="table-scroll">
        <table class="data events" data-testid="events">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Severity</th>
              <th scope="col">Board</th>
              <th scope="col">Kind</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {all === null ? (
              <tr>
                <td colSpan={5} class="muted loading-text">
                  Loading events
                </td>
              </tr>
            ) : shown.length === 0 ? (
              <tr>
                <td colSpan={5} class="empty-cell">
                  {filtered
                    ? "No event matches these filters; clear them to see every event."
                    : "No events yet: board state changes, failed threads and anomalies appear here as they happen."}
                </td>
              </tr>
            ) : (
              shown.map((e) => <EventRow key={String(e.id)} event={e} />)
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}

// One event's row; events never change, so a kept row never re-renders.
class EventRow extends Component<{ event: Event }> {
  shouldComponentUpdate(next: { event: Event }) {
    return next.event !== this.props.event;
  }

  render({ event: e }: { event: Event }) {
    const kind = eventKindName(e);
    const severity = severityName(e.severity);
    return (
      <tr data-kind={kind} data-board={e.board} data-severity={severity} data-event-id={String(e.id)}>
        <td class="nowrap num">{formatTime(toMs(e.time))}</td>
        <td>
          <span class={`badge state-${severity}`}>{severity}</span>
        </td>
        <td class="nowrap">
          {e.board ? <a href={`/boards/${encodeURIComponent(e.board)}`}>{e.board}</a> : <span class="muted">fleet</span>}
        </td>
        <td class="nowrap">{kind.replace(/_/g, " ")}</td>
        <td class="message">{e.message}</td>
      </tr>
    );
  }
}
