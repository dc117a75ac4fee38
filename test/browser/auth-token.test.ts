// The real Web SDK in Chromium against an edge with AUTH_TOKEN_SECRET: a good token is ESTABLISHED, a bad one is
// SESSION_STATUS FAILED (not DISCONNECTED), with the reason on the WARN handler. No media: no sidecar needed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Page } from "playwright-core";
import { Info, mintAuthToken } from "@edge-vod/shared";
import { launchChromium } from "../helpers/chromium.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const SECRET = randomBytes(24).toString("hex");
let edge: WranglerDev;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;

before(async () => {
  edge = await startWrangler({ sidecarUrl: "http://127.0.0.1:9", secret: "unused", vars: { AUTH_TOKEN_SECRET: SECRET } });
  browser = await launchChromium();
  page = await browser.context.newPage();
  await page.goto(`${edge.url}/player.html`);
  await page.waitForFunction(() => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined");
});

after(async () => {
  await browser?.close();
  await edge?.stop();
});

/** createSession({authToken}) and the session statuses the page saw until it settled (WARN with its info). */
function sessionStatuses(authToken: string): Promise<string[]> {
  // A string, not a function: tsx decorates functions with helpers that do not exist in the page.
  return page.evaluate(`new Promise((resolve) => {
    const F = Flashphoner;
    F.init({});
    const S = F.constants.SESSION_STATUS;
    const seen = [];
    const session = F.createSession({ urlServer: ${JSON.stringify(edge.wsUrl)}, authToken: ${JSON.stringify(authToken)} });
    const done = () => setTimeout(() => resolve(seen), 300);
    session.on(S.ESTABLISHED, () => { seen.push("ESTABLISHED"); session.disconnect(); done(); });
    session.on(S.FAILED, () => { seen.push("FAILED"); done(); });
    session.on(S.DISCONNECTED, () => { seen.push("DISCONNECTED"); done(); });
    session.on(S.WARN, (w) => seen.push("WARN " + w.info));
  })`);
}

test("a valid authToken: ESTABLISHED", async () => {
  const token = await mintAuthToken(SECRET, { exp: Math.floor(Date.now() / 1000) + 60, sub: "alice" });
  assert.deepEqual((await sessionStatuses(token)).slice(0, 1), ["ESTABLISHED"]);
});

test("a bad or expired authToken: SESSION_STATUS FAILED, the reason on WARN", async () => {
  const forged = await mintAuthToken("another-secret", { exp: Math.floor(Date.now() / 1000) + 60 });
  assert.deepEqual(await sessionStatuses(forged), [`WARN ${Info.AUTH_TOKEN_INVALID}`, "FAILED"]);
  const expired = await mintAuthToken(SECRET, { exp: Math.floor(Date.now() / 1000) - 5 });
  assert.deepEqual(await sessionStatuses(expired), [`WARN ${Info.AUTH_TOKEN_EXPIRED}`, "FAILED"]);
});
