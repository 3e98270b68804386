// The board's open anomalies (deadlock, stall, stack_high, native_stuck...).
import type { BoardModel } from "./model";
import { Severity } from "../../gen/threadfleet/fleet/v1/fleet_pb";

export function AnomalyList({ model }: { model: BoardModel }) {
  const anomalies = model.anomalies.value;
  if (model.anomaliesError.value && !anomalies) return <p role="alert" class="alert">{model.anomaliesError.value}</p>;
  if (!anomalies) return <p aria-busy="true" class="muted">Loading anomalies…</p>;
  return (
    <>
      {model.anomaliesError.value && <p role="alert" class="alert">{model.anomaliesError.value}</p>}
      {anomalies.length === 0 && (
        <p class="muted">No open anomalies: no deadlock, stall, stack or heap pressure right now.</p>
      )}
      <ul data-testid="anomalies" class="anomalies">
        {anomalies.map((a) => (
          <li key={a.key} data-kind={a.kind} data-thread-id={a.threadId || undefined} class={a.severity >= Severity.ERROR ? "severity-error" : "severity-warning"}>
            <span class={`badge ${a.severity >= Severity.ERROR ? "state-error" : "state-warning"}`}>{a.kind.replace(/_/g, " ")}</span> {a.message}
          </li>
        ))}
      </ul>
    </>
  );
}
