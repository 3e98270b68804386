// The board's charts (uPlot): CPU % and stack in use per thread, and the
// heap, over the last 15 minutes; backfilled from GetHealthHistory, then
// appended from each live snapshot (see history.ts). Legends name threads;
// the charts follow the page's width.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { BoardModel } from "./model";
import { heapColumns, threadColumns, type ChartColumns } from "./history";
import { formatBytes, formatPercent } from "./format";

const PALETTE = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#4b5563", "#ea580c"];
const CHART_HEIGHT = 180;
// Byte axes tick at powers of two (1 KiB, 2 KiB, 4 KiB...), so the labels
// come out round in binary units.
const BYTE_INCREMENTS = Array.from({ length: 40 }, (_, i) => 2 ** i);

export function Charts({ model }: { model: BoardModel }) {
  const version = model.historyVersion.value; // re-render on every sample
  const history = model.history;
  return (
    <div class="charts" aria-busy={version === 0 ? "true" : "false"}>
      {model.historyError.value && <p class="muted">{model.historyError.value}</p>}
      <Chart testid="chart-cpu" title="CPU per thread (100 % = one core)" columns={threadColumns(history, "cpuPercent")} version={version} format={(v) => formatPercent(v)} bytes={false} />
      <Chart testid="chart-stack" title="Stack in use per thread" columns={threadColumns(history, "stackUsedBytes")} version={version} format={formatBytes} bytes />
      <Chart testid="chart-heap" title="Heap" columns={heapColumns(history)} version={version} format={formatBytes} bytes />
    </div>
  );
}

interface ChartProps {
  testid: string;
  title: string;
  columns: ChartColumns;
  version: number;
  format: (value: number) => string;
  bytes: boolean;
}

function Chart({ testid, title, columns, version, format, bytes }: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const seriesKey = useRef("");

  // A new set of series (a thread appeared or left) needs a new plot; new
  // samples only new data.
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const key = columns.labels.join("\n");
    const data = columns.data as uPlot.AlignedData;
    if (plot.current && key === seriesKey.current) {
      plot.current.setData(data);
      return;
    }
    plot.current?.destroy();
    seriesKey.current = key;
    const show = (v: number | null) => (v === null || v === undefined ? "—" : format(v));
    plot.current = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: CHART_HEIGHT,
        series: [
          { label: "time" },
          ...columns.labels.map((label, i) => ({
            label,
            stroke: PALETTE[i % PALETTE.length],
            width: 1.5,
            spanGaps: false,
            value: (_u: uPlot, v: number | null) => show(v),
          })),
        ],
        axes: [
          {},
          {
            size: 70,
            values: (_u: uPlot, values: number[]) => values.map((v) => format(v)),
            ...(bytes ? { incrs: BYTE_INCREMENTS } : {}),
          },
        ],
        // From 0, with a little headroom so the top line is not on the edge.
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max((max ?? 0) * 1.1, 1)] } },
        legend: { live: true },
      },
      data,
      el,
    );
  }, [version, columns.labels.join("\n")]);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: CHART_HEIGHT }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  const empty = columns.data[0].length === 0;
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={host} data-testid={testid} class="chart-host" />
      {empty && <p class="muted">No samples yet: the chart fills as the board reports its health.</p>}
    </figure>
  );
}
