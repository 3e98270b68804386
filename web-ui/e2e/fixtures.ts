/// <reference types="node" />
// What every spec shares: the lab (from globalSetup), baseURL = the
// dashboard, a guard that fails the test on any console error or uncaught
// page error (a spec that provokes network failures on purpose allows just
// those), sign-in and screenshot helpers.
import { test as base, expect, type Browser, type BrowserContext, type Page, type TestInfo } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { readLab, type Lab } from "./lab";

export { expect };

export interface ConsoleGuard {
  // Watches another context (e.g. a viewer's) too.
  watch(context: BrowserContext): void;
  // Errors matching `pattern` are expected in this test (e.g. fleetd down).
  allow(pattern: RegExp): void;
}

export const test = base.extend<{ lab: Lab; consoleErrors: ConsoleGuard }>({
  lab: async ({}, use) => {
    await use(readLab());
  },
  baseURL: async ({ lab }, use) => {
    await use(lab.url);
  },
  consoleErrors: [
    async ({ context }, use) => {
      const errors: string[] = [];
      const allowed: RegExp[] = [];
      const guard: ConsoleGuard = {
        watch(ctx) {
          ctx.on("console", (m) => {
            if (m.type() === "error") errors.push(`console.error at ${m.page()?.url()}: ${m.text()}`);
          });
          ctx.on("weberror", (e) => errors.push(`uncaught at ${e.page()?.url()}: ${e.error().message}`));
        },
        allow(pattern) {
          allowed.push(pattern);
        },
      };
      guard.watch(context);
      await use(guard);
      expect(errors.filter((e) => !allowed.some((re) => re.test(e))), "console errors and uncaught errors").toEqual([]);
    },
    { auto: true },
  ],
});

// Signs in through the #token= fragment and waits for the header to show
// who fleetd says the caller is.
export async function signIn(page: Page, token: string, path = "/"): Promise<void> {
  await page.goto(`${path}#token=${token}`);
  await expect(page.getByTestId("whoami")).toBeVisible();
}

// A page in a fresh context (its own sessionStorage) signed in with `token`,
// watched by the console guard.
export async function pageFor(browser: Browser, guard: ConsoleGuard, lab: Lab, token: string, path = "/"): Promise<Page> {
  const context = await browser.newContext({ baseURL: lab.url, viewport: { width: 1366, height: 768 } });
  guard.watch(context);
  const page = await context.newPage();
  await signIn(page, token, path);
  return page;
}

export const ARTIFACTS = resolve(process.env.TF_WEB_ARTIFACTS ?? "test-results");

// A full-page screenshot kept as an artifact (ARTIFACTS/NAME.png) and
// attached to the report.
export async function screenshot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  await testInfo.attach(name, { path, contentType: "image/png" });
}

// The thread table's row for the thread named `name` (its id and locator).
export async function threadRow(page: Page, name: string) {
  const row = page.getByTestId("threads").locator("tr[data-thread-id]").filter({ hasText: name });
  await expect(row).toHaveCount(1);
  const id = await row.getAttribute("data-thread-id");
  return { row, id: Number(id) };
}

// Runs `file` on the open board page through "Run program" (operators),
// confirming in the dialog; waits for the result to say it started.
export async function runProgram(page: Page, file: string): Promise<void> {
  const input = page.getByLabel("Program file");
  // "Run program" may be a button that opens the form, or the form's heading.
  if (!(await input.isVisible())) await page.getByRole("button", { name: "Run program" }).click();
  await input.setInputFiles(file);
  await page.getByRole("button", { name: "Run", exact: true }).click();
  await confirm(page);
  await expect(page.getByTestId("action-error")).toHaveCount(0);
  await expect(page.getByTestId("action-result")).toContainText("started program", { timeout: 20_000 });
}

export async function confirm(page: Page): Promise<void> {
  const dialog = page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  await dialog.getByRole("button", { name: "Confirm" }).click();
  await expect(dialog).toBeHidden();
}
