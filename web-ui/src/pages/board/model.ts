// Everything the board page shows, as signals, and the streams and calls that
// keep it current: GetBoard (address, labels, quarantine), GetHealth (open
// anomalies), GetHealthHistory (the charts' backfill) and WatchHealth (every
// snapshot, event and state change of this board). Components only read it.
import { signal } from "@preact/signals";
import { Code, ConnectError } from "@connectrpc/connect";
import { fleet } from "../../api/fleet";
import { live } from "../../live";
import type { Board, Event } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import { BoardState } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import type { HealthSnapshot } from "../../gen/threadfleet/board/v1/board_pb";
import { foldSnapshot, type TableState } from "./table";
import { anomalyFromEvent, foldEvent, type Anomaly } from "./anomalies";
import { appendSnapshot, emptyHistory, fromHistoryResponse, trimWindow, CHART_WINDOW_MS, type ChartHistory } from "./history";

// After a live event, GetHealth is asked again this much later (once for a
// burst of events) so the anomaly list converges on fleetd's own.
const ANOMALY_REFRESH_MS = 1500;

export class BoardModel {
  readonly board = signal<Board | null>(null);
  // Why the page cannot show the board (unknown name, no permission...).
  readonly error = signal<string | null>(null);
  readonly state = signal<BoardState | undefined>(undefined);
  readonly snapshot = signal<HealthSnapshot | null>(null);
  readonly table = signal<TableState | null>(null);
  readonly anomalies = signal<Anomaly[] | null>(null);
  readonly anomaliesError = signal<string | null>(null);
  // Bumped on every change of `history` (changed in place, see history.ts).
  readonly historyVersion = signal(0);
  history: ChartHistory = emptyHistory();
  readonly historyError = signal<string | null>(null);
  // The program an action of this page started last.
  readonly startedProgram = signal<number | null>(null);

  private stops: (() => void)[] = [];
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  // The snapshot WatchHealth sends first on each open is the one history
  // already ends with; it is not charted twice.
  private skipNextChartSample = false;

  constructor(readonly name: string) {}

  // Starts the calls and streams; returns what stops them all.
  start(): () => void {
    void this.loadBoard();
    void this.loadAnomalies();
    this.stops.push(
      live(
        (options) => fleet.watchHealth({ selector: { boards: [this.name] } }, options),
        (m) => {
          if (m.update.case === "snapshot") this.onSnapshot(m.update.value);
          else if (m.update.case === "event") this.onEvent(m.update.value);
          else if (m.update.case === "state") this.onState(m.update.value);
        },
        {
          onOpen: () => this.loadHistory(),
          // GetBoard's "No board named ..." says it better when both fail.
          onFatal: (e) => (this.error.value ??= e.message),
        },
      ),
    );
    return () => {
      for (const stop of this.stops) stop();
      clearTimeout(this.refreshTimer);
    };
  }

  async loadBoard(): Promise<void> {
    try {
      const { board } = await fleet.getBoard({ name: this.name });
      this.board.value = board ?? null;
      if (board && this.state.value === undefined) this.state.value = board.state;
    } catch (e) {
      const error = ConnectError.from(e);
      this.error.value = error.code === Code.NotFound ? `No board named ${this.name}.` : error.message;
    }
  }

  async loadAnomalies(): Promise<void> {
    try {
      const { boards } = await fleet.getHealth({ selector: { boards: [this.name] } });
      const health = boards.find((b) => b.board === this.name);
      this.anomalies.value = (health?.anomalies ?? []).map(anomalyFromEvent);
      this.anomaliesError.value = null;
    } catch (e) {
      this.anomaliesError.value = ConnectError.from(e).message;
    }
  }

  private async loadHistory(): Promise<void> {
    try {
      const response = await fleet.getHealthHistory({ board: this.name, windowMs: BigInt(CHART_WINDOW_MS) });
      this.history = fromHistoryResponse(response);
      this.skipNextChartSample = this.history.times.length > 0;
      this.historyError.value = null;
    } catch (e) {
      // The charts keep what they have and go on from the live snapshots.
      this.skipNextChartSample = false;
      this.historyError.value = `No chart history: ${ConnectError.from(e).message}`;
    }
    this.historyVersion.value++;
  }

  private onSnapshot(snapshot: HealthSnapshot): void {
    const table = foldSnapshot(this.table.peek(), snapshot);
    this.table.value = table;
    this.snapshot.value = snapshot;
    if (this.skipNextChartSample) {
      this.skipNextChartSample = false;
      return;
    }
    const now = Date.now();
    appendSnapshot(this.history, now, snapshot, new Map(table.threads.map((t) => [t.id, t.cpuPercent])));
    trimWindow(this.history, now);
    this.historyVersion.value++;
  }

  private onEvent(event: Event): void {
    if (this.anomalies.peek() !== null) this.anomalies.value = foldEvent(this.anomalies.peek()!, event);
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => void this.loadAnomalies(), ANOMALY_REFRESH_MS);
  }

  private onState(state: BoardState): void {
    this.state.value = state;
    // The state's reason and any quarantine come with the board record.
    void this.loadBoard();
  }
}
