// `npm run bench`: every benchmark in one run on this machine, printed as tables and written as JSON under
// bench/results/<date>.json. Benchmarks are numbers with ratios against a baseline measured in the same run (Janus,
// the idle server, the cheapest SRTP + send in Node); they assert nothing.
//
// BENCH_OUT=<file> writes the results there instead of bench/results/<date>.json. BENCH_PROFILE_VIEWERS (150) is the
// step profiled for the per-stage cost of the media path (0: none).
// BENCH_ONLY=viewers,soak,ttff,floor,record,prepare,vp8,storage,whep,firefox,seek picks parts (BENCH_PREPARE_SECONDS: the
// prepared file, default 600; vp8: VP8 against H.264, prepare speed and first fragment of a BENCH_VP8_SECONDS (60) 720p
// file, BENCH_VP8_RUNS (3) each, then sidecar CPU per vod:// viewer, BENCH_VP8_VIEWERS (50) viewers, BENCH_VP8_ROUNDS
// (2) windows of BENCH_VP8_WINDOW_MS (20000) per codec; storage: first frame from a bucket vs local disk, bucket reads
// per viewer-minute with 1 and BENCH_STORAGE_VIEWERS (20) viewers for BENCH_STORAGE_WINDOW_MS (30000), a 10-minute
// recording's upload, against a Swift it starts itself; whep: first frame over WHEP, a page's fetch POST -> first
// frame, same origin and cross origin, against the Web SDK's play() -> first frame, BENCH_TTFF_RUNS each; firefox:
// stock Firefox's play() -> first frame of a 30-s 720p H.264 + AAC file it gets as a VP8 copy, first viewer (fresh
// sidecar per run) and prepared, against Chromium's H.264 of the file, BENCH_FIREFOX_RUNS (5) each; seek: a picture at
// once against the next-keyframe wait, a vod-live:// joiner's play() -> first and current picture and a vod:// seek ->
// the position's picture on a 30-s clock file with keyframes 10 s apart, in Chromium with the Web SDK, one sidecar with
// VOD_CATCHUP_SPEED (45) and one with 1, BENCH_SEEK_RUNS (10) each, plus catch-up packets, bytes and sidecar CPU per
// join);
// soak: vod-live:// at BENCH_SOAK_VIEWERS (80 % of the climb's maximum, 200 without a climb) for BENCH_SOAK_SECONDS
// (600) in windows of BENCH_SOAK_WINDOW_MS (30000) with viewers joining and leaving, RSS slope, fds and timers at start and end, lateness and loss;
// BENCH_WINDOW_MS (default 30000) is each viewer step's window; BENCH_MAX_VIEWERS (1200) where the climb stops;
// BENCH_STEPS=1,50,100 and BENCH_SYSTEMS=vod-live,vod,vod-live-js,vod-js,vod-live-veth,janus narrow the viewer climb
// (-js: the sidecar with EDGE_VOD_NATIVE=0, the JS send path, against the native one in the same run; -veth: the
// sidecar in a network namespace behind a veth pair the bench makes, needs root; vod-live-cm, only when named: viewers
// that offer AES-CM alone, a browser without AES-GCM, against Chromium's list, on which the sidecar picks AES-GCM); BENCH_JANUS_EVENT_LOOPS sets
// Janus's event_loops (default 2, its best here; 0 = a thread per handle, its default). For a closer look at one
// step: BENCH_SIDECAR_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p" or --trace-gc), BENCH_SIDECAR_LOG=<file>
// (the sidecar's output), BENCH_DUMP=<prefix> (every viewer's frame offsets per step, JSON).
import { execFileSync } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ensureDebianPackages } from "./debian.ts";
import { measureRecording, type RecordingResult } from "./record.ts";
import { measureSrtpFloor } from "./srtp-floor.ts";
import { measureTtff } from "./ttff.ts";
import { measurePrepare } from "./prepare.ts";
import { measureStorage, storageSummary } from "./storage.ts";
import { measureViewers, type StepResult, type System, type ViewersResult } from "./viewers.ts";
import { measureVp8, vp8Summary } from "./vp8.ts";
import { measureWhep, whepSummary } from "./whep.ts";
import { firefoxSummary, measureFirefox } from "./firefox.ts";
import { measureSeek, seekSummary } from "./seek.ts";
import { soak, soakSummary } from "./soak.ts";
import { RtpSink } from "./load/rtp-sink.ts";
import { pin, TOOL_CPU } from "./viewers.ts";

const parts = new Set((process.env.BENCH_ONLY ?? "viewers,soak,ttff,floor,record,prepare,vp8,storage,whep,firefox,seek").split(","));
const list = (v: string | undefined) => v?.split(",").map((s) => s.trim()).filter(Boolean);

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n")[0]!.trim();
  } catch {
    return "n/a";
  }
}

function machine() {
  return {
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: version("sh", ["-c", ". /etc/os-release && echo $PRETTY_NAME"]),
    kernel: os.release(),
    node: process.version,
    janus: version("sh", ["-c", "janus --version 2>&1; true"]),
  };
}

function viewersTable(v: ViewersResult): string {
  const ns = [...new Set(v.steps.map((s) => s.viewers))].sort((a, b) => a - b);
  const at = (system: System, n: number) => v.steps.find((s) => s.system === system && s.viewers === n);
  const cell = (s: StepResult | undefined) =>
    s ? `${(s.cpuSecondsPerViewerSecond * 1e3).toFixed(2)} ms, p99 ${s.latenessMs.p99.toFixed(0)} ms${s.loss > 0 ? `, loss ${(s.loss * 100).toFixed(2)} %` : ""}${s.realtime ? "" : " ✗"}` : "";
  const ratio = (a: StepResult | undefined, b: StepResult | undefined) => (a && b ? `${(a.cpuSecondsPerViewerSecond / b.cpuSecondsPerViewerSecond).toFixed(2)}` : "");
  const rows = [
    "| viewers | vod-live:// CPU per viewer-s | vod-live:// JS path | vod-live:// over veth | vod:// | vod:// JS path | Janus | vod-live native ÷ JS | vod native ÷ JS | vod-live ÷ Janus | vod ÷ Janus |",
    "|---:|---|---|---|---|---|---|---:|---:|---:|---:|",
    ...ns.map((n) => {
      const [l, lj, lv, d, dj, j] = [at("vod-live", n), at("vod-live-js", n), at("vod-live-veth", n), at("vod", n), at("vod-js", n), at("janus", n)];
      return `| ${n} | ${cell(l)} | ${cell(lj)} | ${cell(lv)} | ${cell(d)} | ${cell(dj)} | ${cell(j)} | ${ratio(l, lj)} | ${ratio(d, dj)} | ${ratio(l, j)} | ${ratio(d, j)} |`;
    }),
  ];
  const m = v.maxRealtimeViewersPerCore;
  const x = (a: number) => (m.janus ? ` (${(a / m.janus).toFixed(2)}× Janus)` : "");
  const systems = ["vod-live", "vod", "vod-live-js", "vod-js", "vod-live-veth", "vod-live-cm", "janus"] as const;
  const measured = systems.filter((s) => v.steps.some((step) => step.system === s));
  const name = {
    vod: "vod://",
    "vod-live": "vod-live://",
    "vod-js": "vod:// JS path",
    "vod-live-js": "vod-live:// JS path",
    "vod-live-veth": "vod-live:// over veth",
    "vod-live-cm": "vod-live:// with AES-CM",
    janus: "Janus",
  } as const;
  rows.push("", `Most viewers one core holds in real time: ${measured.map((s) => `${name[s]} ${m[s]}${s === "janus" ? "" : x(m[s])}`).join(", ")}.`);
  const kb = v.memoryPerViewerKB;
  rows.push(`Memory per viewer (RSS growth per viewer added to the one-viewer step): ${measured.map((s) => `${name[s]} ${kb[s] ?? "?"} KB`).join(", ")}.`);
  if (v.vethSkipped) rows.push(`vod-live:// over veth not measured: ${v.vethSkipped}.`);
  return rows.join("\n");
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-bench-"));
  const date = new Date().toISOString().slice(0, 10);
  ensureDebianPackages([
    "ffmpeg",
    ...(parts.has("ttff") || parts.has("prepare") || parts.has("storage") || parts.has("whep") || parts.has("firefox") || parts.has("seek") ? (["chromium"] as const) : []),
    ...(parts.has("storage") ? (["swift-proxy", "swift-object", "swift-container", "swift-account"] as const) : []),
  ]);
  const result: Record<string, unknown> = { date, machine: machine() };
  try {
    if (parts.has("viewers")) {
      console.log("viewers per core: our sidecar vs Janus, server on core 0, viewers on core 1");
      const v = await measureViewers({
        dir,
        windowMs: Number(process.env.BENCH_WINDOW_MS ?? 30_000),
        steps: list(process.env.BENCH_STEPS)?.map(Number),
        maxViewers: process.env.BENCH_MAX_VIEWERS ? Number(process.env.BENCH_MAX_VIEWERS) : undefined,
        systems: list(process.env.BENCH_SYSTEMS) as System[] | undefined,
        janusEventLoops: process.env.BENCH_JANUS_EVENT_LOOPS === undefined ? undefined : Number(process.env.BENCH_JANUS_EVENT_LOOPS),
        // BENCH_PROFILE_VIEWERS (default 150, 0 = none): the step run under the CPU profiler for the stage breakdown.
        profileViewers: Number(process.env.BENCH_PROFILE_VIEWERS ?? 150),
      });
      result.viewers = v;
      result.maxRealtimeViewersPerCore = v.maxRealtimeViewersPerCore;
      result.memoryPerViewerKB = v.memoryPerViewerKB;
      console.log("\n" + viewersTable(v) + "\n");
    }
    if (parts.has("soak")) {
      const max = (result.viewers as ViewersResult | undefined)?.maxRealtimeViewersPerCore["vod-live"];
      const viewers = Number(process.env.BENCH_SOAK_VIEWERS ?? (max ? Math.round((max * 0.8) / 10) * 10 : 200));
      const seconds = Number(process.env.BENCH_SOAK_SECONDS ?? 600);
      console.log(`soak: vod-live:// at ${viewers} viewers (80 % of the climb's maximum) for ${seconds} s, viewers joining and leaving`);
      pin(process.pid, TOOL_CPU);
      const sink = await RtpSink.start(dir);
      pin(sink.pid, TOOL_CPU);
      try {
        const r = await soak({ dir, sink, system: "vod-live", viewers, seconds, windowMs: Number(process.env.BENCH_SOAK_WINDOW_MS ?? 30_000) });
        result.soak = r;
        console.log(soakSummary(r));
      } finally {
        sink.close();
      }
    }
    if (parts.has("ttff")) {
      console.log("time to first frame: Chromium + the Web SDK playing vod://sample.mp4");
      const ttff = await measureTtff({ runs: Number(process.env.BENCH_TTFF_RUNS ?? 10) });
      result.ttff = ttff;
      const ms = (x: { median: number; p90: number }) => `median ${x.median.toFixed(0)} ms, p90 ${x.p90.toFixed(0)} ms`;
      console.log(`  play() -> PLAYING: ${ms(ttff.playing)}; play() -> first decoded frame: ${ms(ttff.firstFrame)}`);
      console.log(`  first run (file opened cold): first frame ${ttff.runs[0]!.firstFrameMs.toFixed(0)} ms; warm runs: first frame ${ms(ttff.warm.firstFrame)}`);
    }
    if (parts.has("prepare")) {
      console.log("preparing a file that needs it: an ffmpeg default encode (High + B-frames, AAC), 720p30");
      const prep = await measurePrepare({ seconds: Number(process.env.BENCH_PREPARE_SECONDS ?? 600) });
      result.prepare = prep;
      const cold = prep.ttff.runs[0]!.firstFrameMs;
      const warm = prep.ttff.warm.firstFrame.median;
      console.log(`  ${prep.file.seconds} s prepared with ${prep.cpuSec.toFixed(1)} s CPU in ${prep.wallSec.toFixed(1)} s (${prep.realTimeFactor.toFixed(1)}x real time)`);
      console.log(`  first frame: first viewer (prepare running) ${cold.toFixed(0)} ms; prepared copy median ${warm.toFixed(0)} ms (${(cold / warm).toFixed(2)}x)`);
    }
    if (parts.has("vp8")) {
      console.log("VP8 for browsers without H.264, against H.264: preparing a copy, and sidecar CPU per viewer");
      const num = (v: string | undefined) => (v ? Number(v) : undefined);
      const vp8 = await measureVp8({
        dir,
        seconds: num(process.env.BENCH_VP8_SECONDS),
        runs: num(process.env.BENCH_VP8_RUNS),
        viewers: num(process.env.BENCH_VP8_VIEWERS),
        rounds: num(process.env.BENCH_VP8_ROUNDS),
        windowMs: num(process.env.BENCH_VP8_WINDOW_MS),
      });
      result.vp8 = vp8;
      console.log(vp8Summary(vp8).join("\n"));
    }
    if (parts.has("storage")) {
      console.log("object storage: a real S3 server (Swift) against local disk");
      const storage = await measureStorage({
        runs: Number(process.env.BENCH_TTFF_RUNS ?? 10),
        viewers: Number(process.env.BENCH_STORAGE_VIEWERS ?? 20),
        windowMs: Number(process.env.BENCH_STORAGE_WINDOW_MS ?? 30_000),
      });
      result.storage = storage;
      console.log(storageSummary(storage).join("\n"));
    }
    if (parts.has("whep")) {
      console.log("time to first frame, WHEP against the Web SDK: Chromium playing vod://sample.mp4");
      const whep = await measureWhep({ runs: Number(process.env.BENCH_TTFF_RUNS ?? 10) });
      result.whep = whep;
      console.log(whepSummary(whep).join("\n"));
    }
    if (parts.has("firefox")) {
      console.log("time to first frame, stock Firefox (VP8 copy) against Chromium (H.264): a 720p H.264 + AAC file");
      const firefox = await measureFirefox({ runs: process.env.BENCH_FIREFOX_RUNS ? Number(process.env.BENCH_FIREFOX_RUNS) : undefined });
      result.firefox = firefox;
      console.log(firefoxSummary(firefox).join("\n"));
    }
    if (parts.has("seek")) {
      console.log("a picture at once: catch-up (VOD_CATCHUP_SPEED) against the next-keyframe wait, Chromium + the Web SDK");
      const seek = await measureSeek();
      result.seek = seek;
      console.log(seekSummary(seek).join("\n"));
    }
    if (parts.has("floor")) {
      console.log("the floor: SRTP + UDP send alone in Node, over loopback and a veth pair to a network namespace");
      result.srtpFloor = await measureSrtpFloor({ viewers: [50, 200, 400] });
    }
    if (parts.has("record")) {
      console.log("recording cost");
      result.recording = (await measureRecording(Number(process.env.BENCH_RECORD_WINDOW_MS ?? 10_000))) satisfies RecordingResult;
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  // Janus's version again at the end: the viewers part installs Janus only when it gets to it (and the machine as a
  // whole not again: this process is pinned to one core by then).
  (result.machine as ReturnType<typeof machine>).janus = machine().janus;
  // BENCH_OUT: somewhere else than the dated results file (a partial run must not replace a whole one).
  const out = process.env.BENCH_OUT ? path.resolve(process.env.BENCH_OUT) : path.join(import.meta.dirname, "results", `${date}.json`);
  await fs.mkdir(path.dirname(out), { recursive: true });
  await fs.writeFile(out, JSON.stringify(result, null, 2) + "\n");
  console.log(`results written to ${path.relative(process.cwd(), out)}`);
}

await main();
// Viewer peers, Janus's socket and the feeder's timer would otherwise keep the process alive a while.
process.exit(0);
