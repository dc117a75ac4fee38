// Standard WHEP and WHIP clients that nobody here wrote, from two authors, in Debian Chromium on a page of another
// origin than the edge, so every request they make goes through CORS for real: Eyevinn's @eyevinn/webrtc-player plays
// /whep/vod/sample.mp4; medooze's whip-whep WHIPClient publishes the fake camera and microphone to
// /whip/<name>?record=true, the Player page (the unmodified Web SDK) watches it live, and once the client's DELETE
// is answered the recording is listed and plays back as vod://<record name>. The clients are the packages' own code,
// bundled for the page by esbuild at the start; nothing comes from a CDN.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import type { Page } from "playwright-core";
import { capturePeerConnections, launchChromium, openPlayer, rtpStat } from "../helpers/chromium.ts";
import { servePages, type PageServer } from "../helpers/page-server.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler } from "../helpers/wrangler.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const REST_API_KEY = randomBytes(16).toString("hex");

/** What the page gets from the bundle: the clients as their packages export them. */
const ENTRY = `
  import { WebRTCPlayer } from "@eyevinn/webrtc-player";
  import { WHIPClient } from "whip-whep/whip.js";
  window.WebRTCPlayer = WebRTCPlayer;
  window.WHIPClient = WHIPClient;
`;

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>third-party WHEP/WHIP page</title><link rel="icon" href="data:,"></head>
<body>
  <video id="video" autoplay playsinline></video>
  <script src="/clients.js"></script>
</body>
</html>`;

let sidecar: SidecarProcess;
let edge: Awaited<ReturnType<typeof startWrangler>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let pages: PageServer;
let tmp: string;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-wish-"));
  const recordDir = await fs.mkdtemp(path.join(tmp, "records-"));
  const bundle = path.join(tmp, "clients.js");
  await esbuild.build({
    stdin: { contents: ENTRY, resolveDir: ROOT, loader: "js" },
    bundle: true,
    format: "iife",
    platform: "browser",
    outfile: bundle,
    logLevel: "error",
  });
  pages = await servePages({ "/index.html": PAGE, "/clients.js": await fs.readFile(bundle) });
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret, env: { RECORD_DIR: recordDir } });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret, vars: { REST_API_KEY } });
  browser = await launchChromium(["--use-fake-device-for-media-stream=fps=30", "--use-fake-ui-for-media-stream"]);
});

after(async () => {
  await browser?.close();
  await edge?.stop();
  await sidecar?.stop();
  await pages?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

/** One request the page made to the edge, as the browser sent it and what came back (preflights are not seen here). */
interface Exchange {
  method: string;
  url: string;
  status: number;
  request: Record<string, string>;
  response: Record<string, string>;
  body: string | null;
  /** The response's body, for a POST (the SDP answer or the error). */
  answer?: string;
}

/** Keeps every request `page` makes to the edge, in order, with its headers once the response is in. */
function recordExchanges(page: Page): Exchange[] {
  const list: Exchange[] = [];
  page.on("response", (res) => {
    const req = res.request();
    if (new URL(req.url()).origin !== edge.url) return;
    const entry: Exchange = { method: req.method(), url: req.url(), status: res.status(), request: {}, response: res.headers(), body: req.postData() };
    list.push(entry);
    void req.allHeaders().then((h) => (entry.request = h), () => {});
    if (entry.method === "POST") void res.text().then((t) => (entry.answer = t), () => {});
  });
  return list;
}

/** A line per exchange for the log: what each client sends, for whoever reads a failure (or compares clients). */
function sent(list: Exchange[]): string {
  return list
    .map((e) => {
      const hdr = (k: string) => (e.request[k] !== undefined ? ` ${k}: ${e.request[k]}` : "");
      const frag = e.method === "PATCH" && e.body ? ` body ${JSON.stringify(e.body)}` : "";
      const offer = e.method === "POST" && e.body ? ` offer with ${e.body.match(/^a=candidate:/gm)?.length ?? 0} candidates${/^a=end-of-candidates/m.test(e.body) ? ", end-of-candidates" : ""}` : "";
      return `  ${e.method} ${new URL(e.url).pathname} -> ${e.status};${hdr("content-type")}${hdr("if-match")}${hdr("authorization")}${hdr("origin")}${offer}${frag}`;
    })
    .join("\n");
}

/**
 * The edge's own request log lines for WHEP/WHIP paths since `from` (the browser's CORS preflights show only
 * here), once the resource's DELETE is among them: wrangler prints a line a moment after it answered.
 */
async function edgeLog(from: number): Promise<string> {
  const lines = () =>
    edge
      .output()
      .slice(from)
      .split("\n")
      .filter((l) => /\b(OPTIONS|POST|PATCH|DELETE) \/(whep|whip|wish)\//.test(l))
      .map((l) => `  ${l.trim()}`);
  for (let i = 0; i < 50 && !lines().some((l) => l.includes("DELETE /wish/")); i++) await new Promise((r) => setTimeout(r, 100));
  return lines().join("\n");
}

async function rest(method: string, body: unknown = {}): Promise<any> {
  const res = await fetch(`${edge.url}/rest-api/${method}`, {
    method: "POST",
    headers: { authorization: `Bearer ${REST_API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** Polls `probe` every 200 ms until it gives a value; fails with `what` after `timeoutMs`. */
async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`no ${what} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function thirdPartyPage(): Promise<Page> {
  const page = await browser.context.newPage();
  page.on("pageerror", (err) => console.log(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") console.log(`page console: ${msg.text()}`);
  });
  await page.addInitScript({ content: capturePeerConnections });
  await page.goto(`${pages.origin}/index.html`);
  assert.notEqual(new URL(page.url()).origin, edge.url, "the page is of another origin than the edge");
  return page;
}

const videoOf = (page: Page, selector: string) => page.locator(selector);

test("Eyevinn's WebRTC player plays /whep/vod/sample.mp4 from another origin: 640x360, time advancing, frames and sound", async () => {
  const page = await thirdPartyPage();
  const exchanges = recordExchanges(page);
  const logFrom = edge.output().length;
  const url = `${edge.url}/whep/vod/sample.mp4`;
  // No ICE servers: its default is a public STUN server, which this machine must not (and cannot) reach.
  await page.evaluate((u) => {
    const w = window as any;
    w.player = new w.WebRTCPlayer({ video: document.getElementById("video"), type: "whep", iceServers: [] });
    return w.player.load(new URL(u));
  }, url);

  await page.waitForFunction(() => (document.getElementById("video") as HTMLVideoElement).videoWidth > 0, undefined, { timeout: 20_000 });
  const video = videoOf(page, "#video");
  assert.deepEqual(await video.evaluate((v: HTMLVideoElement) => [v.videoWidth, v.videoHeight]), [640, 360]);
  const t0 = await video.evaluate((v: HTMLVideoElement) => v.currentTime);
  await page.waitForFunction((start) => (document.getElementById("video") as HTMLVideoElement).currentTime >= start + 3, t0, { timeout: 10_000 });
  const framesDecoded = await rtpStat(page, "inbound-rtp", "video", "framesDecoded");
  const audioPackets = await rtpStat(page, "inbound-rtp", "audio", "packetsReceived");
  // The player retries by itself on some statuses (a 406 without audio, a 400 as a server-offer WHEP): one POST,
  // answered 201, is what says it played what it first asked for.
  const posts = exchanges.filter((e) => e.method === "POST");
  assert.deepEqual(posts.map((e) => e.status), [201], sent(exchanges));
  assert.ok(framesDecoded > 60, `frames decoded: ${framesDecoded}`);
  const audioLines = (sdp: string | undefined) => sdp?.split(/\r?\n/).filter((l) => /^m=audio|^a=(sendonly|recvonly|sendrecv|inactive|rtpmap:\d+ opus)/.test(l)).join(" | ");
  assert.ok(
    audioPackets > 50,
    `audio packets: ${audioPackets}; offer: ${audioLines(posts[0]!.body ?? undefined)}; answer: ${audioLines(posts[0]!.answer)}\n` +
      `sidecar: ${sidecar.output().split("\n").filter((l) => /vod|audio|warn|error/i.test(l)).slice(-20).join("\n")}`,
  );

  await page.evaluate(() => (window as any).player.unload());
  console.log(`Eyevinn webrtc-player, as the page sent it:\n${sent(exchanges)}\nedge log:\n${await edgeLog(logFrom)}`);

  assert.equal(posts[0]!.request["origin"], pages.origin);
  assert.equal(posts[0]!.response["access-control-allow-origin"], "*");
  const location = posts[0]!.response["location"];
  assert.match(location ?? "", new RegExp(`^${edge.url}/wish/[0-9a-f]{64}/[0-9a-f]{32}$`));
  // Its DELETE went to the Location it read through CORS, and ended the resource.
  const deletes = exchanges.filter((e) => e.method === "DELETE");
  assert.deepEqual(deletes.map((e) => [e.url, e.status]), [[location, 200]]);
  assert.equal((await fetch(location!, { method: "DELETE" })).status, 404, "the resource is gone");
  await page.close();
});

test("medooze's WHIPClient publishes the fake camera from another origin: a Web SDK viewer watches it live, its DELETE finishes the recording, which plays as vod://", async () => {
  const name = `whip-${randomUUID().slice(0, 8)}`;
  const earlier = await rest("records/find_all");
  assert.equal(earlier.status, 200);
  const page = await thirdPartyPage();
  const exchanges = recordExchanges(page);
  const logFrom = edge.output().length;

  // The package README's own example, with the fake camera and microphone.
  await page.evaluate(async (u) => {
    const w = window as any;
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    for (const track of media.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
    w.whip = new w.WHIPClient();
    await w.whip.publish(pc, u);
  }, `${edge.url}/whip/${encodeURIComponent(name)}?record=true`);
  await page.waitForFunction(() => (window as any).__pcs[0]?.connectionState === "connected", undefined, { timeout: 20_000 });

  // The REST API lists it as any publish: PENDING until the sidecar has its first media, then PUBLISHING.
  const publishing = await until(async () => {
    const mine = ((await rest("stream/find_all")).json as any[]).filter((s) => s.name === name);
    return mine.length === 1 && mine[0].status === "PUBLISHING" ? mine[0] : undefined;
  }, 10_000, `${name} PUBLISHING in stream/find_all`);
  assert.equal(publishing.published, true);
  const mediaSessionId = publishing.mediaSessionId as string;

  // A Web SDK viewer on the edge's own Player page.
  const viewer = await openPlayer(await browser.context.newPage(), edge.url, name);
  await viewer.click("#playBtn");
  await viewer.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("PLAYING"), undefined, { timeout: 30_000 });
  await viewer.waitForFunction(() => ((document.querySelector("#display video") as HTMLVideoElement | null)?.videoWidth ?? 0) > 0, undefined, { timeout: 15_000 });
  const live = videoOf(viewer, "#display video");
  const t0 = await live.evaluate((v: HTMLVideoElement) => v.currentTime);
  await viewer.waitForFunction((start) => (document.querySelector("#display video") as HTMLVideoElement).currentTime >= start + 2, t0, { timeout: 10_000 });
  const liveFrames = await rtpStat(viewer, "inbound-rtp", "video", "framesDecoded");
  const liveAudio = await rtpStat(viewer, "inbound-rtp", "audio", "packetsReceived");
  assert.ok(liveFrames > 30, `viewer frames decoded: ${liveFrames}`);
  assert.ok(liveAudio > 50, `viewer audio packets: ${liveAudio}`);
  const framesSent = await rtpStat(page, "outbound-rtp", "video", "framesSent");
  assert.ok(framesSent > liveFrames, `the publisher sent ${framesSent} frames`);

  await page.evaluate(() => (window as any).whip.stop());
  console.log(`medooze WHIPClient, as the page sent it:\n${sent(exchanges)}\nedge log:\n${await edgeLog(logFrom)}`);
  // The Web SDK viewer is told as when a Web SDK publisher stops.
  await viewer.waitForFunction(() => /STOPPED|FAILED/.test(document.querySelector("#status")?.textContent ?? ""), undefined, { timeout: 15_000 });
  assert.match(await viewer.locator("#status").innerText(), /STOPPED/);
  assert.equal((await viewer.locator("#info").innerText()).trim(), "Stopped by publisher stop");

  const posts = exchanges.filter((e) => e.method === "POST");
  assert.deepEqual(posts.map((e) => e.status), [201], sent(exchanges));
  assert.equal(new URL(posts[0]!.url).search, "?record=true");
  assert.equal(posts[0]!.request["origin"], pages.origin);
  const location = posts[0]!.response["location"];
  assert.match(location ?? "", new RegExp(`^${edge.url}/wish/[0-9a-f]{64}/[0-9a-f]{32}$`));
  // It trickles its candidates by PATCH (without If-Match: no ETag was given); each is 204.
  const patches = exchanges.filter((e) => e.method === "PATCH");
  assert.ok(patches.length >= 1, "the client trickled");
  for (const p of patches) {
    assert.equal(p.url, location);
    assert.equal(p.status, 204);
    assert.equal(p.request["content-type"], "application/trickle-ice-sdpfrag");
    assert.equal(p.request["if-match"], undefined);
  }
  const deletes = exchanges.filter((e) => e.method === "DELETE");
  assert.deepEqual(deletes.map((e) => [e.url, e.status]), [[location, 200]]);

  // The DELETE is answered once the file is finished: it is listed at once, under the default template's name.
  const recordName = `stream-${mediaSessionId}-.mp4`;
  const records = await rest("records/find_all");
  const added = (records.json as any[]).filter((r) => !(earlier.json as any[]).some((b) => b.name === r.name));
  assert.deepEqual(added.map((r) => r.name), [recordName]);
  assert.equal(added[0].url, `/client/records/${encodeURIComponent(recordName)}`);
  assert.ok(added[0].durationMs > 2000, `recorded ${added[0].durationMs} ms`);
  const download = await fetch(`${edge.url}${added[0].url}`);
  assert.equal(download.status, 200);
  assert.equal(download.headers.get("content-type"), "video/mp4");
  assert.equal((await download.arrayBuffer()).byteLength, added[0].size);

  await viewer.close();
  await page.close();
  const player = await openPlayer(await browser.context.newPage(), edge.url, `vod://${recordName}`);
  await player.click("#playBtn");
  await player.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("PLAYING"), undefined, { timeout: 30_000 });
  await player.waitForFunction(() => ((document.querySelector("#display video") as HTMLVideoElement | null)?.videoWidth ?? 0) > 0, undefined, { timeout: 15_000 });
  const played = videoOf(player, "#display video");
  const p0 = await played.evaluate((v: HTMLVideoElement) => v.currentTime);
  await player.waitForFunction((start) => (document.querySelector("#display video") as HTMLVideoElement).currentTime >= start + 1.5, p0, { timeout: 10_000 });
  const playedFrames = await rtpStat(player, "inbound-rtp", "video", "framesDecoded");
  assert.ok(playedFrames > 20, `frames decoded from the recording: ${playedFrames}`);
  await player.close();
});
