// The lab overview's state: one tile per board, built from ListBoards and
// GetHealth and then kept current by folding WatchHealth messages (summary
// snapshots, board events and anomalies, state changes) into it.
//
// Tiles are immutable: a fold replaces only the tiles a message touched and
// returns the same map when nothing changed, so a view can skip every
// untouched tile by identity.
import type { Board, BoardHealth, Event, WatchHealthResponse } from "../gen/threadfleet/fleet/v1/fleet_pb";
import { BoardState, EventKind, Severity } from "../gen/threadfleet/fleet/v1/fleet_pb";
import { EventKind as BoardEventKind, type HealthSnapshot } from "../gen/threadfleet/board/v1/board_pb";

// What a tile shows as its state (ui-contract.md: data-state).
export type TileState = "online" | "offline" | "degraded" | "quarantined" | "unknown";

export interface ThreadTally {
  running: number;
  sleeping: number;
  waitingLock: number;
  finished: number;
  failed: number;
  killed: number;
}

export interface BoardTile {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  // fleetd's link to the board.
  readonly link: BoardState;
  // Jobs took the board out of service.
  readonly quarantined: boolean;
  // Why the board is offline or degraded, as fleetd said when the tiles were
  // loaded; empty when not known.
  readonly reason: string;
  // From the latest snapshot; null until one arrived.
  readonly threads: ThreadTally | null;
  readonly heapUsed: number | null;
  readonly heapTotal: number | null;
  readonly cpuPercent: number | null;
  readonly uptimeUs: bigint | null;
  // Open anomalies by key (see anomalyKey), each with its message.
  readonly anomalies: ReadonlyMap<string, string>;
}

export type Tiles = ReadonlyMap<string, BoardTile>;

export function tileState(tile: BoardTile): TileState {
  switch (tile.link) {
    case BoardState.OFFLINE:
      return "offline";
    case BoardState.ONLINE:
      return tile.quarantined ? "quarantined" : "online";
    case BoardState.DEGRADED:
      return tile.quarantined ? "quarantined" : "degraded";
    default:
      return "unknown";
  }
}

function emptyTile(name: string): BoardTile {
  return {
    name,
    labels: {},
    link: BoardState.UNSPECIFIED,
    quarantined: false,
    reason: "",
    threads: null,
    heapUsed: null,
    heapTotal: null,
    cpuPercent: null,
    uptimeUs: null,
    anomalies: new Map(),
  };
}

// An anomaly occurrence's identity, as fleetd's rules key it (kind and
// thread; 0 for board-wide ones): a raised and its cleared event share it.
// null for events that are not anomalies (state changes, program ends...).
export function anomalyKey(e: Event): string | null {
  switch (e.kind) {
    case EventKind.STACK_HIGH:
      return `stack_high:${e.threadId}`;
    case EventKind.HEAP_LOW:
      return "heap_low:0";
    case EventKind.NATIVE_STUCK:
      return `native_stuck:${e.threadId}`;
    case EventKind.BOARD_STATE:
      // A state change names no thread; an unkillable thread does.
      return e.threadId !== 0 ? `thread_unkillable:${e.threadId}` : null;
    case EventKind.BOARD_EVENT:
      switch (e.boardEvent?.kind) {
        case BoardEventKind.THREAD_FAILED:
          return `thread_failed:${e.threadId}`;
        case BoardEventKind.STALL:
          return `stall:${e.threadId}`;
        case BoardEventKind.DEADLOCK:
          return `deadlock:${e.threadId}`;
        case BoardEventKind.THREAD_UNKILLABLE:
          return `thread_unkillable:${e.threadId}`;
        default:
          return null;
      }
    default:
      return null;
  }
}

function tally(snapshot: HealthSnapshot): ThreadTally | null {
  const c = snapshot.threadCounts;
  if (!c) return null;
  return {
    running: c.running,
    sleeping: c.sleeping,
    waitingLock: c.waitingLock,
    finished: c.finished,
    failed: c.failed,
    killed: c.killed,
  };
}

function withSnapshot(tile: BoardTile, snapshot: HealthSnapshot): BoardTile {
  let anomalies = tile.anomalies;
  // A board whose uptime went back restarted: its threads, and so their
  // anomalies, are gone (fleetd clears them too).
  if (tile.uptimeUs !== null && snapshot.uptimeUs < tile.uptimeUs) {
    anomalies = new Map([...anomalies].filter(([key]) => key.endsWith(":0")));
  }
  return {
    ...tile,
    // Only a connected board sends snapshots.
    link: tile.link === BoardState.UNSPECIFIED ? BoardState.ONLINE : tile.link,
    threads: tally(snapshot),
    heapUsed: snapshot.heap ? snapshot.heap.usedBytes : null,
    heapTotal: snapshot.heap ? snapshot.heap.totalBytes : null,
    cpuPercent: snapshot.cpuUsagePercent,
    uptimeUs: snapshot.uptimeUs,
    anomalies,
  };
}

function withEvent(tile: BoardTile, e: Event): BoardTile {
  const key = anomalyKey(e);
  if (key === null) return tile;
  const raised = e.severity >= Severity.WARNING;
  if (raised && tile.anomalies.get(key) === e.message) return tile;
  if (!raised && !tile.anomalies.has(key)) return tile;
  const anomalies = new Map(tile.anomalies);
  if (raised) anomalies.set(key, e.message);
  else anomalies.delete(key);
  return { ...tile, anomalies };
}

// The tiles of the boards ListBoards listed (sorted by name), with what
// GetHealth knows of each.
export function initialTiles(boards: readonly Board[], health: readonly BoardHealth[]): Tiles {
  const byName = new Map(health.map((h) => [h.board, h]));
  const tiles = new Map<string, BoardTile>();
  for (const b of [...boards].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))) {
    let tile = withBoard(emptyTile(b.name), b);
    const h = byName.get(b.name);
    if (h) {
      if (h.snapshot) tile = withSnapshot(tile, h.snapshot);
      tile = { ...tile, link: h.state };
      for (const a of h.anomalies) tile = withEvent(tile, a);
    }
    tiles.set(b.name, tile);
  }
  return tiles;
}

function withBoard(tile: BoardTile, b: Board): BoardTile {
  return {
    ...tile,
    labels: b.labels,
    quarantined: b.quarantine !== undefined,
    reason: b.stateReason,
    link: b.state !== BoardState.UNSPECIFIED ? b.state : tile.link,
  };
}

// A board's inventory record (e.g. from GetBoard after its quarantine
// changed) applied to its tile; a board not shown yet is added.
export function applyBoard(tiles: Tiles, b: Board): Tiles {
  const next = new Map(tiles);
  next.set(b.name, withBoard(tiles.get(b.name) ?? emptyTile(b.name), b));
  return next;
}

// Folds WatchHealth messages, in arrival order, into the tiles. A board not
// shown yet (added to the lab meanwhile) gets a tile.
export function foldHealth(tiles: Tiles, updates: readonly WatchHealthResponse[]): Tiles {
  let next: Map<string, BoardTile> | null = null;
  for (const u of updates) {
    const current = (next ?? tiles).get(u.board) ?? emptyTile(u.board);
    let tile = current;
    switch (u.update.case) {
      case "snapshot":
        tile = withSnapshot(current, u.update.value);
        break;
      case "event":
        tile = withEvent(current, u.update.value);
        break;
      case "state":
        tile = u.update.value === current.link ? current : { ...current, link: u.update.value, reason: "" };
        break;
      default:
        break;
    }
    if (tile === current && (next ?? tiles).has(u.board)) continue;
    next ??= new Map(tiles);
    next.set(u.board, tile);
  }
  return next ?? tiles;
}

// Whether a message says the board's quarantine changed (its direction is
// only in the message text: ask fleetd for the board again).
export function quarantineChanged(u: WatchHealthResponse): boolean {
  return u.update.case === "event" && u.update.value.kind === EventKind.BOARD_QUARANTINE;
}

export type HeatMetric = "state" | "cpu" | "heap";

// The CSS class of a heat map cell: the state's colour, or a tenth of the
// CPU (100 % = one core) or heap scale, "heat-0" to "heat-10"; offline and
// unknown boards show their state whatever the metric.
export function heatClass(tile: BoardTile, metric: HeatMetric): string {
  const state = tileState(tile);
  if (metric === "state" || state === "offline" || state === "unknown") return `state-${state}`;
  const value =
    metric === "cpu"
      ? (tile.cpuPercent ?? 0) / 100
      : tile.heapTotal && tile.heapUsed !== null
        ? tile.heapUsed / tile.heapTotal
        : 0;
  return `heat-${Math.round(Math.min(1, Math.max(0, value)) * 10)}`;
}

// How many tiles are in each state, for the overview's summary line.
export function stateCounts(tiles: Iterable<BoardTile>): Record<TileState, number> {
  const counts: Record<TileState, number> = { online: 0, offline: 0, degraded: 0, quarantined: 0, unknown: 0 };
  for (const t of tiles) counts[tileState(t)]++;
  return counts;
}
