/// <reference types="node" />
// Faults the dashboard must ride out: a board killed with SIGKILL shows
// offline within 3 s and online again after `deploy/lab up` restarts it;
// fleetd restarted under an open page, which reconnects by itself.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, signIn, test } from "./fixtures";
import { fleetctl, killPrograms, labUp, pidOf, waitOnline } from "./lab";

const OFFLINE_WITHIN_MS = 3_000;
const PROGRAMS = join(dirname(fileURLToPath(import.meta.url)), "programs");

test("kill -9 of a board shows its tile offline within 3 s, and online after restart", async ({ page, lab }) => {
  await signIn(page, lab.tokens.viewer);
  const tile = page.locator("[data-testid=board-tile][data-board=b04]");
  await expect(tile).toHaveAttribute("data-state", "online");
  const killed = Date.now();
  process.kill(pidOf(lab, "b04"), "SIGKILL");
  try {
    // Checked every 50 ms (expect's own polling slows to once a second).
    await page.waitForFunction(
      () => document.querySelector('[data-testid=board-tile][data-board=b04]')?.getAttribute("data-state") === "offline",
      undefined,
      { polling: 50, timeout: OFFLINE_WITHIN_MS + 2_000 },
    );
    const took = Date.now() - killed;
    test.info().annotations.push({ type: "offline after kill -9", description: `${took} ms` });
    expect(took, `b04's tile showed offline ${took} ms after kill -9`).toBeLessThanOrEqual(OFFLINE_WITHIN_MS);
    for (const other of ["b01", "b02", "b03"]) {
      await expect(page.locator(`[data-testid=board-tile][data-board=${other}]`)).toHaveAttribute("data-state", "online");
    }
  } finally {
    labUp(lab); // restarts b04 only
  }
  await expect(tile).toHaveAttribute("data-state", "online", { timeout: 30_000 });
});

test("after fleetd restarts the open page reconnects by itself and data flows again", async ({ page, lab, consoleErrors }) => {
  // While fleetd is down the browser logs its refused connections.
  consoleErrors.allow(/Failed to load resource|net::ERR_/);
  try {
    await signIn(page, lab.tokens.operator, "/boards/b01");
    const badge = page.getByTestId("connection");
    await expect(badge).toHaveAttribute("data-state", "live");
    await expect(page.getByTestId("board-state")).toHaveAttribute("data-state", "online");

    process.kill(pidOf(lab, "fleetd"), "SIGKILL");
    await expect(badge).toHaveAttribute("data-state", "reconnecting");
    await expect(badge).toHaveText(/reconnecting/);
    labUp(lab);
    await waitOnline(lab);
    await expect(badge).toHaveAttribute("data-state", "live", { timeout: 20_000 });
    await expect(badge).toHaveText("live");

    // Data flows again without a reload: a program started now shows its threads and output.
    fleetctl(lab, ["run", "-b", "b01", "--name", "after-restart", join(PROGRAMS, "two_workers.py")]);
    await expect(page.getByTestId("console")).toContainText("worker-b tick 1", { timeout: 15_000 });
    await expect(page.getByTestId("threads").locator("tr[data-thread-id]").filter({ hasText: "worker-a" })).toHaveCount(1);
    await expect(page.getByTestId("board-state")).toHaveAttribute("data-state", "online");
  } finally {
    labUp(lab); // whatever happened, the next spec finds the lab running
    killPrograms(lab, "b01");
  }
});
