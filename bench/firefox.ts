// Time to first frame in stock Firefox (Debian Firefox ESR: VP8, VP9 and AV1, no H.264) for a file it can only get
// as a VP8 copy, against Chromium's H.264 of the same file in the same run. The file is bench/prepare.ts's source, 30
// s of 720p30 H.264 High + B-frames + AAC (an ffmpeg default encode): Firefox's first viewer waits for the VP8 copy
// and the Opus copy, which start with its play; Chromium's first viewer for the H.264 copy (with its Opus), which
// starts with its own. Both pages are the Player page with the unmodified Web SDK, through the real edge (wrangler
// dev) and sidecar; per run stream.play() -> the first frame the <video> presents (requestVideoFrameCallback) and
// -> PLAYING, timed with the page's clock.
//   - first viewer (copy being prepared): a fresh sidecar (empty prepare cache) before each run, Firefox and
//     Chromium alternating, BENCH_FIREFOX_RUNS (5) each; each run's prepares are waited for before the next, so no
//     ffmpeg of one run runs under another;
//   - prepared (cached): one more fresh sidecar, each browser plays the file once (untimed) and its copies are
//     waited for, then BENCH_FIREFOX_RUNS each, alternating.
// Median and p90 per series; ratios Firefox ÷ Chromium and first viewer ÷ prepared. Prints numbers; asserts nothing.
// measureFirefox() is exported for bench/run.ts.
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page as ChromiumPage } from "playwright-core";
import type { Page as FirefoxPage } from "puppeteer-core";
import type { PrepareStats } from "../sidecar/src/prepare/prepare-cache.ts";
import { capturePeerConnections, launchChromium } from "../test/helpers/chromium.ts";
import { FIREFOX_PATH, capturePeerConnections as firefoxCapturePeerConnections, launchFirefox, offeredCodecs, receiveOffer, type LaunchedFirefox } from "../test/helpers/firefox.ts";
import { freePort } from "../test/helpers/ports.ts";
import { startSidecar, type SidecarProcess } from "../test/helpers/sidecar-process.ts";
import { startWrangler } from "../test/helpers/wrangler.ts";
import { isMain } from "./is-main.ts";
import { makeSource } from "./prepare.ts";
import { summarize, type Summary } from "./ttff.ts";

const FILE = "h264-aac-720.mp4";
const DEFAULT_RUNS = 5;
const DEFAULT_SECONDS = 30;
/** Per run, play() to first frame; generous: a first viewer waits for a 720p copy on a busy 2-core machine. */
const RUN_TIMEOUT_MS = 90_000;
/** A prepare of the 30-s file finishes well within this; a run never starts under the last one's ffmpeg. */
const PREPARE_WAIT_MS = 5 * 60_000;

type BrowserName = "firefox" | "chromium";

export interface FirefoxBenchRun {
  browser: BrowserName;
  /** stream.play() -> first frame presented (rVFC presentationTime), ms. */
  firstFrameMs: number;
  /** stream.play() -> STREAM_STATUS.PLAYING, ms. */
  playingMs: number;
  /** The received video codec (inbound-rtp), e.g. "video/vp8". */
  codec: string;
  /** Prepares the sidecar started for this run (a first viewer's copies), and cache hits. */
  prepares: number;
  hits: number;
}

export interface FirefoxBenchSeries {
  runs: FirefoxBenchRun[];
  firstFrame: Summary;
  playing: Summary;
}

export interface FirefoxBenchResult {
  file: { name: string; seconds: number; width: number; height: number; video: string; audio: string };
  firefox: { version: string; offeredVideo: string[]; firstViewer: FirefoxBenchSeries; prepared: FirefoxBenchSeries };
  chromium: { firstViewer: FirefoxBenchSeries; prepared: FirefoxBenchSeries };
  /** Medians' ratios. */
  ratio: {
    /** Firefox (VP8 copy) ÷ Chromium (H.264 copy), first viewer and prepared. */
    firstViewer: number;
    prepared: number;
    /** First viewer ÷ prepared, per browser: what waiting for the copy costs. */
    firefoxFirstOverPrepared: number;
    chromiumFirstOverPrepared: number;
  };
}

/**
 * The page side, the same in both browsers: one SDK session, a stream per play on the Player page's #display, its
 * status callbacks, play() and stop(), timed with the page's clock so no driver round trip is inside a measurement.
 * A string: tsx decorates functions with helpers that do not exist in the page.
 */
const DRIVER = `
  (() => {
    const C = Flashphoner.constants;
    const S = C.STREAM_STATUS;
    const display = document.getElementById("display");
    let session = null;
    let current = null;
    const videoCodec = async (pc) => {
      if (!pc) return "?";
      const stats = await pc.getStats();
      let codecId = null;
      stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video" && s.codecId) codecId = s.codecId; });
      const codec = codecId ? stats.get(codecId) : null;
      return codec && codec.mimeType ? codec.mimeType.toLowerCase() : "?";
    };
    window.__bench = {
      connect: (url, timeoutMs) => new Promise((resolve, reject) => {
        if (session) { try { session.disconnect(); } catch (e) {} session = null; }
        const timer = setTimeout(() => reject(new Error("session not ESTABLISHED in " + timeoutMs + " ms")), timeoutMs);
        const s = Flashphoner.createSession({ urlServer: url });
        s.on(C.SESSION_STATUS.ESTABLISHED, () => { clearTimeout(timer); session = s; resolve(true); })
          .on(C.SESSION_STATUS.FAILED, () => { clearTimeout(timer); reject(new Error("session FAILED")); })
          .on(C.SESSION_STATUS.DISCONNECTED, () => { clearTimeout(timer); reject(new Error("session DISCONNECTED")); });
      }),
      play: (name, timeoutMs) => new Promise((resolve, reject) => {
        const stream = session.createStream({ name: name, display: display });
        const r = { playingMs: null, firstFrameMs: null };
        const run = { stream: stream, settled: false, onStopped: null };
        current = run;
        const pcsBefore = window.__pcs.length;
        const fail = (msg) => {
          if (run.settled) return;
          run.settled = true;
          clearTimeout(timer);
          reject(new Error(msg));
        };
        const timer = setTimeout(() => fail(name + ": no PLAYING and first frame in " + timeoutMs + " ms (" + JSON.stringify(r) + ", status " + stream.status() + ")"), timeoutMs);
        const maybeDone = async () => {
          if (run.settled || r.playingMs === null || r.firstFrameMs === null) return;
          run.settled = true;
          clearTimeout(timer);
          r.codec = await videoCodec(window.__pcs.length > pcsBefore ? window.__pcs[window.__pcs.length - 1] : null);
          resolve(r);
        };
        stream
          .on(S.PLAYING, () => { r.playingMs = performance.now() - t0; maybeDone(); })
          .on(S.FAILED, (s) => fail(name + ": FAILED " + s.getInfo()))
          .on(S.STOPPED, (s) => { if (run.onStopped) run.onStopped(); else fail(name + ": STOPPED before the first frame (" + s.getInfo() + ")"); });
        // The SDK makes its <video> only after play(), asynchronously, and reuses one per display; it is this
        // stream's once it has the stream's id. Looked for every millisecond, far finer than what is measured.
        const watchVideo = () => {
          if (run.settled) return;
          const video = document.getElementById(stream.id());
          if (video && video.tagName === "VIDEO") {
            video.requestVideoFrameCallback((now, m) => {
              r.firstFrameMs = (m && m.presentationTime !== undefined ? m.presentationTime : now) - t0;
              maybeDone();
            });
          } else setTimeout(watchVideo, 1);
        };
        const t0 = performance.now();
        stream.play();
        watchVideo();
      }),
      stop: (timeoutMs) => new Promise((resolve, reject) => {
        const run = current;
        if (!run) return resolve(true);
        const timer = setTimeout(() => reject(new Error("no STOPPED " + timeoutMs + " ms after stop()")), timeoutMs);
        run.onStopped = () => { clearTimeout(timer); current = null; resolve(true); };
        run.stream.stop();
      }),
      disconnect: () => { if (session) session.disconnect(); session = null; },
    };
    return true;
  })()
`;

/** A page driven through DRIVER, whichever browser's automation it is. */
interface Driven {
  name: BrowserName;
  /** Evaluates a JavaScript expression in the page (a promise is awaited). */
  run<T>(expression: string): Promise<T>;
}

const js = (v: unknown) => JSON.stringify(v);

async function untilPreparesDone(sidecar: SidecarProcess): Promise<PrepareStats> {
  const deadline = Date.now() + PREPARE_WAIT_MS;
  for (;;) {
    const stats = await sidecar.prepareStats();
    if (stats.running === 0) return stats;
    if (Date.now() > deadline) throw new Error(`prepares still running after ${PREPARE_WAIT_MS / 1000} s: ${JSON.stringify(stats)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function series(runs: FirefoxBenchRun[]): FirefoxBenchSeries {
  return { runs, firstFrame: summarize(runs.map((r) => r.firstFrameMs)), playing: summarize(runs.map((r) => r.playingMs)) };
}

export interface FirefoxBenchOptions {
  /** Runs per browser and series (first viewer, prepared); default BENCH_FIREFOX_RUNS or 5. */
  runs?: number;
  /** Length of the file, s (default 30). */
  seconds?: number;
  log?: (line: string) => void;
}

export async function measureFirefox(opts: FirefoxBenchOptions = {}): Promise<FirefoxBenchResult> {
  const runs = opts.runs ?? DEFAULT_RUNS;
  const seconds = opts.seconds ?? DEFAULT_SECONDS;
  const log = opts.log ?? console.log;
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`runs must be a positive integer, not ${runs}`);
  await fs.access(FIREFOX_PATH).catch(() => {
    throw new Error(`${FIREFOX_PATH} not found: apt-get install firefox-esr (bash scripts/test.sh installs it)`);
  });

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-firefox-bench-"));
  const secret = randomBytes(24).toString("hex");
  // The sidecar is restarted on this port for every first-viewer run; the edge keeps calling it there.
  const port = await freePort();
  let sidecar: SidecarProcess | undefined;
  let edge: Awaited<ReturnType<typeof startWrangler>> | undefined;
  let firefox: LaunchedFirefox | undefined;
  let chromium: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    log(`  making a ${seconds}-s 720p30 H.264 High + B-frames + AAC file`);
    await makeSource(dir, FILE, seconds);
    const freshSidecar = async () => {
      await sidecar?.stop();
      sidecar = undefined;
      sidecar = await startSidecar({ secret, mediaDir: dir, port });
      return sidecar;
    };
    await freshSidecar();
    // Only a new instance answering is a restart here: the seconds the sidecar is down between runs must not count
    // as a lost sidecar (as test/integration/sidecar-restart.test.ts runs its edge).
    edge = await startWrangler({ sidecarUrl: `http://127.0.0.1:${port}`, secret, logLevel: "warn", vars: { SIDECAR_HEALTH_MISSES: "1000" } });
    const wsUrl = edge.wsUrl;
    const playerUrl = `${edge.url}/player.html?stream=${encodeURIComponent(`vod://${FILE}`)}`;

    firefox = await launchFirefox();
    const ffPage: FirefoxPage = await firefox.newPage();
    await ffPage.evaluateOnNewDocument(firefoxCapturePeerConnections);
    await ffPage.goto(playerUrl);
    const offeredVideo = offeredCodecs(await receiveOffer(ffPage), "video");
    if (offeredVideo.some((c) => c.startsWith("H264/"))) throw new Error(`this Firefox offers H.264 (${offeredVideo.join(" ")}): not the stock browser`);
    await ffPage.waitForFunction(() => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined", { timeout: 30_000 });
    await ffPage.evaluate(DRIVER);
    const version = await firefox.browser.version();

    chromium = await launchChromium();
    // The persistent context's first tab: headless Chromium presents video at full rate only in the front tab.
    const crPage: ChromiumPage = chromium.context.pages()[0] ?? (await chromium.context.newPage());
    await crPage.bringToFront();
    await crPage.addInitScript({ content: capturePeerConnections });
    await crPage.goto(playerUrl);
    await crPage.waitForFunction(() => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined");
    await crPage.evaluate(DRIVER);

    const pages: Driven[] = [
      { name: "firefox", run: <T>(e: string) => ffPage.evaluate(e) as Promise<T> },
      { name: "chromium", run: <T>(e: string) => crPage.evaluate(e) as Promise<T> },
    ];

    /** One timed play on `page` against the current sidecar; its copies, if it started any, are waited for. */
    const playOnce = async (page: Driven): Promise<FirefoxBenchRun> => {
      const before = await sidecar!.prepareStats();
      const r = await page.run<{ firstFrameMs: number; playingMs: number; codec: string }>(`window.__bench.play(${js(`vod://${FILE}`)}, ${RUN_TIMEOUT_MS})`);
      await page.run(`window.__bench.stop(15000)`);
      const after = await untilPreparesDone(sidecar!);
      return { browser: page.name, ...r, prepares: after.prepares - before.prepares, hits: after.hits - before.hits };
    };
    const line = (label: string, r: FirefoxBenchRun) =>
      log(`  ${label} ${r.browser.padEnd(8)} ${r.codec.padEnd(10)} first frame ${r.firstFrameMs.toFixed(0).padStart(5)} ms, PLAYING ${r.playingMs.toFixed(0).padStart(5)} ms (prepares ${r.prepares}, hits ${r.hits})`);

    const first: Record<BrowserName, FirefoxBenchRun[]> = { firefox: [], chromium: [] };
    for (let i = 0; i < runs; i++) {
      for (const page of pages) {
        await freshSidecar();
        await page.run(`window.__bench.connect(${js(wsUrl)}, 20000)`);
        const r = await playOnce(page);
        first[page.name].push(r);
        line(`first viewer ${i + 1}/${runs}`, r);
      }
    }

    await freshSidecar();
    for (const page of pages) {
      await page.run(`window.__bench.connect(${js(wsUrl)}, 20000)`);
      line("priming (untimed)", await playOnce(page));
    }
    const prepared: Record<BrowserName, FirefoxBenchRun[]> = { firefox: [], chromium: [] };
    for (let i = 0; i < runs; i++) {
      for (const page of pages) {
        const r = await playOnce(page);
        prepared[page.name].push(r);
        line(`prepared ${i + 1}/${runs}    `, r);
      }
    }
    for (const page of pages) await page.run("window.__bench.disconnect()").catch(() => {});

    const ff = { firstViewer: series(first.firefox), prepared: series(prepared.firefox) };
    const cr = { firstViewer: series(first.chromium), prepared: series(prepared.chromium) };
    const m = (s: FirefoxBenchSeries) => s.firstFrame.median;
    return {
      file: { name: FILE, seconds, width: 1280, height: 720, video: "H.264 High with B-frames (x264 superfast)", audio: "AAC" },
      firefox: { version, offeredVideo, ...ff },
      chromium: cr,
      ratio: {
        firstViewer: m(ff.firstViewer) / m(cr.firstViewer),
        prepared: m(ff.prepared) / m(cr.prepared),
        firefoxFirstOverPrepared: m(ff.firstViewer) / m(ff.prepared),
        chromiumFirstOverPrepared: m(cr.firstViewer) / m(cr.prepared),
      },
    };
  } finally {
    // Browsers first: their sessions' WebSockets closing is what the edge and sidecar would see from real viewers.
    await firefox?.close();
    await chromium?.close().catch(() => {});
    await edge?.stop().catch(() => {});
    await sidecar?.stop().catch(() => {});
    await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

export function firefoxSummary(r: FirefoxBenchResult): string[] {
  const ms = (s: Summary) => `median ${s.median.toFixed(0)} ms, p90 ${s.p90.toFixed(0)} ms`;
  const codec = (s: FirefoxBenchSeries) => [...new Set(s.runs.map((x) => x.codec))].join("/");
  return [
    `  play() -> first frame, ${r.file.seconds} s 720p30 H.264 High + AAC, ${r.firefox.firstViewer.runs.length} runs each:`,
    `    first viewer (copy being prepared): stock Firefox (${codec(r.firefox.firstViewer)}) ${ms(r.firefox.firstViewer.firstFrame)}; ` +
      `Chromium (${codec(r.chromium.firstViewer)}) ${ms(r.chromium.firstViewer.firstFrame)}; Firefox ÷ Chromium ${r.ratio.firstViewer.toFixed(2)}`,
    `    prepared (cached): stock Firefox ${ms(r.firefox.prepared.firstFrame)}; Chromium ${ms(r.chromium.prepared.firstFrame)}; Firefox ÷ Chromium ${r.ratio.prepared.toFixed(2)}`,
    `    first viewer ÷ prepared: Firefox ${r.ratio.firefoxFirstOverPrepared.toFixed(2)}, Chromium ${r.ratio.chromiumFirstOverPrepared.toFixed(2)}`,
  ];
}

if (isMain(import.meta.url)) {
  const r = await measureFirefox({ runs: process.env.BENCH_FIREFOX_RUNS ? Number(process.env.BENCH_FIREFOX_RUNS) : undefined });
  console.log(firefoxSummary(r).join("\n"));
  process.exit(0);
}
