// How many real-time viewers one core carries: our sidecar (`vod://`, then `vod-live://`) against Janus 1.1's
// streaming plugin, same file, same viewer load tool, same machine, one run. The server under test is pinned to
// core 0, this process (the viewers) to core 1. Per step of N viewers, over one window: server CPU seconds per
// viewer-second, RSS per viewer, loss from the RTP sequence numbers, and the lateness of each frame's last packet
// against its due time (the kernel's receive stamp minus media time, relative to the viewer's least delayed frame; on
// loopback the stamp is taken inside the server's send, so this is the server's send pacing alone). The viewers'
// media is read by the RTP sink (load/rtp-sink.c) on core 1 with this process, which keeps their ICE and DTLS.
import { spawnSync } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import os from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { coreMs, cpuSplitMs, rssMb } from "../test/helpers/proc-stats.ts";
import { makeFixture } from "../test/helpers/fixtures.ts";
import { startSidecar, type SidecarProcess } from "../test/helpers/sidecar-process.ts";
import { signedFetch } from "../test/helpers/signed-fetch.ts";
import { makeBenchFile } from "./bench-file.ts";
import type { CountingViewer, WindowStats } from "./load/counting-viewer.ts";
import { RtpSink } from "./load/rtp-sink.ts";
import { ensureDebianPackages } from "./debian.ts";
import { JanusClient, startJanus } from "./load/janus.ts";
import { janusViewers, sidecarViewers, type ViewerFactory } from "./load/targets.ts";
import { makeVeth, removeVeth, VETH_NS, VETH_REMOTE } from "./srtp-floor.ts";
import { STAGE_ORDER, stagesOf, usPerPacket, type CpuProfile } from "./profile-stages.ts";

/**
 * Ours on the native send (the default), ours with EDGE_VOD_NATIVE=0 (the JS path, "-js"), ours in a network
 * namespace of its own behind a veth pair ("-veth": the viewers' receiving kernel work is no longer done inside the
 * server's send, as on loopback), and Janus.
 */
export type System = "vod" | "vod-live" | "vod-js" | "vod-live-js" | "vod-live-veth" | "vod-live-cm" | "janus";
export type Ours = Exclude<System, "janus">;
const OURS: readonly Ours[] = ["vod-live", "vod", "vod-live-js", "vod-js", "vod-live-veth", "vod-live-cm"];

export interface StepResult {
  system: System;
  viewers: number;
  /** Viewers that connected; fewer than `viewers` means the server refused or failed some. */
  connected: number;
  serverCpuPct: number;
  /** The part of serverCpuPct spent in the kernel (on loopback, a UDP send also runs the receiving side's stack). */
  serverSystemCpuPct: number;
  /**
   * The server's core as a whole, busy %: the server plus what the kernel does there for nobody's account, above all
   * softirq (the receiving side of loopback traffic), which is not in serverCpuPct.
   */
  serverCoreBusyPct: number;
  serverCoreSoftirqPct: number;
  cpuSecondsPerViewerSecond: number;
  /** The server's RSS at the window's end. */
  rssMb: number;
  /**
   * Its RSS read every second of the window, averaged: one reading lands anywhere on the GC's sawtooth (±20 KB a
   * viewer between identical steps at 400-600 viewers), the average of a dozen much less so.
   */
  rssMeanMb: number;
  rssPerViewerKb: number;
  /**
   * RSS growth per viewer in the step's first window, when it was measured twice: the second window's RSS also holds
   * what a full leave and re-join of every viewer left behind (churn, which the soak measures), not only the viewers.
   */
  firstWindowRssPerViewerKb?: number;
  /**
   * Mean RSS growth per viewer added to the climb's one-viewer step (its first window when measured twice): what each
   * viewer costs, without what the first play of the file and the server's start leave in RSS (the file's index and
   * audio copy, compiled code, a start-up heap that the first GC shrinks below the idle figure). memoryPerViewerKB.
   */
  rssPerAddedViewerKb?: number;
  loss: number;
  packetsPerViewerPerSecond: number;
  slowestViewerFps: number;
  latenessMs: { p50: number; p99: number; max: number };
  /** The load tool's CPU: this process (ICE, DTLS, RTCP of every viewer) and the RTP sink (their media). */
  toolCpuPct: number;
  sinkCpuPct: number;
  /**
   * This process's event-loop delay over the window, ms. It no longer counts as lateness (the sink stamps arrivals
   * in the kernel), but a tool this late answers STUN consent checks and DTLS late.
   */
  toolLoopLagMs: { p99: number; max: number };
  /** Our sidecar only: GC pauses (perf_hooks "gc" entries; incremental marking steps are not among them) as a share
   * of its CPU time in the window. */
  gcPauseShareOfCpu?: number;
  /** Our sidecar only: its event loop's lag over the window (prom-client's, sampled every 5 ms), ms. */
  serverLoopLagMs?: { p99: number; max: number };
  /** Our sidecar with BENCH_CPU_PROF_DIR: its CPU per packet sent in the window, µs, by stage of the media path. */
  usPerPacketByStage?: Record<string, number>;
  /** The window on CLOCK_MONOTONIC, µs: where the step lies in the sidecar's CPU profile. */
  windowMonoUs?: { fromUs: number; toUs: number };
  realtime: boolean;
  /** 2 when the first window missed real time and the step was measured again (this is the better window). */
  attempts?: number;
}

export interface ViewersResult {
  windowMs: number;
  janusEventLoops: number;
  steps: StepResult[];
  maxRealtimeViewersPerCore: Record<System, number>;
  /**
   * Mean RSS growth per viewer added to the one-viewer step (KB; rssPerAddedViewerKb), at each system's largest real-time
   * step of at least 100 viewers that no larger step preceded (RSS does not shrink: a step after a larger one shows
   * that one's high-water mark), from its first window; or at its largest step. Over the idle server when the climb
   * had no one-viewer step.
   */
  memoryPerViewerKB: Partial<Record<System, number>>;
  /** Steps run under the CPU profiler (not counted above): their usPerPacketByStage is the stage breakdown. */
  profiledSteps?: StepResult[];
  /** Why vod-live-veth was not measured (the veth pair needs root or CAP_NET_ADMIN). */
  vethSkipped?: string;
}

const FPS = 30;
/** The viewers' own event-loop delay, sampled every 5 ms (reset at each window's start). */
const toolLag = monitorEventLoopDelay({ resolution: 5 });
toolLag.enable();
const REALTIME_P99_MS = 20;
export const SERVER_CPU = 0;
export const TOOL_CPU = 1;

/**
 * The machine's cores. Not os.availableParallelism(): that is this process's affinity, one core once pin() has run,
 * and reading it then left the sidecar unpinned on the viewers' core (every run before 2026-11-27 afternoon).
 */
export const CORES = os.cpus().length;

/** Pins every thread of a process to one core; false where taskset or a second core is missing. */
export function pin(pid: number, cpu: number): boolean {
  if (CORES < 2) return false;
  return spawnSync("taskset", ["-a", "-pc", String(cpu), String(pid)], { stdio: "ignore" }).status === 0;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export function summarize(system: System, n: number, stats: WindowStats[], windowMs: number) {
  let frames = 0;
  for (const s of stats) frames += s.frames;
  const lateness = new Float64Array(frames);
  let i = 0;
  let got = 0;
  let expected = 0;
  let slowest = Infinity;
  for (const s of stats) {
    const base = Math.min(...s.frameOffsets);
    for (const o of s.frameOffsets) lateness[i++] = o - base;
    got += s.videoPackets + s.audioPackets;
    expected += s.videoExpected + s.audioExpected;
    slowest = Math.min(slowest, (s.frames * 1000) / windowMs);
  }
  lateness.sort();
  return {
    loss: expected ? 1 - got / expected : 1,
    packetsPerViewerPerSecond: got / stats.length / (windowMs / 1000),
    slowestViewerFps: stats.length ? slowest : 0,
    latenessMs: { p50: percentile(lateness, 0.5), p99: percentile(lateness, 0.99), max: lateness.length ? lateness[lateness.length - 1]! : NaN },
    system,
    viewers: n,
  };
}

/** Opens `n` viewers a few at a time, so joining does not become the load being measured. */
export async function openViewers(factory: ViewerFactory, n: number): Promise<{ open: Awaited<ReturnType<ViewerFactory>>[]; errors: string[] }> {
  const open: Awaited<ReturnType<ViewerFactory>>[] = [];
  const errors: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      try {
        open.push(await factory());
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return { open, errors };
}

/** Cumulative GC milliseconds of the server, where it reports them. */
type GcClock = (() => Promise<number>) | undefined;
/** The server's event-loop lag since the last call (a scrape resets prom-client's histogram), where it reports it. */
type LoopLag = (() => Promise<{ p99: number; max: number }>) | undefined;

/** Our sidecar's GC clock (`gcMs` from its health). */
export function sidecarGcMs(sidecar: SidecarProcess): () => Promise<number> {
  return async () => {
    const res = await signedFetch(sidecar.secret, `${sidecar.url}/v1/health`);
    return ((await res.json()) as { gcMs: number }).gcMs;
  };
}

/** Our sidecar's event-loop lag (prom-client's, from /metrics). */
export function sidecarLoopLag(sidecar: SidecarProcess): () => Promise<{ p99: number; max: number }> {
  return async () => {
    const text = await (await fetch(`${sidecar.url}/metrics`)).text();
    const read = (name: string) => Number(text.split("\n").find((l) => l.startsWith(`${name} `))?.split(" ")[1] ?? NaN) * 1000;
    return { p99: read("nodejs_eventloop_lag_p99_seconds"), max: read("nodejs_eventloop_lag_max_seconds") };
  };
}

/** One window of `n` viewers from `factory` (opened a few at a time, then 2 s to settle), as every climb measures it. */
export async function step(
  sink: RtpSink,
  system: System,
  factory: ViewerFactory,
  n: number,
  serverPid: number,
  idleRss: number,
  windowMs: number,
  gcMs: GcClock,
  loopLag: LoopLag,
): Promise<StepResult> {
  const { open, errors } = await openViewers(factory, n);
  try {
    if (errors.length) console.log(`    ${errors.length} of ${n} viewers failed to connect: ${errors[0]}`);
    await new Promise((r) => setTimeout(r, 2000));
    const viewers: CountingViewer[] = open.map((o) => o.viewer);
    await sink.startWindow();
    const gc0 = await gcMs?.();
    await loopLag?.();
    const c0 = await cpuSplitMs(serverPid);
    const core0 = await coreMs(SERVER_CPU);
    const tool0 = process.cpuUsage();
    const sink0 = await cpuSplitMs(sink.pid);
    toolLag.reset();
    const t0 = performance.now();
    const mono0 = Number(process.hrtime.bigint() / 1000n);
    const rssSamples: number[] = [];
    const rssTimer = setInterval(() => void rssMb(serverPid).then((mb) => rssSamples.push(mb), () => {}), 1000);
    await new Promise((r) => setTimeout(r, windowMs));
    clearInterval(rssTimer);
    const mono1 = Number(process.hrtime.bigint() / 1000n);
    const byId = await sink.endWindow();
    const elapsed = performance.now() - t0;
    const sink1 = await cpuSplitMs(sink.pid);
    const sinkCpuPct = ((sink1.user + sink1.system - sink0.user - sink0.system) / elapsed) * 100;
    const noPackets: WindowStats = { videoPackets: 0, audioPackets: 0, videoExpected: 1, audioExpected: 1, frameOffsets: new Float64Array(0), frames: 0 };
    const stats = viewers.map((v) => byId.get(v.id) ?? noPackets);
    // BENCH_DUMP=<file>: every viewer's frame offsets of the step, for a look at when the late frames came.
    if (process.env.BENCH_DUMP) await fs.writeFile(`${process.env.BENCH_DUMP}.${system}.${n}.json`, JSON.stringify(stats.map((st) => [...st.frameOffsets])));
    const silent = stats.filter((st) => st.frames === 0).length;
    if (silent) console.log(`    ${silent} viewers saw no frame (${viewers.filter((v) => !byId.has(v.id)).length} unknown to the sink)`);
    const c1 = await cpuSplitMs(serverPid);
    const core1 = await coreMs(SERVER_CPU);
    const cpu = c1.user + c1.system - (c0.user + c0.system);
    const sys = c1.system - c0.system;
    const tool = process.cpuUsage(tool0);
    const gc = gc0 === undefined ? undefined : (await gcMs!()) - gc0;
    const lag = await loopLag?.();
    const rss = await rssMb(serverPid);
    const s = summarize(system, n, stats, elapsed);
    const realtime = open.length === n && s.loss === 0 && s.latenessMs.p99 < REALTIME_P99_MS && s.slowestViewerFps >= FPS * 0.95;
    return {
      ...s,
      connected: open.length,
      serverCpuPct: (cpu / elapsed) * 100,
      serverSystemCpuPct: (sys / elapsed) * 100,
      serverCoreBusyPct: ((core1.busy - core0.busy) / elapsed) * 100,
      serverCoreSoftirqPct: ((core1.softirq - core0.softirq) / elapsed) * 100,
      cpuSecondsPerViewerSecond: cpu / elapsed / n,
      rssMb: rss,
      rssMeanMb: rssSamples.length > 0 ? rssSamples.reduce((a, b) => a + b, 0) / rssSamples.length : rss,
      rssPerViewerKb: ((rss - idleRss) * 1024) / n,
      sinkCpuPct,
      toolCpuPct: ((tool.user + tool.system) / 1000 / elapsed) * 100 + sinkCpuPct,
      toolLoopLagMs: { p99: toolLag.percentile(99) / 1e6, max: toolLag.max / 1e6 },
      ...(gc === undefined ? {} : { gcPauseShareOfCpu: gc / cpu }),
      ...(lag === undefined ? {} : { serverLoopLagMs: lag }),
      windowMonoUs: { fromUs: mono0, toUs: mono1 },
      realtime,
    };
  } finally {
    await Promise.allSettled(open.map((o) => o.hangup()));
    await new Promise((r) => setTimeout(r, 1500));
  }
}

/** Steps 1, 50, 100, 150, 200, 250, 300, 400, then on by half again while the last held real time; one step between
 * the last that held and the first that did not, so the maximum is known to within a quarter. */
async function climb(
  sink: RtpSink,
  system: System,
  factory: ViewerFactory,
  serverPid: number,
  opts: { windowMs: number; steps: number[]; maxViewers: number },
  gcMs?: GcClock,
  loopLag?: LoopLag,
): Promise<StepResult[]> {
  const idleRss = await rssMb(serverPid);
  const results: StepResult[] = [];
  const measure = async (n: number) => {
    const r = await step(sink, system, factory, n, serverPid, idleRss, opts.windowMs, gcMs, loopLag);
    console.log(
      `  ${system.padEnd(8)} ${String(n).padStart(4)} viewers: server ${r.serverCpuPct.toFixed(1).padStart(5)} % CPU (kernel ${r.serverSystemCpuPct.toFixed(1)} %; core ${r.serverCoreBusyPct.toFixed(0)} % busy, softirq ${r.serverCoreSoftirqPct.toFixed(0)} %), ` +
        `${(r.cpuSecondsPerViewerSecond * 1e6).toFixed(0).padStart(5)} µs CPU per viewer-second, RSS ${r.rssMb.toFixed(0)} MB, ` +
        `loss ${(r.loss * 100).toFixed(2)} %, lateness p50 ${r.latenessMs.p50.toFixed(1)} / p99 ${r.latenessMs.p99.toFixed(1)} ms, ` +
        `slowest ${r.slowestViewerFps.toFixed(1)} fps, tool ${r.toolCpuPct.toFixed(0)} % (sink ${r.sinkCpuPct.toFixed(0)} %, loop lag p99 ${r.toolLoopLagMs.p99.toFixed(1)} / max ${r.toolLoopLagMs.max.toFixed(1)} ms)` +
        `${r.gcPauseShareOfCpu === undefined ? "" : `, GC pauses ${(r.gcPauseShareOfCpu * 100).toFixed(1)} % of server CPU`}` +
        `${r.serverLoopLagMs === undefined ? "" : `, loop lag p99 ${r.serverLoopLagMs.p99.toFixed(1)} / max ${r.serverLoopLagMs.max.toFixed(1)} ms`}${r.realtime ? "" : "  (not real time)"}`,
    );
    return r;
  };
  // A step that misses real time is measured once more and the better window kept, for every server alike: on this
  // VM identical windows differ by ±10 % CPU, and one stall anywhere on the machine must not end a climb.
  const run = async (n: number) => {
    let r = await measure(n);
    const firstRssMb = r.rssMeanMb;
    if (!r.realtime) {
      const first = r.rssPerViewerKb;
      const again = await measure(n);
      if (again.realtime || again.latenessMs.p99 < r.latenessMs.p99) r = again;
      r.attempts = 2;
      r.firstWindowRssPerViewerKb = first;
    }
    const one = results.find((s) => s.viewers === 1);
    if (one && n > 1) r.rssPerAddedViewerKb = ((firstRssMb - one.rssMeanMb) * 1024) / (n - 1);
    results.push(r);
    return r.realtime;
  };
  let lastHeld = 0;
  let queue = [...opts.steps];
  for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
    if (!(await run(n))) {
      const mid = Math.round((lastHeld + n) / 2 / 10) * 10;
      if (lastHeld > 0 && mid > lastHeld && mid < n) await run(mid);
      break;
    }
    lastHeld = n;
    if (queue.length === 0 && n < opts.maxViewers) queue = [Math.min(opts.maxViewers, Math.max(n + 50, Math.round((n * 1.5) / 50) * 50))];
  }
  return results;
}

/**
 * A sidecar for the bench: pinned to the server's core, on the native send or (systems "-js") the JS path; "-veth"
 * runs it in the far end of the veth pair (makeVeth first), listening and gathering ICE candidates there alone.
 */
export async function startBenchSidecar(dir: string, system: Ours, profileDir?: string): Promise<SidecarProcess> {
  const veth = system.endsWith("-veth");
  const sidecar = await startSidecar({
    secret: randomBytes(24).toString("hex"),
    mediaDir: dir,
    env: {
      MAX_VIEWERS: "100000",
      EDGE_VOD_NATIVE: system.endsWith("-js") ? "0" : "1",
      ...(veth ? { SIDECAR_HOST: VETH_REMOTE, ICE_HOST_ADDRESSES: VETH_REMOTE } : {}),
    },
    ...(veth ? { wrap: ["ip", "netns", "exec", VETH_NS], host: VETH_REMOTE } : {}),
    shellPrefix: CORES > 1 ? `taskset -pc ${SERVER_CPU} $$ >/dev/null;` : undefined,
    // As a sidecar pinned to one core should run (README): V8's helper GC threads would preempt its only thread.
    // BENCH_SIDECAR_NODE_ARGS: more (e.g. --heap-prof), space-separated.
    nodeArgs: [
      "--single-threaded-gc",
      ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
      ...(process.env.BENCH_SIDECAR_NODE_ARGS?.split(" ").filter(Boolean) ?? []),
    ],
  });
  const send = await sidecar.mediaSend();
  if (send.mode !== (system.endsWith("-js") ? "js" : "native")) {
    await sidecar.stop();
    throw new Error(`${system}: the sidecar sends with ${send.mode} (${send.reason})`);
  }
  return sidecar;
}

/** The bench's viewers of `system` on `sidecar`: vod:// of the long file, or vod-live:// of the 10-s one, looped. */
export function benchViewers(sink: RtpSink, sidecar: SidecarProcess, system: Ours): ViewerFactory {
  return system === "vod" || system === "vod-js"
    ? sidecarViewers(sink, sidecar, "vod://bench-long.mp4")
    : sidecarViewers(sink, sidecar, "vod-live://bench.mp4", { startedAt: Date.now(), loop: true }, undefined, system === "vod-live-cm" ? "aes-cm" : "chromium");
}

/** The bench's files in `dir`: bench.mp4 (10 s) and bench-long.mp4 (the same, ten times). */
export async function makeBenchFiles(dir: string): Promise<string> {
  const file = await makeBenchFile(dir);
  // Personal viewers start at 0 and must not reach the end during a step: the same 10 s, ten times over.
  await makeFixture(dir, "bench-long.mp4", ["-stream_loop", "9", "-i", file, "-c", "copy"]);
  return file;
}

export async function measureViewers(opts: {
  dir: string;
  windowMs?: number;
  steps?: number[];
  maxViewers?: number;
  systems?: System[];
  janusEventLoops?: number;
  /** Run one more step of this many viewers per system of ours under the CPU profiler, for the stage breakdown. */
  profileViewers?: number;
}): Promise<ViewersResult> {
  const windowMs = opts.windowMs ?? 30_000;
  const janusEventLoops = opts.janusEventLoops ?? 2;
  const climbOpts = { windowMs, steps: opts.steps ?? [1, 50, 100, 150, 200, 250, 300, 400], maxViewers: opts.maxViewers ?? 1200 };
  const systems = opts.systems ?? ["vod-live", "vod", "vod-live-js", "vod-js", "vod-live-veth", "janus"];
  if (!pin(process.pid, TOOL_CPU)) console.log("  (one core or no taskset: server and viewers share the CPU)");
  const sink = await RtpSink.start(opts.dir);
  pin(sink.pid, TOOL_CPU);
  try {
    return await climbAll(sink, opts, windowMs, janusEventLoops, climbOpts, systems);
  } finally {
    sink.close();
  }
}

async function climbAll(
  sink: RtpSink,
  opts: Parameters<typeof measureViewers>[0],
  windowMs: number,
  janusEventLoops: number,
  climbOpts: { windowMs: number; steps: number[]; maxViewers: number },
  systems: System[],
): Promise<ViewersResult> {
  const file = await makeBenchFiles(opts.dir);
  const steps: StepResult[] = [];
  // A fresh sidecar per climb: what one left in its heap must not count against the next.
  const sidecarClimb = async (system: Ours, climbWith: typeof climbOpts, profileDir?: string): Promise<StepResult[]> => {
    const sidecar = await startBenchSidecar(opts.dir, system, profileDir);
    let results: StepResult[];
    try {
      const factory = benchViewers(sink, sidecar, system);
      results = await climb(sink, system, factory, sidecar.pid, climbWith, sidecarGcMs(sidecar), sidecarLoopLag(sidecar));
    } finally {
      // A clean exit: the CPU profile is written then.
      await sidecar.stop();
      // BENCH_SIDECAR_LOG=<file>: the sidecar's output (e.g. with BENCH_SIDECAR_NODE_ARGS=--trace-gc), appended.
      if (process.env.BENCH_SIDECAR_LOG) await fs.appendFile(process.env.BENCH_SIDECAR_LOG, `--- ${system}\n${sidecar.output()}`);
    }
    if (profileDir) await stagesPerStep(profileDir, sidecar.pid, results);
    return results;
  };
  const profiles: StepResult[] = [];
  let vethSkipped: string | undefined;
  for (const system of OURS) {
    if (!systems.includes(system)) continue;
    if (system.endsWith("-veth")) {
      const veth = makeVeth();
      if (typeof veth === "string") {
        vethSkipped = veth;
        console.log(`  ${system} not measured: ${veth}`);
        continue;
      }
      try {
        steps.push(...(await sidecarClimb(system, climbOpts)));
      } finally {
        removeVeth();
      }
      continue;
    }
    steps.push(...(await sidecarClimb(system, climbOpts)));
    // The stage breakdown comes from a step of its own: the profiler's cost stays out of the measured climb.
    if (opts.profileViewers) {
      const dir = await fs.mkdtemp(path.join(opts.dir, "cpu-prof-"));
      console.log(`  profiling the sidecar at ${opts.profileViewers} ${system} viewers`);
      profiles.push(...(await sidecarClimb(system, { ...climbOpts, steps: [opts.profileViewers], maxViewers: opts.profileViewers }, dir)));
    }
  }
  if (systems.includes("janus")) {
    ensureDebianPackages(["janus"]);
    const janus = await startJanus({ file, dir: opts.dir, cpu: SERVER_CPU, feederCpu: CORES > 1 ? TOOL_CPU : undefined, eventLoops: janusEventLoops });
    const client = await JanusClient.connect(janus.wsUrl);
    try {
      const factory = janusViewers(sink, client);
      // Janus answers "watch" only once its mountpoint has RTP; one run's first viewer got no answer at all. A probe
      // viewer first, so that the climb starts with a mountpoint that plays.
      for (let attempt = 1; ; attempt++) {
        await new Promise((r) => setTimeout(r, 1000));
        const probe = await factory().catch((err: Error) => err);
        if (!(probe instanceof Error)) {
          await probe.hangup();
          break;
        }
        if (attempt === 10) throw new Error(`Janus's mountpoint does not play: ${probe.message}\n${janus.log().slice(-3000)}`);
      }
      steps.push(...(await climb(sink, "janus", factory, janus.pid, climbOpts)));
    } finally {
      client.close();
      await janus.stop();
    }
  }
  const maxOf = (system: System) => Math.max(0, ...steps.filter((s) => s.system === system && s.realtime).map((s) => s.viewers));
  return {
    windowMs,
    janusEventLoops,
    steps,
    maxRealtimeViewersPerCore: {
      vod: maxOf("vod"),
      "vod-live": maxOf("vod-live"),
      "vod-js": maxOf("vod-js"),
      "vod-live-js": maxOf("vod-live-js"),
      "vod-live-veth": maxOf("vod-live-veth"),
      "vod-live-cm": maxOf("vod-live-cm"),
      janus: maxOf("janus"),
    },
    memoryPerViewerKB: Object.fromEntries(
      systems.flatMap((system) => {
        const mine = steps.filter((s) => s.system === system && s.connected > 0);
        const climbing = mine.filter((s, i) => mine.slice(0, i).every((before) => before.viewers < s.viewers));
        const pick = climbing.filter((s) => s.realtime && s.viewers >= 100).at(-1) ?? mine.at(-1);
        return pick ? [[system, Math.round(pick.rssPerAddedViewerKb ?? pick.firstWindowRssPerViewerKb ?? pick.rssPerViewerKb)]] : [];
      }),
    ),
    ...(profiles.length > 0 ? { profiledSteps: profiles } : {}),
    ...(vethSkipped ? { vethSkipped } : {}),
  };
}

/** Reads the sidecar's CPU profile (written at its exit) and puts each step's per-stage cost per packet in it. */
async function stagesPerStep(dir: string, pid: number, steps: StepResult[]): Promise<void> {
  const name = (await fs.readdir(dir)).find((f) => f.endsWith(`.${pid}.0.001.cpuprofile`) || f.includes(`.${pid}.`));
  if (!name) {
    console.log(`  (no CPU profile of process ${pid} in ${dir})`);
    return;
  }
  const profile = JSON.parse(await fs.readFile(path.join(dir, name), "utf8")) as CpuProfile;
  for (const step of steps) {
    if (!step.windowMonoUs) continue;
    const packets = step.packetsPerViewerPerSecond * step.connected * ((step.windowMonoUs.toUs - step.windowMonoUs.fromUs) / 1e6);
    const us = usPerPacket(stagesOf(profile, step.windowMonoUs), packets);
    step.usPerPacketByStage = us;
    console.log(
      `  ${step.system} ${step.viewers} viewers, µs of sidecar CPU per packet: ${us.total.toFixed(2)} = ` +
        STAGE_ORDER.map((s) => `${s} ${us[s].toFixed(2)}`).join(", "),
    );
  }
}
