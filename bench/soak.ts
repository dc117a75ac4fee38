// The soak: one sidecar held at a share of its measured maximum for minutes while viewers keep joining and leaving
// (a few every couple of seconds, the audience size steady). Per window: the server's RSS, open fds (its sockets
// among them) and active timers (from its health), CPU, loss and frame lateness of the viewers present. The result: the RSS slope
// over the run, fds and timers at start and end (and after everyone left), the worst window's lateness, and loss.
import { cpuSplitMs, rssMb } from "../test/helpers/proc-stats.ts";
import type { SidecarProcess } from "../test/helpers/sidecar-process.ts";
import { signedFetch } from "../test/helpers/signed-fetch.ts";
import type { ProcessStats } from "../sidecar/src/runtime/process-stats.ts";
import type { WindowStats } from "./load/counting-viewer.ts";
import type { RtpSink } from "./load/rtp-sink.ts";
import type { ViewerFactory } from "./load/targets.ts";
import { benchViewers, makeBenchFiles, openViewers, startBenchSidecar, summarize, type Ours } from "./viewers.ts";

export interface SoakSample {
  atS: number;
  rssMb: number;
  fds: number;
  timers: number;
  viewers: number;
  serverCpuPct: number;
  loss: number;
  latenessP99Ms: number;
}

export interface SoakResult {
  system: Ours;
  viewers: number;
  seconds: number;
  joins: number;
  leaves: number;
  windows: SoakSample[];
  /** Least-squares slope of RSS over the windows after the first, MB per minute. */
  rssSlopeMbPerMin: number;
  start: { fds: number; timers: number; rssMb: number };
  end: { fds: number; timers: number; rssMb: number };
  /** Once every viewer left: what is still open. */
  afterAllLeft: { fds: number; timers: number; rssMb: number };
  latenessP99MaxMs: number;
  /** Packets missing over all windows, share of those due. */
  loss: number;
}

async function processStats(sidecar: SidecarProcess): Promise<ProcessStats> {
  const res = await signedFetch(sidecar.secret, `${sidecar.url}/v1/health`);
  return ((await res.json()) as { process: ProcessStats }).process;
}

async function snapshot(sidecar: SidecarProcess) {
  const p = await processStats(sidecar);
  return { fds: p.fds ?? -1, timers: p.resources.Timeout ?? 0, rssMb: await rssMb(sidecar.pid) };
}

function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den ? num / den : 0;
}

type Open = Awaited<ReturnType<ViewerFactory>>;

export async function soak(opts: {
  dir: string;
  sink: RtpSink;
  system: Ours;
  viewers: number;
  seconds: number;
  windowMs?: number;
  /** Every this many ms, `churn` viewers leave and as many join. */
  churnEveryMs?: number;
  churn?: number;
}): Promise<SoakResult> {
  const windowMs = opts.windowMs ?? 30_000;
  const churnEveryMs = opts.churnEveryMs ?? 2000;
  const churn = opts.churn ?? Math.max(1, Math.round(opts.viewers / 50));
  await makeBenchFiles(opts.dir);
  const sidecar = await startBenchSidecar(opts.dir, opts.system);
  let joins = 0;
  let leaves = 0;
  try {
    const factory = benchViewers(opts.sink, sidecar, opts.system);
    const { open, errors } = await openViewers(factory, opts.viewers);
    if (errors.length) console.log(`    ${errors.length} viewers failed to connect: ${errors[0]}`);
    await new Promise((r) => setTimeout(r, 2000));
    const start = await snapshot(sidecar);
    let live = open;
    let stopping = false;
    // Churn: the oldest leave, new ones join; the audience stays the same size.
    const churner = (async () => {
      while (!stopping) {
        await new Promise((r) => setTimeout(r, churnEveryMs));
        if (stopping) break;
        const leaving = live.slice(0, churn);
        live = live.slice(churn);
        leaves += leaving.length;
        await Promise.allSettled(leaving.map((v) => v.hangup()));
        const joined = await Promise.allSettled(Array.from({ length: churn }, () => factory()));
        for (const j of joined) if (j.status === "fulfilled") (live.push(j.value), joins++);
      }
    })();
    const windows: SoakSample[] = [];
    let got = 0;
    let due = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < opts.seconds * 1000) {
      await opts.sink.startWindow();
      const c0 = await cpuSplitMs(sidecar.pid);
      const w0 = performance.now();
      const present = new Set<Open>(live);
      await new Promise((r) => setTimeout(r, windowMs));
      const byId = await opts.sink.endWindow();
      const elapsed = performance.now() - w0;
      const c1 = await cpuSplitMs(sidecar.pid);
      // Viewers there for the whole window: a joiner's or leaver's partial window is not loss.
      const stats: WindowStats[] = [];
      for (const v of live) {
        const st = present.has(v) ? byId.get(v.viewer.id) : undefined;
        if (st) stats.push(st);
      }
      const s = summarize(opts.system, stats.length, stats, elapsed);
      for (const st of stats) {
        got += st.videoPackets + st.audioPackets;
        due += st.videoExpected + st.audioExpected;
      }
      const snap = await snapshot(sidecar);
      const sample: SoakSample = {
        atS: (performance.now() - t0) / 1000,
        rssMb: snap.rssMb,
        fds: snap.fds,
        timers: snap.timers,
        viewers: live.length,
        serverCpuPct: ((c1.user + c1.system - c0.user - c0.system) / elapsed) * 100,
        loss: s.loss,
        latenessP99Ms: s.latenessMs.p99,
      };
      windows.push(sample);
      console.log(
        `  soak ${opts.system} ${sample.atS.toFixed(0)} s: ${sample.viewers} viewers, CPU ${sample.serverCpuPct.toFixed(0)} %, RSS ${sample.rssMb.toFixed(0)} MB, ` +
          `fds ${sample.fds}, timers ${sample.timers}, loss ${(sample.loss * 100).toFixed(3)} %, lateness p99 ${sample.latenessP99Ms.toFixed(1)} ms`,
      );
    }
    stopping = true;
    await churner;
    const end = await snapshot(sidecar);
    await Promise.allSettled(live.map((v) => v.hangup()));
    leaves += live.length;
    await new Promise((r) => setTimeout(r, 5000));
    const afterAllLeft = await snapshot(sidecar);
    const later = windows.slice(1);
    return {
      system: opts.system,
      viewers: opts.viewers,
      seconds: opts.seconds,
      joins,
      leaves,
      windows,
      rssSlopeMbPerMin: slope(
        later.map((w) => w.atS / 60),
        later.map((w) => w.rssMb),
      ),
      start,
      end,
      afterAllLeft,
      latenessP99MaxMs: Math.max(...windows.map((w) => w.latenessP99Ms)),
      loss: due ? 1 - got / due : 0,
    };
  } finally {
    await sidecar.stop();
  }
}

export function soakSummary(r: SoakResult): string {
  const f = (x: SoakResult["start"]) => `fds ${x.fds}, timers ${x.timers}, RSS ${x.rssMb.toFixed(0)} MB`;
  return [
    `soak: ${r.system}, ${r.viewers} viewers for ${r.seconds} s, ${r.joins} joins and ${r.leaves} leaves`,
    `  RSS slope ${r.rssSlopeMbPerMin.toFixed(2)} MB/min; worst window's lateness p99 ${r.latenessP99MaxMs.toFixed(1)} ms; loss ${(r.loss * 100).toFixed(4)} %`,
    `  start: ${f(r.start)}`,
    `  end:   ${f(r.end)}`,
    `  after every viewer left: ${f(r.afterAllLeft)}`,
  ].join("\n");
}
