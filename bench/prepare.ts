// What preparing a file that cannot be sent as it is costs: an ffmpeg default encode (H.264 High with B-frames,
// AAC), 720p30. (1) CPU and wall time of `npm run prepare-media` for a 10-minute file, against the file's length
// (real-time factor). (2) Time to first frame in Chromium for a 30-s such file: the first play (cold, the prepare
// starts with it and the viewer follows it) against later plays of the finished copy, in the same run. The source is
// testsrc2 with noise on top, so the encoder works about as hard as on camera footage. Prints numbers; asserts
// nothing.
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { FFMPEG } from "../test/helpers/fixtures.ts";
import { isMain } from "./is-main.ts";
import { measureTtff, type TtffResult } from "./ttff.ts";

const run = promisify(execFile);

export interface PrepareResult {
  file: { seconds: number; width: number; height: number; bytes: number };
  /** CPU seconds (user + system) of the prepare-media process and its ffmpeg children. */
  cpuSec: number;
  wallSec: number;
  /** Media seconds prepared per wall second. */
  realTimeFactor: number;
  /** CPU seconds per media second: the share of one core a prepare keeps busy per real-time second prepared. */
  cpuPerMediaSec: number;
  ttff: TtffResult;
}

/** The file this part prepares (bench/vp8.ts prepares it too): `seconds` of 720p30 High + B-frames + AAC, noisy. */
export async function makeSource(dir: string, name: string, seconds: number): Promise<string> {
  const out = path.join(dir, name);
  await run(FFMPEG, [
    ...["-nostdin", "-hide_banner", "-loglevel", "error", "-y"],
    ...["-f", "lavfi", "-i", `testsrc2=size=1280x720:rate=30:duration=${seconds},noise=alls=12:allf=t`],
    ...["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${seconds}`],
    // ffmpeg's default x264 settings (High, B-frames), only faster to make.
    ...["-c:v", "libx264", "-preset", "superfast", "-c:a", "aac", out],
  ]);
  return out;
}

/** Children's CPU time from bash's `times` (second line: children's user and system time). */
function childrenCpu(timesOutput: string): number {
  const lines = timesOutput.trim().split("\n");
  const last = lines[lines.length - 1] ?? "";
  let total = 0;
  for (const m of last.matchAll(/(\d+)m([\d.]+)s/g)) total += Number(m[1]) * 60 + Number(m[2]);
  return total;
}

export async function measurePrepare(opts: { seconds?: number; log?: (line: string) => void } = {}): Promise<PrepareResult> {
  const seconds = opts.seconds ?? 600;
  const log = opts.log ?? console.log;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-prepare-bench-"));
  try {
    const long = path.join(dir, "long");
    await fs.mkdir(long);
    log(`  making a ${seconds}-s 720p30 High + B-frames + AAC file`);
    const src = await makeSource(long, "long.mp4", seconds);
    const bytes = (await fs.stat(src)).size;
    const t0 = performance.now();
    const { stdout } = await run(
      "bash",
      ["-c", `"${process.execPath}" --import tsx scripts/prepare-media.ts "${long}" >/dev/null; times`],
      { env: { ...process.env, CACHE_DIR: path.join(dir, "cache") }, maxBuffer: 1 << 20 },
    );
    const wallSec = (performance.now() - t0) / 1000;
    const cpuSec = childrenCpu(stdout);
    log(`  prepare of ${seconds} s: ${cpuSec.toFixed(1)} s CPU, ${wallSec.toFixed(1)} s wall (${(seconds / wallSec).toFixed(1)}x real time)`);

    const short = path.join(dir, "short");
    await fs.mkdir(short);
    await makeSource(short, "bframes-720.mp4", 30);
    const ttff = await measureTtff({
      runs: 5,
      stream: "vod://bframes-720.mp4",
      mediaDir: short,
      log: (l) => log(`  ${l}`),
      afterColdRun: async (sidecar) => {
        // Warm runs play the finished copy: wait for the prepare the cold run started.
        while ((await sidecar.prepareStats()).running > 0) await new Promise((r) => setTimeout(r, 250));
      },
    });
    return {
      file: { seconds, width: 1280, height: 720, bytes },
      cpuSec,
      wallSec,
      realTimeFactor: seconds / wallSec,
      cpuPerMediaSec: cpuSec / seconds,
      ttff,
    };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  const r = await measurePrepare({ seconds: Number(process.env.BENCH_PREPARE_SECONDS ?? 600) });
  const cold = r.ttff.runs[0]!;
  console.log(
    `first frame: needs preparing (first viewer) ${cold.firstFrameMs.toFixed(0)} ms; prepared copy median ${r.ttff.warm.firstFrame.median.toFixed(0)} ms ` +
      `(${(cold.firstFrameMs / r.ttff.warm.firstFrame.median).toFixed(2)}x)`,
  );
  process.exit(0);
}
