// The charts' data: columns uPlot draws directly (one time column, one column
// per series, null where a series has no sample), backfilled from
// GetHealthHistory, appended from live snapshots and trimmed to a window.
//
// The functions change the ChartHistory they are given, in place: a page
// appends twice a second to columns of a few thousand samples, and copying
// them each time would cost more than drawing them.
import type { GetHealthHistoryResponse } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import type { HealthSnapshot } from "../../gen/threadfleet/board/v1/board_pb";
import { isLiveThread } from "./format";

export const CHART_WINDOW_MS = 15 * 60 * 1000;

export interface ThreadSeries {
  id: number;
  name: string;
  cpuPercent: (number | null)[];
  stackUsedBytes: (number | null)[];
}

export interface ChartHistory {
  // Seconds since the Unix epoch (uPlot's time scale), oldest first.
  times: number[];
  heapUsedBytes: (number | null)[];
  heapTotalBytes: (number | null)[];
  boardCpuPercent: (number | null)[];
  // By first sample then id, as fleetd lists them; new ones appended.
  threads: ThreadSeries[];
}

export function emptyHistory(): ChartHistory {
  return { times: [], heapUsedBytes: [], heapTotalBytes: [], boardCpuPercent: [], threads: [] };
}

function column<T>(length: number, from: number, values: readonly T[]): (T | null)[] {
  const out = new Array<T | null>(length).fill(null);
  for (let i = 0; i < values.length && from + i < length; i++) out[from + i] = values[i];
  return out;
}

// The response's columns aligned on its samples: each thread's values start
// at its first_sample and are null before and after the run it lived.
export function fromHistoryResponse(response: GetHealthHistoryResponse): ChartHistory {
  const n = response.offsetMs.length;
  const start = Number(response.startTimeMs);
  return {
    times: response.offsetMs.map((offset) => (start + offset) / 1000),
    heapUsedBytes: column(n, 0, response.heapUsedBytes),
    heapTotalBytes: column(n, 0, response.heapTotalBytes),
    boardCpuPercent: column(n, 0, response.cpuPercent),
    threads: response.threads.map((t) => ({
      id: t.threadId,
      name: t.name,
      cpuPercent: column(n, t.firstSample, t.cpuPercent),
      stackUsedBytes: column(n, t.firstSample, t.stackUsedBytes),
    })),
  };
}

// Appends one live snapshot received at `atMs`: its live threads' CPU % (from
// `cpuPercentByThread`, the table's computation) and stack in use; threads not
// seen before get a new series, null before now.
export function appendSnapshot(
  history: ChartHistory,
  atMs: number,
  snapshot: HealthSnapshot,
  cpuPercentByThread: ReadonlyMap<number, number | null>,
): void {
  const index = history.times.length;
  history.times.push(atMs / 1000);
  history.heapUsedBytes.push(snapshot.heap ? snapshot.heap.usedBytes : null);
  history.heapTotalBytes.push(snapshot.heap ? snapshot.heap.totalBytes : null);
  history.boardCpuPercent.push(snapshot.cpuUsagePercent);
  const byId = new Map(history.threads.map((t) => [t.id, t]));
  for (const t of history.threads) {
    t.cpuPercent.push(null);
    t.stackUsedBytes.push(null);
  }
  for (const t of snapshot.threads) {
    if (!isLiveThread(t.state)) continue;
    let series = byId.get(t.id);
    if (!series) {
      series = { id: t.id, name: t.name, cpuPercent: new Array(index + 1).fill(null), stackUsedBytes: new Array(index + 1).fill(null) };
      history.threads.push(series);
      byId.set(t.id, series);
    }
    series.name = t.name;
    series.cpuPercent[index] = cpuPercentByThread.get(t.id) ?? null;
    series.stackUsedBytes[index] = t.stackUsedBytes;
  }
}

// Drops samples older than `windowMs` before `nowMs`, and threads left with no
// sample in the window.
export function trimWindow(history: ChartHistory, nowMs: number, windowMs = CHART_WINDOW_MS): void {
  const oldest = (nowMs - windowMs) / 1000;
  let drop = 0;
  while (drop < history.times.length && history.times[drop] < oldest) drop++;
  if (drop === 0) return;
  history.times.splice(0, drop);
  history.heapUsedBytes.splice(0, drop);
  history.heapTotalBytes.splice(0, drop);
  history.boardCpuPercent.splice(0, drop);
  for (const t of history.threads) {
    t.cpuPercent.splice(0, drop);
    t.stackUsedBytes.splice(0, drop);
  }
  history.threads = history.threads.filter((t) => t.cpuPercent.some((v) => v !== null) || t.stackUsedBytes.some((v) => v !== null));
}

// What one chart draws: uPlot's aligned data (times first) and a legend
// label per series after the times.
export interface ChartColumns {
  labels: string[];
  data: (number | null)[][];
}

export function threadColumns(history: ChartHistory, metric: "cpuPercent" | "stackUsedBytes"): ChartColumns {
  return {
    labels: history.threads.map((t) => `${t.name || "thread"} (${t.id})`),
    data: [history.times, ...history.threads.map((t) => t[metric])],
  };
}

export function heapColumns(history: ChartHistory): ChartColumns {
  return { labels: ["heap used", "heap size"], data: [history.times, history.heapUsedBytes, history.heapTotalBytes] };
}
