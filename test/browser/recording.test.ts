// The seed's whole scheme in Debian Chromium with the unmodified Web SDK: the Stream Recording page publishes the
// fake camera and microphone with record: true, stops, and links the recording; the file is checked on disk and
// over HTTP; the Player page plays it back as vod://<record name>.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { Page } from "playwright-core";
import { FFPROBE } from "../helpers/fixtures.ts";
import { capturePeerConnections, launchChromium, rtpStat } from "../helpers/chromium.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler } from "../helpers/wrangler.ts";

const run = promisify(execFile);

let sidecar: SidecarProcess;
let edge: Awaited<ReturnType<typeof startWrangler>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let recordDir: string;

before(async () => {
  recordDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-records-"));
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret, env: { RECORD_DIR: recordDir } });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
  browser = await launchChromium(["--use-fake-device-for-media-stream=fps=30", "--use-fake-ui-for-media-stream"]);
});

after(async () => {
  await browser?.close();
  await edge?.stop();
  await sidecar?.stop();
  await fs.rm(recordDir, { recursive: true, force: true });
});

const waitStatus = (page: Page, status: string, timeout: number) =>
  page.waitForFunction((s) => document.querySelector("#status")?.textContent?.includes(s), status, { timeout });

const framesSent = (page: Page) => rtpStat(page, "outbound-rtp", "video", "framesSent");

test("record in Chromium, download the MP4, play it back as vod://", async () => {
  const page = await browser.context.newPage();
  page.on("pageerror", (err) => console.log(`page error: ${err.message}`));
  await page.addInitScript({ content: capturePeerConnections });
  await page.goto(`${edge.url}/recording.html`);
  await page.waitForFunction(() => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined");

  await page.click("#publishBtn");
  await waitStatus(page, "PUBLISHING", 30_000);
  const started = Date.now();
  await page.waitForTimeout(5000);
  // Read just before Stop: the SDK closes the peer connection as it sends unPublishStream.
  const sent = await framesSent(page);
  await page.click("#publishBtn");
  const publishedSec = (Date.now() - started) / 1000;
  await waitStatus(page, "UNPUBLISHED", 30_000);

  const href = await page.locator("#recordLink").getAttribute("href");
  assert.ok(href, "a download link");
  const recordName = decodeURIComponent(href.slice(href.lastIndexOf("/") + 1));
  assert.match(recordName, /^stream-[0-9a-f-]+-\.mp4$/);
  const onDisk = await fs.readFile(path.join(recordDir, recordName));
  const res = await fetch(new URL(href, edge.url));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "video/mp4");
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), onDisk, "the download is the file on disk");

  const { stdout } = await run(FFPROBE, ["-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", path.join(recordDir, recordName)]);
  const probe = JSON.parse(stdout) as { streams: { codec_type: string; codec_name: string; nb_read_frames: string }[]; format: { duration: string } };
  const video = probe.streams.find((s) => s.codec_type === "video");
  const audio = probe.streams.find((s) => s.codec_type === "audio");
  assert.equal(video?.codec_name, "h264");
  assert.equal(audio?.codec_name, "opus");
  const duration = Number(probe.format.duration);
  assert.ok(Math.abs(duration - publishedSec) <= 0.5, `duration ${duration} s, published for ${publishedSec.toFixed(2)} s`);
  const frames = Number(video.nb_read_frames);
  assert.ok(Math.abs(frames - sent) <= sent * 0.02, `recorded ${frames} frames, the browser sent ${sent}`);

  // The page links the Player with vod://<record name>; it plays with frames advancing.
  const playHref = await page.locator("#playLink").getAttribute("href");
  assert.ok(playHref?.includes(encodeURIComponent(`vod://${recordName}`)), `player link: ${playHref}`);
  const player = await browser.context.newPage();
  await player.addInitScript({ content: capturePeerConnections });
  await player.goto(new URL(playHref!, edge.url).toString());
  await player.waitForFunction(() => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined");
  await player.click("#playBtn");
  await waitStatus(player, "PLAYING", 30_000);
  await player.waitForFunction(() => ((document.querySelector("#display video") as HTMLVideoElement | null)?.videoWidth ?? 0) > 0, undefined, { timeout: 15_000 });
  const t0 = await player.locator("#display video").evaluate((v: HTMLVideoElement) => v.currentTime);
  await player.waitForFunction((start) => (document.querySelector("#display video") as HTMLVideoElement).currentTime >= start + 2, t0, { timeout: 10_000 });
  await page.close();
  await player.close();
});
