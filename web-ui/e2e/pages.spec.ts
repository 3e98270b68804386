// Every main page loads without console errors, at a laptop's 1366x768 and a
// phone's 390x844, and leaves a screenshot of each as a test artifact.
import { expect, screenshot, signIn, test } from "./fixtures";

const PAGES = [
  { name: "overview", path: "/", ready: "[data-testid=board-tile][data-state=online]" },
  { name: "board", path: "/boards/b01", ready: "[data-testid=board-state][data-state=online]" },
  { name: "events", path: "/events", ready: "[data-testid=events]" },
  { name: "jobs", path: "/jobs", ready: "main" },
];

for (const size of [
  { width: 1366, height: 768 },
  { width: 390, height: 844 },
]) {
  test.describe(`at ${size.width}x${size.height}`, () => {
    test.use({ viewport: size });
    for (const p of PAGES) {
      test(`${p.name} loads, settles and has no console errors`, async ({ page, lab }, testInfo) => {
        await signIn(page, lab.tokens.admin, p.path);
        await expect(page.locator(p.ready).first()).toBeAttached();
        await expect(page.locator("[aria-busy=true]")).toHaveCount(0);
        await expect(page.getByRole("alert")).toHaveCount(0);
        // Nothing wider than the screen: no sideways scrolling of the page.
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow, "page wider than the viewport by").toBeLessThanOrEqual(0);
        await screenshot(page, testInfo, `${p.name}-${size.width}x${size.height}`);
      });
    }
  });
}
