/// <reference types="node" />
// A real lab for the browser tests and the dashboard bench: `deploy/lab up`
// (real `fleetboard serve` boards, a real fleetd serving web-ui/dist) in a
// temporary directory, tokens made with the real fleetctl, and `deploy/lab
// down` at the end, even when the test process dies (a detached guard).
//
//   const lab = startLab({ boards: 4 });   // globalSetup: writes lab.json, sets TF_E2E_LAB
//   const lab = readLab();                 // in a spec
//   fleetctl(lab, ["board", "ls"]);        // fleetctl -o json, parsed
//   stopLab(lab);                          // globalSetup's teardown
//
// Binaries: $THREADFLEET_BIN, else build/default/bin of this repository.
// The dashboard: $TF_WEB_ROOT, else web-ui/dist (built by `npm run build`
// or the CMake target web-ui). Every wait here is bounded.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const LAB_SCRIPT = join(REPO, "deploy", "lab");
export const SEED_SCRIPTS = process.env.SEED_SCRIPTS ?? join(REPO, "..", "shared", "seed-scripts");
// What the specs run on boards besides the seed scripts (tests/fleet's own).
export const FLEET_TEST_SCRIPTS = join(REPO, "tests", "fleet", "scripts");

const LAB_UP_TIMEOUT_MS = 180_000;
const LAB_DOWN_TIMEOUT_MS = 60_000;
const CTL_TIMEOUT_S = 30;
// The guard that stops a lab whose test process died gives up after this.
const GUARD_MAX_S = 3600;

export interface Lab {
  // The lab's directory (deploy/lab --dir) and its parent, removed at the end.
  dir: string;
  tmp: string;
  bin: string;
  boards: string[];
  // The dashboard's origin with a trailing slash: http://127.0.0.1:PORT/
  url: string;
  tokens: { admin: string; operator: string; viewer: string };
  // The guard process (deploy/lab down when the test process is gone).
  guardPid: number;
}

export function binDir(): string {
  return resolve(process.env.THREADFLEET_BIN ?? join(REPO, "build", "default", "bin"));
}

export function webRoot(): string {
  return resolve(process.env.TF_WEB_ROOT ?? join(REPO, "web-ui", "dist"));
}

function run(cmd: string, args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): string {
  const proc = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"], env });
  if (proc.error) throw new Error(`${cmd} ${args.join(" ")}: ${proc.error.message}`);
  if (proc.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${proc.status ?? proc.signal}:\n${proc.stderr}${proc.stdout}`);
  }
  return proc.stdout;
}

// deploy/lab up for this lab: starts whatever is not running (a board or
// fleetd that a test killed) and waits for it to serve. Returns its stdout.
export function labUp(lab: Pick<Lab, "dir" | "bin">, extra: string[] = []): string {
  return run(LAB_SCRIPT, ["up", "--dir", lab.dir, "--bin", lab.bin, ...extra], LAB_UP_TIMEOUT_MS);
}

export function startLab(options: { boards: number; extra?: string[] }): Lab {
  const bin = binDir();
  const root = webRoot();
  for (const name of ["fleetboard", "fleetd", "fleetctl"]) {
    if (!existsSync(join(bin, name))) {
      throw new Error(`no ${join(bin, name)}: build it (cmake --build --preset default) or set THREADFLEET_BIN`);
    }
  }
  if (!existsSync(join(root, "index.html"))) {
    throw new Error(`no ${join(root, "index.html")}: build the dashboard (npm run build in web-ui/) or set TF_WEB_ROOT`);
  }
  const tmp = mkdtempSync(join(tmpdir(), "threadfleet-e2e-"));
  const dir = join(tmp, "lab");
  const boards = Array.from({ length: options.boards }, (_, i) =>
    `b${String(i + 1).padStart(Math.max(2, String(options.boards).length), "0")}`,
  );
  const partial = { dir, tmp, bin, boards, url: "", tokens: { admin: "", operator: "", viewer: "" }, guardPid: 0 };
  try {
    partial.guardPid = startGuard(dir, tmp);
    const out = labUp(partial, ["--boards", String(options.boards), "--web-root", root, ...(options.extra ?? [])]);
    const url = /^\s*dashboard: (http:\/\/\S+)$/m.exec(out)?.[1];
    if (!url) throw new Error(`deploy/lab up printed no "dashboard: URL" line:\n${out}`);
    const admin = /^token: (\S+)$/m.exec(readFileSync(join(dir, "fleetctl.yaml"), "utf8"))?.[1];
    if (!admin) throw new Error(`no token in ${join(dir, "fleetctl.yaml")}`);
    const lab: Lab = { ...partial, url, tokens: { admin, operator: "", viewer: "" } };
    lab.tokens.operator = fleetctl(lab, ["token", "create", "e2e-operator", "--role", "operator"]).secret;
    lab.tokens.viewer = fleetctl(lab, ["token", "create", "e2e-viewer", "--role", "viewer"]).secret;
    return lab;
  } catch (e) {
    stopLab(partial);
    throw e;
  }
}

export function stopLab(lab: Pick<Lab, "dir" | "tmp" | "guardPid">): void {
  if (lab.guardPid) {
    try {
      process.kill(lab.guardPid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  try {
    if (existsSync(join(lab.dir, "lab.json"))) run(LAB_SCRIPT, ["down", "--dir", lab.dir], LAB_DOWN_TIMEOUT_MS);
  } finally {
    if (process.env.KEEP_LAB) console.log(`lab kept in ${lab.dir}`);
    else rmSync(lab.tmp, { recursive: true, force: true });
  }
}

// A detached watcher that takes the lab down if this process dies without
// stopLab (e.g. killed by ctest's timeout): the lab's processes run in their
// own sessions and would outlive it.
function startGuard(dir: string, tmp: string): number {
  const cleanUp = process.env.KEEP_LAB ? "" : `; rm -rf '${tmp}'`;
  const script =
    `i=0; while kill -0 ${process.pid} 2>/dev/null && [ $i -lt ${GUARD_MAX_S * 2} ]; do sleep 0.5; i=$((i+1)); done; ` +
    `'${LAB_SCRIPT}' down --dir '${dir}' >/dev/null 2>&1${cleanUp}`;
  const guard = spawn("/bin/sh", ["-c", script], { detached: true, stdio: "ignore" });
  guard.unref();
  return guard.pid ?? 0;
}

// Where globalSetup leaves the lab for the specs.
export function labFile(): string {
  return process.env.TF_E2E_LAB ?? join(REPO, "web-ui", "test-results", "lab.json");
}

export function writeLab(lab: Lab): void {
  const file = labFile();
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(lab, null, 2), { mode: 0o600 });
  process.env.TF_E2E_LAB = file;
}

export function readLab(): Lab {
  return JSON.parse(readFileSync(labFile(), "utf8")) as Lab;
}

// Every top-level JSON value in `text` (one pretty-printed message, or one
// per line as fleetctl prints a stream's messages).
export function jsonValues(text: string): unknown[] {
  const values: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") {
      if (depth++ === 0) start = i;
    } else if ((c === "}" || c === "]") && --depth === 0) {
      values.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return values;
}

// fleetctl -o json ARGS against the lab (the admin token unless `token`);
// its last JSON value (a streaming command's final message, e.g. run's
// RunProgramResponse after its push progress). Throws with fleetctl's
// stderr when it exits non-zero.
export function fleetctl(lab: Pick<Lab, "dir" | "bin" | "tmp">, args: string[], token?: string): any {
  const home = join(lab.tmp, "home"); // no ~/.config/threadfleet of the user leaks in
  mkdirSync(home, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  delete env.FLEETCTL_CONFIG;
  delete env.FLEETCTL_TOKEN;
  const cmd = ["--config", join(lab.dir, "fleetctl.yaml"), "--timeout", String(CTL_TIMEOUT_S - 5), "-o", "json"];
  if (token) cmd.push("--token", token);
  const out = run(join(lab.bin, "fleetctl"), [...cmd, ...args], CTL_TIMEOUT_S * 1000, env);
  return jsonValues(out).at(-1) ?? {};
}

export function pidOf(lab: Pick<Lab, "dir">, name: string): number {
  return Number(readFileSync(join(lab.dir, "run", `${name}.pid`), "utf8").trim());
}

export function boardStates(lab: Lab): Record<string, string> {
  const states: Record<string, string> = {};
  for (const b of fleetctl(lab, ["board", "ls"]).boards ?? []) states[b.name] = b.state;
  return states;
}

// Calls fn until it returns a truthy value (returned) or timeoutMs pass.
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs: number, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function waitOnline(lab: Lab, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    `every board of ${lab.dir} online`,
    () => {
      const states = boardStates(lab);
      return lab.boards.every((b) => states[b] === "BOARD_STATE_ONLINE");
    },
    timeoutMs,
    300,
  );
}

// Kills every running program of `board` (fleetctl), so a spec leaves the
// board as it found it.
export function killPrograms(lab: Lab, board: string): void {
  for (const bt of fleetctl(lab, ["threads", "-b", board]).boards ?? []) {
    for (const p of bt.programs ?? []) {
      if (p.state === "PROGRAM_STATE_RUNNING") fleetctl(lab, ["kill", board, "--program", String(p.id)]);
    }
  }
}
