// Debian Chromium driven by playwright-core (never a downloaded browser).
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

/** `extraArgs`, e.g. the fake camera and microphone: `--use-fake-device-for-media-stream`, `--use-fake-ui-for-media-stream`. */
export async function launchChromium(extraArgs: string[] = []): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const userDataDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
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
      "--autoplay-policy=no-user-gesture-required",
      // A host with only `lo` has no other address for ICE.
      "--allow-loopback-in-peer-connection",
      ...extraArgs,
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await fs.rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * An init script that keeps every RTCPeerConnection a page makes in `window.__pcs`, so a test can read its stats.
 * A string, not a function: tsx decorates functions with helpers that do not exist in the page.
 */
export const capturePeerConnections = `
  (() => {
    const Original = window.RTCPeerConnection;
    window.__pcs = [];
    const Wrapped = function (...args) { const pc = new Original(...args); window.__pcs.push(pc); return pc; };
    Wrapped.prototype = Original.prototype;
    Object.setPrototypeOf(Wrapped, Original);
    window.RTCPeerConnection = Wrapped;
  })();
`;

/**
 * Sums one counter of the page's RTP stats (e.g. inbound-rtp video framesDecoded) over every peer connection kept
 * by capturePeerConnections.
 */
export function rtpStat(page: Page, type: "inbound-rtp" | "outbound-rtp", kind: "audio" | "video", field: string): Promise<number> {
  return page.evaluate(
    async ({ type, kind, field }) => {
      let n = 0;
      for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
        (await pc.getStats()).forEach((s: Record<string, unknown>) => {
          if (s.type === type && s.kind === kind) n += Number(s[field] ?? 0);
        });
      }
      return n;
    },
    { type, kind, field },
  );
}

/**
 * The SRTP cipher and DTLS role of each DTLS transport of the page's peer connections (kept by
 * capturePeerConnections), as Chromium's transport stats name them: "SRTP_AEAD_AES_128_GCM" or "SRTP_AES128_CM_HMAC_SHA1_80",
 * "client" or "server".
 */
export function srtpTransports(page: Page): Promise<{ srtpCipher: string; dtlsRole: string }[]> {
  return page.evaluate(async () => {
    const out: { srtpCipher: string; dtlsRole: string }[] = [];
    for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
      (await pc.getStats()).forEach((s: Record<string, unknown>) => {
        if (s.type === "transport" && s.dtlsState === "connected") out.push({ srtpCipher: String(s.srtpCipher), dtlsRole: String(s.dtlsRole) });
      });
    }
    return out;
  });
}

/**
 * Loads the Player page on `page` for `stream` with capturePeerConnections (and `initScripts`) installed, and waits
 * for the Web SDK to be there; page errors go to the test's log.
 */
export async function openPlayer(page: Page, edgeUrl: string, stream: string, initScripts: readonly string[] = []): Promise<Page> {
  page.on("pageerror", (err) => console.log(`page error: ${err.message}`));
  await page.addInitScript({ content: capturePeerConnections });
  for (const content of initScripts) await page.addInitScript({ content });
  await page.goto(`${edgeUrl}/player.html?stream=${encodeURIComponent(stream)}`);
  await page.waitForFunction(() => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined");
  return page;
}

/**
 * What a user sees of media/sample.mp4 on the Player page (open, not yet started): Play, PLAYING, a 640x360 picture
 * whose time advances, decoded frames and audio, then STOPPED at the end of its 10 s.
 */
export async function playSampleToEnd(page: Page): Promise<void> {
  await page.click("#playBtn");
  await page.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("PLAYING"), undefined, { timeout: 30_000 });
  const video = page.locator("#display video");
  await page.waitForFunction(() => (document.querySelector("#display video") as HTMLVideoElement | null)?.videoWidth === 640, undefined, { timeout: 15_000 });
  assert.equal(await video.evaluate((v: HTMLVideoElement) => v.videoHeight), 360);
  const t0 = await video.evaluate((v: HTMLVideoElement) => v.currentTime);
  await page.waitForFunction((start) => (document.querySelector("#display video") as HTMLVideoElement).currentTime >= start + 3, t0, { timeout: 10_000 });
  const framesDecoded = await rtpStat(page, "inbound-rtp", "video", "framesDecoded");
  const audioPackets = await rtpStat(page, "inbound-rtp", "audio", "packetsReceived");
  const audioSamples = await rtpStat(page, "inbound-rtp", "audio", "totalSamplesReceived");
  assert.ok(framesDecoded > 60, `frames decoded: ${framesDecoded}`);
  assert.ok(audioPackets > 50, `audio packets: ${audioPackets}`);
  assert.ok(audioSamples > 0, `audio samples: ${audioSamples}`);
  await page.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("STOPPED"), undefined, { timeout: 20_000 });
}

/**
 * A page in a window of its own: headless Chromium presents video at full rate only in the front tab of a window
 * (the other tabs' requestVideoFrameCallback fires about once a second), so pages watched frame by frame at once
 * each need one.
 */
export async function newWindowPage(context: BrowserContext): Promise<Page> {
  const opener = context.pages()[0] ?? (await context.newPage());
  const cdp = await context.newCDPSession(opener);
  const created = context.waitForEvent("page");
  await cdp.send("Target.createTarget", { url: "about:blank", newWindow: true });
  const page = await created;
  await cdp.detach();
  return page;
}
