// What a `vod-live://` broadcast costs the sidecar per viewer: sidecar CPU (from /proc) and RSS with 1, 25, 50 and
// 100 werift viewers of one broadcast of a 1 Mbps 640x360 30 fps H.264 + Opus file, against the idle sidecar and
// the one-viewer step measured in the same run. Viewers are added straight through the sidecar's control API (no
// edge), so the numbers are the media host's alone. Prints numbers and ratios; asserts nothing.
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SIDECAR_PATHS, type PlayResponse } from "@edge-vod/shared";
import { makeBenchFile } from "./bench-file.ts";
import { measureProcess } from "../test/helpers/proc-stats.ts";
import { startSidecar, type SidecarProcess } from "../test/helpers/sidecar-process.ts";
import { createWeriftViewer } from "../test/helpers/werift-viewer.ts";

const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 5_000);
const STEPS = (process.env.BENCH_VIEWERS ?? "1,25,50,100").split(",").map(Number);

async function addViewer(sidecar: SidecarProcess, startedAt: number) {
  const viewer = await createWeriftViewer();
  const res = await fetch(sidecar.url + SIDECAR_PATHS.play, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${sidecar.secret}` },
    body: JSON.stringify({
      sessionRef: "bench",
      // Nobody listens: the sidecar's event posts fail quietly, which costs it next to nothing.
      eventsUrl: "http://127.0.0.1:9/events",
      mediaSessionId: randomUUID(),
      name: "vod-live://bench.mp4",
      sdp: viewer.offerSdp,
      broadcast: { startedAt, loop: true },
    }),
  });
  const answer = (await res.json()) as PlayResponse;
  if (!answer.ok) throw new Error(`play refused: ${answer.info}`);
  await viewer.setAnswer(answer.sdp);
  return viewer;
}

async function main(): Promise<void> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-bench-"));
  try {
    await makeBenchFile(tmp);
    const sidecar = await startSidecar({ secret: randomBytes(24).toString("hex"), mediaDir: tmp, env: { MAX_VIEWERS: "10000" } });
    const viewers: Awaited<ReturnType<typeof createWeriftViewer>>[] = [];
    const rows: { n: number; cpuPct: number; rss: number; frames: number }[] = [];
    try {
      const idle = await measureProcess(sidecar.pid, WINDOW_MS);
      rows.push({ n: 0, ...idle, frames: 0 });
      const startedAt = Date.now();
      for (const n of STEPS) {
        while (viewers.length < n) viewers.push(await addViewer(sidecar, startedAt));
        await new Promise((r) => setTimeout(r, 1500));
        const before = viewers.map((v) => v.received.videoFrameTimestamps.length);
        const m = await measureProcess(sidecar.pid, WINDOW_MS);
        // Frames every viewer got in the window, at worst: all should get ~30 per second.
        const frames = Math.min(...viewers.map((v, i) => v.received.videoFrameTimestamps.length - before[i]!));
        rows.push({ n, ...m, frames });
      }
    } finally {
      await Promise.allSettled(viewers.map((v) => v.close()));
      await sidecar.stop();
    }
    console.log(`vod-live: sidecar CPU (% of one core) and RSS over ${WINDOW_MS / 1000} s windows, one broadcast of a 1 Mbps 640x360 30 fps H.264 + Opus file:`);
    for (const r of rows) {
      const fps = r.n ? `, slowest viewer ${((r.frames * 1000) / WINDOW_MS).toFixed(1)} fps` : "";
      console.log(`  ${String(r.n).padStart(4)} viewers ${r.cpuPct.toFixed(1).padStart(6)} %   RSS ${r.rss.toFixed(0).padStart(4)} MB${fps}`);
    }
    const one = rows.find((r) => r.n === 1);
    const top = rows[rows.length - 1]!;
    if (one && top.n > 1) {
      const cpuPerViewer = (top.cpuPct - one.cpuPct) / (top.n - 1);
      const kbPerViewer = ((top.rss - one.rss) * 1024) / (top.n - 1);
      console.log(
        `  per added viewer (1 -> ${top.n}): ${cpuPerViewer.toFixed(3)} % of a core, ${kbPerViewer.toFixed(0)} KB RSS; ` +
          `about ${Math.floor(100 / cpuPerViewer)} viewers per core; one viewer costs x${(one.cpuPct / Math.max(rows[0]!.cpuPct, 0.01)).toFixed(1)} the idle sidecar`,
      );
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

await main();
