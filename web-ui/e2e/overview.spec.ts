// The lab overview: a tile per board, online; the label filter; a tile
// opens the board's page.
import { expect, screenshot, signIn, test } from "./fixtures";

test("the overview shows the lab's 4 boards online, filters by label and opens a board", async ({ page, lab }, testInfo) => {
  await signIn(page, lab.tokens.admin);
  const tiles = page.getByTestId("board-tile");
  await expect(tiles).toHaveCount(4);
  for (const board of lab.boards) {
    await expect(page.locator(`[data-testid=board-tile][data-board=${board}]`)).toHaveAttribute("data-state", "online");
  }
  await expect(page.getByTestId("connection")).toHaveAttribute("data-state", "live");
  await screenshot(page, testInfo, "overview-1366x768");

  // deploy/lab labels odd boards half=a, even ones half=b.
  await page.getByLabel("Filter by label").fill("half=b");
  await expect(tiles).toHaveCount(2);
  await expect(tiles.nth(0)).toHaveAttribute("data-board", "b02");
  await expect(tiles.nth(1)).toHaveAttribute("data-board", "b04");
  await page.getByLabel("Filter by label").fill("");
  await expect(tiles).toHaveCount(4);

  await page.locator("[data-testid=board-tile][data-board=b03]").click();
  await expect(page).toHaveURL(/\/boards\/b03$/);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("b03");
  await expect(page.getByTestId("board-state")).toHaveAttribute("data-state", "online");
});
