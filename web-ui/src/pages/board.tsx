// The board page /boards/<name>: who the board is and how it is, its threads
// and programs live, open anomalies, its simulated hardware (pins, timers,
// watchdog), CPU/stack/heap charts, the output
// console and, for operators, the actions. The state lives in BoardModel;
// the parts below only render it.
import { useEffect, useMemo } from "preact/hooks";
import { canOperate } from "../session";
import { BoardModel } from "./board/model";
import { BoardHeader } from "./board/header";
import { ProgramTable, ThreadTable } from "./board/threads";
import { AnomalyList } from "./board/anomaly-list";
import { Charts } from "./board/charts";
import { OutputConsole } from "./board/output-console";
import { ActionPanel, ActionProvider, ActionResult } from "./board/actions";
import { MachinePanel } from "./board/machine-panel";
import "./board/board.css";

export function BoardPage({ name }: { name: string }) {
  const model = useMemo(() => new BoardModel(name), [name]);
  useEffect(() => model.start(), [model]);
  const operator = canOperate.value;
  if (model.error.value && !model.board.value) {
    return (
      <section class="board-page">
        <h1>{name}</h1>
        <p role="alert" class="alert">
          {model.error.value} <a href="/">Back to the lab</a>
        </p>
      </section>
    );
  }
  return (
    <ActionProvider board={name} programStarted={(id) => (model.startedProgram.value = id)}>
      <section class="board-page" aria-busy={model.board.value === null ? "true" : "false"}>
        <BoardHeader model={model} />
        {model.error.value && <p role="alert" class="alert">{model.error.value}</p>}
        {operator && <ActionResult />}
        <div class="board-grid">
          <section class="board-panel board-threads" aria-labelledby="threads-title">
            <h2 id="threads-title">Threads</h2>
            <ThreadTable model={model} operator={operator} />
          </section>
          <section class="board-panel" aria-labelledby="programs-title">
            <h2 id="programs-title">Programs</h2>
            <ProgramTable model={model} operator={operator} />
          </section>
          <section class="board-panel" aria-labelledby="anomalies-title">
            <h2 id="anomalies-title">Anomalies</h2>
            <AnomalyList model={model} />
          </section>
          <section class="board-panel" aria-labelledby="machine-title">
            <h2 id="machine-title">Machine</h2>
            <MachinePanel model={model} operator={operator} />
          </section>
          {operator && <ActionPanel />}
          <section class="board-panel board-console" aria-labelledby="console-title">
            <h2 id="console-title">Output</h2>
            <OutputConsole model={model} />
          </section>
          <section class="board-panel board-charts" aria-labelledby="charts-title">
            <h2 id="charts-title">Last 15 minutes</h2>
            <Charts model={model} />
          </section>
        </div>
      </section>
    </ActionProvider>
  );
}
