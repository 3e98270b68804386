// Signing in and out: the form, a wrong token, the #token= fragment (gone
// from the address bar afterwards), the way back to the page asked for.
import { expect, screenshot, test } from "./fixtures";

const TOKEN_KEY = "threadfleet.token";

test("the sign-in form signs in, shows who the caller is, and Sign out forgets the token", async ({ page, lab }, testInfo) => {
  await page.goto("/");
  await expect(page).toHaveURL(/\/signin$/);
  await screenshot(page, testInfo, "signin-1366x768");
  await page.getByLabel("Token").fill(lab.tokens.admin);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("whoami")).toHaveText("lab-admin (admin)");
  await expect(page).toHaveURL(lab.url);
  expect(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY)).toBe(lab.tokens.admin);
  for (const name of ["Lab", "Events", "Jobs"]) await expect(page.getByRole("link", { name, exact: true })).toBeVisible();

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/signin$/);
  expect(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY)).toBeNull();
});

test("a wrong token is refused with an error that says so", async ({ page, consoleErrors }) => {
  // The refused WhoAmI is a 401 the browser logs as a failed resource.
  consoleErrors.allow(/status of 401|Failed to load resource/);
  await page.goto("/signin");
  await page.getByLabel("Token").fill("tf_" + "A".repeat(43));
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toContainText(/token/i);
  await expect(page.getByTestId("whoami")).toHaveCount(0);
});

test("a #token= fragment signs in and is removed from the address bar", async ({ page, lab }) => {
  await page.goto(`/#token=${lab.tokens.operator}`);
  await expect(page.getByTestId("whoami")).toHaveText("e2e-operator (operator)");
  expect(page.url()).not.toContain("token");
  expect(await page.evaluate(() => window.location.hash)).toBe("");
  // Replaced, not pushed: Back does not bring it back either.
  await page.goBack().catch(() => null);
  expect(page.url()).not.toContain("token");
});

test("a signed-out visit to a board goes to sign-in and back to the board after it", async ({ page, lab }) => {
  await page.goto("/boards/b02");
  await expect(page).toHaveURL(/\/signin$/);
  await page.getByLabel("Token").fill(lab.tokens.viewer);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/boards\/b02$/);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("b02");
});
