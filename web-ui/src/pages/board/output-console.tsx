// The output console: one program's output, followed live (StreamOutput with
// follow; resumed from the next offset after a reconnect), shown as text in a
// <pre> that keeps to the tail unless the user scrolled up. One stream at a
// time: browsers allow six HTTP/1.1 connections per origin and a kill must
// never wait behind a stream.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { fleet } from "../../api/fleet";
import { live } from "../../live";
import type { BoardModel } from "./model";
import { BoardState } from "../../gen/threadfleet/fleet/v1/fleet_pb";
import { appendChunk, defaultProgram, emptyConsole, isAtBottom, type ConsoleBuffer } from "./console-buffer";

export function OutputConsole({ model }: { model: BoardModel }) {
  const programs = model.table.value?.programs ?? null;
  const [picked, setPicked] = useState<number | null>(null);
  const programId = picked ?? (programs ? defaultProgram(programs) : null);
  const [text, setText] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const pre = useRef<HTMLPreElement>(null);
  const following = useRef(true);

  // A program the user just started is what they want to see.
  const started = model.startedProgram.value;
  useEffect(() => setPicked(started), [started]);

  useEffect(() => {
    setText("");
    setProblem(null);
    following.current = true;
    if (programId === null) return;
    let buffer: ConsoleBuffer = emptyConsole();
    let frame = 0;
    const stop = live(
      (options) => fleet.streamOutput({ board: model.name, programId, fromOffset: buffer.nextOffset, follow: true }, options),
      (m) => {
        if (!m.chunk) return;
        buffer = appendChunk(buffer, m.chunk);
        // One render per frame however many chunks arrive.
        if (!frame) frame = requestAnimationFrame(() => ((frame = 0), setText(buffer.text)));
      },
      {
        finished: () => !model.table.peek()?.programs.some((p) => p.id === programId && p.running),
        onFatal: (e) => setProblem(e.message),
      },
    );
    return () => {
      stop();
      cancelAnimationFrame(frame);
    };
  }, [model, programId]);

  useLayoutEffect(() => {
    const el = pre.current;
    if (el && following.current) el.scrollTop = el.scrollHeight;
  }, [text]);

  if (programs === null) {
    if (model.state.value === BoardState.OFFLINE) return <p class="empty">No output: the board is offline.</p>;
    return <p aria-busy="true" class="muted">Loading programs…</p>;
  }
  return (
    <>
      {programs.length > 0 && (
        <label class="console-pick">
          Program
          <select
            value={programId ?? ""}
            onChange={(e) => setPicked(Number((e.currentTarget as HTMLSelectElement).value))}
          >
            {programs.map((p) => (
              <option key={p.id} value={p.id}>
                {p.id} {p.name} ({p.state})
              </option>
            ))}
          </select>
        </label>
      )}
      {problem && <p role="alert" class="alert">{problem}</p>}
      <pre
        ref={pre}
        class="console"
        data-testid="console"
        tabIndex={0}
        aria-label={programId === null ? "Output" : `Output of program ${programId}`}
        onScroll={(e) => {
          const el = e.currentTarget as HTMLPreElement;
          following.current = isAtBottom(el.scrollTop, el.scrollHeight, el.clientHeight);
        }}
      >
        {text || (programId === null ? "No program has run on this board yet." : "")}
      </pre>
    </>
  );
}
