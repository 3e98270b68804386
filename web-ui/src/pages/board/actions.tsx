// What an operator can do on the board page, each confirmed in a modal
// <dialog> (Confirm / Cancel, Escape cancels, focus stays inside) and
// reported in one place: the result in role=status, an error (the Connect
// error's message) in role=alert. Viewers are never offered any of it: the
// page renders these parts only for operators, and fleetd refuses the calls
// anyway.
import { createContext, type ComponentChildren } from "preact";
import { useContext, useRef, useState } from "preact/hooks";
import { signal, type Signal } from "@preact/signals";
import { ConnectError } from "@connectrpc/connect";
import { fleet } from "../../api/fleet";
import { PushStage, type PushFileResponse } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import { ThreadState } from "../../gen/threadfleet/board/v1/board_pb";
import { boardPathFor, checkBoardPath, parseModuleFunc } from "./inputs";
import { formatBytes } from "./format";
import { resetQuestion, resetResultLine } from "./machine";

export interface Action {
  // The dialog's question, e.g. "Kill thread 7 (worker) on b01?".
  question: string;
  // Does it; resolves to the result's lines.
  run: () => Promise<string[]>;
}

interface Outcome {
  busy: boolean;
  lines: string[];
  error: string | null;
}

interface Actions {
  board: string;
  request: (action: Action) => void;
  outcome: Signal<Outcome>;
  // Tells the page a program started (so its console follows it).
  programStarted: (programId: number) => void;
}

const ActionContext = createContext<Actions | null>(null);

export function useActions(): Actions {
  const actions = useContext(ActionContext);
  if (!actions) throw new Error("useActions outside ActionProvider");
  return actions;
}

export function ActionProvider({
  board,
  programStarted,
  children,
}: {
  board: string;
  programStarted: (programId: number) => void;
  children: ComponentChildren;
}) {
  const [pending, setPending] = useState<Action | null>(null);
  const [outcome] = useState(() => signal<Outcome>({ busy: false, lines: [], error: null }));
  const dialog = useRef<HTMLDialogElement>(null);
  const opener = useRef<Element | null>(null);

  // The dialog opens and closes in the event handler itself, not after the
  // next render: an Escape or a click that follows at once must find it open.
  const request = (action: Action) => {
    opener.current = document.activeElement;
    setPending(action);
    if (dialog.current && !dialog.current.open) dialog.current.showModal();
  };

  const close = () => {
    setPending(null);
    if (dialog.current?.open) dialog.current.close();
    const back = opener.current;
    if (back instanceof HTMLElement && back.isConnected) back.focus();
  };

  const confirm = async () => {
    const action = pending;
    close();
    if (!action) return;
    outcome.value = { busy: true, lines: [`${action.question.replace(/\?$/, "")}…`], error: null };
    try {
      outcome.value = { busy: false, lines: await action.run(), error: null };
    } catch (e) {
      // fleetd's refusals are ConnectErrors (their message names the code);
      // a board's failure inside a fan-out is reported as a plain Error.
      outcome.value = { busy: false, lines: [], error: e instanceof Error && !(e instanceof ConnectError) ? e.message : ConnectError.from(e).message };
    }
  };

  return (
    <ActionContext.Provider value={{ board, request, outcome, programStarted }}>
      {children}
      <dialog
        ref={dialog}
        class="confirm-dialog"
        aria-labelledby="confirm-question"
        onCancel={(e) => {
          e.preventDefault(); // Escape: close through our state, focus back to the opener
          close();
        }}
        onKeyDown={trapTab}
      >
        <p id="confirm-question">{pending?.question}</p>
        <div class="actions">
          <button type="button" class="danger" onClick={() => void confirm()}>
            Confirm
          </button>
          <button type="button" autofocus onClick={close}>
            Cancel
          </button>
        </div>
      </dialog>
    </ActionContext.Provider>
  );
}

// Keeps Tab and Shift+Tab cycling through the dialog's buttons: a modal
// dialog makes the page inert, but Tab would still leave for the browser's
// own controls.
function trapTab(e: KeyboardEvent): void {
  if (e.key !== "Tab") return;
  const buttons = [...(e.currentTarget as HTMLDialogElement).querySelectorAll("button")];
  if (buttons.length === 0) return;
  const first = buttons[0];
  const last = buttons[buttons.length - 1];
  if (e.shiftKey && document.activeElement === first) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && document.activeElement === last) {
    e.preventDefault();
    first.focus();
  }
}

// Where the latest action's result or error shows.
export function ActionResult() {
  const { outcome } = useActions();
  const { busy, lines, error } = outcome.value;
  return (
    <div class="action-outcome">
      <div role="status" data-testid="action-result" aria-busy={busy ? "true" : "false"}>
        {lines.map((line, i) => (
          <p key={i}>{line}</p>
        ))}
      </div>
      {error && (
        <p role="alert" class="alert" data-testid="action-error">
          {error}
        </p>
      )}
    </div>
  );
}

// ---- Kills (buttons in the thread and program tables)

export function KillThreadButton({ id, name }: { id: number; name: string }) {
  const { board, request } = useActions();
  return (
    <button
      type="button"
      class="danger small"
      aria-label={`Kill thread ${id}`}
      onClick={() =>
        request({
          question: `Kill thread ${id} (${name}) on ${board}?`,
          run: async () => {
            const { thread } = await fleet.killThread({ board, threadId: id });
            if (thread?.unkillable) return [`Thread ${id} is still alive after the grace period: unkillable (only a reset ends it).`];
            return [`Thread ${id} ${thread?.state === ThreadState.KILLED ? "killed" : "ended"}.`];
          },
        })
      }
    >
      Kill
    </button>
  );
}

export function KillProgramButton({ id, name }: { id: number; name: string }) {
  const { board, request } = useActions();
  return (
    <button
      type="button"
      class="danger small"
      aria-label={`Kill program ${id}`}
      onClick={() =>
        request({
          question: `Kill program ${id} (${name}) and all its threads on ${board}?`,
          run: async () => {
            const { unkillableThreadIds } = await fleet.killProgram({ board, programId: id });
            if (unkillableThreadIds.length > 0) {
              return [`Program ${id} killed, but threads ${unkillableThreadIds.join(", ")} are unkillable (only a reset ends them).`];
            }
            return [`Program ${id} killed.`];
          },
        })
      }
    >
      Kill
    </button>
  );
}

// ---- The forms

// The push's per-board outcome lines, from PushFile's progress stream.
async function pushFile(board: string, path: string, content: Uint8Array): Promise<{ lines: string[]; ok: boolean }> {
  const final = new Map<string, PushFileResponse>();
  for await (const m of fleet.pushFile({ selector: { boards: [board] }, path, content })) {
    if (m.stage === PushStage.DONE || m.stage === PushStage.UNCHANGED || m.stage === PushStage.FAILED) final.set(m.board, m);
  }
  let ok = final.size > 0;
  const lines = [...final.values()].map((m) => {
    if (m.stage === PushStage.FAILED) {
      ok = false;
      return `${m.board}: push of ${path} failed: ${m.error?.message ?? "unknown error"}`;
    }
    const what = m.stage === PushStage.UNCHANGED ? "already up to date" : `written (${formatBytes(m.totalBytes)})`;
    return `${m.board}: ${path} ${what}, sha256 ${m.sha256Hex.slice(0, 12)}…`;
  });
  if (lines.length === 0) lines.push(`${board}: fleetd reported no outcome for ${path}`);
  return { lines, ok };
}

// Reads a file input's file, or says which field is missing.
async function chosenFile(input: HTMLInputElement | null, field: string): Promise<{ file: File; content: Uint8Array } | string> {
  const file = input?.files?.[0];
  if (!file) return `${field}: choose a file first`;
  return { file, content: new Uint8Array(await file.arrayBuffer()) };
}

export function ActionPanel() {
  const { board, request, outcome, programStarted } = useActions();
  const programFile = useRef<HTMLInputElement>(null);
  const pushInput = useRef<HTMLInputElement>(null);
  const [pushPath, setPushPath] = useState("");
  const [func, setFunc] = useState("");
  const refuse = (error: string) => (outcome.value = { busy: false, lines: [], error });

  const runProgram = async (e: Event) => {
    e.preventDefault();
    const chosen = await chosenFile(programFile.current, "Program file");
    if (typeof chosen === "string") return refuse(chosen);
    const path = boardPathFor(chosen.file.name);
    request({
      question: `Push ${chosen.file.name} to ${path} on ${board} and run it?`,
      run: async () => {
        const pushed = await pushFile(board, path, chosen.content);
        if (!pushed.ok) throw new Error(pushed.lines.join("\n"));
        const { results } = await fleet.runProgram({ selector: { boards: [board] }, path, name: chosen.file.name });
        const lines = results.map((r) => {
          if (r.error && r.error.code !== 0) throw new Error(`${r.board}: ${r.error.message}`);
          programStarted(r.programId);
          return `${r.board}: started program ${r.programId} (main thread ${r.mainThreadId}) from ${path}`;
        });
        return [...pushed.lines, ...lines];
      },
    });
  };

  const push = async (e: Event) => {
    e.preventDefault();
    const chosen = await chosenFile(pushInput.current, "File");
    if (typeof chosen === "string") return refuse(chosen);
    const path = pushPath.trim() || boardPathFor(chosen.file.name);
    const bad = checkBoardPath(path);
    if (bad) return refuse(bad);
    request({
      question: `Push ${chosen.file.name} (${formatBytes(chosen.content.length)}) to ${path} on ${board}?`,
      run: async () => {
        const pushed = await pushFile(board, path, chosen.content);
        if (!pushed.ok) throw new Error(pushed.lines.join("\n"));
        return pushed.lines;
      },
    });
  };

  const start = (e: Event) => {
    e.preventDefault();
    const ref = parseModuleFunc(func);
    if (typeof ref === "string") return refuse(ref);
    request({
      question: `Start ${ref.module}.${ref.function}() as a new thread on ${board}?`,
      run: async () => {
        const r = await fleet.startThread({ board, module: ref.module, function: ref.function });
        programStarted(r.programId);
        return [`Started ${ref.module}.${ref.function} as thread ${r.threadId} (program ${r.programId}).`];
      },
    });
  };

  const reset = (safeBoot: boolean) =>
    request({
      question: resetQuestion(board, safeBoot),
      run: async () => {
        const { hard } = await fleet.resetBoard({ board, safeBoot });
        return [resetResultLine(board, safeBoot, hard)];
      },
    });

  return (
    <section class="board-panel board-actions" aria-labelledby="actions-title">
      <h2 id="actions-title">Actions</h2>
      <form onSubmit={(e) => void runProgram(e)}>
        <h3>Run program</h3>
        <label>
          Program file
          <input type="file" ref={programFile} accept=".py,text/x-python,text/plain" />
        </label>
        <button type="submit">Run</button>
      </form>
      <form onSubmit={(e) => void push(e)}>
        <h3>Push file</h3>
        <label>
          File
          <input
            type="file"
            ref={pushInput}
            onChange={(e) => {
              const f = (e.currentTarget as HTMLInputElement).files?.[0];
              if (f && !pushPath) setPushPath(boardPathFor(f.name));
            }}
          />
        </label>
        <label>
          Path
          <input type="text" value={pushPath} placeholder="/app/main.py" onInput={(e) => setPushPath((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <button type="submit">Push</button>
      </form>
      <form onSubmit={start}>
        <h3>Start function</h3>
        <label>
          MODULE.FUNC
          <input type="text" value={func} placeholder="blink.run" onInput={(e) => setFunc((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <button type="submit">Start</button>
      </form>
      <div class="reset-board">
        <h3>Reset board</h3>
        <button type="button" class="danger" onClick={() => reset(false)}>
          Reset
        </button>
        <button type="button" class="danger" onClick={() => reset(true)}>
          Safe reset
        </button>
      </div>
    </section>
  );
}
