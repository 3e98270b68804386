// The lab overview: a tile per board (state, threads by state, heap, CPU,
// anomalies, labels), a heat map when the lab is large, and a label filter.
// Loaded with ListBoards + GetHealth, then kept live by WatchHealth summary
// snapshots at most once a second per board, folded in batches (at most 4
// a second, each in an animation frame) so 200 boards cost a few renders a
// second, not one per message.
import { Component } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { useSignal } from "@preact/signals";
import { fleet } from "../api/fleet";
import type { WatchHealthResponse } from "../gen/threadfleet/fleet/v1/fleet_pb";
import { connection, live } from "../live";
import { formatBytes, formatPercent } from "../view/format";
import { describeError } from "../view/errors";
import { parseLabelSelector } from "../view/labels";
import {
  applyBoard,
  foldHealth,
  heatClass,
  initialTiles,
  quarantineChanged,
  stateCounts,
  tileState,
  type BoardTile,
  type HeatMetric,
  type Tiles,
} from "../view/health";
import "./overview.css";

// More boards than this and the page adds a heat map of the whole lab.
const HEATMAP_MIN_BOARDS = 25;
// A background tab gets no animation frames: fold at once past this many
// pending messages so memory stays bounded.
const MAX_PENDING = 5000;
// Snapshots come once a second per board: folding more often than this
// shows nothing new, only costs renders.
const FOLD_INTERVAL_MS = 250;
const FILTER_DELAY_MS = 400;

function labelsFromUrl(): string {
  return new URLSearchParams(window.location.search).get("labels") ?? "";
}

export function OverviewPage() {
  const [filterText, setFilterText] = useState(labelsFromUrl);
  const [applied, setApplied] = useState(labelsFromUrl);
  const parsed = parseLabelSelector(filterText);
  document.title = "Lab · threadfleet";

  useEffect(() => {
    if (!parsed.ok || filterText.trim() === applied.trim()) return;
    const t = setTimeout(() => {
      setApplied(filterText.trim());
      const q = filterText.trim() ? `?labels=${encodeURIComponent(filterText.trim())}` : "";
      window.history.replaceState(null, "", `/${q}`);
    }, FILTER_DELAY_MS);
    return () => clearTimeout(t);
  }, [filterText, parsed.ok, applied]);

  return (
    <section class="overview">
      <div class="toolbar">
        <h1>Lab</h1>
        <div class="field filter">
          <label for="label-filter">Filter by label</label>
          <input
            id="label-filter"
            type="search"
            placeholder="lab=a,role!=spare"
            value={filterText}
            spellcheck={false}
            autoComplete="off"
            aria-invalid={parsed.ok ? undefined : "true"}
            aria-describedby="label-filter-help"
            onInput={(e) => setFilterText((e.target as HTMLInputElement).value)}
          />
          {parsed.ok ? (
            <span id="label-filter-help" class="muted hint">
              key=value or key!=value, separated by commas
            </span>
          ) : (
            <span id="label-filter-help" role="alert" class="alert hint">
              Filter by label: {parsed.error}
            </span>
          )}
        </div>
      </div>
      <LabView key={applied} labels={applied} onClearFilter={() => setFilterText("")} />
    </section>
  );
}

function LabView({ labels, onClearFilter }: { labels: string; onClearFilter: () => void }) {
  const tiles = useSignal<Tiles | null>(null);
  const error = useSignal<string | null>(null);

  useEffect(() => {
    const selector = { labels };
    let pending: WatchHealthResponse[] = [];
    let frame = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const flush = () => {
      frame = 0;
      timer = undefined;
      if (stopped || pending.length === 0 || tiles.value === null) return;
      const batch = pending;
      pending = [];
      tiles.value = foldHealth(tiles.value, batch);
    };
    const refreshBoard = async (name: string) => {
      try {
        const { board } = await fleet.getBoard({ name });
        if (board && !stopped && tiles.value) tiles.value = applyBoard(tiles.value, board);
      } catch {
        // The next reload (reconnect) shows it; the tile keeps its state.
      }
    };
    const stop = live(
      (options) => fleet.watchHealth({ selector, minPeriodMs: 1000, summaryOnly: true }, options),
      (message) => {
        if (quarantineChanged(message)) void refreshBoard(message.board);
        pending.push(message);
        if (pending.length >= MAX_PENDING) flush();
        else if (timer === undefined && frame === 0) {
          timer = setTimeout(() => (frame = requestAnimationFrame(flush)), FOLD_INTERVAL_MS);
        }
      },
      {
        // Each (re)connect starts from fleetd's current view: messages of a
        // stream that broke are dropped with it.
        onOpen: async () => {
          pending = [];
          try {
            const [boards, health] = await Promise.all([
              fleet.listBoards({ selector }),
              fleet.getHealth({ selector }),
            ]);
            if (stopped) return;
            tiles.value = initialTiles(boards.boards, health.boards);
            error.value = null;
          } catch (e) {
            if (!stopped) error.value = describeError(e);
            throw e;
          }
        },
        onFatal: (e) => (error.value = describeError(e)),
      },
    );
    return () => {
      stopped = true;
      clearTimeout(timer);
      cancelAnimationFrame(frame);
      stop();
    };
  }, [labels]);

  const all = tiles.value;
  if (all === null) {
    return (
      <div aria-busy="true">
        {error.value ? (
          <p role="alert" class="alert">
            Cannot load the lab: {error.value}. Retrying by itself.
          </p>
        ) : (
          <p class="muted loading-text">Loading boards</p>
        )}
      </div>
    );
  }
  const list = [...all.values()];
  // While the streams reconnect the tiles show what was last known: greyed.
  return (
    <div aria-busy="false" class={connection.value === "live" ? "" : "stale"}>
      {error.value && (
        <p role="alert" class="alert">
          {error.value}; showing what was last known.
        </p>
      )}
      {list.length === 0 ? (
        labels ? (
          <p class="empty">
            No board matches <code>{labels}</code>.{" "}
            <button type="button" onClick={onClearFilter}>
              Clear the filter
            </button>
          </p>
        ) : (
          <p class="empty">
            No boards in the lab yet: add them to lab.yaml (or <code>fleetctl board add</code>) and they appear here.
          </p>
        )
      ) : (
        <>
          <Summary tiles={list} />
          {list.length >= HEATMAP_MIN_BOARDS && <HeatMap tiles={list} />}
          <ul class="tiles" aria-label="Boards">
            {list.map((t) => (
              <li key={t.name}>
                <Tile tile={t} />
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}

function Summary({ tiles }: { tiles: BoardTile[] }) {
  const c = stateCounts(tiles);
  const parts = (["online", "degraded", "quarantined", "offline", "unknown"] as const).filter((s) => c[s] > 0);
  return (
    <p class="summary" role="status">
      <strong>
        {tiles.length} board{tiles.length === 1 ? "" : "s"}
      </strong>
      {parts.map((s) => (
        <span key={s} class={`badge state-${s}`}>
          {c[s]} {s}
        </span>
      ))}
    </p>
  );
}

const THREAD_STATES: [keyof NonNullable<BoardTile["threads"]>, string][] = [
  ["running", "running"],
  ["sleeping", "sleeping"],
  ["waitingLock", "waiting"],
  ["failed", "failed"],
  ["killed", "killed"],
  ["finished", "finished"],
];

// A board tile; re-renders only when its board's state object changed.
class Tile extends Component<{ tile: BoardTile }> {
  shouldComponentUpdate(next: { tile: BoardTile }) {
    return next.tile !== this.props.tile;
  }

  render({ tile }: { tile: BoardTile }) {
    const state = tileState(tile);
    const threads = tile.threads;
    const shown = threads ? THREAD_STATES.filter(([k]) => threads[k] > 0) : [];
    const anomalies = tile.anomalies.size;
    return (
      <a
        class={`tile tile-${state}`}
        data-testid="board-tile"
        data-board={tile.name}
        data-state={state}
        href={`/boards/${encodeURIComponent(tile.name)}`}
      >
        <span class="tile-head">
          <span class="tile-name">{tile.name}</span>
          <span class={`badge state-${state}`}>{state}</span>
        </span>
        <span class="tile-threads">
          {threads === null ? (
            <span class="muted">no snapshot yet</span>
          ) : shown.length === 0 ? (
            <span class="muted">no threads</span>
          ) : (
            shown.map(([k, label]) => (
              <span key={k} class={`tc tc-${k}`} data-thread-state={k}>
                {threads[k]} {label}
              </span>
            ))
          )}
        </span>
        {tile.heapTotal !== null && tile.heapUsed !== null ? (
          <span class="tile-heap">
            <span class="muted">heap</span>
            <meter
              min={0}
              max={tile.heapTotal}
              value={tile.heapUsed}
              high={tile.heapTotal * 0.9}
              optimum={0}
              aria-label={`heap used of ${tile.name}`}
            />
            <span class="num">
              {formatBytes(tile.heapUsed)} / {formatBytes(tile.heapTotal)}
            </span>
          </span>
        ) : null}
        <span class="tile-foot">
          <span class="num">CPU {formatPercent(tile.cpuPercent)}</span>
          <span class={anomalies > 0 ? "anomalies has" : "anomalies muted"} data-testid="anomaly-count" data-count={anomalies}>
            {anomalies === 0 ? "no anomalies" : `${anomalies} anomal${anomalies === 1 ? "y" : "ies"}`}
          </span>
        </span>
        {state === "offline" && tile.reason && <span class="tile-reason muted">{tile.reason}</span>}
        {Object.keys(tile.labels).length > 0 && (
          <span class="tile-labels">
            {Object.entries(tile.labels)
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([k, v]) => (
                <span key={k} class="label">
                  {k}={v}
                </span>
              ))}
          </span>
        )}
      </a>
    );
  }
}

function HeatMap({ tiles }: { tiles: BoardTile[] }) {
  const [metric, setMetric] = useState<HeatMetric>("state");
  const selectRef = useRef<HTMLSelectElement>(null);
  const describe = (t: BoardTile) => {
    const s = tileState(t);
    if (metric === "cpu") return `${t.name}: ${s}, CPU ${formatPercent(t.cpuPercent)}`;
    if (metric === "heap")
      return `${t.name}: ${s}, heap ${t.heapUsed === null ? "–" : formatBytes(t.heapUsed)} of ${t.heapTotal === null ? "–" : formatBytes(t.heapTotal)}`;
    return `${t.name}: ${s}`;
  };
  return (
    <section class="heatmap-box" aria-label="Heat map">
      <div class="heatmap-bar">
        <h2>Heat map</h2>
        <label for="heat-metric">Colour by</label>
        <select
          id="heat-metric"
          ref={selectRef}
          value={metric}
          onChange={(e) => setMetric((e.target as HTMLSelectElement).value as HeatMetric)}
        >
          <option value="state">State</option>
          <option value="cpu">CPU</option>
          <option value="heap">Heap used</option>
        </select>
        {metric !== "state" && (
          <span class="heat-legend" aria-hidden="true">
            <span class="heat-0">0 %</span>
            <span class="heat-5">50 %</span>
            <span class="heat-10">100 %</span>
          </span>
        )}
      </div>
      <ul class="heatmap" data-testid="heatmap" data-metric={metric}>
        {tiles.map((t) => (
          <li key={t.name}>
            <a
              class={`cell ${heatClass(t, metric)}`}
              data-board={t.name}
              href={`/boards/${encodeURIComponent(t.name)}`}
              title={describe(t)}
              aria-label={describe(t)}
              // The tiles below link to the same pages: keep 200 cells out
              // of the Tab order.
              tabIndex={-1}
            />
          </li>
        ))}
      </ul>
    </section>
  );
}
