// The Player page in Debian Firefox ESR (puppeteer-core over WebDriver BiDi) with the unmodified Web SDK, through
// the real edge (wrangler dev) and sidecar: a second WebRTC stack next to Chromium. Firefox with Debian's OpenH264
// registered offers H.264 and plays a WebRTC-ready file as it is; stock Firefox offers VP8, VP9 and AV1 only.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { EvaluateFunc, Page } from "puppeteer-core";
import { launchFirefox, offeredCodecs, openPlayer, receiveOffer, rtpStat, type FirefoxOptions } from "../helpers/firefox.ts";
import { makeFixture } from "../helpers/fixtures.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler } from "../helpers/wrangler.ts";

/**
 * What the classifier sends as it is: constrained baseline H.264 without B-frames, a keyframe every second, not
 * rotated, and Opus audio (AAC, as in media/sample.mp4, is transcoded: that is a prepare).
 */
const AS_IS = "h264-opus.mp4";
const WIDTH = 640;
const HEIGHT = 360;

let mediaDir: string;
let sidecar: SidecarProcess;
let edge: Awaited<ReturnType<typeof startWrangler>>;

before(async () => {
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-firefox-media-"));
  await makeFixture(mediaDir, AS_IS, [
    ...["-f", "lavfi", "-i", `testsrc2=size=${WIDTH}x${HEIGHT}:rate=30:duration=8`],
    ...["-f", "lavfi", "-i", "sine=frequency=440:beep_factor=2:sample_rate=48000:duration=8"],
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-bf", "0"],
    ...["-g", "30", "-keyint_min", "30", "-sc_threshold", "0"],
    ...["-c:a", "libopus", "-b:a", "64k", "-ac", "2", "-movflags", "+faststart"],
  ]);
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret, mediaDir });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
});

after(async () => {
  await edge?.stop();
  await sidecar?.stop();
  if (mediaDir) await fs.rm(mediaDir, { recursive: true, force: true });
});

/** Runs `body` with a fresh Firefox, which is closed (killed, profile removed) however `body` ends. */
async function withFirefox<T>(opts: FirefoxOptions, body: (page: Page) => Promise<T>): Promise<T> {
  const firefox = await launchFirefox(opts);
  try {
    return await body(await firefox.newPage());
  } finally {
    await firefox.close();
  }
}

async function describe(page: Page): Promise<string> {
  const text = (sel: string) => page.$eval(sel, (e) => (e.textContent ?? "").trim()).catch(() => "?");
  return `status "${await text("#status")}", info "${await text("#info")}"\nsidecar output:\n${sidecar.output().slice(-3000)}`;
}

/** Waits for `fn` in the page; on timeout says what was awaited and what the page shows. */
async function waitIn<A extends unknown[]>(page: Page, label: string, timeoutMs: number, fn: EvaluateFunc<A>, ...args: A): Promise<void> {
  try {
    await page.waitForFunction(fn, { timeout: timeoutMs, polling: 100 }, ...args);
  } catch (err) {
    throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${label}: ${await describe(page)}`, { cause: err });
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

/** The video codec the page's peer connection receives, from its stats (e.g. "video/H264"). */
const receivedVideoCodec = (page: Page) =>
  page.evaluate(async () => {
    for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
      const stats = await pc.getStats();
      let codecId: string | undefined;
      stats.forEach((s: Record<string, unknown>) => {
        if (s.type === "inbound-rtp" && s.kind === "video" && typeof s.codecId === "string") codecId = s.codecId;
      });
      if (codecId) return String((stats.get(codecId) as { mimeType?: string } | undefined)?.mimeType ?? "?");
    }
    return undefined;
  });

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
      // No named functions in here: tsx would wrap them in a helper that does not exist in the page.
      const [local, remote] = [pair.localCandidateId, pair.remoteCandidateId].map((id) => {
        const c = stats.get(String(id)) as { address?: string; port?: number } | undefined;
        return `${c?.address}:${c?.port}`;
      });
      return `${local} → ${remote}`;
    }
    return "none";
  });

/**
 * Plays `stream` on the Player page and checks what a user gets: PLAYING, a WIDTHxHEIGHT picture whose time
 * advances, frames decoded, audio packets. Returns the received video codec.
 */
async function playAndWatch(page: Page, stream: string, t: { diagnostic(msg: string): void }): Promise<string | undefined> {
  await openPlayer(page, edge.url, stream, [countPresentedFrames]);
  await page.click("#playBtn");
  await waitIn(page, "PLAYING or FAILED", 30_000, () => /PLAYING|FAILED/.test(document.querySelector("#status")?.textContent ?? ""));
  const status = await page.$eval("#status", (e) => e.textContent ?? "");
  assert.match(status, /PLAYING/, `the stream did not play: ${await describe(page)}`);

  await waitIn(page, `a ${WIDTH}x${HEIGHT} picture`, 20_000, (w: number) => (document.querySelector("#display video") as HTMLVideoElement | null)?.videoWidth === w, WIDTH);
  const first = await videoState(page);
  assert.equal(first.height, HEIGHT);
  await waitIn(
    page,
    "currentTime to advance by 2 s",
    20_000,
    (start: number) => (document.querySelector("#display video") as HTMLVideoElement).currentTime >= start + 2,
    first.currentTime,
  );
  await waitIn(page, "30 more frames presented", 20_000, (n: number) => (window as unknown as { __presented: number }).__presented >= n + 30, first.presented);
  const later = await videoState(page);
  const framesDecoded = await rtpStat(page, "inbound-rtp", "video", "framesDecoded");
  const audioPackets = await rtpStat(page, "inbound-rtp", "audio", "packetsReceived");
  const codec = await receivedVideoCodec(page);
  t.diagnostic(
    `${stream}: video ${codec} over ${await selectedPair(page)}, currentTime ${first.currentTime.toFixed(2)} → ${later.currentTime.toFixed(2)} s, ` +
      `frames presented ${first.presented} → ${later.presented} (totalVideoFrames ${later.totalVideoFrames}), ` +
      `inbound-rtp framesDecoded ${framesDecoded}, audio packetsReceived ${audioPackets}`,
  );
  assert.equal(later.paused, false, "the video element plays (autoplay allowed)");
  assert.ok(framesDecoded > 30, `inbound-rtp video framesDecoded: ${framesDecoded}`);
  assert.ok(audioPackets > 0, `inbound-rtp audio packetsReceived: ${audioPackets}`);
  await waitIn(page, "more audio packets", 10_000, async (n: number) => {
    let sum = 0;
    for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
      (await pc.getStats()).forEach((s: Record<string, unknown>) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") sum += Number(s.packetsReceived ?? 0);
      });
    }
    return sum > n;
  }, audioPackets);
  return codec;
}

test("Firefox with H.264 offered plays vod://h264-opus.mp4 as it is, without a prepare", async (t) => {
  const before = await sidecar.prepareStats();
  await withFirefox({ h264: true }, async (page) => {
    await page.goto(`${edge.url}/player.html`);
    const offer = await receiveOffer(page);
    t.diagnostic(`Firefox's video offer: ${offeredCodecs(offer, "video").join(" ")}`);
    assert.ok(offeredCodecs(offer, "video").some((c) => c.startsWith("H264/")), "Firefox offers H.264 with the OpenH264 plugin");

    const codec = await playAndWatch(page, `vod://${AS_IS}`, t);
    assert.equal(codec?.toLowerCase(), "video/h264");
    await waitIn(page, "STOPPED at the end of the file", 30_000, () => document.querySelector("#status")?.textContent?.includes("STOPPED"));
  });
  const afterPlay = await sidecar.prepareStats();
  // Neither a prepare started nor a prepared copy played: the file's own samples went out.
  assert.equal(afterPlay.prepares, before.prepares, `the sidecar prepared: ${JSON.stringify({ before, afterPlay })}`);
  assert.equal(afterPlay.hits, before.hits, `a prepared copy was played: ${JSON.stringify({ before, afterPlay })}`);
});

// Needs the server to send VP8 (or VP9/AV1): stock Firefox offers nothing else. Until then the Player shows FAILED
// "No common codecs".
test("stock Firefox (VP8, VP9, AV1 offered, no H.264) plays vod://h264-opus.mp4", async (t) => {
  await withFirefox({}, async (page) => {
    await page.goto(`${edge.url}/player.html`);
    const offer = await receiveOffer(page);
    t.diagnostic(`Firefox's video offer: ${offeredCodecs(offer, "video").join(" ")}`);
    assert.ok(!offeredCodecs(offer, "video").some((c) => c.startsWith("H264/")), "stock Firefox offers no H.264 here");

    await playAndWatch(page, `vod://${AS_IS}`, t);
    await waitIn(page, "STOPPED at the end of the file", 30_000, () => document.querySelector("#status")?.textContent?.includes("STOPPED"));
  });
});
