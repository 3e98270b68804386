// What the action forms accept, checked before anything is sent: a message
// naming the field and the rule when the input is not usable.

export interface FunctionRef {
  module: string;
  function: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

// "app.sensors.run" → module "app.sensors", function "run".
export function parseModuleFunc(text: string): FunctionRef | string {
  const value = text.trim();
  const dot = value.lastIndexOf(".");
  if (dot <= 0 || dot === value.length - 1) return "MODULE.FUNC: expected a module and a function, e.g. blink.run";
  const module = value.slice(0, dot);
  const fn = value.slice(dot + 1);
  if (!module.split(".").every((part) => IDENTIFIER.test(part)) || !IDENTIFIER.test(fn)) {
    return "MODULE.FUNC: module and function must be Python identifiers separated by dots, e.g. app.sensors.run";
  }
  return { module, function: fn };
}

// Where "Run program" puts a local file on the board, as `fleetctl run` does:
// /BASENAME.
export function boardPathFor(fileName: string): string {
  const base = fileName.split(/[\\/]/).pop() ?? fileName;
  return `/${base}`;
}

// An absolute board path, e.g. "/app/main.py".
export function checkBoardPath(path: string): string | null {
  if (!path.startsWith("/")) return "Path: must be absolute, e.g. /app/main.py";
  if (path.endsWith("/")) return "Path: must name a file, not a directory";
  return null;
}
