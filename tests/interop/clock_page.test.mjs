// The clock demo's page in headless Chromium (Debian's), driven by
// playwright-core: the clock must tick.
//
// Run by tests/tests/clock_demo.rs, which starts `clock-server` and passes:
//   CLOCK_URL   the page, http://127.0.0.1:PORT/
//   CHROMIUM    the browser binary (default /usr/bin/chromium)
//   SCREENSHOT  where to save a PNG of the ticking page
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const url = process.env.CLOCK_URL;
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const screenshot = process.env.SCREENSHOT;
assert.ok(url, "CLOCK_URL must be set");
assert.ok(screenshot, "SCREENSHOT must be set");

const PATIENCE_MS = 60_000;

test("the clock page ticks in headless Chromium", async () => {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), "clock-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
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
    viewport: { width: 960, height: 600 },
    timeout: PATIENCE_MS,
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    // Nothing may come from anywhere but the clock server.
    const origin = new URL(url).origin;
    const foreign = [];
    page.on("request", (request) => {
      const requested = request.url();
      if (!requested.startsWith(origin) && !requested.startsWith("data:")) foreign.push(requested);
    });
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
    });

    await page.goto(url, { timeout: PATIENCE_MS });
    const time = page.locator("#time");
    const placeholder = await time.textContent();

    // The displayed time must change at least twice.
    const shown = [];
    const deadline = Date.now() + PATIENCE_MS;
    while (shown.length < 3) {
      assert.ok(Date.now() < deadline, `the clock did not tick: saw ${JSON.stringify(shown)}`);
      const text = (await time.textContent()).trim();
      if (text !== placeholder && text !== shown.at(-1)) shown.push(text);
      await page.waitForTimeout(100);
    }
    for (const text of shown) assert.match(text, /^\d{2}:\d{2}:\d{2}$/);

    assert.equal(await page.locator("#status").getAttribute("data-state"), "connected");
    const wire = await page.locator("#wire").textContent();
    assert.ok(!Number.isNaN(new Date(wire).getTime()), `an ISO 8601 time on the wire: ${wire}`);
    assert.match(wire, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);

    // Let the tick highlight fade before the picture.
    await page.waitForTimeout(400);
    await page.screenshot({ path: screenshot });
    assert.deepEqual(problems, []);
    assert.deepEqual(foreign, []);
  } finally {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
});
