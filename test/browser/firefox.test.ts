// The Player and Stream Recording pages in Debian Firefox ESR (puppeteer-core over WebDriver BiDi) with the unmodified
// Web SDK, through the real edge (wrangler dev) and sidecar: a second WebRTC stack next to Chromium. Firefox with
// Debian's OpenH264 registered offers H.264 and plays a WebRTC-ready file as it is; stock Firefox offers VP8, VP9 and
// AV1 only, and gets VP8: a file's VP8 copy for `vod://`, the broadcast's VP8 source for `vod-live://` (in step with
// Chromium's H.264 of the same broadcast), and its own VP8 publish, recorded and played back in Firefox and Chromium.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { Page as ChromiumPage } from "playwright-core";
import type { EvaluateFunc, Page } from "puppeteer-core";
import { launchChromium, openPlayer as openChromiumPlayer, rtpStat as chromiumRtpStat } from "../helpers/chromium.ts";
import { capturePeerConnections, launchFirefox, offeredCodecs, openPlayer, receiveOffer, rtpStat, type FirefoxOptions, type LaunchedFirefox } from "../helpers/firefox.ts";
import { FFPROBE, makeFixture } from "../helpers/fixtures.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler } from "../helpers/wrangler.ts";

const run = promisify(execFile);

/**
 * What the classifier sends as it is to H.264 viewers: constrained baseline H.264 without B-frames, a keyframe every
 * second, not rotated, and Opus audio (AAC, as in media/sample.mp4, is transcoded: that is a prepare). Stock Firefox
 * needs its VP8 copy; its Opus goes out as it is.
 */
const AS_IS = "h264-opus.mp4";
const WIDTH = 640;
const HEIGHT = 360;

/**
 * The `vod-live://` file: the same kind of WebRTC-ready H.264 + Opus, whose every frame shows its own number as a
 * barcode, so each page's picture says which frame is on screen (see FRAME_CODE). Not looping: it outlasts the test.
 */
const CLOCK = "frame-clock.mp4";
const CLOCK_SECONDS = 60;
const FPS = 30;
const FRAME_MS = 1000 / FPS;
/** How much later than Chromium Firefox joins the broadcast: a Firefox that started the file anew would be that far off. */
const FIREFOX_JOINS_AFTER_MS = 4000;
/** How long Firefox's pictures are watched, from its first one; the last STEADY_MS of it are compared. */
const WATCH_MS = 12_000;
const STEADY_MS = 4000;

/**
 * The barcode, drawn by ffmpeg over testsrc2 and read back from the `<video>` by the pages: a black bar across the
 * top, and in it a row of CELLS square cells, each a white square (1) or none (0). Cell 0 is always white, the last
 * cell always black (guards that tell a clean read from a blurred or half-drawn picture); cells 1..BITS are the
 * frame number, least significant bit first.
 */
const FRAME_CODE = { bits: 11, cellX0: 34, cell: 44, inset: 6, barHeight: 56, cellY: 12 } as const;
const CELLS = FRAME_CODE.bits + 2;

function frameCodeFilter(): string {
  const { bits, cellX0, cell, inset, barHeight, cellY } = FRAME_CODE;
  const box = (i: number) => `drawbox=x=${cellX0 + cell * i + inset}:y=${cellY}:w=${cell - 2 * inset}:h=${cell - 2 * inset}:color=white:t=fill`;
  const filters = [`drawbox=x=0:y=0:w=${WIDTH}:h=${barHeight}:color=black:t=fill`, box(0)];
  for (let k = 0; k < bits; k++) filters.push(`${box(k + 1)}:enable='mod(floor(n/${2 ** k}),2)'`);
  return filters.join(",");
}

let mediaDir: string;
let recordDir: string;
let sidecar: SidecarProcess;
let edge: Awaited<ReturnType<typeof startWrangler>>;

before(async () => {
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-firefox-media-"));
  recordDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-firefox-records-"));
  const h264Opus = (seconds: number, vf?: string) => [
    ...["-f", "lavfi", "-i", `testsrc2=size=${WIDTH}x${HEIGHT}:rate=${FPS}:duration=${seconds}`],
    ...["-f", "lavfi", "-i", `sine=frequency=440:beep_factor=2:sample_rate=48000:duration=${seconds}`],
    ...(vf ? ["-vf", vf] : []),
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-bf", "0"],
    ...["-g", String(FPS), "-keyint_min", String(FPS), "-sc_threshold", "0"],
    ...["-c:a", "libopus", "-b:a", "64k", "-ac", "2", "-movflags", "+faststart"],
  ];
  await makeFixture(mediaDir, AS_IS, h264Opus(8));
  await makeFixture(mediaDir, CLOCK, h264Opus(CLOCK_SECONDS, frameCodeFilter()));
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret, mediaDir, env: { RECORD_DIR: recordDir } });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
});

after(async () => {
  await edge?.stop();
  await sidecar?.stop();
  if (mediaDir) await fs.rm(mediaDir, { recursive: true, force: true });
  if (recordDir) await fs.rm(recordDir, { recursive: true, force: true });
});

/** Runs `body` with a fresh Firefox, which is closed (killed, profile removed) however `body` ends. */
async function withFirefox<T>(opts: FirefoxOptions, body: (page: Page, firefox: LaunchedFirefox) => Promise<T>): Promise<T> {
  const firefox = await launchFirefox(opts);
  try {
    return await body(await firefox.newPage(), firefox);
  } finally {
    await firefox.close();
  }
}

/** Runs `body` with a fresh Chromium's first tab (the front one: background tabs present video about once a second). */
async function withChromium<T>(body: (page: ChromiumPage) => Promise<T>): Promise<T> {
  const chromium = await launchChromium();
  try {
    // Generous defaults for every unlabelled wait (navigation, the SDK loading): other tests share the 2 cores.
    chromium.context.setDefaultTimeout(60_000);
    chromium.context.setDefaultNavigationTimeout(60_000);
    const page = chromium.context.pages()[0] ?? (await chromium.context.newPage());
    await page.bringToFront();
    return await body(page);
  } finally {
    await chromium.close();
  }
}

/** What a page (Firefox's or Chromium's) shows, for failure messages. */
async function describe(page: Page | ChromiumPage): Promise<string> {
  const text = (sel: string) =>
    (page as Page).evaluate((s: string) => (document.querySelector(s)?.textContent ?? "").trim(), sel).catch(() => "?");
  return `status "${await text("#status")}", info "${await text("#info")}"\nsidecar output:\n${sidecar.output().slice(-3000)}`;
}

/** Waits for `fn` in the Firefox page; on timeout says what was awaited and what the page shows. */
async function waitIn<A extends unknown[]>(page: Page, label: string, timeoutMs: number, fn: EvaluateFunc<A>, ...args: A): Promise<void> {
  try {
    await page.waitForFunction(fn, { timeout: timeoutMs, polling: 100 }, ...args);
  } catch (err) {
    throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${label}: ${await describe(page)}`, { cause: err });
  }
}

/** The same for a Chromium page. */
async function waitInChromium<A>(page: ChromiumPage, label: string, timeoutMs: number, fn: (arg: A) => unknown, arg: A): Promise<void> {
  try {
    await page.waitForFunction(fn as (arg: unknown) => unknown, arg, { timeout: timeoutMs, polling: 100 });
  } catch (err) {
    throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${label} in Chromium: ${await describe(page)}`, { cause: err });
  }
}

/**
 * Counts the frames the `<video>` in #display presents in `window.__presented` (requestVideoFrameCallback). Firefox
 * leaves getVideoPlaybackQuality().totalVideoFrames at 0 for a MediaStream source, so that cannot tell. A string
 * for the same reason as capturePeerConnections.
 */
const countPresentedFrames = `
  (() => {
    window.__presented = 0;
    const watch = () => {
      const video = document.querySelector("#display video");
      if (!video) return void setTimeout(watch, 5);
      const onFrame = () => {
        window.__presented++;
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    };
    document.addEventListener("DOMContentLoaded", watch);
  })();
`;

/**
 * Reads FRAME_CODE off every frame the `<video>` in #display presents (requestVideoFrameCallback, the top bar drawn
 * into a canvas) into `window.__reads`: { at: Date.now() (the system clock, the same for both browsers), frame: the
 * number read, or -1 when the guards or a cell are not clearly white or black }. The same script in both browsers.
 */
const readFrameCode = `
  (() => {
    const C = ${JSON.stringify({ ...FRAME_CODE, cells: CELLS, width: WIDTH, height: HEIGHT })};
    window.__reads = [];
    const attach = (video) => {
      const canvas = document.createElement("canvas");
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      const onFrame = () => {
        const at = Date.now();
        const w = video.videoWidth;
        const h = video.videoHeight;
        if (w > 0 && h > 0) {
          const sx = w / C.width;
          const barH = Math.max(1, Math.round((C.barHeight * h) / C.height));
          if (canvas.width !== w || canvas.height !== barH) {
            canvas.width = w;
            canvas.height = barH;
          }
          ctx.drawImage(video, 0, 0, w, barH, 0, 0, w, barH);
          const img = ctx.getImageData(0, 0, w, barH);
          const luma = [];
          const half = Math.max(1, Math.round(4 * sx));
          const cy = Math.round(((C.cellY + C.cell / 2 - C.inset) * h) / C.height);
          for (let i = 0; i < C.cells; i++) {
            const cx = Math.round((C.cellX0 + C.cell * i + C.cell / 2) * sx);
            let sum = 0;
            let n = 0;
            for (let y = cy - half; y < cy + half; y++) {
              for (let x = cx - half; x < cx + half; x++) {
                const p = (y * w + x) * 4;
                sum += 0.299 * img.data[p] + 0.587 * img.data[p + 1] + 0.114 * img.data[p + 2];
                n++;
              }
            }
            luma.push(sum / n);
          }
          const clear = luma.every((l) => l > 160 || l < 96) && luma[0] > 160 && luma[C.cells - 1] < 96;
          let frame = 0;
          for (let k = 0; k < C.bits; k++) if (luma[k + 1] > 160) frame += 2 ** k;
          window.__reads.push({ at, frame: clear ? frame : -1 });
        }
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    };
    const watch = () => {
      const video = document.querySelector("#display video");
      if (video) attach(video);
      else setTimeout(watch, 5);
    };
    document.addEventListener("DOMContentLoaded", watch);
  })();
`;

interface FrameRead {
  at: number;
  frame: number;
}

/** The page's clean reads so far (the same call in both browsers: no arguments). */
const cleanReads = () => (window as unknown as { __reads: FrameRead[] }).__reads.filter((r) => r.frame >= 0);

/** The element's playback numbers: time, size, frames presented. */
const videoState = (page: Page) =>
  page.$eval("#display video", (v) => {
    const video = v as HTMLVideoElement;
    return {
      currentTime: video.currentTime,
      width: video.videoWidth,
      height: video.videoHeight,
      paused: video.paused,
      presented: (window as unknown as { __presented: number }).__presented,
      totalVideoFrames: video.getVideoPlaybackQuality().totalVideoFrames,
    };
  });

/**
 * The video codec the page's peer connection receives, from its stats (e.g. "video/VP8"), lower case; runs in either
 * browser (no arguments, no named functions: tsx would wrap them in a helper that does not exist in the page).
 */
const receivedVideoCodecInPage = async () => {
  for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
    const stats = await pc.getStats();
    let codecId: string | undefined;
    stats.forEach((s: Record<string, unknown>) => {
      if (s.type === "inbound-rtp" && s.kind === "video" && typeof s.codecId === "string") codecId = s.codecId;
    });
    if (codecId) return String((stats.get(codecId) as { mimeType?: string } | undefined)?.mimeType ?? "?").toLowerCase();
  }
  return undefined;
};

/** The mean time a video frame spent in the page's jitter buffer, ms (inbound-rtp jitterBufferDelay / emitted count). */
const jitterBufferMsInPage = async () => {
  let delay = 0;
  let emitted = 0;
  for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
    (await pc.getStats()).forEach((s: Record<string, unknown>) => {
      if (s.type !== "inbound-rtp" || s.kind !== "video") return;
      delay += Number(s.jitterBufferDelay ?? 0);
      emitted += Number(s.jitterBufferEmittedCount ?? 0);
    });
  }
  return emitted > 0 ? (delay / emitted) * 1000 : Number.NaN;
};

/** The addresses of the ICE pair the page's peer connection uses, e.g. "127.0.0.1:40123 → 127.0.0.1:36000". */
const selectedPair = (page: Page) =>
  page.evaluate(async () => {
    for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
      const stats = await pc.getStats();
      let pair: Record<string, unknown> | undefined;
      stats.forEach((s: Record<string, unknown>) => {
        if (s.type === "candidate-pair" && s.selected === true) pair = s;
      });
      if (!pair) continue;
      const [local, remote] = [pair.localCandidateId, pair.remoteCandidateId].map((id) => {
        const c = stats.get(String(id)) as { address?: string; port?: number } | undefined;
        return `${c?.address}:${c?.port}`;
      });
      return `${local} → ${remote}`;
    }
    return "none";
  });

interface WatchOptions {
  /** The picture size to wait for; default WIDTHxHEIGHT. `undefined` fields: any size. */
  size?: { width: number; height: number } | "any";
  /** Wait for STOPPED at the end of the stream. */
  toEnd?: boolean;
  /** Extra init scripts for the Player page. */
  initScripts?: string[];
}

/**
 * Plays `stream` on the Firefox Player page (open it on `url` if given, else the Player for `stream`) and checks
 * what a user gets: PLAYING, a picture (WIDTHxHEIGHT unless told) whose time advances by 2 s, 30 more frames
 * presented, frames decoded, audio packets, more audio packets. Returns the received video codec ("video/vp8").
 */
async function playAndWatch(page: Page, stream: string, t: { diagnostic(msg: string): void }, opts: WatchOptions = {}): Promise<string | undefined> {
  await openPlayer(page, edge.url, stream, [countPresentedFrames, ...(opts.initScripts ?? [])]);
  await page.click("#playBtn");
  await waitIn(page, `PLAYING or FAILED of ${stream}`, 60_000, () => /PLAYING|FAILED/.test(document.querySelector("#status")?.textContent ?? ""));
  const status = await page.$eval("#status", (e) => e.textContent ?? "");
  assert.match(status, /PLAYING/, `${stream} did not play: ${await describe(page)}`);

  const size = opts.size ?? { width: WIDTH, height: HEIGHT };
  if (size === "any") {
    await waitIn(page, "a picture", 30_000, () => ((document.querySelector("#display video") as HTMLVideoElement | null)?.videoWidth ?? 0) > 0);
  } else {
    await waitIn(page, `a ${size.width}x${size.height} picture`, 30_000, (w: number) => (document.querySelector("#display video") as HTMLVideoElement | null)?.videoWidth === w, size.width);
  }
  const first = await videoState(page);
  if (size !== "any") assert.equal(first.height, size.height);
  await waitIn(
    page,
    "currentTime to advance by 2 s",
    30_000,
    (start: number) => (document.querySelector("#display video") as HTMLVideoElement).currentTime >= start + 2,
    first.currentTime,
  );
  await waitIn(page, "30 more frames presented", 30_000, (n: number) => (window as unknown as { __presented: number }).__presented >= n + 30, first.presented);
  const later = await videoState(page);
  const framesDecoded = await rtpStat(page, "inbound-rtp", "video", "framesDecoded");
  const audioPackets = await rtpStat(page, "inbound-rtp", "audio", "packetsReceived");
  const codec = await page.evaluate(receivedVideoCodecInPage);
  t.diagnostic(
    `Firefox ${stream}: video ${codec} ${later.width}x${later.height} over ${await selectedPair(page)}, currentTime ${first.currentTime.toFixed(2)} → ${later.currentTime.toFixed(2)} s, ` +
      `frames presented ${first.presented} → ${later.presented} (totalVideoFrames ${later.totalVideoFrames}), ` +
      `inbound-rtp framesDecoded ${framesDecoded}, audio packetsReceived ${audioPackets}`,
  );
  assert.equal(later.paused, false, "the video element plays (autoplay allowed)");
  assert.ok(framesDecoded > 30, `inbound-rtp video framesDecoded: ${framesDecoded}`);
  assert.ok(audioPackets > 0, `inbound-rtp audio packetsReceived: ${audioPackets}`);
  await waitIn(page, "more audio packets", 15_000, async (n: number) => {
    let sum = 0;
    for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
      (await pc.getStats()).forEach((s: Record<string, unknown>) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") sum += Number(s.packetsReceived ?? 0);
      });
    }
    return sum > n;
  }, audioPackets);
  if (opts.toEnd) {
    await waitIn(page, `STOPPED at the end of ${stream}`, 60_000, () => document.querySelector("#status")?.textContent?.includes("STOPPED"));
  }
  return codec;
}

test("Firefox with H.264 offered plays vod://h264-opus.mp4 as it is, without a prepare", async (t) => {
  const before = await sidecar.prepareStats();
  await withFirefox({ h264: true }, async (page) => {
    await page.goto(`${edge.url}/player.html`);
    const offer = await receiveOffer(page);
    t.diagnostic(`Firefox's video offer: ${offeredCodecs(offer, "video").join(" ")}`);
    assert.ok(offeredCodecs(offer, "video").some((c) => c.startsWith("H264/")), "Firefox offers H.264 with the OpenH264 plugin");

    const codec = await playAndWatch(page, `vod://${AS_IS}`, t, { toEnd: true });
    assert.equal(codec, "video/h264");
  });
  const afterPlay = await sidecar.prepareStats();
  // Neither a prepare started nor a prepared copy played: the file's own samples went out.
  assert.equal(afterPlay.prepares, before.prepares, `the sidecar prepared: ${JSON.stringify({ before, afterPlay })}`);
  assert.equal(afterPlay.hits, before.hits, `a prepared copy was played: ${JSON.stringify({ before, afterPlay })}`);
});

test("stock Firefox (VP8, VP9, AV1 offered, no H.264) plays vod://h264-opus.mp4, a file that needs no preparing for H.264, in VP8: its VP8 copy, prepared once", async (t) => {
  const before = await sidecar.prepareStats();
  await withFirefox({}, async (page, firefox) => {
    await page.goto(`${edge.url}/player.html`);
    const offer = await receiveOffer(page);
    t.diagnostic(`Firefox's video offer: ${offeredCodecs(offer, "video").join(" ")}`);
    assert.ok(!offeredCodecs(offer, "video").some((c) => c.startsWith("H264/")), "stock Firefox offers no H.264 here");
    assert.ok(offeredCodecs(offer, "video").some((c) => c.startsWith("VP8/")), "stock Firefox offers VP8");

    // The first viewer watches while the copy is made.
    const codec = await playAndWatch(page, `vod://${AS_IS}`, t, { toEnd: true });
    assert.equal(codec, "video/vp8");
    const afterFirst = await sidecar.prepareStats();
    t.diagnostic(`prepare stats before ${JSON.stringify(before)}, after the first play ${JSON.stringify(afterFirst)}`);
    // One prepare, the VP8 copy: the file's Opus goes out as it is, so there is no audio copy.
    assert.equal(afterFirst.prepares, before.prepares + 1, `one prepare (the VP8 copy): ${JSON.stringify({ before, afterFirst })}`);
    assert.equal(afterFirst.failures, before.failures, "no prepare failed");

    // A later viewer plays the finished copy from the cache.
    const second = await firefox.newPage();
    const codecAgain = await playAndWatch(second, `vod://${AS_IS}`, t, { toEnd: true });
    assert.equal(codecAgain, "video/vp8");
    const afterSecond = await sidecar.prepareStats();
    t.diagnostic(`prepare stats after the second play ${JSON.stringify(afterSecond)}`);
    assert.equal(afterSecond.prepares, afterFirst.prepares, `the copy was prepared once: ${JSON.stringify({ afterFirst, afterSecond })}`);
    assert.ok(afterSecond.hits > afterFirst.hits, `the second play read the cache: ${JSON.stringify({ afterFirst, afterSecond })}`);
  });
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The wall-clock moment (epoch ms) at which frame 0 would have been on screen: the median over the reads. */
const frameZeroAt = (reads: FrameRead[]) => median(reads.map((r) => r.at - r.frame * FRAME_MS));

/** Checks one page's reads: enough of them clean, the frame number never going back. Returns the clean reads. */
function checkReads(name: string, all: FrameRead[]): FrameRead[] {
  const clean = all.filter((r) => r.frame >= 0);
  assert.ok(clean.length >= 90, `${name}: at least 90 frames whose barcode reads cleanly (${clean.length} of ${all.length})`);
  assert.ok(clean.length >= all.length * 0.5, `${name}: most frames read cleanly (${clean.length} of ${all.length})`);
  for (let k = 1; k < clean.length; k++) {
    assert.ok(clean[k]!.frame >= clean[k - 1]!.frame, `${name}: frame numbers never go back (${clean[k - 1]!.frame} then ${clean[k]!.frame})`);
  }
  return clean;
}

test(`stock Firefox plays vod-live://${CLOCK} in VP8 in step with Chromium's H.264 of the same broadcast`, async (t) => {
  const stream = `vod-live://${CLOCK}`;
  await withChromium(async (chromium) => {
    await withFirefox({}, async (firefox) => {
      await openChromiumPlayer(chromium, edge.url, stream, [readFrameCode]);
      await openPlayer(firefox, edge.url, stream, [readFrameCode]);

      // Chromium starts the broadcast; Firefox joins FIREFOX_JOINS_AFTER_MS later, when its VP8 source must open
      // where the broadcast is by then (the file's VP8 copy is made from this moment on: no Firefox played it yet).
      await chromium.click("#playBtn");
      await waitInChromium(chromium, "PLAYING", 60_000, () => document.querySelector("#status")?.textContent?.includes("PLAYING"), undefined);
      const joinAt = Date.now() + FIREFOX_JOINS_AFTER_MS;
      await waitInChromium(chromium, "Chromium's first clean barcode", 30_000, () => (window as unknown as { __reads: FrameRead[] }).__reads.some((r) => r.frame >= 0), undefined);
      await new Promise((r) => setTimeout(r, Math.max(0, joinAt - Date.now())));
      const firefoxPlayAt = Date.now();
      await firefox.click("#playBtn");
      await waitIn(firefox, "PLAYING or FAILED", 60_000, () => /PLAYING|FAILED/.test(document.querySelector("#status")?.textContent ?? ""));
      assert.match(await firefox.$eval("#status", (e) => e.textContent ?? ""), /PLAYING/, `Firefox did not play: ${await describe(firefox)}`);

      // WATCH_MS of pictures in Firefox from its first clean read, and Chromium's over the same time.
      await waitIn(firefox, "Firefox's first clean barcode", 90_000, () =>
        (window as unknown as { __reads: { frame: number }[] }).__reads.some((r) => r.frame >= 0));
      const firefoxFirstAt = (await firefox.evaluate(cleanReads))[0]!.at;
      await waitIn(
        firefox,
        `${WATCH_MS / 1000} s of pictures in Firefox`,
        WATCH_MS + 30_000,
        (until: number) => ((window as unknown as { __reads: FrameRead[] }).__reads.at(-1)?.at ?? 0) >= until,
        firefoxFirstAt + WATCH_MS,
      );
      await waitInChromium(
        chromium,
        "Chromium's pictures over the same time",
        30_000,
        (until: number) => ((window as unknown as { __reads: FrameRead[] }).__reads.at(-1)?.at ?? 0) >= until,
        firefoxFirstAt + WATCH_MS,
      );
      const firefoxAll = await firefox.evaluate(() => (window as unknown as { __reads: FrameRead[] }).__reads.slice());
      const chromiumAll = await chromium.evaluate(() => (window as unknown as { __reads: FrameRead[] }).__reads.slice());

      const firefoxCodec = await firefox.evaluate(receivedVideoCodecInPage);
      const chromiumCodec = await chromium.evaluate(receivedVideoCodecInPage);
      const ffDecoded = await rtpStat(firefox, "inbound-rtp", "video", "framesDecoded");
      const crDecoded = await chromiumRtpStat(chromium, "inbound-rtp", "video", "framesDecoded");
      const ffAudio = await rtpStat(firefox, "inbound-rtp", "audio", "packetsReceived");
      const crAudio = await chromiumRtpStat(chromium, "inbound-rtp", "audio", "packetsReceived");
      const ffJitter = await firefox.evaluate(jitterBufferMsInPage);
      const crJitter = await chromium.evaluate(jitterBufferMsInPage);
      for (const [name, page] of [["Firefox", firefox], ["Chromium", chromium]] as const) {
        assert.match(await (page as Page).evaluate(() => document.querySelector("#status")?.textContent ?? ""), /PLAYING/, `${name} still plays`);
      }

      const ffClean = checkReads("Firefox", firefoxAll);
      const crClean = checkReads("Chromium", chromiumAll);
      const ffFirst = ffClean[0]!;
      // Firefox's frame minus Chromium's at the same moment (Chromium's latest read before each of Firefox's), per
      // second since Firefox's first picture: how far apart the two screens are, and how that changes.
      const pairs: { at: number; diff: number }[] = [];
      for (const r of ffClean) {
        const c = crClean.findLast((x) => x.at <= r.at);
        if (c && r.at - c.at < 100) pairs.push({ at: r.at, diff: r.frame - c.frame });
      }
      const perSecond = new Map<number, number[]>();
      for (const p of pairs) {
        const second = Math.floor((p.at - ffFirst.at) / 1000);
        perSecond.set(second, [...(perSecond.get(second) ?? []), p.diff]);
      }
      // In step: the last STEADY_MS that both saw. The first VP8 viewer's copy is made as it joins, so its first
      // frames may come late and be caught up with (the diagnostics show it); what has to hold is that it then
      // shows what Chromium shows.
      const to = Math.min(ffClean.at(-1)!.at, crClean.at(-1)!.at);
      const from = to - STEADY_MS;
      const ffWindow = ffClean.filter((r) => r.at >= from && r.at <= to);
      const crWindow = crClean.filter((r) => r.at >= from && r.at <= to);
      assert.ok(ffWindow.length >= 45 && crWindow.length >= 45, `both pages read frames in the last ${STEADY_MS / 1000} s (${ffWindow.length}, ${crWindow.length})`);
      const ffZero = frameZeroAt(ffWindow);
      const crZero = frameZeroAt(crWindow);
      const diffs = pairs.filter((p) => p.at >= from).map((p) => p.diff);
      assert.ok(diffs.length >= 30, `frames of both pages paired in the last ${STEADY_MS / 1000} s (${diffs.length})`);
      t.diagnostic(
        `Chromium: ${chromiumCodec}, ${crDecoded} frames decoded, ${crClean.length}/${chromiumAll.length} clean reads, first frame ${crClean[0]!.frame}, ` +
          `audio packets ${crAudio}, video jitter buffer ${crJitter.toFixed(0)} ms; Firefox (play at ${((firefoxPlayAt - crZero) / 1000).toFixed(2)} s of the ` +
          `broadcast as Chromium shows it): ${firefoxCodec}, ${ffDecoded} frames decoded, ${ffClean.length}/${firefoxAll.length} clean reads, ` +
          `first frame ${ffFirst.frame} ${ffFirst.at - firefoxPlayAt} ms after play, audio packets ${ffAudio}, video jitter buffer ${ffJitter.toFixed(0)} ms`,
      );
      t.diagnostic(
        `Firefox's frame minus Chromium's, median per second since Firefox's first picture: ${[...perSecond].map(([sec, d]) => `${sec} s: ${median(d)}`).join(", ")}`,
      );
      t.diagnostic(
        `last ${STEADY_MS / 1000} s: frame 0 on screen in Firefox ${(ffZero - crZero).toFixed(0)} ms after Chromium (medians over ${ffWindow.length} and ` +
          `${crWindow.length} frames); Firefox's frame minus Chromium's median ${median(diffs)}, min ${Math.min(...diffs)}, max ${Math.max(...diffs)} (${diffs.length} pairs)`,
      );

      assert.equal(chromiumCodec, "video/h264", "Chromium gets H.264");
      assert.equal(firefoxCodec, "video/vp8", "stock Firefox gets VP8");
      assert.ok(ffDecoded > 90 && crDecoded > 90, `both decode video (Firefox ${ffDecoded}, Chromium ${crDecoded})`);
      assert.ok(ffAudio > 0 && crAudio > 0, `both receive audio (Firefox ${ffAudio}, Chromium ${crAudio})`);
      // Firefox joined a broadcast in progress: it starts where the broadcast is, not at the file's start.
      assert.ok(
        ffFirst.frame * FRAME_MS >= FIREFOX_JOINS_AFTER_MS - 1500,
        `Firefox, joining ${FIREFOX_JOINS_AFTER_MS} ms after Chromium, starts at frame ${ffFirst.frame} (${(ffFirst.frame * FRAME_MS).toFixed(0)} ms)`,
      );
      // The same moment on both screens: the two jitter buffers (each browser sizes its own, up to a few hundred ms)
      // are all that may differ. Half a GOP, as test/browser/vod-live.test.ts allows between Chromium pages; a
      // Firefox that had started the file anew would be FIREFOX_JOINS_AFTER_MS off.
      assert.ok(Math.abs(ffZero - crZero) <= 500, `Firefox and Chromium show the same frame at the same moment within 500 ms (${(ffZero - crZero).toFixed(0)} ms)`);
      assert.ok(Math.abs(median(diffs)) * FRAME_MS <= 500, `frame by frame, within 500 ms (median ${median(diffs)} frames)`);
    });
  });
});

const framesSentIn = (page: Page) => rtpStat(page, "outbound-rtp", "video", "framesSent");

test("stock Firefox publishes VP8 + Opus with record: true on the Stream Recording page; vod://<record name> plays back in Firefox and Chromium", async (t) => {
  const PUBLISH_MS = 8000;
  let recordName = "";
  let playHref = "";
  await withFirefox({}, async (page) => {
    await page.evaluateOnNewDocument(capturePeerConnections);
    await page.goto(`${edge.url}/recording.html`);
    await waitIn(page, "the Web SDK", 30_000, () => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined");
    await page.click("#publishBtn");
    await waitIn(page, "PUBLISHING or FAILED", 60_000, () => /PUBLISHING|FAILED/.test(document.querySelector("#status")?.textContent ?? ""));
    assert.match(await page.$eval("#status", (e) => e.textContent ?? ""), /PUBLISHING/, `the publish failed: ${await describe(page)}`);
    const started = Date.now();
    await new Promise((r) => setTimeout(r, PUBLISH_MS));
    // Read just before Stop: the SDK closes the peer connection as it sends unPublishStream.
    const sent = await framesSentIn(page);
    const audioSent = await rtpStat(page, "outbound-rtp", "audio", "packetsSent");
    const sentCodec = await page.evaluate(async () => {
      for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
        const stats = await pc.getStats();
        let codecId: string | undefined;
        stats.forEach((s: Record<string, unknown>) => {
          if (s.type === "outbound-rtp" && s.kind === "video" && typeof s.codecId === "string") codecId = s.codecId;
        });
        if (codecId) return String((stats.get(codecId) as { mimeType?: string } | undefined)?.mimeType ?? "?").toLowerCase();
      }
      return undefined;
    });
    await page.click("#publishBtn");
    const publishedSec = (Date.now() - started) / 1000;
    await waitIn(page, "UNPUBLISHED", 60_000, () => document.querySelector("#status")?.textContent?.includes("UNPUBLISHED"));
    t.diagnostic(`Firefox sent ${sentCodec}: ${sent} video frames, ${audioSent} audio packets in ${publishedSec.toFixed(2)} s`);
    assert.equal(sentCodec, "video/vp8", "stock Firefox publishes VP8");
    assert.ok(sent > 30, `Firefox sent video frames (${sent})`);
    assert.ok(audioSent > 0, `Firefox sent audio (${audioSent})`);

    // The page names the record and links it, as for Chromium.
    await waitIn(page, "the record links", 10_000, () => !(document.querySelector("#record") as HTMLElement).hidden);
    const href = await page.$eval("#recordLink", (a) => a.getAttribute("href") ?? "");
    assert.ok(href, "a download link");
    recordName = decodeURIComponent(href.slice(href.lastIndexOf("/") + 1));
    assert.equal(await page.evaluate(() => (window as unknown as { recorder: { stream: { getRecordInfo(): string } } }).recorder.stream.getRecordInfo()), recordName);
    assert.match(recordName, /^stream-[0-9a-f-]+-\.mp4$/);
    playHref = await page.$eval("#playLink", (a) => a.getAttribute("href") ?? "");
    assert.equal(new URL(playHref, edge.url).searchParams.get("stream"), `vod://${recordName}`);

    const onDisk = path.join(recordDir, recordName);
    const res = await fetch(new URL(href, edge.url));
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), await fs.readFile(onDisk), "the download is the file on disk");
    const { stdout } = await run(FFPROBE, ["-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", onDisk]);
    const probe = JSON.parse(stdout) as {
      streams: { codec_type: string; codec_name: string; codec_tag_string?: string; nb_read_frames: string; width?: number; height?: number }[];
      format: { duration: string };
    };
    const video = probe.streams.find((s) => s.codec_type === "video");
    const audio = probe.streams.find((s) => s.codec_type === "audio");
    const duration = Number(probe.format.duration);
    const frames = Number(video?.nb_read_frames);
    t.diagnostic(`record ${recordName}: ${video?.codec_name} (${video?.codec_tag_string}) ${video?.width}x${video?.height}, ${frames} frames; ${audio?.codec_name}; ${duration} s`);
    assert.equal(video?.codec_name, "vp8");
    assert.equal(video?.codec_tag_string, "vp08");
    assert.equal(audio?.codec_name, "opus");
    assert.ok(Math.abs(duration - publishedSec) <= 1, `duration ${duration} s, published for ${publishedSec.toFixed(2)} s`);
    // The frames sent after the stats were read and before Stop are more; a frame lost on loopback is fewer.
    assert.ok(frames >= sent * 0.9 && frames <= sent * 1.1 + 30, `recorded ${frames} frames, Firefox sent ${sent} (read just before Stop)`);
  });

  // Played back in stock Firefox: VP8 as it is, no copy.
  const beforeFirefox = await sidecar.prepareStats();
  await withFirefox({}, async (page) => {
    const codec = await playAndWatch(page, `vod://${recordName}`, t, { size: "any" });
    assert.equal(codec, "video/vp8");
  });
  const afterFirefox = await sidecar.prepareStats();
  assert.equal(afterFirefox.prepares, beforeFirefox.prepares, `Firefox plays the VP8 + Opus record as it is: ${JSON.stringify({ beforeFirefox, afterFirefox })}`);

  // Played back in Chromium from the page's Player link: it offers H.264 and VP8.
  await withChromium(async (page) => {
    await page.addInitScript({ content: capturePeerConnections });
    await page.goto(new URL(playHref, edge.url).toString());
    await waitInChromium(page, "the Web SDK", 60_000, () => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined", undefined);
    await page.click("#playBtn");
    await waitInChromium(page, "PLAYING or FAILED", 60_000, () => /PLAYING|FAILED/.test(document.querySelector("#status")?.textContent ?? ""), undefined);
    assert.match(await page.locator("#status").innerText(), /PLAYING/, `Chromium did not play the record: ${await describe(page)}`);
    await waitInChromium(page, "a picture", 30_000, () => ((document.querySelector("#display video") as HTMLVideoElement | null)?.videoWidth ?? 0) > 0, undefined);
    const t0 = await page.locator("#display video").evaluate((v: HTMLVideoElement) => v.currentTime);
    await waitInChromium(page, "currentTime to advance by 2 s", 30_000, (start: number) => (document.querySelector("#display video") as HTMLVideoElement).currentTime >= start + 2, t0);
    const decoded = await chromiumRtpStat(page, "inbound-rtp", "video", "framesDecoded");
    const audioPackets = await chromiumRtpStat(page, "inbound-rtp", "audio", "packetsReceived");
    const codec = await page.evaluate(receivedVideoCodecInPage);
    const size = await page.locator("#display video").evaluate((v: HTMLVideoElement) => `${v.videoWidth}x${v.videoHeight}`);
    const stats = await sidecar.prepareStats();
    t.diagnostic(`Chromium vod://${recordName}: video ${codec} ${size}, ${decoded} frames decoded, ${audioPackets} audio packets; prepare stats ${JSON.stringify(stats)}`);
    assert.ok(decoded > 30, `Chromium decodes the record's video (${decoded} frames)`);
    assert.ok(audioPackets > 0, `Chromium receives the record's audio (${audioPackets} packets)`);
    assert.ok(codec === "video/vp8" || codec === "video/h264", `Chromium receives VP8 or H.264 (${codec})`);
    // VP8, which it offers, goes out as it is; H.264 would have been a copy.
    if (codec === "video/vp8") assert.equal(stats.prepares, afterFirefox.prepares, "Chromium gets the record's VP8 as it is");
  });
});
