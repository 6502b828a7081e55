// Drives the web console in a real Chromium (Debian's, through playwright-core) against a running
// stack, as a person would: sign in, run greet and watch "Hello Ada!" stream in, open the run's
// timeline, stop a waiting run, browse runs and statistics. Prints one JSON line with what it saw;
// exits non-zero on the first failed expectation. Started by tests/e2e/test_console_browser.py.
//
// Environment: FLOWSTREAM_URL, FLOWSTREAM_TOKEN, GREET_ID, WAIT_ID, SCREENSHOT_DIR, CHROMIUM.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const baseUrl = env("FLOWSTREAM_URL");
const token = env("FLOWSTREAM_TOKEN");
const greetId = env("GREET_ID");
const waitId = env("WAIT_ID");
const shots = env("SCREENSHOT_DIR");
mkdirSync(shots, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), "flowstream-chromium-"));
// A fresh profile per run: nothing carried over from an earlier run or another test.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1360, height: 860 },
});
const seen = { steps: [], pageErrors: [] };
const TIMEOUT = 20_000;

try {
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (error) => seen.pageErrors.push(String(error)));
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`) });
  const step = (name) => seen.steps.push(name);

  // Sign in by pasting a token.
  await page.goto(`${baseUrl}/`);
  await page.getByTestId("token-input").fill(token);
  await shot("sign-in");
  await page.getByTestId("sign-in").click();
  await page.getByTestId("workflow-greet").waitFor();
  await shot("workflows");
  step("signed in, workflows listed");

  // Run greet from the form built from its START inputs; the greeting streams in.
  await page.getByTestId("workflow-greet").click();
  await page.locator("#input-name").fill("Ada");
  await page.getByTestId("run-button").click();
  await page.getByTestId("streamed-text").filter({ hasText: "Hello Ada!" }).waitFor();
  await page.locator('[data-testid=run-status]:text-is("succeeded")').waitFor();
  const greetStatuses = await page.getByTestId("dag-node").evaluateAll((nodes) => nodes.map((n) => n.dataset.status));
  if (greetStatuses.length !== 3 || greetStatuses.some((s) => s !== "succeeded")) {
    throw new Error(`greet's nodes are not all succeeded: ${greetStatuses}`);
  }
  seen.greetText = await page.getByTestId("streamed-text").textContent();
  seen.greetRunId = (await page.getByTestId("run-link").getAttribute("href")).split("/").pop();
  await shot("run-greet");
  step("greet ran, Hello Ada! streamed");

  // A finished run's timeline, and a node's inputs and outputs.
  await page.getByTestId("run-link").click();
  await page.locator(".tl-workflow_finished").waitFor();
  seen.timeline = await page.locator(".tl-event").allTextContents();
  await page.locator(".react-flow__node", { hasText: "Greet" }).click();
  await page.getByTestId("node-detail").filter({ hasText: "Hello Ada!" }).waitFor();
  await shot("run-timeline");
  step("timeline opened");

  // Stop a run that is waiting in its DELAY.
  await page.goto(`${baseUrl}/#/workflows/${waitId}`);
  await page.locator("#input-name").fill("Ada");
  await page.getByTestId("run-button").click();
  await page.locator('.react-flow__node [data-status="running"]', { hasText: "Wait" }).waitFor();
  await shot("run-waiting");
  await page.getByTestId("stop-button").click();
  await page.locator('[data-testid=run-status]:text-is("stopped")').waitFor();
  seen.waitRunId = (await page.getByTestId("run-link").getAttribute("href")).split("/").pop();
  seen.waitStatuses = await page.getByTestId("dag-node").evaluateAll((nodes) =>
    Object.fromEntries(nodes.map((n) => [n.querySelector(".step-title")?.textContent, n.dataset.status])),
  );
  await shot("run-stopped");
  step("waiting run stopped");

  // Browse runs with a filter, then a workflow's statistics.
  // History records a run a moment after its events: reload until it has (bounded).
  const reloadUntil = async (url, selector) => {
    for (let attempt = 1; ; attempt++) {
      await page.goto(url);
      if (attempt > 1) await page.reload(); // a hash change alone would not fetch again
      try {
        return await page.locator(selector).first().waitFor({ timeout: 2000 });
      } catch (error) {
        if (attempt === 10) throw error;
      }
    }
  };
  await reloadUntil(`${baseUrl}/#/runs?status=succeeded`, "[data-testid=run-row]");
  seen.succeededRows = await page.getByTestId("run-row").evaluateAll((rows) => rows.map((r) => r.dataset.status));
  await reloadUntil(`${baseUrl}/#/runs`, '[data-testid=run-row][data-status="stopped"]');
  await shot("runs");
  await page.goto(`${baseUrl}/#/workflows/${greetId}/stats`);
  await page.getByTestId("stats-total").waitFor();
  seen.statsTotal = Number(await page.getByTestId("stats-total").textContent());
  await page.getByTestId("bar-chart").waitFor();
  await shot("stats");
  step("runs and statistics browsed");
  seen.ok = true;
} catch (error) {
  seen.ok = false;
  seen.error = String(error?.stack ?? error);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen));
process.exitCode = seen.ok ? 0 : 1;
