// Every main page loads without console errors or sideways scrolling, and
// with less than 250 KB of gzipped JS, at a laptop's 1366x768 and a phone's
// 390x844, and leaves a screenshot of each as a test artifact.
import { expect, screenshot, signIn, test } from "./fixtures";

// Issue 13: the JS a page loads stays under 250 KB gzipped.
const MAX_JS_BYTES = 250 * 1024;

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
        // The JS the page loaded, as it crossed the wire (fleetd gzips it).
        const jsBytes = await page.evaluate(() =>
          performance
            .getEntriesByType("resource")
            .filter((e) => new URL(e.name).pathname.endsWith(".js"))
            .reduce((sum, e) => sum + (e as PerformanceResourceTiming).encodedBodySize, 0),
        );
        expect(jsBytes, "bytes of JS the page loaded").toBeGreaterThan(0);
        expect(jsBytes, "bytes of JS the page loaded").toBeLessThan(MAX_JS_BYTES);
        await screenshot(page, testInfo, `${p.name}-${size.width}x${size.height}`);
      });
    }
  });
}
