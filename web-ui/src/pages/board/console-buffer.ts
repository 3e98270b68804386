// The output console's text: a program's output bytes decoded as they arrive
// (UTF-8 sequences split across chunks are kept whole), bounded to the last
// CONSOLE_LIMIT_CHARS so a chatty program cannot grow the page without end,
// and the offset to resume from when the stream reconnects.
import type { OutputChunk } from "../../gen/threadfleet/board/v1/board_pb";
import type { ProgramRow } from "./table";

export const CONSOLE_LIMIT_CHARS = 256 * 1024;

export interface ConsoleBuffer {
  text: string;
  // Where the next byte of the program's output is: from_offset on reconnect.
  nextOffset: bigint;
  // Bytes of output the board had already dropped from its ring buffer
  // before we read them, and characters we cut from the front for the limit.
  lostBytes: bigint;
  cutChars: number;
  decoder: TextDecoder;
}

export function emptyConsole(): ConsoleBuffer {
  return { text: "", nextOffset: 0n, lostBytes: 0n, cutChars: 0, decoder: new TextDecoder("utf-8") };
}

// Appends one chunk. A chunk wholly before nextOffset (a repeat after a
// reconnect) is skipped and one that overlaps it is trimmed; a gap (the
// board's ring buffer dropped output) is counted and marked in the text.
export function appendChunk(buffer: ConsoleBuffer, chunk: OutputChunk, limit = CONSOLE_LIMIT_CHARS): ConsoleBuffer {
  const end = chunk.offset + BigInt(chunk.data.length);
  if (end <= buffer.nextOffset) return buffer;
  let data = chunk.data;
  let text = buffer.text;
  let lostBytes = buffer.lostBytes;
  if (chunk.offset < buffer.nextOffset) {
    data = data.subarray(Number(buffer.nextOffset - chunk.offset));
  } else if (chunk.offset > buffer.nextOffset) {
    const gap = chunk.offset - buffer.nextOffset;
    lostBytes += gap;
    text += `${text === "" || text.endsWith("\n") ? "" : "\n"}[… ${gap} bytes of output dropped by the board …]\n`;
  }
  text += buffer.decoder.decode(data, { stream: true });
  let cutChars = buffer.cutChars;
  if (text.length > limit) {
    // Cut at a line start when one is near, so the first line is whole.
    let from = text.length - limit;
    const newline = text.indexOf("\n", from);
    if (newline !== -1 && newline - from < 1024) from = newline + 1;
    cutChars += from;
    text = text.slice(from);
  }
  return { text, nextOffset: end, lostBytes, cutChars, decoder: buffer.decoder };
}

// Whether the console should keep following the tail: the user has not
// scrolled up from the bottom (within a few pixels of rounding).
export function isAtBottom(scrollTop: number, scrollHeight: number, clientHeight: number): boolean {
  return scrollHeight - clientHeight - scrollTop <= 4;
}

// Which program the console follows unless the user picked one: the newest
// (ids only grow), so it stays on a program after it ended until another
// starts.
export function defaultProgram(programs: readonly Pick<ProgramRow, "id">[]): number | null {
  return programs.reduce<number | null>((best, p) => (best === null || p.id > best ? p.id : best), null);
}
