// What serving VP8 to browsers without H.264 costs, against H.264 in the same run. Two parts:
//   1. Preparing: a 720p30 H.264 High + B-frames + AAC file (bench/prepare.ts's source, BENCH_VP8_SECONDS long,
//      default 60) through the real PrepareCache, in this process as the sidecar runs it: kind "vp8" (ffmpeg libvpx
//      realtime -> IVF on a pipe -> muxVp8Copy -> fragmented vp08 MP4) against kind "video" (the H.264 copy an H.264
//      viewer of that file gets), alternating, BENCH_VP8_RUNS (3) each, a fresh cache folder per run. Per run: wall
//      time (x real time), ffmpeg's CPU (this process's reaped children) and this process's own (the VP8 copy's MP4
//      muxing runs in the sidecar's Node), and the time to the first fragment on disk (GrowingIndex.started(), what
//      the first viewer's tracks wait for). A VP8 viewer of this file also needs its AAC as Opus (an "audio" copy,
//      prepared beside the VP8 one): one more series starts both as the sidecar's media opener does and takes the
//      later of their first fragments, the first VP8 viewer's real wait (then stops them).
//   2. CPU per viewer: BENCH_VP8_VIEWERS (50) personal vod:// viewers of bench/viewers.ts's file (640x360 30 fps
//      H.264 1 Mbps + Opus, 100 s), offering H.264, then offering VP8 only (they get the file's VP8 copy, prepared
//      before the window, and its own Opus): bench/viewers.ts's step (sidecar on core 0, werift viewers and the RTP
//      sink on core 1, one window), a fresh sidecar per window, BENCH_VP8_ROUNDS (2) rounds alternating the codecs,
//      each window BENCH_VP8_WINDOW_MS (20000). Sidecar CPU per viewer-second and per packet sent, vp8 / h264.
// Prints numbers; asserts nothing. measureVp8() is exported for bench/run.ts.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SIDECAR_PATHS, type StopRequest } from "@edge-vod/shared";
import { MediaError } from "../sidecar/src/files/file-access.ts";
import { LocalDiskAccess } from "../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../sidecar/src/mp4/reader.ts";
import type { VideoTrack } from "../sidecar/src/mp4/types.ts";
import { PrepareCache, type PrepareKind, type PrepareRequest } from "../sidecar/src/prepare/prepare-cache.ts";
import { FFMPEG, makeFixture } from "../test/helpers/fixtures.ts";
import { cpuSplitMs, rssMb } from "../test/helpers/proc-stats.ts";
import { startSidecar } from "../test/helpers/sidecar-process.ts";
import { signedFetch } from "../test/helpers/signed-fetch.ts";
import { playOnSidecar, testPeer } from "../test/helpers/werift-viewer.ts";
import { makeBenchFile } from "./bench-file.ts";
import { isMain } from "./is-main.ts";
import { RtpSink } from "./load/rtp-sink.ts";
import { sidecarViewers, VP8_ONLY } from "./load/targets.ts";
import { makeSource } from "./prepare.ts";
import { summarize, type Summary } from "./ttff.ts";
import { CORES, pin, SERVER_CPU, sidecarGcMs, sidecarLoopLag, step, TOOL_CPU, type StepResult } from "./viewers.ts";

export interface PrepareRun {
  wallSec: number;
  realTimeFactor: number;
  /** Cache lookup -> every track of the copy has its first samples on disk, ms. */
  firstFragmentMs: number;
  /** ffmpeg's CPU (user + system), s. */
  ffmpegCpuSec: number;
  /** This process's CPU over the run (the VP8 muxer, the growing index), s. */
  nodeCpuSec: number;
  copyBytes: number;
  /** The copy's video, kbit/s. */
  videoKbps: number;
}

export interface PrepareSeries {
  kind: PrepareKind;
  runs: PrepareRun[];
  /** Medians over the runs. */
  realTimeFactor: number;
  firstFragmentMs: number;
  /** (ffmpeg + Node) CPU seconds per media second. */
  cpuPerMediaSec: number;
}

export interface FirstViewerRun {
  vp8FirstFragmentMs: number;
  audioFirstFragmentMs: number;
  /** The later of the two: when a VP8 viewer's tracks are all there. */
  firstViewerMs: number;
}

export interface CodecWindow extends StepResult {
  codec: "h264" | "vp8";
  round: number;
  /** Sidecar CPU per packet sent, µs. */
  usPerPacket: number;
}

export interface CodecSummary {
  /** Means over the rounds' windows. */
  usPerViewerSecond: number;
  cpuPctPerViewer: number;
  packetsPerViewerPerSecond: number;
  usPerPacket: number;
  /** Every window was real time. */
  realtime: boolean;
}

export interface Vp8Result {
  prepare: {
    file: { seconds: number; width: number; height: number; bytes: number };
    h264: PrepareSeries;
    vp8: PrepareSeries;
    /** The VP8 and audio copies prepared together, as a VP8 viewer of this file needs them: first fragments only. */
    vp8Viewer: { runs: FirstViewerRun[]; firstViewerMs: Summary };
    /** vp8 / h264, of the medians. */
    ratio: { realTimeFactor: number; firstFragmentMs: number; cpuPerMediaSec: number };
  };
  viewers: {
    viewers: number;
    windowMs: number;
    rounds: number;
    file: { seconds: number; h264VideoKbps: number; vp8VideoKbps: number };
    windows: CodecWindow[];
    h264: CodecSummary;
    vp8: CodecSummary;
    /** vp8 / h264. */
    ratio: { perViewerSecond: number; perPacket: number; packets: number };
  };
}

export interface Vp8Options {
  dir: string;
  seconds?: number;
  runs?: number;
  viewers?: number;
  rounds?: number;
  windowMs?: number;
  log?: (line: string) => void;
}

const median = (values: number[]) => summarize(values).median;
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

/** CPU of this process's children that have exited (and been reaped), ms: /proc/self/stat cutime + cstime. */
async function childrenCpuMs(): Promise<number> {
  const stat = await fs.readFile("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

/** The request the media opener would make for `name` in `dir`. */
async function requestFor(dir: string, name: string, kind: PrepareKind, withAudio: boolean): Promise<PrepareRequest> {
  const file = await new LocalDiskAccess(dir).open(name);
  try {
    return { source: await file.toolSource(), identity: file.identity, kind, withAudio };
  } finally {
    await file.close();
  }
}

/** Kbit/s of a file's video track (sample bytes over its duration). */
async function videoKbps(file: string): Promise<number> {
  const f = await new LocalDiskAccess(path.dirname(file)).open(path.basename(file));
  try {
    const v: VideoTrack | undefined = (await openMp4(f)).video;
    if (!v) return NaN;
    const t = v.samples;
    let bytes = 0;
    for (let i = 0; i < t.count; i++) bytes += t.size[i]!;
    const last = t.count - 1;
    const sec = (t.dts[last]! + t.duration[last]! - t.dts[0]!) / v.timescale;
    return (bytes * 8) / sec / 1000;
  } finally {
    await f.close();
  }
}

/** One prepare of `req` into a fresh folder (or `cacheDir`), to the end; the copy is left there. */
async function prepareOnce(req: PrepareRequest, cacheDir: string, seconds: number): Promise<PrepareRun> {
  const cache = new PrepareCache({ dir: cacheDir, ffmpegPath: FFMPEG });
  try {
    const c0 = await childrenCpuMs();
    const n0 = process.cpuUsage();
    const t0 = performance.now();
    const got = await cache.get(req);
    if (got.done) throw new Error(`a ${req.kind} copy was already in ${cacheDir}`);
    await got.job.index.started();
    const firstFragmentMs = performance.now() - t0;
    const name = await got.job.finished;
    if (name instanceof MediaError) throw name;
    const wallSec = (performance.now() - t0) / 1000;
    const n = process.cpuUsage(n0);
    const copy = path.join(cacheDir, name);
    return {
      wallSec,
      realTimeFactor: seconds / wallSec,
      firstFragmentMs,
      ffmpegCpuSec: ((await childrenCpuMs()) - c0) / 1000,
      nodeCpuSec: (n.user + n.system) / 1e6,
      copyBytes: (await fs.stat(copy)).size,
      videoKbps: await videoKbps(copy),
    };
  } finally {
    await cache.close();
  }
}

/** A VP8 viewer's two prepares of the file at once (VP8 picture, Opus sound) until both have a first fragment. */
async function firstViewerOnce(dir: string, name: string, cacheDir: string): Promise<FirstViewerRun> {
  const cache = new PrepareCache({ dir: cacheDir, ffmpegPath: FFMPEG });
  try {
    const t0 = performance.now();
    const first = async (kind: PrepareKind, withAudio: boolean) => {
      const got = await cache.get(await requestFor(dir, name, kind, withAudio));
      if (got.done) throw new Error(`a ${kind} copy was already in ${cacheDir}`);
      await got.job.index.started();
      return performance.now() - t0;
    };
    const [vp8, audio] = await Promise.all([first("vp8", false), first("audio", true)]);
    return { vp8FirstFragmentMs: vp8, audioFirstFragmentMs: audio, firstViewerMs: Math.max(vp8, audio) };
  } finally {
    // Stops both ffmpegs: only the start was wanted.
    await cache.close();
  }
}

function series(kind: PrepareKind, runs: PrepareRun[], seconds: number): PrepareSeries {
  return {
    kind,
    runs,
    realTimeFactor: median(runs.map((r) => r.realTimeFactor)),
    firstFragmentMs: median(runs.map((r) => r.firstFragmentMs)),
    cpuPerMediaSec: median(runs.map((r) => (r.ffmpegCpuSec + r.nodeCpuSec) / seconds)),
  };
}

/** This process and its children (ffmpeg) on every core again: bench/viewers.ts pins it to the viewers' core. */
function unpin(): void {
  if (CORES > 1) spawnSync("taskset", ["-a", "-pc", `0-${CORES - 1}`, String(process.pid)], { stdio: "ignore" });
}

async function measurePrepareSpeed(dir: string, seconds: number, runs: number, log: (l: string) => void): Promise<Vp8Result["prepare"]> {
  unpin();
  const src = await makeSource(dir, "bframes-720.mp4", seconds);
  const bytes = (await fs.stat(src)).size;
  const h264: PrepareRun[] = [];
  const vp8: PrepareRun[] = [];
  const viewer: FirstViewerRun[] = [];
  const fresh = () => fs.mkdtemp(path.join(dir, "cache-"));
  const line = (kind: string, r: PrepareRun) =>
    log(
      `  ${kind.padEnd(5)} prepare of ${seconds} s: ${r.wallSec.toFixed(1)} s (${r.realTimeFactor.toFixed(1)}x real time), first fragment ${r.firstFragmentMs.toFixed(0)} ms, ` +
        `ffmpeg ${r.ffmpegCpuSec.toFixed(1)} s CPU + Node ${r.nodeCpuSec.toFixed(1)} s, video ${r.videoKbps.toFixed(0)} kbit/s`,
    );
  for (let i = 0; i < runs; i++) {
    const h = await prepareOnce(await requestFor(dir, "bframes-720.mp4", "video", true), await fresh(), seconds);
    line("h264", h);
    h264.push(h);
    const v = await prepareOnce(await requestFor(dir, "bframes-720.mp4", "vp8", false), await fresh(), seconds);
    line("vp8", v);
    vp8.push(v);
    const f = await firstViewerOnce(dir, "bframes-720.mp4", await fresh());
    log(`  vp8 + audio copies together: first fragments ${f.vp8FirstFragmentMs.toFixed(0)} ms (VP8), ${f.audioFirstFragmentMs.toFixed(0)} ms (Opus)`);
    viewer.push(f);
  }
  const h = series("video", h264, seconds);
  const v = series("vp8", vp8, seconds);
  return {
    file: { seconds, width: 1280, height: 720, bytes },
    h264: h,
    vp8: v,
    vp8Viewer: { runs: viewer, firstViewerMs: summarize(viewer.map((r) => r.firstViewerMs)) },
    ratio: {
      realTimeFactor: v.realTimeFactor / h.realTimeFactor,
      firstFragmentMs: v.firstFragmentMs / h.firstFragmentMs,
      cpuPerMediaSec: v.cpuPerMediaSec / h.cpuPerMediaSec,
    },
  };
}

/** One viewer of `name` offering `video`, to check which codec the sidecar answers with (and warm the file's index). */
async function probe(sidecar: Awaited<ReturnType<typeof startSidecar>>, name: string, video: typeof VP8_ONLY | undefined): Promise<string> {
  const pc = testPeer(video);
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  try {
    const played = await playOnSidecar(sidecar, pc, name);
    await signedFetch(sidecar.secret, sidecar.url + SIDECAR_PATHS.stop, {
      method: "POST",
      body: JSON.stringify({ sessionRef: played.sessionRef, mediaSessionId: played.mediaSessionId } satisfies StopRequest),
    });
    return /a=rtpmap:\d+ (H264|VP8)\/90000/.exec(played.answerSdp)?.[1] ?? "none";
  } finally {
    await pc.close().catch(() => {});
  }
}

async function measureViewerCpu(
  dir: string,
  opts: { viewers: number; rounds: number; windowMs: number },
  log: (l: string) => void,
): Promise<Vp8Result["viewers"]> {
  const media = path.join(dir, "media");
  await fs.mkdir(media);
  const file = await makeBenchFile(media);
  // Personal viewers start at 0 and must not reach the end during a window: the same 10 s, ten times over.
  const long = await makeFixture(media, "bench-long.mp4", ["-stream_loop", "9", "-i", file, "-c", "copy"]);
  // The VP8 copy the sidecars' viewers get, made before any window (the sidecars find it in CACHE_DIR).
  const cacheDir = path.join(dir, "viewer-cache");
  const made = await prepareOnce(await requestFor(media, "bench-long.mp4", "vp8", false), cacheDir, 100);
  log(`  VP8 copy of the viewers' file: ${made.wallSec.toFixed(1)} s, video ${made.videoKbps.toFixed(0)} kbit/s`);
  const h264Kbps = await videoKbps(long);

  if (!pin(process.pid, TOOL_CPU)) log("  (one core or no taskset: server and viewers share the CPU)");
  const sink = await RtpSink.start(dir);
  pin(sink.pid, TOOL_CPU);
  const windows: CodecWindow[] = [];
  try {
    for (let round = 1; round <= opts.rounds; round++) {
      for (const codec of ["h264", "vp8"] as const) {
        const video = codec === "vp8" ? VP8_ONLY : undefined;
        const sidecar = await startSidecar({
          secret: randomBytes(24).toString("hex"),
          mediaDir: media,
          env: { MAX_VIEWERS: "100000", CACHE_DIR: cacheDir },
          shellPrefix: CORES > 1 ? `taskset -pc ${SERVER_CPU} $$ >/dev/null;` : undefined,
          nodeArgs: ["--single-threaded-gc", ...(process.env.BENCH_SIDECAR_NODE_ARGS?.split(" ").filter(Boolean) ?? [])],
        });
        try {
          const sent = await probe(sidecar, "vod://bench-long.mp4", video);
          if (sent !== codec.toUpperCase()) throw new Error(`viewers offering ${codec} got ${sent}`);
          const r = await step(
            sink,
            "vod",
            sidecarViewers(sink, sidecar, "vod://bench-long.mp4", undefined, video),
            opts.viewers,
            sidecar.pid,
            await rssMb(sidecar.pid),
            opts.windowMs,
            sidecarGcMs(sidecar),
            sidecarLoopLag(sidecar),
          );
          const stats = await sidecar.prepareStats();
          // The copy was there before the window: nothing may have been prepared during it.
          if (stats.prepares > 0) throw new Error(`the sidecar prepared ${stats.prepares} copies during the ${codec} window`);
          const w: CodecWindow = { ...r, codec, round, usPerPacket: (r.cpuSecondsPerViewerSecond * 1e6) / r.packetsPerViewerPerSecond };
          windows.push(w);
          log(
            `  ${codec.padEnd(4)} round ${round}: ${r.connected}/${opts.viewers} viewers, server ${r.serverCpuPct.toFixed(1)} % CPU, ` +
              `${(r.cpuSecondsPerViewerSecond * 1e6).toFixed(0)} µs per viewer-second, ${r.packetsPerViewerPerSecond.toFixed(0)} packets per viewer-second ` +
              `(${w.usPerPacket.toFixed(1)} µs each), loss ${(r.loss * 100).toFixed(2)} %, lateness p99 ${r.latenessMs.p99.toFixed(1)} ms${r.realtime ? "" : "  (not real time)"}`,
          );
        } finally {
          await sidecar.stop();
        }
      }
    }
  } finally {
    sink.close();
    unpin();
  }
  const summary = (codec: "h264" | "vp8"): CodecSummary => {
    const ws = windows.filter((w) => w.codec === codec);
    const us = mean(ws.map((w) => w.cpuSecondsPerViewerSecond * 1e6));
    return {
      usPerViewerSecond: us,
      cpuPctPerViewer: us / 1e4,
      packetsPerViewerPerSecond: mean(ws.map((w) => w.packetsPerViewerPerSecond)),
      usPerPacket: mean(ws.map((w) => w.usPerPacket)),
      realtime: ws.every((w) => w.realtime),
    };
  };
  const h264 = summary("h264");
  const vp8 = summary("vp8");
  return {
    viewers: opts.viewers,
    windowMs: opts.windowMs,
    rounds: opts.rounds,
    file: { seconds: 100, h264VideoKbps: h264Kbps, vp8VideoKbps: made.videoKbps },
    windows,
    h264,
    vp8,
    ratio: {
      perViewerSecond: vp8.usPerViewerSecond / h264.usPerViewerSecond,
      perPacket: vp8.usPerPacket / h264.usPerPacket,
      packets: vp8.packetsPerViewerPerSecond / h264.packetsPerViewerPerSecond,
    },
  };
}

export async function measureVp8(opts: Vp8Options): Promise<Vp8Result> {
  const log = opts.log ?? console.log;
  const dir = await fs.mkdtemp(path.join(opts.dir, "vp8-"));
  try {
    const seconds = opts.seconds ?? 60;
    log(`  preparing a ${seconds}-s 720p30 High + B-frames + AAC file as VP8 and as H.264, ${opts.runs ?? 3} runs each`);
    const prepare = await measurePrepareSpeed(dir, seconds, opts.runs ?? 3, log);
    const viewers = opts.viewers ?? 50;
    log(`  CPU per viewer: ${viewers} vod:// viewers of a 1 Mbps 360p H.264 file, offering H.264, then VP8 only`);
    const v = await measureViewerCpu(dir, { viewers, rounds: opts.rounds ?? 2, windowMs: opts.windowMs ?? 20_000 }, log);
    return { prepare, viewers: v };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

export function vp8Summary(r: Vp8Result): string[] {
  const p = r.prepare;
  const v = r.viewers;
  const prep = (s: PrepareSeries) =>
    `${s.realTimeFactor.toFixed(1)}x real time, first fragment ${s.firstFragmentMs.toFixed(0)} ms, ${s.cpuPerMediaSec.toFixed(2)} CPU-s per media second`;
  const cpu = (s: CodecSummary) =>
    `${s.usPerViewerSecond.toFixed(0)} µs per viewer-second (${s.cpuPctPerViewer.toFixed(2)} % of a core per viewer), ${s.packetsPerViewerPerSecond.toFixed(0)} packets/s, ${s.usPerPacket.toFixed(1)} µs per packet${s.realtime ? "" : ", not all real time"}`;
  return [
    `  prepare of ${p.file.seconds} s 720p30 (medians of ${p.vp8.runs.length}): VP8 ${prep(p.vp8)}; H.264 ${prep(p.h264)}`,
    `  VP8 ÷ H.264: speed ${p.ratio.realTimeFactor.toFixed(2)}, first fragment ${p.ratio.firstFragmentMs.toFixed(2)}, CPU ${p.ratio.cpuPerMediaSec.toFixed(2)}; ` +
      `a VP8 viewer's copies (VP8 + Opus) both started after median ${p.vp8Viewer.firstViewerMs.median.toFixed(0)} ms`,
    `  ${v.viewers} vod:// viewers (${v.rounds} windows of ${v.windowMs / 1000} s each): H.264 ${cpu(v.h264)}`,
    `  VP8 ${cpu(v.vp8)}`,
    `  VP8 ÷ H.264: ${v.ratio.perViewerSecond.toFixed(2)} per viewer-second, ${v.ratio.perPacket.toFixed(2)} per packet, ${v.ratio.packets.toFixed(2)} packets ` +
      `(video ${v.file.vp8VideoKbps.toFixed(0)} against ${v.file.h264VideoKbps.toFixed(0)} kbit/s)`,
  ];
}

if (isMain(import.meta.url)) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-vp8-bench-"));
  try {
    const r = await measureVp8({
      dir,
      seconds: process.env.BENCH_VP8_SECONDS ? Number(process.env.BENCH_VP8_SECONDS) : undefined,
      runs: process.env.BENCH_VP8_RUNS ? Number(process.env.BENCH_VP8_RUNS) : undefined,
      viewers: process.env.BENCH_VP8_VIEWERS ? Number(process.env.BENCH_VP8_VIEWERS) : undefined,
      rounds: process.env.BENCH_VP8_ROUNDS ? Number(process.env.BENCH_VP8_ROUNDS) : undefined,
      windowMs: process.env.BENCH_VP8_WINDOW_MS ? Number(process.env.BENCH_VP8_WINDOW_MS) : undefined,
    });
    console.log(vp8Summary(r).join("\n"));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  process.exit(0);
}
