// Time to first frame of `vod://sample.mp4` over WHEP against the Web SDK, in one run: Debian Chromium, the real
// edge (wrangler dev) and sidecar, RUNS plays each.
//   WHEP: a minimal page (no library) makes a recvonly video + audio peer connection and its offer, then POSTs the
//   offer with fetch to /whep/vod/sample.mp4 and sets the 201's answer; the clock starts just before the POST and
//   stops at the first frame the <video> presents (requestVideoFrameCallback). The offer goes without candidates
//   (as OBS sends it): the server answers with all of its own and learns the browser's from its checks. The offer's
//   making is reported beside each run (it is before the clock). Each run ends with the resource's DELETE.
//     same origin: the page is on the edge's origin (no CORS), as the Player page is: the like-for-like number.
//     cross origin: the same page from another loopback port, a distinct URL per play so that every POST pays its
//     CORS preflight as a viewer's one play on a third-party site does (Chromium keeps a preflight 5 s otherwise).
//   SDK: bench/ttff.ts's measureTtff on a stack of its own, stream.play() -> first frame, its session made before.
// Each stack's run 1 is cold (the sidecar's first parse of the file and its AAC -> Opus transcode); the ratios
// WHEP ÷ SDK compare cold with cold and warm runs with warm runs. Prints numbers; asserts nothing. measureWhep() is
// exported for bench/run.ts.
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { launchChromium } from "../test/helpers/chromium.ts";
import { servePages, type PageServer } from "../test/helpers/page-server.ts";
import { startSidecar, type SidecarProcess } from "../test/helpers/sidecar-process.ts";
import { startWrangler } from "../test/helpers/wrangler.ts";
import { isMain } from "./is-main.ts";
import { abortable, measureTtff, sampleMediaDir, summarize, type Summary, type TtffResult } from "./ttff.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const FILE = "sample.mp4";
const DEFAULT_RUNS = Number(process.env.BENCH_TTFF_RUNS ?? 10);
/** Per run, POST to first frame; generous because the cold run transcodes the whole file's audio first. */
const RUN_TIMEOUT_MS = 30_000;
/** Where the same-origin page is put (by the browser's request interception, only while it loads): no such asset. */
const SAME_ORIGIN_PAGE = "/__bench-whep.html";

export interface WhepRun {
  /** new RTCPeerConnection -> the offer set as local description, ms; before the clock starts. */
  offerMs: number;
  /** Just before the POST -> the 201's answer read, ms (a cross-origin page's preflight included). */
  answerMs: number;
  /** -> ICE "connected", ms. */
  iceMs: number | null;
  /** -> the peer connection "connected" (ICE + DTLS), ms. */
  connectedMs: number | null;
  /** -> the last packet of the first frame arrived (rVFC receiveTime), ms. */
  frameReceivedMs: number | null;
  /** -> the first frame presented (rVFC presentationTime), ms. */
  firstFrameMs: number;
  /** Media time of the first frame (RTP timestamp / 90), ms. */
  frameMediaMs: number | null;
  /** The DELETE of the resource, ms, and its status. */
  deleteMs: number;
  deleteStatus: number;
}

export interface WhepSeries {
  runs: WhepRun[];
  firstFrame: Summary;
  answer: Summary;
  /** Over the runs after the stack's first (for same origin: runs 2..N; for cross origin: all, as it comes second). */
  warm: { firstFrame: Summary; answer: Summary };
  /** CORS preflights of the POSTs the edge logged over the series (cross origin: one per run is the intent). */
  preflights: number;
}

export interface WhepResult {
  stream: string;
  whep: { sameOrigin: WhepSeries; crossOrigin: WhepSeries };
  sdk: TtffResult;
  /** WHEP ÷ SDK first-frame times. */
  ratio: {
    /** Same-origin run 1 ÷ SDK run 1: both on a sidecar that opens the file for the first time. */
    cold: number;
    /** Same-origin warm runs ÷ SDK warm runs. */
    warm: Summary;
    /** Cross-origin runs (all warm) ÷ SDK warm runs. */
    crossOriginWarm: Summary;
  };
}

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>WHEP bench</title><link rel="icon" href="data:,"></head>
<body><div id="display"></div></body>
</html>`;

/**
 * What the page runs: WHEP by hand, timed with the page's clock so no CDP round trip is inside a measurement. A
 * string, not a function: tsx decorates functions with helpers that do not exist in the page.
 */
const DRIVER = `
  (() => {
    let current = null;
    window.__whep = {
      play: (url, timeoutMs) => new Promise(async (resolve, reject) => {
        const r = { offerMs: null, answerMs: null, iceMs: null, connectedMs: null, frameReceivedMs: null, firstFrameMs: null, frameMediaMs: null };
        let settled = false;
        let t0 = 0;
        const fail = (msg) => { if (!settled) { settled = true; clearTimeout(timer); reject(new Error(msg)); } };
        const timer = setTimeout(() => fail("no first frame in " + timeoutMs + " ms (" + JSON.stringify(r) + ")"), timeoutMs);
        try {
          // A fresh element per run: a frame of the previous run must not be taken for this one's.
          const video = document.createElement("video");
          video.autoplay = true;
          video.playsInline = true;
          video.width = 640;
          video.height = 360;
          document.getElementById("display").replaceChildren(video);
          const media = new MediaStream();
          const s0 = performance.now();
          const pc = new RTCPeerConnection();
          current = { pc, location: null };
          pc.addTransceiver("video", { direction: "recvonly" });
          pc.addTransceiver("audio", { direction: "recvonly" });
          pc.ontrack = (e) => { media.addTrack(e.track); if (!video.srcObject) video.srcObject = media; };
          pc.addEventListener("iceconnectionstatechange", () => {
            const s = pc.iceConnectionState;
            if ((s === "connected" || s === "completed") && r.iceMs === null) r.iceMs = performance.now() - t0;
          });
          pc.addEventListener("connectionstatechange", () => {
            if (pc.connectionState === "connected" && r.connectedMs === null) r.connectedMs = performance.now() - t0;
            if (pc.connectionState === "failed") fail("peer connection failed");
          });
          await pc.setLocalDescription(await pc.createOffer());
          r.offerMs = performance.now() - s0;
          video.requestVideoFrameCallback((now, m) => {
            r.firstFrameMs = m.presentationTime - t0;
            if (m.receiveTime !== undefined) r.frameReceivedMs = m.receiveTime - t0;
            if (m.rtpTimestamp !== undefined) r.frameMediaMs = m.rtpTimestamp / 90;
            if (!settled) { settled = true; clearTimeout(timer); resolve(r); }
          });
          t0 = performance.now();
          const res = await fetch(url, { method: "POST", headers: { "content-type": "application/sdp" }, body: pc.localDescription.sdp });
          const answer = await res.text();
          r.answerMs = performance.now() - t0;
          if (res.status !== 201) return fail("POST " + res.status + ": " + answer);
          current.location = res.headers.get("location");
          if (!current.location) return fail("201 without a readable Location");
          await pc.setRemoteDescription({ type: "answer", sdp: answer });
        } catch (err) {
          fail(String(err));
        }
      }),

      stop: async () => {
        const run = current;
        current = null;
        if (!run) return { ms: 0, status: 0 };
        const t0 = performance.now();
        const res = run.location ? await fetch(run.location, { method: "DELETE" }) : null;
        const ms = performance.now() - t0;
        run.pc.close();
        return { ms, status: res ? res.status : 0 };
      },
    };
  })();
`;

interface Driver {
  play(url: string, timeoutMs: number): Promise<Omit<WhepRun, "deleteMs" | "deleteStatus">>;
  stop(): Promise<{ ms: number; status: number }>;
}
type DriverWindow = { __whep: Driver };

export interface WhepOptions {
  runs?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** `runs` WHEP plays on `page` (already on its origin), the POST going to `url(i)`. */
async function series(
  page: Page,
  edge: { output(): string },
  label: string,
  runs: number,
  url: (i: number) => string,
  warmFrom: number,
  opts: WhepOptions,
): Promise<WhepSeries> {
  await page.evaluate(DRIVER);
  const logFrom = edge.output().length;
  const out: WhepRun[] = [];
  for (let i = 0; i < runs; i++) {
    const played = await abortable(
      page.evaluate(([u, t]) => (window as unknown as DriverWindow).__whep.play(u, t), [url(i), RUN_TIMEOUT_MS] as const),
      opts.signal,
    );
    // The next play must not overlap this one on the sidecar, or a run would pay for two viewers.
    const stopped = await abortable(page.evaluate(() => (window as unknown as DriverWindow).__whep.stop()), opts.signal);
    out.push({ ...played, deleteMs: stopped.ms, deleteStatus: stopped.status });
    opts.log?.(`whep ${label} run ${i + 1}/${runs}: answer ${played.answerMs.toFixed(0)} ms, first frame ${played.firstFrameMs.toFixed(0)} ms, DELETE ${stopped.status}`);
  }
  const warm = out.slice(warmFrom);
  return {
    runs: out,
    firstFrame: summarize(out.map((r) => r.firstFrameMs)),
    answer: summarize(out.map((r) => r.answerMs)),
    warm: { firstFrame: summarize(warm.map((r) => r.firstFrameMs)), answer: summarize(warm.map((r) => r.answerMs)) },
    preflights: edge.output().slice(logFrom).match(/\bOPTIONS \/whep\/vod\//g)?.length ?? 0,
  };
}

/** The WHEP series on a stack of their own: same origin first (its run 1 cold), then cross origin. */
async function measureWhepOnly(runs: number, opts: WhepOptions): Promise<WhepResult["whep"]> {
  const signal = opts.signal;
  let tmpDir: string | undefined;
  const tmp = async () => (tmpDir ??= await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-whep-")));
  let sidecar: SidecarProcess | undefined;
  let edge: Awaited<ReturnType<typeof startWrangler>> | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  let pages: PageServer | undefined;
  try {
    const mediaDir = await abortable(sampleMediaDir(tmp), signal);
    const secret = randomBytes(24).toString("hex");
    sidecar = await abortable(startSidecar({ secret, mediaDir }), signal);
    edge = await abortable(startWrangler({ sidecarUrl: sidecar.url, secret }), signal);
    browser = await abortable(launchChromium(), signal);
    pages = await servePages({ "/index.html": PAGE });
    const whepUrl = `${edge.url}/whep/vod/${FILE}`;

    // The persistent context's first tab, in front: background tabs' rVFC fire about once a second (bench/ttff.ts).
    const page: Page = browser.context.pages()[0] ?? (await browser.context.newPage());
    await page.bringToFront();
    page.on("pageerror", (err) => opts.log?.(`page error: ${err.message}`));

    // The page is handed over by request interception, which is then switched off: it would otherwise hold every
    // request of the runs for a round trip to this process.
    const samePage = `${edge.url}${SAME_ORIGIN_PAGE}`;
    await page.route(samePage, (route) => route.fulfill({ status: 200, contentType: "text/html", body: PAGE }));
    await abortable(page.goto(samePage), signal);
    await page.unrouteAll();
    const sameOrigin = await series(page, edge, "same origin", runs, () => whepUrl, 1, opts);

    await abortable(page.goto(`${pages.origin}/index.html`), signal);
    // The edge reads the file name from the path alone; the query only makes each POST's URL new to the browser.
    const crossOrigin = await series(page, edge, "cross origin", runs, (i) => `${whepUrl}?play=${i}-${Date.now()}`, 0, opts);
    return { sameOrigin, crossOrigin };
  } finally {
    await browser?.close().catch(() => {});
    await edge?.stop().catch(() => {});
    await sidecar?.stop().catch(() => {});
    await pages?.close().catch(() => {});
    if (tmpDir) await fs.rm(tmpDir, { recursive: true, force: true }).catch(() => {});
  }
}

export async function measureWhep(opts: WhepOptions = {}): Promise<WhepResult> {
  const runs = opts.runs ?? DEFAULT_RUNS;
  if (!Number.isInteger(runs) || runs < 2) throw new Error(`runs must be an integer >= 2 (one cold, at least one warm); got ${runs}`);
  // startSidecar runs sidecar/src/main.ts relative to the working directory.
  if (path.resolve(process.cwd()) !== ROOT) throw new Error(`run from the repository root (${ROOT})`);
  const whep = await measureWhepOnly(runs, opts);
  opts.log?.("whep: the Web SDK's Player, the same file");
  const sdk = await measureTtff({ runs, signal: opts.signal, log: opts.log ?? (() => {}) });
  const over = (a: Summary, b: Summary): Summary => ({ median: a.median / b.median, p90: a.p90 / b.p90 });
  return {
    stream: `vod://${FILE}`,
    whep,
    sdk,
    ratio: {
      cold: whep.sameOrigin.runs[0]!.firstFrameMs / sdk.runs[0]!.firstFrameMs,
      warm: over(whep.sameOrigin.warm.firstFrame, sdk.warm.firstFrame),
      crossOriginWarm: over(whep.crossOrigin.warm.firstFrame, sdk.warm.firstFrame),
    },
  };
}

/** The part's lines for the console, as bench/run.ts prints them. */
export function whepSummary(r: WhepResult): string[] {
  const ms = (s: Summary) => `median ${s.median.toFixed(0).padStart(4)} ms, p90 ${s.p90.toFixed(0).padStart(4)} ms`;
  const x = (v: number) => `${v.toFixed(2)}x`;
  const n = (v: number | null) => (v === null ? "-" : v.toFixed(0)).padStart(6);
  const table = (name: string, s: WhepSeries, coldFirst: boolean) => [
    `  WHEP, ${name}; ms from just before the POST (offer made before it):`,
    "     run   offer  answer     ICE  ICE+DTLS  frame rx  1st frame  media t  DELETE",
    ...s.runs.map(
      (w, i) =>
        `    ${String(i + 1).padStart(2)}${coldFirst && i === 0 ? " cold" : "     "}${n(w.offerMs)}  ${n(w.answerMs)}  ${n(w.iceMs)}    ${n(w.connectedMs)}    ${n(w.frameReceivedMs)}     ${n(w.firstFrameMs)}   ${n(w.frameMediaMs)}  ${n(w.deleteMs)} ${w.deleteStatus}`,
    ),
  ];
  const so = r.whep.sameOrigin;
  const co = r.whep.crossOrigin;
  const sdk = r.sdk;
  const sdkAnswers = sdk.runs.slice(1).flatMap((s) => (s.answerMs === null ? [] : [s.answerMs]));
  return [
    ...table(`same origin (${so.preflights} preflights)`, so, true),
    ...table(`cross origin (a new URL per POST; the edge logged ${co.preflights} preflights)`, co, false),
    `  first frame, cold (run 1):  WHEP same origin ${so.runs[0]!.firstFrameMs.toFixed(0)} ms, SDK ${sdk.runs[0]!.firstFrameMs.toFixed(0)} ms (${x(r.ratio.cold)})`,
    `  first frame, warm:  WHEP same origin ${ms(so.warm.firstFrame)}; cross origin ${ms(co.warm.firstFrame)}; SDK (play() -> frame) ${ms(sdk.warm.firstFrame)}`,
    `  WHEP ÷ SDK, warm:  same origin median ${x(r.ratio.warm.median)}, p90 ${x(r.ratio.warm.p90)}; cross origin median ${x(r.ratio.crossOriginWarm.median)}, p90 ${x(r.ratio.crossOriginWarm.p90)}`,
    `  POST -> answer, warm: same origin ${ms(so.warm.answer)}; cross origin ${ms(co.warm.answer)}` +
      (sdkAnswers.length > 0 ? `; SDK play() -> answer applied median ${summarize(sdkAnswers).median.toFixed(0)} ms` : ""),
  ];
}

if (isMain(import.meta.url)) {
  try {
    console.log(whepSummary(await measureWhep({ log: (l) => console.error(l) })).join("\n"));
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  }
  process.exit();
}
