// The Player page in Debian Chromium with the unmodified Web SDK, through the real edge (wrangler dev) and sidecar.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Page } from "playwright-core";
import { launchChromium, openPlayer as openPlayerOn, playSampleToEnd } from "../helpers/chromium.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler } from "../helpers/wrangler.ts";

let sidecar: SidecarProcess;
let edge: Awaited<ReturnType<typeof startWrangler>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;

before(async () => {
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await edge?.stop();
  await sidecar?.stop();
});

const openPlayer = async (stream: string): Promise<Page> => openPlayerOn(await browser.context.newPage(), edge.url, stream);

const statusText = (page: Page) => page.locator("#status").innerText();

test("vod://sample.mp4 plays picture and sound in Chromium, then reports STOPPED at the end", async () => {
  const page = await openPlayer("vod://sample.mp4");
  await playSampleToEnd(page);
  await page.close();
});

test("vod://nothing.mp4 shows FAILED with info 'File not found'", async () => {
  const page = await openPlayer("vod://nothing.mp4");
  await page.click("#playBtn");
  await page.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("FAILED"), undefined, { timeout: 15_000 });
  assert.equal((await page.locator("#info").innerText()).trim(), "File not found");
  assert.match(await statusText(page), /FAILED/);
  await page.close();
});

test("Stop during playback ends the stream as STOPPED", async () => {
  const page = await openPlayer("vod://sample.mp4");
  await page.click("#playBtn");
  await page.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("PLAYING"), undefined, { timeout: 30_000 });
  await page.click("#playBtn");
  await page.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("STOPPED"), undefined, { timeout: 10_000 });
  assert.equal((await page.locator("#info").innerText()).trim(), "Stopped by user");
  await page.close();
});
