import { describe, expect, it } from "vitest";
import { boardPathFor, checkBoardPath, parseModuleFunc } from "./inputs";

describe("parseModuleFunc", () => {
  it("splits at the last dot", () => {
    expect(parseModuleFunc(" app.sensors.run ")).toEqual({ module: "app.sensors", function: "run" });
    expect(parseModuleFunc("blink.run")).toEqual({ module: "blink", function: "run" });
  });

  it("names the field when the input is not MODULE.FUNC", () => {
    expect(parseModuleFunc("blink")).toMatch(/^MODULE.FUNC: /);
    expect(parseModuleFunc(".run")).toMatch(/^MODULE.FUNC: /);
    expect(parseModuleFunc("blink.")).toMatch(/^MODULE.FUNC: /);
    expect(parseModuleFunc("bl-ink.run")).toMatch(/identifiers/);
  });
});

describe("board paths", () => {
  it("puts a program at /BASENAME and wants absolute file paths", () => {
    expect(boardPathFor("thread_basic.py")).toBe("/thread_basic.py");
    expect(boardPathFor("C:\\fakepath\\x.py")).toBe("/x.py");
    expect(checkBoardPath("/app/main.py")).toBeNull();
    expect(checkBoardPath("app/main.py")).toMatch(/^Path: /);
    expect(checkBoardPath("/app/")).toMatch(/^Path: /);
  });
});
