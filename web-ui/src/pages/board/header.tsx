// The board page's header: name, state badge, address, labels, uptime, heap,
// board CPU and, when jobs took the board out of service, why.
import type { BoardModel } from "./model";
import { boardStateName, formatBytes, formatDurationUs, formatPercent } from "./format";

export function BoardHeader({ model }: { model: BoardModel }) {
  const board = model.board.value;
  const snapshot = model.snapshot.value;
  const state = boardStateName(model.state.value, Boolean(board?.quarantine));
  const labels = board ? Object.entries(board.labels).sort(([a], [b]) => a.localeCompare(b)) : [];
  return (
    <header class="board-header">
      <div class="board-title">
        <h1>{model.name}</h1>
        <span class={`badge state-${state}`} data-testid="board-state" data-state={state}>
          {state}
        </span>
      </div>
      <dl class="board-facts">
        <div>
          <dt>Address</dt>
          <dd>{board?.address ?? "…"}</dd>
        </div>
        <div>
          <dt>Labels</dt>
          <dd>
            {labels.length === 0
              ? "none"
              : labels.map(([k, v]) => (
                  <span class="label" key={k}>
                    {k}={v}
                  </span>
                ))}
          </dd>
        </div>
        <div>
          <dt>Profile</dt>
          <dd data-testid="board-profile">{board?.info?.profile || "—"}</dd>
        </div>
        <div>
          <dt>Uptime</dt>
          <dd>{snapshot ? formatDurationUs(snapshot.uptimeUs) : "—"}</dd>
        </div>
        <div>
          <dt>Heap</dt>
          <dd>
            {snapshot?.heap
              ? `${formatBytes(snapshot.heap.usedBytes)} of ${formatBytes(snapshot.heap.totalBytes)}`
              : "—"}
          </dd>
        </div>
        <div>
          <dt>CPU</dt>
          <dd>{snapshot ? formatPercent(snapshot.cpuUsagePercent) : "—"}</dd>
        </div>
      </dl>
      {board?.stateReason && state !== "online" && <p class="state-reason">{board.stateReason}</p>}
      {board?.quarantine && (
        <p class="quarantine" role="note">
          Quarantined: jobs skip this board. {board.quarantine.reason}
        </p>
      )}
    </header>
  );
}
