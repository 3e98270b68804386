/// <reference types="node" />
// The board page, driven as an operator does: run a program through "Run
// program" and watch its threads and output live; kill one thread while its
// sibling goes on; a failing thread's traceback; a deadlock anomaly; Reset
// (and Safe reset) ending the board's programs. Each test uses one board
// and kills what it started at the end.
import type { Page } from "@playwright/test";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { confirm, expect, runProgram, screenshot, signIn, test, threadRow } from "./fixtures";
import { FLEET_TEST_SCRIPTS, SEED_SCRIPTS, killPrograms } from "./lab";

const PROGRAMS = join(dirname(fileURLToPath(import.meta.url)), "programs");

// The board page's thread rows in any of `states`.
function rows(page: Page, ...states: string[]) {
  return page.getByTestId("threads").locator(states.map((s) => `tr[data-thread-id][data-state=${s}]`).join(", "));
}

// The highest N of "NAME tick N" lines in the console, -1 when none.
function lastTick(text: string, name: string): number {
  let last = -1;
  for (const m of text.matchAll(new RegExp(`${name} tick (\\d+)`, "g"))) last = Math.max(last, Number(m[1]));
  return last;
}

test("a seed script run through Run program shows its threads and streams its output", async ({ page, lab }, testInfo) => {
  try {
    await signIn(page, lab.tokens.operator, "/boards/b01");
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("b01");
    await runProgram(page, join(SEED_SCRIPTS, "thread_basic.py"));

    // The main thread and the one it starts, live.
    await expect.poll(() => rows(page, "running", "sleeping").count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    // Output arrives while the program runs, not at its end.
    const output = page.getByTestId("console");
    await expect(output).toContainText("Main thread is running:");
    await expect(output).toContainText(/Thread is running: +2/);
    await screenshot(page, testInfo, "board-1366x768");
    // The program ends by itself (about 8 s): its threads show finished.
    await expect(output).toContainText(/Thread is running: +4/, { timeout: 15_000 });
    await expect(rows(page, "finished")).not.toHaveCount(0, { timeout: 15_000 });
  } finally {
    killPrograms(lab, "b01");
  }
});

test("killing one thread shows it killed while the other worker goes on", async ({ page, lab }) => {
  try {
    await signIn(page, lab.tokens.operator, "/boards/b02");
    await runProgram(page, join(PROGRAMS, "two_workers.py"));
    await expect(page.getByTestId("threads").locator("tr[data-thread-id]").filter({ hasText: "worker-b" })).toHaveCount(1);
    const a = await threadRow(page, "worker-a");
    const b = await threadRow(page, "worker-b");

    await page.getByRole("button", { name: `Kill thread ${a.id}`, exact: true }).click();
    await confirm(page);
    await expect(page.getByTestId("action-result")).toContainText(`Thread ${a.id} killed`);
    await expect(a.row).toHaveAttribute("data-state", "killed");
    await expect(a.row.getByRole("button", { name: /^Kill thread/ })).toHaveCount(0); // nothing left to kill

    // worker-b keeps ticking in the console; worker-a has stopped.
    const output = page.getByTestId("console");
    const before = lastTick((await output.textContent()) ?? "", "worker-b");
    const aAtKill = lastTick((await output.textContent()) ?? "", "worker-a");
    await expect.poll(async () => lastTick((await output.textContent()) ?? "", "worker-b")).toBeGreaterThan(before + 2);
    expect(lastTick((await output.textContent()) ?? "", "worker-a")).toBeLessThanOrEqual(aAtKill + 1);
    await expect(b.row).toHaveAttribute("data-state", /^(running|sleeping)$/);
  } finally {
    killPrograms(lab, "b02");
  }
});

test("a failing thread shows its traceback, and a deadlock shows as an anomaly", async ({ page, lab }, testInfo) => {
  try {
    await signIn(page, lab.tokens.operator, "/boards/b03");
    await runProgram(page, join(FLEET_TEST_SCRIPTS, "fails.py"));
    const checker = page.getByTestId("threads").locator("tr[data-thread-id]").filter({ hasText: "checker" });
    await expect(checker).toHaveAttribute("data-state", "failed", { timeout: 15_000 });
    await expect(checker).toContainText("ValueError");
    // The traceback names the function two calls deep where it failed.
    await expect(checker.getByTestId("traceback")).toContainText("parse_reading");

    await runProgram(page, join(FLEET_TEST_SCRIPTS, "deadlock.py"));
    await expect(page.getByTestId("anomalies").locator("[data-kind=deadlock]")).not.toHaveCount(0, { timeout: 20_000 });
    for (const name of ["left", "right"]) {
      await expect(page.getByTestId("threads").locator("tr[data-thread-id]").filter({ hasText: name })).toHaveAttribute(
        "data-state",
        "waiting_lock",
      );
    }
    await screenshot(page, testInfo, "board-anomalies-1366x768");
  } finally {
    killPrograms(lab, "b03");
  }
});

test("Reset ends every program of the board and says whether the boot scripts run again", async ({ page, lab }) => {
  try {
    await signIn(page, lab.tokens.operator, "/boards/b03");
    await runProgram(page, join(PROGRAMS, "two_workers.py"));
    const a = await threadRow(page, "worker-a");
    const b = await threadRow(page, "worker-b");

    await page.getByRole("button", { name: "Reset", exact: true }).click();
    await expect(page.getByRole("dialog")).toContainText("Reset b03 (every program ends");
    await confirm(page);
    await expect(page.getByTestId("action-result")).toHaveText("b03: reset (fresh VM; /boot.py and /main.py run again)");
    await expect(a.row).toHaveAttribute("data-state", "killed");
    await expect(b.row).toHaveAttribute("data-state", "killed");

    await page.getByRole("button", { name: "Safe reset", exact: true }).click();
    await confirm(page);
    await expect(page.getByTestId("action-result")).toHaveText("b03: reset (safe boot: /boot.py and /main.py skipped)");
  } finally {
    killPrograms(lab, "b03");
  }
});

test("board output that looks like HTML shows as text and runs nothing", async ({ page, lab }) => {
  try {
    await signIn(page, lab.tokens.operator, "/boards/b04");
    await runProgram(page, join(PROGRAMS, "html_output.py"));
    const output = page.getByTestId("console");
    await expect(output).toContainText('<script>window.__tfPwned = 1</script><img src=x onerror="window.__tfPwned = 2"> line 1');
    expect(await output.locator("script, img").count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __tfPwned?: number }).__tfPwned)).toBeUndefined();
    // The only scripts on the page are the dashboard's own files.
    expect(await page.locator("script:not([src])").count()).toBe(0);
  } finally {
    killPrograms(lab, "b04");
  }
});
