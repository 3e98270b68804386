// bench/dashboard's browser side: Debian's chromium (headless, through the
// playwright-core of web-ui/node_modules) against a running lab's dashboard.
// For each round, in a fresh browser context already signed in (the token in
// sessionStorage, as the sign-in page leaves it):
//   overview  time from navigation start to every tile data-state="online"
//   board     time from navigation start to N live rows in the thread table
// and for each page, once rendered, the main thread's busy share while live
// updates arrive: CDP Performance.getMetrics TaskDuration (the renderer main
// thread's task time) over --window seconds of wall time, with the DOM
// mutations a second beside it (so a page that updates nothing is visible).
//
//   node measure.mjs --url http://127.0.0.1:PORT/ --token tf_... --boards 200 --board b001
//                    [--threads 10] [--rounds 3] [--window 5] [--timeout 60]
// Prints one JSON object: {overview_render_s: [...], board_render_s: [...],
// overview_busy: [...], board_busy: [...], overview_mutations_per_s: [...], ...}.
// Exits 1 with a message when a page does not render within --timeout.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(join(REPO, "web-ui", "package.json"));
const { chromium } = require("playwright-core");

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    boards: { type: "string" },
    board: { type: "string" },
    threads: { type: "string", default: "10" },
    rounds: { type: "string", default: "3" },
    window: { type: "string", default: "5" },
    timeout: { type: "string", default: "60" },
    chromium: { type: "string", default: process.env.TF_CHROMIUM ?? "/usr/bin/chromium" },
  },
});
for (const key of ["url", "token", "boards", "board"]) {
  if (!opts[key]) {
    console.error(`measure.mjs: --${key} is required`);
    process.exit(2);
  }
}
const boards = Number(opts.boards);
const threads = Number(opts.threads);
const timeoutMs = Number(opts.timeout) * 1000;
const windowMs = Number(opts.window) * 1000;

// performance.now() (ms since navigation start) when `ready` first holds,
// checked every animation frame, i.e. when the page shows it.
async function renderSeconds(page, path, ready, arg, what) {
  await page.goto(new URL(path, opts.url).href, { waitUntil: "commit", timeout: timeoutMs });
  try {
    const handle = await page.waitForFunction(ready, arg, { polling: "raf", timeout: timeoutMs });
    return (await handle.jsonValue()) / 1000;
  } catch (e) {
    const alerts = await page.getByRole("alert").allTextContents().catch(() => []);
    throw new Error(`${path}: ${what} not within ${timeoutMs / 1000} s` + (alerts.length ? ` (the page says: ${alerts.join(" | ")})` : ""), {
      cause: e,
    });
  }
}

// The main thread's busy share (0..1) and DOM mutations a second over the window.
async function busyShare(page, cdp) {
  await page.evaluate(() => {
    window.__benchMutations = 0;
    new MutationObserver((records) => {
      window.__benchMutations += records.length;
    }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  });
  const task = async () => (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === "TaskDuration").value;
  const t0 = performance.now();
  const busy0 = await task();
  await page.waitForTimeout(windowMs);
  const busy1 = await task();
  const wall = (performance.now() - t0) / 1000;
  const mutations = await page.evaluate(() => window.__benchMutations);
  return { busy: (busy1 - busy0) / wall, mutationsPerS: mutations / wall };
}

const overviewReady = (n) => {
  const online = document.querySelectorAll('[data-testid="board-tile"][data-state="online"]').length;
  return online >= n ? performance.now() : false;
};
const boardReady = (n) => {
  const rows = document.querySelectorAll(
    '[data-testid="threads"] tr[data-thread-id][data-state="running"], [data-testid="threads"] tr[data-thread-id][data-state="sleeping"]',
  ).length;
  return rows >= n ? performance.now() : false;
};

const browser = await chromium.launch({
  executablePath: opts.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const result = {
  overview_render_s: [],
  board_render_s: [],
  overview_busy: [],
  board_busy: [],
  overview_mutations_per_s: [],
  board_mutations_per_s: [],
  console_errors: [],
};
try {
  for (let round = 0; round < Number(opts.rounds); round++) {
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    await context.addInitScript((token) => sessionStorage.setItem("threadfleet.token", token), opts.token);
    const page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && result.console_errors.push(m.text()));
    page.on("pageerror", (e) => result.console_errors.push(e.message));
    const cdp = await context.newCDPSession(page);
    await cdp.send("Performance.enable");

    result.overview_render_s.push(await renderSeconds(page, "/", overviewReady, boards, `${boards} tiles online`));
    await page.waitForTimeout(1000); // past the first render's own work
    let m = await busyShare(page, cdp);
    result.overview_busy.push(m.busy);
    result.overview_mutations_per_s.push(m.mutationsPerS);

    result.board_render_s.push(await renderSeconds(page, `/boards/${opts.board}`, boardReady, threads, `${threads} live thread rows`));
    await page.waitForTimeout(1000);
    m = await busyShare(page, cdp);
    result.board_busy.push(m.busy);
    result.board_mutations_per_s.push(m.mutationsPerS);
    await context.close();
  }
} catch (e) {
  console.error(`measure.mjs: ${e.message.split("\n")[0]}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(JSON.stringify(result));
