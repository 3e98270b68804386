// The dashboard's browser tests (e2e/*.spec.ts) against a real lab
// (e2e/global-setup.ts: deploy/lab with 4 boards, fleetd serving dist/),
// in Debian's chromium (apt-get install chromium; deploy/bootstrap does).
//   npm run build && npm run e2e                      # from web-ui/
//   ctest --preset default -R web_ui_e2e              # what tests/run does
// Artifacts (screenshots of every main page, traces and screenshots of
// failures): $TF_WEB_ARTIFACTS (ctest: build/default/web-artifacts), else
// test-results/.
import { defineConfig } from "@playwright/test";
import { join } from "node:path";

const artifacts = process.env.TF_WEB_ARTIFACTS ?? "test-results";

export default defineConfig({
  testDir: "e2e",
  globalSetup: "./e2e/global-setup.ts",
  outputDir: join(artifacts, "results"),
  // One lab shared by every spec, some of which kill its processes: one at a time.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: true,
  timeout: 90_000,
  globalTimeout: 15 * 60_000,
  expect: { timeout: 10_000 },
  reporter: [["list"], ["junit", { outputFile: join(artifacts, "junit.xml") }]],
  use: {
    headless: true,
    viewport: { width: 1366, height: 768 },
    actionTimeout: 10_000,
    navigationTimeout: 20_000,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.TF_CHROMIUM ?? "/usr/bin/chromium",
      // Containers without user namespaces cannot run chromium's sandbox.
      args: ["--no-sandbox", "--disable-dev-shm-usage"],
    },
  },
});
