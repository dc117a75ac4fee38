// Files as people actually have them (x264 defaults with B-frames, HEVC from a phone, portrait video, AAC-only
// audio) played by the Player page in Debian Chromium with the unmodified Web SDK, through the real edge (wrangler
// dev) and sidecar. None of them can be sent as they are: the sidecar prepares a WebRTC-ready copy with ffmpeg, and
// the first viewer watches that copy while it is still being written.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { launchChromium, openPlayer as openPlayerOn, rtpStat } from "../helpers/chromium.ts";
import { makeFixture } from "../helpers/fixtures.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler } from "../helpers/wrangler.ts";

let mediaDir: string;
let sidecar: SidecarProcess;
let edge: Awaited<ReturnType<typeof startWrangler>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;

const HIGH_BFRAMES = "high-bframes.mp4";
const HEVC = "hevc.mp4";
const PORTRAIT = "portrait.mp4";
const AUDIO_ONLY = "audio-only.mp4";

// Small and quick to make: the machine has two cores, shared with ffmpeg's prepares, workerd and Chromium.
const testsrc = (seconds: number) => ["-f", "lavfi", "-i", `testsrc2=size=640x360:rate=30:duration=${seconds}`];
const sine = (seconds: number) => ["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${seconds}`];
const aac = ["-c:a", "aac", "-b:a", "64k", "-ac", "2"];

async function makeMedia(dir: string): Promise<void> {
  // ffmpeg's default x264 encode is High profile; b-adapt=0 makes sure the two B-frames are really used.
  await makeFixture(dir, HIGH_BFRAMES, [
    ...testsrc(8),
    ...sine(8),
    ...["-c:v", "libx264", "-threads", "1", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
    ...["-bf", "2", "-x264-params", "b-adapt=0", ...aac],
  ]);
  // hvc1: the tag phones write. One x265 thread pool, one frame thread.
  await makeFixture(dir, HEVC, [
    ...testsrc(6),
    ...sine(6),
    ...["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:pools=1:frame-threads=1"],
    ...["-tag:v", "hvc1", "-pix_fmt", "yuv420p", ...aac],
  ]);
  // A landscape-coded picture with a 90° display matrix, as phones record portrait video: ffmpeg 5.1 writes the
  // track header matrix from the rotate tag on a plain remux. A white block in the coded top-left corner shows
  // which way up the picture is shown.
  const landscape = await makeFixture(dir, "landscape.tmp.mp4", [
    ...testsrc(6),
    ...sine(6),
    ...["-vf", "drawbox=x=0:y=0:w=160:h=120:color=white:t=fill"],
    ...["-c:v", "libx264", "-threads", "1", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p"],
    ...aac,
  ]);
  await makeFixture(dir, PORTRAIT, ["-i", landscape, "-c", "copy", "-metadata:s:v:0", "rotate=90"]);
  await fs.rm(landscape);
  await makeFixture(dir, AUDIO_ONLY, [...sine(6), ...aac]);
}

before(async () => {
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-real-world-"));
  await makeMedia(mediaDir);
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

/** Clicks Play and waits for PLAYING; on FAILED (or nothing) the page's status and the sidecar's log tell why. */
async function play(page: Page): Promise<void> {
  await page.click("#playBtn");
  try {
    await page.waitForFunction(() => /PLAYING|FAILED/.test(document.querySelector("#status")?.textContent ?? ""), undefined, {
      timeout: 30_000,
    });
  } catch (err) {
    throw new Error(`no PLAYING within 30 s: ${await describe(page)}`, { cause: err });
  }
  const status = await page.locator("#status").innerText();
  assert.match(status, /PLAYING/, `status: ${await describe(page)}`);
}

async function describe(page: Page): Promise<string> {
  const status = await page.locator("#status").innerText().catch(() => "?");
  const info = await page.locator("#info").innerText().catch(() => "?");
  return `status "${status.trim()}", info "${info.trim()}"\nsidecar output:\n${sidecar.output().slice(-4000)}`;
}

const videoProp = (page: Page, prop: "videoWidth" | "videoHeight" | "currentTime", selector = "#display video") =>
  page.locator(selector).evaluate((v: HTMLVideoElement, p) => v[p], prop);

/**
 * Which corners of the picture a video element shows now are white (top-left, top-right, bottom-left,
 * bottom-right): the darkest colour channel averages above 200 over a 40x40 square 10 px in from the corner.
 */
function whiteCorners(page: Page, selector: string): Promise<boolean[]> {
  // No named functions inside: tsx would wrap them in a helper that does not exist in the page.
  return page.locator(selector).evaluate((v: HTMLVideoElement) => {
    const w = v.videoWidth;
    const h = v.videoHeight;
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d")!;
    ctx.drawImage(v, 0, 0, w, h);
    const out: boolean[] = [];
    for (const [x, y] of [[10, 10], [w - 50, 10], [10, h - 50], [w - 50, h - 50]] as const) {
      const d = ctx.getImageData(x, y, 40, 40).data;
      let sum = 0;
      for (let i = 0; i < d.length; i += 4) sum += Math.min(d[i]!, d[i + 1]!, d[i + 2]!);
      out.push(sum / (d.length / 4) > 200);
    }
    return out;
  });
}

/** A page of the edge's origin that plays `file` straight from disk in a plain <video> element. */
async function referencePlayback(file: string): Promise<Page> {
  const page = await browser.context.newPage();
  await page.route(`${edge.url}/__reference/**`, (route) =>
    route.request().url().endsWith(".mp4")
      ? route.fulfill({ path: file, contentType: "video/mp4" })
      : route.fulfill({ contentType: "text/html", body: '<video src="/__reference/file.mp4" muted autoplay playsinline></video>' }),
  );
  await page.goto(`${edge.url}/__reference/index.html`);
  await page.waitForFunction(() => (document.querySelector("video")?.readyState ?? 0) >= 2, undefined, { timeout: 15_000 });
  return page;
}

/** Waits until the page's video element shows a picture of `width` x `height`. */
async function waitForPicture(page: Page, width: number, height: number): Promise<void> {
  const seen = new Set<string>();
  const end = Date.now() + 15_000;
  for (;;) {
    const size = `${await videoProp(page, "videoWidth")}x${await videoProp(page, "videoHeight")}`;
    if (size === `${width}x${height}`) return;
    seen.add(size);
    if (Date.now() > end) assert.fail(`expected a ${width}x${height} picture, the video element showed ${[...seen].join(", ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the video element's playback position has moved on by `seconds`. */
async function waitForProgress(page: Page, seconds: number): Promise<void> {
  const t0 = await videoProp(page, "currentTime");
  try {
    await page.waitForFunction(
      ([start, by]) => (document.querySelector("#display video") as HTMLVideoElement).currentTime >= start + by,
      [t0, seconds] as const,
      { timeout: 20_000 },
    );
  } catch (err) {
    throw new Error(`currentTime went from ${t0} to ${await videoProp(page, "currentTime")}, not ${seconds} s on`, { cause: err });
  }
}

async function videoStats(page: Page) {
  return {
    framesReceived: await rtpStat(page, "inbound-rtp", "video", "framesReceived"),
    framesDecoded: await rtpStat(page, "inbound-rtp", "video", "framesDecoded"),
    framesDropped: await rtpStat(page, "inbound-rtp", "video", "framesDropped"),
  };
}

async function audioStats(page: Page) {
  return {
    packets: await rtpStat(page, "inbound-rtp", "audio", "packetsReceived"),
    samples: await rtpStat(page, "inbound-rtp", "audio", "totalSamplesReceived"),
    energy: await rtpStat(page, "inbound-rtp", "audio", "totalAudioEnergy"),
    level: await rtpStat(page, "inbound-rtp", "audio", "audioLevel"),
  };
}

/** Polls an inbound counter until it is above `min` (a page-side wait cannot await getStats). */
async function waitForStat(page: Page, kind: "audio" | "video", field: string, min: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  let n = 0;
  while ((n = await rtpStat(page, "inbound-rtp", kind, field)) <= min) {
    if (Date.now() > end) assert.fail(`inbound ${kind} ${field} stayed at ${n} (wanted > ${min}) for ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const prepareStats = () => sidecar.prepareStats();

test("an ffmpeg default encode (H.264 High with B-frames + AAC) plays in order with the picture advancing", async () => {
  const page = await openPlayer(`vod://${HIGH_BFRAMES}`);
  await play(page);
  await waitForPicture(page, 640, 360);
  await waitForProgress(page, 3);
  const v = await videoStats(page);
  assert.ok(v.framesDecoded > 60, `frames decoded: ${JSON.stringify(v)}`);
  // Frames sent out of order (B-frames in decode order but timestamped for display) would be received but not
  // decoded, or decoded and then dropped.
  assert.ok(v.framesReceived > 0 && v.framesDecoded >= 0.9 * v.framesReceived, `decoded vs received: ${JSON.stringify(v)}`);
  assert.ok(v.framesDropped <= 0.1 * v.framesReceived, `dropped: ${JSON.stringify(v)}`);
  const a = await audioStats(page);
  assert.ok(a.samples > 0, `audio: ${JSON.stringify(a)}`);
  await page.close();
});

test("an HEVC file plays", async () => {
  const page = await openPlayer(`vod://${HEVC}`);
  await play(page);
  await waitForPicture(page, 640, 360);
  await waitForProgress(page, 2);
  const v = await videoStats(page);
  assert.ok(v.framesDecoded > 40, `frames decoded: ${JSON.stringify(v)}`);
  const a = await audioStats(page);
  assert.ok(a.samples > 0, `audio: ${JSON.stringify(a)}`);
  await page.close();
});

test("a portrait phone video shows upright as 360x640, turned by Chromium (video orientation extension), not re-encoded", async () => {
  const page = await openPlayer(`vod://${PORTRAIT}`);
  await play(page);
  await waitForPicture(page, 360, 640);
  await waitForProgress(page, 2);
  const v = await videoStats(page);
  assert.ok(v.framesDecoded > 40, `frames decoded: ${JSON.stringify(v)}`);
  // Chromium offers urn:3gpp:video-orientation: the file's own landscape-coded frames arrive (a prepared copy would
  // be coded 360x640) and the browser turns them.
  const coded = [await rtpStat(page, "inbound-rtp", "video", "frameWidth"), await rtpStat(page, "inbound-rtp", "video", "frameHeight")];
  assert.deepEqual(coded, [640, 360], "decoded frame size");
  // The right way up, not just the right shape: the white block is in the same corner as when Chromium plays the
  // file itself in a <video> element (which applies the display matrix).
  const streamed = await whiteCorners(page, "#display video");
  await page.close();
  const reference = await referencePlayback(path.join(mediaDir, PORTRAIT));
  try {
    assert.deepEqual(await whiteCorners(reference, "video"), [false, false, true, false], "reference playback (sanity)");
    assert.equal(await videoProp(reference, "videoWidth", "video"), 360);
  } finally {
    await reference.close();
  }
  assert.deepEqual(streamed, [false, false, true, false], "white block corners [top-left, top-right, bottom-left, bottom-right]");
});

test("an audio-only file plays sound", async () => {
  const page = await openPlayer(`vod://${AUDIO_ONLY}`);
  await play(page);
  // Counters only: an audio-only stream's video element has no picture to look at.
  await waitForStat(page, "audio", "packetsReceived", 50, 20_000);
  const a = await audioStats(page);
  assert.ok(a.packets > 50, `audio: ${JSON.stringify(a)}`);
  assert.ok(a.samples > 0, `audio: ${JSON.stringify(a)}`);
  // A 440 Hz tone, not silence: Chromium measures the energy of what it decoded.
  assert.ok(a.energy > 0 || a.level > 0, `audio level: ${JSON.stringify(a)}`);
  await page.close();
});

test("a second play of the High+B-frames file plays from the finished prepared copy", async () => {
  // Every prepare started above is allowed to finish (they run faster than real time); then the copy is a cache hit.
  for (let i = 0; ; i++) {
    const s = await prepareStats();
    if (s.running === 0) break;
    assert.ok(i < 120, `prepares still running after 60 s: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const before = await prepareStats();
  assert.equal(before.failures, 0, `prepare failures: ${JSON.stringify(before)}\n${sidecar.output().slice(-4000)}`);
  const page = await openPlayer(`vod://${HIGH_BFRAMES}`);
  await play(page);
  await waitForPicture(page, 640, 360);
  await waitForStat(page, "video", "framesDecoded", 30, 20_000);
  const v = await videoStats(page);
  assert.ok(v.framesDecoded > 30, `frames decoded: ${JSON.stringify(v)}`);
  const afterPlay = await prepareStats();
  assert.equal(afterPlay.prepares, before.prepares, `the second play prepared again: ${JSON.stringify({ before, afterPlay })}`);
  assert.ok(afterPlay.hits > before.hits, `the second play was no cache hit: ${JSON.stringify({ before, afterPlay })}`);
  await page.close();
});
