import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { OutputChunkSchema } from "../../gen/threadfleet/board/v1/board_pb";
import { appendChunk, defaultProgram, emptyConsole, isAtBottom } from "./console-buffer";

const bytes = (s: string) => new TextEncoder().encode(s);
const chunk = (offset: number, data: Uint8Array | string) =>
  create(OutputChunkSchema, { offset: BigInt(offset), data: typeof data === "string" ? bytes(data) : data });

describe("appendChunk", () => {
  it("appends output and remembers where to resume", () => {
    let b = appendChunk(emptyConsole(), chunk(0, "hello\n"));
    b = appendChunk(b, chunk(6, "world\n"));
    expect(b.text).toBe("hello\nworld\n");
    expect(b.nextOffset).toBe(12n);
  });

  it("keeps a UTF-8 character split across chunks whole", () => {
    const euro = bytes("€"); // 3 bytes
    let b = appendChunk(emptyConsole(), chunk(0, euro.subarray(0, 1)));
    b = appendChunk(b, chunk(1, euro.subarray(1)));
    expect(b.text).toBe("€");
  });

  it("skips bytes it already has after a reconnect", () => {
    let b = appendChunk(emptyConsole(), chunk(0, "abc"));
    b = appendChunk(b, chunk(0, "abc"));
    b = appendChunk(b, chunk(1, "bcde"));
    expect(b.text).toBe("abcde");
    expect(b.nextOffset).toBe(5n);
  });

  it("marks output the board dropped before it was read", () => {
    const b = appendChunk(emptyConsole(), chunk(100, "tail\n"));
    expect(b.lostBytes).toBe(100n);
    expect(b.text).toBe("[… 100 bytes of output dropped by the board …]\ntail\n");
  });

  it("keeps only the last `limit` characters, from a line start", () => {
    let b = emptyConsole();
    for (let i = 0; i < 100; i++) b = appendChunk(b, chunk(i * 10, `line ${String(i).padStart(4, "0")}\n`), 55);
    expect(b.text.length).toBeLessThanOrEqual(55);
    expect(b.text.startsWith("line")).toBe(true);
    expect(b.text.endsWith("line 0099\n")).toBe(true);
    expect(b.cutChars + b.text.length).toBe(1000);
  });

  it("renders markup as the text it is", () => {
    const b = appendChunk(emptyConsole(), chunk(0, "<script>alert(1)</script>"));
    expect(b.text).toBe("<script>alert(1)</script>");
  });
});

describe("isAtBottom", () => {
  it("follows at the bottom and stops once the user scrolled up", () => {
    expect(isAtBottom(600, 1000, 400)).toBe(true);
    expect(isAtBottom(597, 1000, 400)).toBe(true);
    expect(isAtBottom(300, 1000, 400)).toBe(false);
  });
});

describe("defaultProgram", () => {
  it("follows the newest program, none when there is none", () => {
    expect(defaultProgram([{ id: 3 }, { id: 7 }, { id: 5 }])).toBe(7);
    expect(defaultProgram([])).toBeNull();
  });
});
