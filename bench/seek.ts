// A picture at once, against the next-keyframe wait, on a 30-s file with keyframes 10 s apart whose frames show
// their own numbers (test/helpers/clock-fixture.ts), in Debian Chromium with the unmodified Web SDK through the real
// edge and sidecar. Each mode on a sidecar of its own: VOD_CATCHUP_SPEED at its default (the catch-up) and 1 (the
// next keyframe). Per mode, BENCH_SEEK_RUNS (10) of each:
// - a vod-live:// joiner at a random moment of the broadcast (a werift viewer keeps it running): play() -> its first
//   picture, and play() -> the broadcast's current picture (within 3 frames of what the broadcast shows then);
// - a vod:// seek to a random position between keyframes: sendData() -> the picture of that position (within a
//   frame; the next keyframe's in next-keyframe mode, which never shows the position itself);
// - what a join costs the sidecar: catch-up packets and bytes (its metrics) and CPU ms from play() to 10.5 s after.
// Prints numbers; asserts nothing. measureSeek() is exported for bench/run.ts.
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { CLOCK, CLOCK_FRAME_MS, clockReader, makeClockFixture } from "../test/helpers/clock-fixture.ts";
import { launchChromium, openPlayer } from "../test/helpers/chromium.ts";
import { cpuMs } from "../test/helpers/proc-stats.ts";
import { SdkClient } from "../test/helpers/sdk-client.ts";
import { startSidecar, type SidecarProcess } from "../test/helpers/sidecar-process.ts";
import { createWeriftViewer } from "../test/helpers/werift-viewer.ts";
import { startWrangler } from "../test/helpers/wrangler.ts";
import { DEFAULT_CATCH_UP_SPEED } from "../sidecar/src/vod/play-clock.ts";
import { isMain } from "./is-main.ts";
import { summarize, type Summary } from "./ttff.ts";

const RUNS = Number(process.env.BENCH_SEEK_RUNS ?? 10);
const FILE = "clock.mp4";
const PERIOD_MS = CLOCK.seconds * 1000;
/** How long a run waits for its picture before it counts as none (the next keyframe is at most 10 s away). */
const RUN_TIMEOUT_MS = 20_000;
/** A join's cost is counted over this long after play(), the same in both modes: longer than any keyframe wait. */
const COST_WINDOW_MS = 10_500;

export interface ModeResult {
  mode: "catch-up" | "next-keyframe";
  catchUpSpeed: number;
  join: { firstPictureMs: Summary; currentPictureMs: Summary; runs: { firstPictureMs: number; currentPictureMs: number; joinedAtMs: number }[] };
  seek: { pictureMs: Summary; runs: { pictureMs: number; positionMs: number; shownMs: number }[] };
  perJoin: { catchUpPackets: Summary; catchUpBytes: Summary; cpuMs: Summary };
}

export interface SeekResult {
  runs: number;
  modes: ModeResult[];
}

/** What the page runs: the SDK's own calls, timed with the page's clock (Date.now(), as the clock reads are). */
const DRIVER = `
  (() => {
    // Init scripts run before the page's own: the SDK is looked up when called.
    const C = () => Flashphoner.constants;
    let session = null;
    window.__bench = {
      connect: (url) => new Promise((resolve, reject) => {
        const s = Flashphoner.createSession({ urlServer: url });
        s.on(C().SESSION_STATUS.ESTABLISHED, () => { session = s; resolve(); })
          .on(C().SESSION_STATUS.FAILED, () => reject(new Error("session FAILED")));
      }),
      // Starts a stream and resolves with play()'s time; the page's clock reads tell when pictures came.
      play: (name) => new Promise((resolve, reject) => {
        const stream = session.createStream({ name: name, display: document.getElementById("display"), custom: { edgeVod: {} } });
        window.__stream = stream;
        const S = C().STREAM_STATUS;
        stream.on(S.PLAYING, () => {}).on(S.FAILED, (s) => reject(new Error(name + ": FAILED " + s.getInfo()))).on(S.STOPPED, () => {});
        const t0 = Date.now();
        stream.play();
        resolve(t0);
      }),
      seek: (positionMs) => {
        const t0 = Date.now();
        return session.sendData({ edgeVod: { op: "seek", mediaSessionId: window.__stream.id(), positionMs: positionMs } }).then(() => t0);
      },
      stop: () => new Promise((resolve) => {
        const stream = window.__stream;
        if (!stream) return resolve();
        stream.on(C().STREAM_STATUS.STOPPED, () => resolve());
        stream.stop();
        setTimeout(resolve, 3000);
      }),
    };
  })();
`;

interface Read {
  at: number;
  ms: number | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readsSince(page: Page, mark: number): Promise<Read[]> {
  return page.evaluate((m) => (window as unknown as { __clockReads: Read[] }).__clockReads.slice(m), mark);
}

async function waitRead(page: Page, mark: number, ok: (r: Read) => boolean): Promise<Read | undefined> {
  const end = Date.now() + RUN_TIMEOUT_MS;
  while (Date.now() < end) {
    const hit = (await readsSince(page, mark)).find(ok);
    if (hit) return hit;
    await sleep(50);
  }
  return undefined;
}

async function metric(sidecar: SidecarProcess, name: string): Promise<number> {
  const text = await (await fetch(`${sidecar.url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

async function measureMode(mode: ModeResult["mode"], mediaDir: string, log: (l: string) => void): Promise<ModeResult> {
  const catchUpSpeed = mode === "catch-up" ? Number(process.env.VOD_CATCHUP_SPEED ?? DEFAULT_CATCH_UP_SPEED) : 1;
  const secret = randomBytes(24).toString("hex");
  const sidecar = await startSidecar({ secret, mediaDir, env: { VOD_CATCHUP_SPEED: String(catchUpSpeed) } });
  const edge = await startWrangler({ sidecarUrl: sidecar.url, secret, vars: { VOD_LIVE_LOOP: FILE } });
  const browser = await launchChromium();
  const holder = await SdkClient.connect(edge.wsUrl);
  const viewer = await createWeriftViewer();
  const result: ModeResult = {
    mode,
    catchUpSpeed,
    join: { firstPictureMs: summarize([0]), currentPictureMs: summarize([0]), runs: [] },
    seek: { pictureMs: summarize([0]), runs: [] },
    perJoin: { catchUpPackets: summarize([0]), catchUpBytes: summarize([0]), cpuMs: summarize([0]) },
  };
  try {
    // The broadcast's clock, seen by a viewer that keeps it running: RTP timestamp / 90 is its media time.
    const id = holder.playStream({ name: `vod-live://${FILE}`, sdp: viewer.offerSdp });
    const answer = await holder.waitFor((f) => f.message === "setRemoteSDP", { timeoutMs: 30_000 });
    await viewer.setAnswer(String(answer.data[1]));
    await holder.waitForStatus(id, "PLAYING", { timeoutMs: 30_000 });
    const broadcastMsAt = (at: number): number => {
      const ts = viewer.received.videoFrameTimestamps;
      const arrivals = viewer.received.videoFrameArrivals;
      const last = ts.length - 1;
      return ((ts[last]! / 90 + (at - arrivals[last]!)) % PERIOD_MS + PERIOD_MS) % PERIOD_MS;
    };
    const page = await openPlayer(await browser.context.newPage(), edge.url, `vod://${FILE}`, [clockReader, DRIVER]);
    await page.evaluate((url) => (window as unknown as { __bench: { connect(u: string): Promise<void> } }).__bench.connect(url), edge.wsUrl);
    const bench = {
      play: (name: string) => page.evaluate((n) => (window as unknown as { __bench: { play(n: string): Promise<number> } }).__bench.play(n), name),
      seek: (ms: number) => page.evaluate((p) => (window as unknown as { __bench: { seek(p: number): Promise<number> } }).__bench.seek(p), ms),
      stop: () => page.evaluate(() => (window as unknown as { __bench: { stop(): Promise<void> } }).__bench.stop()),
      mark: () => page.evaluate(() => (window as unknown as { __clockReads: Read[] }).__clockReads.length),
    };
    // The first file open prepares its Opus copy: not what is measured.
    await bench.play(`vod://${FILE}`);
    await waitRead(page, 0, (r) => r.ms !== null);
    await bench.stop();

    const joins: ModeResult["join"]["runs"] = [];
    const packets: number[] = [];
    const bytes: number[] = [];
    const cpu: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      // A random moment of a GOP: anywhere from just after a keyframe to just before the next.
      await sleep(500 + Math.random() * 10_000);
      const mark = await bench.mark();
      const [packets0, bytes0, cpu0] = [await metric(sidecar, "edge_vod_catchup_packets_sent_total"), await metric(sidecar, "edge_vod_catchup_bytes_sent_total"), await cpuMs(sidecar.pid)];
      const t0 = await bench.play(`vod-live://${FILE}`);
      const first = await waitRead(page, mark, (r) => r.ms !== null);
      const current = await waitRead(page, mark, (r) => {
        if (r.ms === null) return false;
        const d = Math.abs(r.ms - broadcastMsAt(r.at));
        return Math.min(d, PERIOD_MS - d) <= 3 * CLOCK_FRAME_MS;
      });
      const waited = Date.now() - t0;
      if (waited < COST_WINDOW_MS) await sleep(COST_WINDOW_MS - waited);
      cpu.push((await cpuMs(sidecar.pid)) - cpu0);
      packets.push((await metric(sidecar, "edge_vod_catchup_packets_sent_total")) - packets0);
      bytes.push((await metric(sidecar, "edge_vod_catchup_bytes_sent_total")) - bytes0);
      if (first && current) joins.push({ firstPictureMs: first.at - t0, currentPictureMs: current.at - t0, joinedAtMs: broadcastMsAt(t0) });
      else log(`${mode}: join ${run + 1}: no ${first ? "current " : ""}picture in ${RUN_TIMEOUT_MS} ms`);
      await bench.stop();
    }

    const seeks: ModeResult["seek"]["runs"] = [];
    await bench.play(`vod://${FILE}`);
    await waitRead(page, 0, (r) => r.ms !== null);
    for (let run = 0; run < RUNS; run++) {
      // Between keyframes, at least a second from either: 1..9 s into one of the first two GOPs (the last one has no
      // next keyframe for the baseline to wait for).
      const positionMs = Math.round((Math.floor(Math.random() * 2) * 10 + 1 + Math.random() * 8) * 1000);
      await sleep(1000);
      const mark = await bench.mark();
      let t0: number;
      try {
        t0 = await bench.seek(positionMs);
      } catch (err) {
        // The file played to its end meanwhile: play it again.
        log(`${mode}: seek ${run + 1}: ${JSON.stringify(err)}; playing again`);
        await bench.stop();
        await bench.play(`vod://${FILE}`);
        await sleep(2000);
        run--;
        continue;
      }
      // The picture of the position (a frame either side), or in next-keyframe mode that of the next keyframe: the
      // old position's pictures, still coming while the answer travels, are neither.
      const shows = mode === "catch-up" ? positionMs : Math.ceil(positionMs / (CLOCK.keyframeEverySec * 1000)) * CLOCK.keyframeEverySec * 1000;
      const hit = await waitRead(page, mark, (r) => r.ms !== null && Math.abs(r.ms - shows) <= CLOCK_FRAME_MS + 1 && r.at >= t0);
      if (hit) seeks.push({ pictureMs: hit.at - t0, positionMs, shownMs: hit.ms! });
      else log(`${mode}: seek ${run + 1} to ${positionMs}: no picture in ${RUN_TIMEOUT_MS} ms`);
    }
    await bench.stop();

    result.join = {
      firstPictureMs: summarize(joins.map((j) => j.firstPictureMs)),
      currentPictureMs: summarize(joins.map((j) => j.currentPictureMs)),
      runs: joins,
    };
    result.seek = { pictureMs: summarize(seeks.map((s) => s.pictureMs)), runs: seeks };
    result.perJoin = { catchUpPackets: summarize(packets), catchUpBytes: summarize(bytes), cpuMs: summarize(cpu) };
    return result;
  } finally {
    await viewer.close().catch(() => {});
    await holder.close().catch(() => {});
    await browser.close().catch(() => {});
    await edge.stop().catch(() => {});
    await sidecar.stop().catch(() => {});
  }
}

export async function measureSeek(opts: { log?: (l: string) => void } = {}): Promise<SeekResult> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-bench-seek-"));
  try {
    await makeClockFixture(mediaDir, FILE);
    const modes: ModeResult[] = [];
    for (const mode of ["catch-up", "next-keyframe"] as const) {
      log(`seek bench: ${mode}`);
      modes.push(await measureMode(mode, mediaDir, log));
    }
    return { runs: RUNS, modes };
  } finally {
    await fs.rm(mediaDir, { recursive: true, force: true });
  }
}

const ms = (s: Summary) => `${s.median.toFixed(0)} / ${s.p90.toFixed(0)} ms`;

export function seekSummary(r: SeekResult): string[] {
  const [on, off] = [r.modes.find((m) => m.mode === "catch-up"), r.modes.find((m) => m.mode === "next-keyframe")];
  const ratio = (a: Summary | undefined, b: Summary | undefined) => (a && b && b.median > 0 ? `${(a.median / b.median).toFixed(2)}` : "");
  return [
    `| median / p90 (${r.runs} runs) | catch-up | next keyframe | catch-up ÷ next keyframe |`,
    "|---|---|---|---:|",
    `| vod-live:// play() → first picture | ${on ? ms(on.join.firstPictureMs) : ""} | ${off ? ms(off.join.firstPictureMs) : ""} | ${ratio(on?.join.firstPictureMs, off?.join.firstPictureMs)} |`,
    `| vod-live:// play() → current picture | ${on ? ms(on.join.currentPictureMs) : ""} | ${off ? ms(off.join.currentPictureMs) : ""} | ${ratio(on?.join.currentPictureMs, off?.join.currentPictureMs)} |`,
    `| vod:// seek → picture of the position | ${on ? ms(on.seek.pictureMs) : ""} | ${off ? ms(off.seek.pictureMs) : ""} | ${ratio(on?.seek.pictureMs, off?.seek.pictureMs)} |`,
    `| per join: catch-up packets | ${on?.perJoin.catchUpPackets.median.toFixed(0) ?? ""} | ${off?.perJoin.catchUpPackets.median.toFixed(0) ?? ""} | |`,
    `| per join: catch-up bytes | ${on ? (on.perJoin.catchUpBytes.median / 1024).toFixed(0) + " KiB" : ""} | ${off ? (off.perJoin.catchUpBytes.median / 1024).toFixed(0) + " KiB" : ""} | |`,
    `| per join: sidecar CPU, play() + 10.5 s | ${on ? ms(on.perJoin.cpuMs) : ""} | ${off ? ms(off.perJoin.cpuMs) : ""} | ${ratio(on?.perJoin.cpuMs, off?.perJoin.cpuMs)} |`,
  ];
}

if (isMain(import.meta.url)) {
  const r = await measureSeek();
  console.log(seekSummary(r).join("\n"));
  console.log(JSON.stringify(r, null, 2));
}
