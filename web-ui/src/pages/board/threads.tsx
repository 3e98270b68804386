// The live thread and program tables of the board page.
import { useLayoutEffect, useRef } from "preact/hooks";
import type { BoardModel } from "./model";
import { BoardState } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import { stackBar, type ThreadRow } from "./table";
import { formatBytes, formatDurationUs, formatPercent } from "./format";
import { KillProgramButton, KillThreadButton } from "./actions";

export function ThreadTable({ model, operator }: { model: BoardModel; operator: boolean }) {
  const table = model.table.value;
  if (!table && model.state.value === BoardState.OFFLINE) {
    return <p class="empty">The board is offline and fleetd has no snapshot of it yet.</p>;
  }
  if (!table) {
    return (
      <p aria-busy="true" class="muted">
        Waiting for the board's first health snapshot…
      </p>
    );
  }
  if (table.threads.length === 0) {
    return <p class="empty">No threads. Run a program or start a function to see its threads here.</p>;
  }
  const offline = model.state.value === BoardState.OFFLINE;
  return (
    <div class="table-scroll">
      {offline && <p class="muted">The board is offline: these are its threads as it last reported them.</p>}
      <table data-testid="threads" class="data threads">
        <thead>
          <tr>
            <th scope="col">ID</th>
            <th scope="col">Name</th>
            <th scope="col">Program</th>
            <th scope="col">State</th>
            <th scope="col" class="num">
              CPU
            </th>
            <th scope="col">Stack used / peak / size</th>
            <th scope="col">Lock wait</th>
            <th scope="col">Native</th>
            {operator && (
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {table.threads.map((t) => (
            <ThreadRowView key={t.id} row={t} operator={operator} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function ThreadRowView({ row, operator }: { row: ThreadRow; operator: boolean }) {
  return (
    <tr data-thread-id={row.id} data-state={row.state} class={row.live ? "" : "ended"}>
      <td class="num">{row.id}</td>
      <td>{row.name}</td>
      <td class="num">{row.programId || "—"}</td>
      <td>
        <span class={`badge state-${row.state}`}>{row.state.replace("_", " ")}</span>
        {row.unkillable && <span class="badge state-degraded unkillable">unkillable</span>}
        {row.exception && (
          <details class="exception">
            <summary>
              {row.exception.type}
              {row.exception.message ? `: ${row.exception.message}` : ""}
            </summary>
            <pre data-testid="traceback">{row.exception.traceback}</pre>
          </details>
        )}
      </td>
      <td class="num">{row.live ? formatPercent(row.cpuPercent) : "—"}</td>
      <td>
        <StackBar row={row} />
      </td>
      <td>{row.waitingLockId ? `lock ${row.waitingLockId}, ${formatDurationUs(row.waitTimeUs)}` : "—"}</td>
      <td>{row.nativeTimeUs > 0n ? formatDurationUs(row.nativeTimeUs) : "—"}</td>
      {operator && <td>{row.live && <KillThreadButton id={row.id} name={row.name} />}</td>}
    </tr>
  );
}

// Used stack as the bar's fill, the high-water mark as a tick; amber once the
// high-water mark passes 80 % of the size. Widths are set from code (the CSP
// forbids style attributes in markup).
function StackBar({ row }: { row: ThreadRow }) {
  const used = useRef<HTMLSpanElement>(null);
  const peak = useRef<HTMLSpanElement>(null);
  const { usedPercent, peakPercent } = stackBar(row);
  useLayoutEffect(() => {
    if (used.current) used.current.style.width = `${usedPercent}%`;
    if (peak.current) peak.current.style.left = `${peakPercent}%`;
  }, [usedPercent, peakPercent]);
  const text = `${formatBytes(row.stackUsedBytes)} / ${formatBytes(row.stackPeakBytes)} / ${formatBytes(row.stackSizeBytes)}`;
  return (
    <div class={`stack${row.stackHigh ? " high" : ""}`}>
      <span class="stack-bar" aria-hidden="true">
        <span class="stack-used" ref={used} />
        <span class="stack-peak" ref={peak} />
      </span>
      <span class="stack-text">{text}</span>
    </div>
  );
}

export function ProgramTable({ model, operator }: { model: BoardModel; operator: boolean }) {
  const table = model.table.value;
  if (!table && model.state.value === BoardState.OFFLINE) return <p class="empty">No programs known: the board is offline.</p>;
  if (!table) return <p aria-busy="true" class="muted">Loading programs…</p>;
  if (table.programs.length === 0) return <p class="empty">No programs yet. Operators can run one from Actions.</p>;
  return (
    <div class="table-scroll">
      <table data-testid="programs" class="data programs">
        <thead>
          <tr>
            <th scope="col">ID</th>
            <th scope="col">Name</th>
            <th scope="col">State</th>
            <th scope="col" class="num">
              Threads
            </th>
            <th scope="col" class="num">
              Output
            </th>
            {operator && (
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {table.programs.map((p) => (
            <tr key={p.id} data-program-id={p.id} data-state={p.state} class={p.running ? "" : "ended"}>
              <td class="num">{p.id}</td>
              <td>{p.name}</td>
              <td>
                <span class={`badge state-${p.state}`}>{p.state}</span>
                {!p.running && p.state !== "unknown" ? ` exit ${p.exitCode}` : ""}
              </td>
              <td class="num">{p.threadCount}</td>
              <td class="num">{formatBytes(p.outputBytes)}</td>
              {operator && <td>{p.running && <KillProgramButton id={p.id} name={p.name} />}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
