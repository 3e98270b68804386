/// <reference types="node" />
// Viewer sees, operator acts: a viewer's board page offers no action, and a
// kill forged with the viewer's token straight to the Connect API is refused.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, pageFor, signIn, test } from "./fixtures";
import { fleetctl, killPrograms } from "./lab";

const PROGRAMS = join(dirname(fileURLToPath(import.meta.url)), "programs");

// Starts two_workers.py on `board` with fleetctl; the id of its worker-a thread once it shows.
async function startWorkers(lab: Parameters<typeof fleetctl>[0], board: string): Promise<number> {
  fleetctl(lab, ["run", "-b", board, join(PROGRAMS, "two_workers.py")]);
  for (let i = 0; i < 50; i++) {
    for (const bt of fleetctl(lab, ["threads", "-b", board]).boards ?? []) {
      const worker = (bt.threads ?? []).find((t: { name?: string }) => t.name === "worker-a");
      if (worker) return Number(worker.id);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`worker-a did not show on ${board} within 10 s`);
}

test("a viewer sees the threads but no kill button or action, and a forged kill is refused", async ({ browser, page, lab, consoleErrors, request }) => {
  try {
    const threadId = await startWorkers(lab, "b02");

    // The operator is offered the kill; the viewer, looking at the same thread, is not.
    await signIn(page, lab.tokens.operator, "/boards/b02");
    await expect(page.getByRole("button", { name: `Kill thread ${threadId}`, exact: true })).toBeVisible();
    const viewer = await pageFor(browser, consoleErrors, lab, lab.tokens.viewer, "/boards/b02");
    await expect(viewer.getByTestId("whoami")).toHaveText("e2e-viewer (viewer)");
    await expect(viewer.locator(`tr[data-thread-id="${threadId}"]`)).toHaveAttribute("data-state", /^(running|sleeping)$/);
    await expect(viewer.getByRole("button", { name: /^Kill (thread|program)/ })).toHaveCount(0);
    for (const action of ["Run program", "Push file", "Start function", "Run", "Push", "Start", "Reset", "Safe reset"]) {
      await expect(viewer.getByRole("button", { name: action, exact: true })).toHaveCount(0);
    }
    await expect(viewer.getByLabel("Program file")).toHaveCount(0);

    // The same kill the operator's button sends, forged with the viewer's token.
    const forged = await request.post(`${lab.url}threadfleet.fleet.v1.Fleet/KillThread`, {
      headers: { Authorization: `Bearer ${lab.tokens.viewer}`, "Content-Type": "application/json" },
      data: { board: "b02", threadId },
    });
    expect(forged.status()).toBe(403);
    const error = await forged.json();
    expect(error.code).toBe("permission_denied");
    expect(error.message).toBeTruthy();
    // Nothing happened to the thread.
    const threads = fleetctl(lab, ["threads", "-b", "b02"]).boards[0].threads;
    const target = threads.find((t: { id: number }) => Number(t.id) === threadId);
    expect(target.state).toMatch(/THREAD_STATE_(RUNNING|SLEEPING)/);
    await viewer.context().close();
  } finally {
    killPrograms(lab, "b02");
  }
});
