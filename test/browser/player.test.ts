// The Player page in Debian Chromium with the unmodified Web SDK, through the real edge (wrangler dev) and sidecar.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { launchChromium, openPlayer as openPlayerOn, playSampleToEnd } from "../helpers/chromium.ts";
import { CLOCK_FRAME_MS, clockMark, clockReader, makeClockFixture, readClockMs, type ClockRead } from "../helpers/clock-fixture.ts";
import { SAMPLE_MP4 } from "../helpers/fixtures.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler } from "../helpers/wrangler.ts";

let mediaDir: string;
let sidecar: SidecarProcess;
let edge: Awaited<ReturnType<typeof startWrangler>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;

before(async () => {
  // media/sample.mp4 and the clock file, whose picture says its own media time (for the seek bar).
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-player-"));
  await fs.copyFile(SAMPLE_MP4, path.join(mediaDir, "sample.mp4"));
  await makeClockFixture(mediaDir, "clock.mp4");
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret, mediaDir });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await edge?.stop();
  await sidecar?.stop();
  if (mediaDir) await fs.rm(mediaDir, { recursive: true, force: true });
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

/** Generous: the 2-core machine is shared with workerd, the sidecar, its ffmpeg prepares and Chromium. */
const WAIT_MS = 60_000;
const EXACT_MS = 2 * CLOCK_FRAME_MS + 1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The Player on the clock file, started, with its controls live (the server's first state report is in). The tab is
 * brought to the front: headless Chromium presents a background tab's video about once a second.
 */
async function playClock(): Promise<Page> {
  const page = await openPlayerOn(await browser.context.newPage(), edge.url, "vod://clock.mp4", [clockReader]);
  await page.bringToFront();
  await page.click("#playBtn");
  await page.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("PLAYING"), undefined, { timeout: WAIT_MS });
  await page.waitForFunction(
    () => {
      const bar = document.querySelector("#seekBar") as HTMLInputElement;
      return (window as unknown as { player: { vod: unknown } }).player.vod !== null && !bar.disabled && Number(bar.max) > 20_000;
    },
    undefined,
    { timeout: WAIT_MS },
  );
  return page;
}

/** The first frame presented since `mark` whose picture reads between min and max ms. */
async function waitForRead(page: Page, mark: number, min: number, max = Number.MAX_SAFE_INTEGER): Promise<ClockRead> {
  const handle = await page.waitForFunction(
    ({ mark, min, max }) =>
      (window as unknown as { __clockReads: ClockRead[] }).__clockReads.slice(mark).find((r) => r.ms !== null && r.ms >= min && r.ms <= max) ?? null,
    { mark, min, max },
    { timeout: WAIT_MS, polling: 50 },
  );
  return (await handle.jsonValue()) as ClockRead;
}

/** Watches the picture for 3 s (after frames in flight landed): it never changes. Returns it. */
async function assertFrozen(page: Page): Promise<number> {
  await sleep(1500);
  const frozen = await readClockMs(page);
  assert.ok(frozen !== null, "a readable picture while paused");
  for (const until = Date.now() + 3000; Date.now() < until; await sleep(200)) {
    assert.equal(await readClockMs(page), frozen, "the picture stays still while paused");
  }
  assert.match(await statusText(page), /PLAYING/, "a paused stream stays PLAYING");
  return frozen;
}

/** Waits for the server's word (window.player.vod) that the playback is `state`. */
const waitForVodState = (page: Page, state: "playing" | "paused") =>
  page.waitForFunction((s) => (window as unknown as { player: { vod: { state: string } | null } }).player.vod?.state === s, state, { timeout: WAIT_MS });

test("the Player's seek bar moves the picture, and its pause button freezes it", async () => {
  const page = await playClock();
  try {
    assert.equal(await page.locator("#duration").innerText(), "00:30");
    assert.equal(await page.locator("#liveBadge").isVisible(), false);
    const target = 14_300;
    const mark = await clockMark(page);
    // What releasing the bar does: a change event with the bar's value (ms).
    await page.locator("#seekBar").evaluate((bar: HTMLInputElement, value) => {
      bar.value = String(value);
      bar.dispatchEvent(new Event("change", { bubbles: true }));
    }, target);
    // The server sends from the keyframe at 10 s in a burst, then the bar's exact picture.
    await waitForRead(page, mark, target - EXACT_MS, target + EXACT_MS);
    await page.waitForFunction(() => /^00:1[4-9]$/.test(document.querySelector("#time")?.textContent ?? ""), undefined, { timeout: WAIT_MS });

    await page.click("#pauseBtn");
    await waitForVodState(page, "paused");
    assert.equal(await page.locator("#pauseBtn").innerText(), "Play");
    const frozen = await assertFrozen(page);
    // The time shown stands still at the paused position, which is the frozen picture's.
    const positionMs = await page.evaluate(() => (window as unknown as { player: { vod: { positionMs: number } } }).player.vod.positionMs);
    assert.ok(Math.abs(positionMs - frozen) <= 500, `paused at ${positionMs} ms, the picture at ${frozen} ms`);
    assert.equal(await page.locator("#time").innerText(), `00:${String(Math.floor(positionMs / 1000)).padStart(2, "0")}`);

    await page.click("#pauseBtn");
    const resumed = await waitForRead(page, await clockMark(page), frozen + 1);
    assert.ok(resumed.ms! <= frozen + 1000, `Play goes on from the paused picture: ${resumed.ms} ms after ${frozen} ms`);
    assert.equal(await page.locator("#pauseBtn").innerText(), "Pause");
  } finally {
    await page.close();
  }
});

test("keys on the player area: space pauses and plays, arrows seek 5 s and set the volume, f is full screen", async () => {
  const page = await playClock();
  try {
    await page.waitForFunction(() => ((window as unknown as { __clockMs(): number | null }).__clockMs() ?? 0) >= 2000, undefined, { timeout: WAIT_MS });
    await page.locator("#stage").focus();
    const before = (await readClockMs(page))!;
    const mark = await clockMark(page);
    await page.keyboard.press("ArrowRight");
    const ahead = await waitForRead(page, mark, before + 4000);
    assert.ok(ahead.ms! <= before + 6500, `→ seeks 5 s ahead: ${before} ms then ${ahead.ms} ms`);

    await page.keyboard.press(" ");
    await waitForVodState(page, "paused");
    assert.equal(await page.locator("#pauseBtn").innerText(), "Play");
    await page.keyboard.press(" ");
    await waitForVodState(page, "playing");
    assert.equal(await page.locator("#pauseBtn").innerText(), "Pause");

    const volume = () => page.locator("#display video").evaluate((v: HTMLVideoElement) => v.volume);
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.locator("#volume").inputValue(), "80");
    assert.ok(Math.abs((await volume()) - 0.8) < 1e-9, `the video's volume follows: ${await volume()}`);
    await page.keyboard.press("ArrowUp");
    assert.equal(await page.locator("#volume").inputValue(), "90");

    await page.keyboard.press("f");
    await page.waitForFunction(() => document.fullscreenElement?.id === "stage", undefined, { timeout: WAIT_MS });
    await page.keyboard.press("f");
    await page.waitForFunction(() => document.fullscreenElement === null, undefined, { timeout: WAIT_MS });
  } finally {
    await page.close();
  }
});

test("a vod-live:// stream is LIVE on the Player: a badge, and no seek bar or pause button", async () => {
  const page = await openPlayer("vod-live://sample.mp4");
  try {
    await page.click("#playBtn");
    await page.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("PLAYING"), undefined, { timeout: WAIT_MS });
    assert.equal(await page.locator("#liveBadge").isVisible(), true);
    assert.equal(await page.locator("#liveBadge").innerText(), "LIVE");
    for (const id of ["#seekBar", "#pauseBtn", "#time", "#duration"]) assert.equal(await page.locator(id).isVisible(), false, `${id} is hidden`);
    for (const id of ["#volume", "#muteBtn", "#fullscreenBtn"]) assert.equal(await page.locator(id).isVisible(), true, `${id} is shown`);
  } finally {
    await page.close();
  }
});
