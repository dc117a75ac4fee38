// Time to first frame of `vod://sample.mp4` as a viewer sees it: the Player page in Debian Chromium with the
// unmodified Web SDK, through the real edge (wrangler dev) and sidecar, plays the file RUNS times in one page and one
// SDK session. Per run: stream.play() -> the SDK's PLAYING, and stream.play() -> the first frame the <video> presents
// (requestVideoFrameCallback; getStats framesDecoded where rVFC is missing). Run 1 is cold (the sidecar's first moov
// parse and AAC -> Opus transcode of the file) and is reported on its own as well as in "all". Prints numbers; asserts
// nothing. measureTtff() is exported for an orchestrator.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Page } from "playwright-core";
import { capturePeerConnections, launchChromium } from "../test/helpers/chromium.ts";
import { SAMPLE_MP4 } from "../test/helpers/fixtures.ts";
import { startSidecar, type SidecarProcess } from "../test/helpers/sidecar-process.ts";
import { startWrangler } from "../test/helpers/wrangler.ts";
import { isMain } from "./is-main.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DEFAULT_STREAM = "vod://sample.mp4";
const DEFAULT_RUNS = Number(process.env.BENCH_TTFF_RUNS ?? 10);
/** Per run, play() to first frame; generous because the cold run transcodes the whole file's audio first. */
const RUN_TIMEOUT_MS = 30_000;
/** Set BENCH_TTFF_FRAME_SOURCE=stats to measure with the getStats fallback even where rVFC exists. */
const FORCE_STATS = process.env.BENCH_TTFF_FRAME_SOURCE === "stats";

export interface Summary {
  median: number;
  p90: number;
}

export interface TtffRun {
  /** stream.play() -> STREAM_STATUS.PLAYING, ms. */
  playingMs: number;
  /** stream.play() -> first frame presented (rVFC presentationTime) or first seen decoded (getStats), ms. */
  firstFrameMs: number;
}

/** A run with what explains its numbers; assignable to TtffRun. */
export interface TtffRunDetail extends TtffRun {
  via: "rvfc" | "getStats";
  /** stream.play() -> the sidecar's answer applied (signaling back to "stable"): the play request's round trip. */
  answerMs: number | null;
  /** stream.play() -> ICE "connected" (a candidate pair works; DTLS not yet), ms. */
  iceMs: number | null;
  /** stream.play() -> the peer connection reported "connected" (ICE + DTLS up), ms; null if it was missed. */
  connectedMs: number | null;
  /** stream.play() -> the last packet of the first frame arrived (rVFC receiveTime), ms; null without rVFC. */
  frameReceivedMs: number | null;
  /** Media time of the first frame (RTP timestamp / 90), ms: 0 means playback started at the file's first keyframe. */
  frameMediaMs: number | null;
  /** inbound-rtp video counters right after the first frame. */
  pliCount: number;
  firCount: number;
  nackCount: number;
  keyFramesDecoded: number;
  /** stream.stop() -> STOPPED, ms. */
  stopMs: number;
}

export interface TtffResult {
  runs: TtffRunDetail[];
  /** Over all runs, the cold one included. */
  playing: Summary;
  firstFrame: Summary;
  /** Over runs 2..N. */
  warm: { playing: Summary; firstFrame: Summary };
  /** SDK session (WebSocket + `connection`) to ESTABLISHED, ms; before run 1, so in no run's numbers. */
  sessionMs: number;
  stream: string;
}

/**
 * What the page runs: the Player page's own SDK calls (createSession, createStream({name, display}), the status
 * callbacks, play(), stop()), timed with the page's clock so no CDP round trip is inside a measurement. The Player
 * page's UI is not driven because its callbacks are the SDK's only slot per status (on() replaces), and its
 * play() call cannot be timed from outside. A string for the reason given at capturePeerConnections.
 */
const DRIVER = `
  (() => {
    const C = Flashphoner.constants;
    const S = C.STREAM_STATUS;
    const display = document.getElementById("display");
    let session = null;
    let current = null;

    const inboundVideo = async (pc) => {
      let found = null;
      if (pc) (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") found = s; });
      return found;
    };

    window.__ttff = {
      connect: (url, timeoutMs) => new Promise((resolve, reject) => {
        const t0 = performance.now();
        const timer = setTimeout(() => reject(new Error("session not ESTABLISHED in " + timeoutMs + " ms")), timeoutMs);
        const s = Flashphoner.createSession({ urlServer: url });
        s.on(C.SESSION_STATUS.ESTABLISHED, () => { clearTimeout(timer); session = s; resolve(performance.now() - t0); })
          .on(C.SESSION_STATUS.FAILED, () => { clearTimeout(timer); reject(new Error("session FAILED")); })
          .on(C.SESSION_STATUS.DISCONNECTED, () => { clearTimeout(timer); reject(new Error("session DISCONNECTED")); });
      }),

      play: (name, useRvfc, timeoutMs) => new Promise((resolve, reject) => {
        const stream = session.createStream({ name: name, display: display });
        const r = { via: useRvfc ? "rvfc" : "getStats", playingMs: null, firstFrameMs: null, answerMs: null, iceMs: null, connectedMs: null,
          frameReceivedMs: null, frameMediaMs: null };
        const run = { stream: stream, settled: false, onStopped: null };
        current = run;
        let pc = null;
        const fail = (msg) => {
          if (run.settled) return;
          run.settled = true;
          clearTimeout(timer);
          reject(new Error(msg));
        };
        const timer = setTimeout(() => fail(name + ": no PLAYING and first frame in " + timeoutMs + " ms (" +
          JSON.stringify(r) + ", status " + stream.status() + ")"), timeoutMs);
        const maybeDone = async () => {
          if (run.settled || r.playingMs === null || r.firstFrameMs === null) return;
          run.settled = true;
          clearTimeout(timer);
          const v = await inboundVideo(pc);
          resolve(Object.assign(r, {
            pliCount: v ? v.pliCount || 0 : 0,
            firCount: v ? v.firCount || 0 : 0,
            nackCount: v ? v.nackCount || 0 : 0,
            keyFramesDecoded: v ? v.keyFramesDecoded || 0 : 0,
          }));
        };
        stream
          .on(S.PLAYING, () => { r.playingMs = performance.now() - t0; maybeDone(); })
          .on(S.FAILED, (s) => fail(name + ": FAILED " + s.getInfo()))
          .on(S.STOPPED, (s) => {
            if (run.onStopped) run.onStopped();
            else fail(name + ": STOPPED before the first frame (" + s.getInfo() + ")");
          });

        // The SDK makes its peer connection and <video> only after play(), asynchronously; both are looked for
        // every millisecond, which is far finer than anything measured here.
        const pcsBefore = window.__pcs.length;
        const watchPc = () => {
          if (run.settled) return;
          if (window.__pcs.length > pcsBefore) {
            pc = window.__pcs[window.__pcs.length - 1];
            const onState = () => {
              if (pc.connectionState === "connected" && r.connectedMs === null) r.connectedMs = performance.now() - t0;
            };
            const onIce = () => {
              const ice = pc.iceConnectionState;
              if ((ice === "connected" || ice === "completed") && r.iceMs === null) r.iceMs = performance.now() - t0;
            };
            const onSignaling = () => {
              if (pc.signalingState === "stable" && pc.remoteDescription && r.answerMs === null) r.answerMs = performance.now() - t0;
            };
            pc.addEventListener("connectionstatechange", onState);
            pc.addEventListener("signalingstatechange", onSignaling);
            pc.addEventListener("iceconnectionstatechange", onIce);
            onIce();
            onState();
            onSignaling();
            if (!useRvfc) pollStats();
          } else setTimeout(watchPc, 1);
        };
        const pollStats = async () => {
          if (run.settled) return;
          const v = await inboundVideo(pc);
          if (v && v.framesDecoded > 0) { r.firstFrameMs = performance.now() - t0; maybeDone(); }
          else setTimeout(pollStats, 2);
        };
        // The SDK reuses one cached <video> per display and gives it the stream's id once it is this stream's.
        const watchVideo = () => {
          if (run.settled) return;
          const video = document.getElementById(stream.id());
          if (video && video.tagName === "VIDEO") {
            video.requestVideoFrameCallback((now, m) => {
              r.firstFrameMs = m.presentationTime - t0;
              if (m.receiveTime !== undefined) r.frameReceivedMs = m.receiveTime - t0;
              if (m.rtpTimestamp !== undefined) r.frameMediaMs = m.rtpTimestamp / 90;
              maybeDone();
            });
          } else setTimeout(watchVideo, 1);
        };

        const t0 = performance.now();
        stream.play();
        watchPc();
        if (useRvfc) watchVideo();
      }),

      stop: (timeoutMs) => new Promise((resolve, reject) => {
        const run = current;
        if (!run) return resolve(0);
        const t0 = performance.now();
        const timer = setTimeout(() => reject(new Error("no STOPPED " + timeoutMs + " ms after stop()")), timeoutMs);
        run.onStopped = () => { clearTimeout(timer); current = null; resolve(performance.now() - t0); };
        run.stream.stop();
      }),

      disconnect: () => { if (session) session.disconnect(); session = null; },
    };
  })();
`;

interface Driver {
  connect(url: string, timeoutMs: number): Promise<number>;
  play(name: string, useRvfc: boolean, timeoutMs: number): Promise<Omit<TtffRunDetail, "stopMs">>;
  stop(timeoutMs: number): Promise<number>;
  disconnect(): void;
}
type DriverWindow = { __ttff: Driver };

/** The median; the mean of the middle two for an even count. */
function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest rank, so the p90 is always a run that happened (with 9 warm runs it is the slowest one). */
function p90(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(0.9 * s.length) - 1)]!;
}

export const summarize = (values: number[]): Summary => ({ median: median(values), p90: p90(values) });

/** Rejects as soon as `signal` aborts, so a Ctrl-C reaches the finally blocks instead of waiting out a page call. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  let onAbort: () => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  // One listener per awaited step would otherwise pile up on the signal over the runs.
  return Promise.race([p, aborted]).finally(() => signal.removeEventListener("abort", onAbort));
}

/**
 * The sidecar serves MEDIA_DIR/sample.mp4. A checkout without it gets one made by media/make-sample.sh in a temp
 * folder (the script writes next to itself), so the benchmark never writes into media/.
 */
export async function sampleMediaDir(tmp: () => Promise<string>): Promise<string> {
  try {
    await fs.access(SAMPLE_MP4);
    return path.dirname(SAMPLE_MP4);
  } catch {
    const dir = await tmp();
    const script = path.join(dir, "make-sample.sh");
    await fs.copyFile(path.join(ROOT, "media", "make-sample.sh"), script);
    await promisify(execFile)("bash", [script]);
    return dir;
  }
}

export interface TtffOptions {
  runs?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Stream to play (default vod://sample.mp4) from `mediaDir` (default the folder of media/sample.mp4). */
  stream?: string;
  mediaDir?: string;
  /** More environment for the sidecar (e.g. S3_* for a file that is only in a bucket). */
  sidecarEnv?: Record<string, string>;
  /** Runs after the cold run, before the warm ones (e.g. waits for the sidecar to finish preparing the file). */
  afterColdRun?: (sidecar: SidecarProcess) => Promise<void>;
}

export async function measureTtff(opts: TtffOptions = {}): Promise<TtffResult> {
  const runs = opts.runs ?? DEFAULT_RUNS;
  const STREAM = opts.stream ?? DEFAULT_STREAM;
  if (!Number.isInteger(runs) || runs < 2) throw new Error(`runs must be an integer >= 2 (one cold, at least one warm); got ${runs}`);
  const log = opts.log ?? (() => {});
  const signal = opts.signal;
  // startSidecar runs sidecar/src/main.ts relative to the working directory.
  if (path.resolve(process.cwd()) !== ROOT) throw new Error(`run from the repository root (${ROOT})`);

  let tmpDir: string | undefined;
  const tmp = async () => (tmpDir ??= await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-ttff-")));
  let sidecar: Awaited<ReturnType<typeof startSidecar>> | undefined;
  let edge: Awaited<ReturnType<typeof startWrangler>> | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    const mediaDir = opts.mediaDir ?? (await abortable(sampleMediaDir(tmp), signal));
    const secret = randomBytes(24).toString("hex");
    // Each step is assigned before the next one starts, so the finally below stops whatever did come up.
    sidecar = await abortable(startSidecar({ secret, mediaDir, env: opts.sidecarEnv }), signal);
    edge = await abortable(startWrangler({ sidecarUrl: sidecar.url, secret }), signal);
    browser = await abortable(launchChromium(), signal);

    // The persistent context's first tab: headless Chromium presents video at full rate only in the front tab of
    // a window (background tabs' rVFC fire about once a second), which would swamp the first-frame time.
    const page: Page = browser.context.pages()[0] ?? (await browser.context.newPage());
    await page.bringToFront();
    page.on("pageerror", (err) => log(`page error: ${err.message}`));
    await page.addInitScript({ content: capturePeerConnections });
    await abortable(page.goto(`${edge.url}/player.html?stream=${encodeURIComponent(STREAM)}`), signal);
    await page.waitForFunction(() => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined");
    await page.evaluate(DRIVER);
    const hasRvfc = await page.evaluate(() => "requestVideoFrameCallback" in HTMLVideoElement.prototype);
    const useRvfc = hasRvfc && !FORCE_STATS;
    if (!useRvfc) log(hasRvfc ? "first frame from getStats (forced)" : "no requestVideoFrameCallback: first frame from getStats");

    const sessionMs = await abortable(
      page.evaluate(([url, t]) => (window as unknown as DriverWindow).__ttff.connect(url, t), [edge.wsUrl, 15_000] as const),
      signal,
    );
    const results: TtffRunDetail[] = [];
    for (let i = 0; i < runs; i++) {
      const played = await abortable(
        page.evaluate(([n, rvfc, t]) => (window as unknown as DriverWindow).__ttff.play(n, rvfc, t), [STREAM, useRvfc, RUN_TIMEOUT_MS] as const),
        signal,
      );
      // The next play must not overlap this one on the sidecar, or a warm run would pay for two viewers.
      const stopMs = await abortable(page.evaluate((t) => (window as unknown as DriverWindow).__ttff.stop(t), 10_000), signal);
      results.push({ ...played, stopMs });
      if (i === 0) await opts.afterColdRun?.(sidecar);
      log(`run ${i + 1}/${runs}: PLAYING ${played.playingMs.toFixed(0)} ms, first frame ${played.firstFrameMs.toFixed(0)} ms`);
    }
    await page.evaluate(() => (window as unknown as DriverWindow).__ttff.disconnect()).catch(() => {});

    const warm = results.slice(1);
    return {
      runs: results,
      playing: summarize(results.map((r) => r.playingMs)),
      firstFrame: summarize(results.map((r) => r.firstFrameMs)),
      warm: { playing: summarize(warm.map((r) => r.playingMs)), firstFrame: summarize(warm.map((r) => r.firstFrameMs)) },
      sessionMs,
      stream: STREAM,
    };
  } finally {
    // Browser first: its session's WebSocket closing is what the edge and sidecar would see from a real viewer.
    await browser?.close().catch(() => {});
    await edge?.stop().catch(() => {});
    await sidecar?.stop().catch(() => {});
    if (tmpDir) await fs.rm(tmpDir, { recursive: true, force: true }).catch(() => {});
  }
}

function print(result: TtffResult): void {
  const ms = (v: number | null) => (v === null ? "-" : v.toFixed(0)).padStart(7);
  console.log(`ttff: ${result.stream} in Chromium with the Web SDK via wrangler dev + sidecar; ms from stream.play(); session connect ${result.sessionMs.toFixed(0)} ms`);
  console.log("   run        answer      ICE  ICE+DTLS  PLAYING  frame rx  1st frame  PLAYING->frame  frame media t  PLI  keyframes  stop  via");
  result.runs.forEach((r, i) => {
    const label = `${String(i + 1).padStart(4)}${i === 0 ? " cold" : "     "}`;
    console.log(
      `  ${label} ${ms(r.answerMs)}  ${ms(r.iceMs)}   ${ms(r.connectedMs)}  ${ms(r.playingMs)}  ${ms(r.frameReceivedMs)}    ${ms(r.firstFrameMs)}         ${ms(r.firstFrameMs - r.playingMs)}        ${ms(r.frameMediaMs)}  ${String(r.pliCount).padStart(3)}  ${String(r.keyFramesDecoded).padStart(9)}  ${r.stopMs.toFixed(0).padStart(4)}  ${r.via}`,
    );
  });
  const line = (name: string, s: { playing: Summary; firstFrame: Summary }) =>
    console.log(
      `  ${name.padEnd(22)} PLAYING median ${s.playing.median.toFixed(0).padStart(5)} p90 ${s.playing.p90.toFixed(0).padStart(5)}   ` +
        `first frame median ${s.firstFrame.median.toFixed(0).padStart(5)} p90 ${s.firstFrame.p90.toFixed(0).padStart(5)}`,
    );
  const cold = result.runs[0]!;
  console.log(`  cold (run 1)           PLAYING ${cold.playingMs.toFixed(0).padStart(5)}               first frame ${cold.firstFrameMs.toFixed(0).padStart(5)}`);
  line(`all (${result.runs.length} runs)`, result);
  line(`warm (runs 2..${result.runs.length})`, result.warm);
}

if (isMain(import.meta.url)) {
  const abort = new AbortController();
  // Ctrl-C would otherwise end the process before the finally blocks stop the browser, wrangler and sidecar. A second
  // Ctrl-C finds no handler left and kills the process outright.
  const onSignal = (sig: NodeJS.Signals) => abort.abort(new Error(`interrupted by ${sig}`));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // Playwright adds a SIGINT handler of its own at launch (launchChromium leaves handleSIGINT on) that closes the
  // browser and calls process.exit(130) straight away, before the finally blocks have stopped wrangler and the
  // sidecar or removed the temp folders. The abort closes the browser anyway, so that handler is taken off as soon
  // as it is added (newListener fires just before the add).
  process.on("newListener", (event, listener) => {
    if (event === "SIGINT" && listener !== onSignal) queueMicrotask(() => process.off("SIGINT", listener as () => void));
  });
  try {
    print(await measureTtff({ signal: abort.signal, log: (l) => console.error(l) }));
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  }
}
