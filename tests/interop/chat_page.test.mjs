// The chat example's page in headless Chromium (Debian's), driven by
// playwright-core: two people on two pages chat through the hub.
//
// Run by examples/tests/chat_page.rs, which starts the `chat` binary and
// passes:
//   CHAT_URL   the page, http://127.0.0.1:PORT/
//   CHROMIUM   the browser binary (default /usr/bin/chromium)
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const url = process.env.CHAT_URL;
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
assert.ok(url, "CHAT_URL must be set");

const PATIENCE_MS = 60_000;

test("two chat pages talk through the hub in headless Chromium", async () => {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), "chat-chromium-"));
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
    timeout: PATIENCE_MS,
  });
  try {
    const problems = [];
    const open = async (user, extra = "") => {
      const page = await context.newPage();
      page.on("pageerror", (error) => problems.push(`${user}: page error: ${error.message}`));
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(`${user}: console error: ${message.text()}`);
      });
      await page.goto(`${url}?user=${user}&room=rust${extra}`, { timeout: PATIENCE_MS });
      await page.locator("#status", { hasText: `connected as ${user}` }).waitFor({ timeout: PATIENCE_MS });
      return page;
    };
    // Ann signs in as a moderator (token user-ann.role-moderator).
    const ann = await open("ann", "&role=moderator");
    const bob = await open("bob");
    // Ann saw Bob join the room.
    await ann.locator("#messages li", { hasText: "bob joined rust" }).waitFor({ timeout: PATIENCE_MS });

    await ann.fill("#text", "hello from ann's browser");
    await ann.click("button[type=submit]");
    // Bob's page shows it, through the generated receiver, from Ann.
    const line = bob.locator("#messages li", { hasText: "hello from ann's browser" });
    await line.waitFor({ timeout: PATIENCE_MS });
    assert.equal((await line.locator(".from").textContent()).trim(), "ann:");
    assert.equal(await bob.locator("#room").textContent(), "rust");

    // A moderator's announcement reaches the room; Bob's is refused on his
    // page only, and his connection stays up.
    await ann.fill("#text", "/announce be nice");
    await ann.click("button[type=submit]");
    const announced = bob.locator("#messages li", { hasText: "be nice" });
    await announced.waitFor({ timeout: PATIENCE_MS });
    assert.equal((await announced.locator(".from").textContent()).trim(), "ann (moderator):");
    await bob.fill("#text", "/announce I am in charge");
    await bob.click("button[type=submit]");
    await bob
      .locator("#messages li.notice", { hasText: "not announced" })
      .filter({ hasText: "unauthorized" })
      .waitFor({ timeout: PATIENCE_MS });
    await bob.fill("#text", "sorry");
    await bob.click("button[type=submit]");
    await ann.locator("#messages li", { hasText: "sorry" }).waitFor({ timeout: PATIENCE_MS });
    assert.equal(await ann.locator("#messages li", { hasText: "I am in charge" }).count(), 0);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
});
