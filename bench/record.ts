// What one publish costs the sidecar, with and without recording: sidecar CPU (from /proc, user + system) while a
// werift publisher sends 640x360 H.264 at ~1 Mbps + Opus for a fixed window, against the idle sidecar measured in
// the same run. Prints numbers and ratios; asserts nothing.
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SIDECAR_PATHS } from "@edge-vod/shared";
import { makeBenchFile } from "./bench-file.ts";
import { measureProcess } from "../test/helpers/proc-stats.ts";
import { startSidecar, type SidecarProcess } from "../test/helpers/sidecar-process.ts";
import { signedFetch } from "../test/helpers/signed-fetch.ts";
import { createWeriftPublisher } from "../test/helpers/werift-publisher.ts";
import { isMain } from "./is-main.ts";

export interface RecordingResult {
  windowMs: number;
  idleCpuPct: number;
  publishCpuPct: number;
  recordCpuPct: number;
  /** What recording one 1 Mbps stream adds to receiving it, % of a core. */
  recordingAddsCpuPct: number;
}

export async function measureRecording(windowMs = 10_000): Promise<RecordingResult> {
  const measure = (sidecar: SidecarProcess) => measureProcess(sidecar.pid, windowMs);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-bench-"));
  try {
    const source = await makeBenchFile(tmp, "source.mp4");
    const secret = randomBytes(24).toString("hex");
    const sidecar = await startSidecar({ secret, env: { RECORD_DIR: path.join(tmp, "records") } });
    const rows: [string, { cpuPct: number; rss: number }][] = [];
    try {
      rows.push(["idle sidecar", await measure(sidecar)]);
      for (const record of [false, true]) {
        const pub = await createWeriftPublisher(source);
        const res = await signedFetch(secret, sidecar.url + SIDECAR_PATHS.publish, {
          method: "POST",
          body: JSON.stringify({
            sessionRef: "bench",
            eventsUrl: "http://127.0.0.1:9/events",
            mediaSessionId: randomUUID(),
            name: `bench-${record}`,
            sdp: pub.offerSdp,
            record,
          }),
        });
        const answer = (await res.json()) as { ok: boolean; sdp: string };
        if (!answer.ok) throw new Error(`publish refused: ${JSON.stringify(answer)}`);
        await pub.setAnswer(answer.sdp);
        await new Promise((r) => setTimeout(r, 1500));
        rows.push([record ? "1 publish, recording" : "1 publish, no recording", await measure(sidecar)]);
        await pub.close();
        await new Promise((r) => setTimeout(r, 2000));
      }
    } finally {
      await sidecar.stop();
    }
    const base = rows[0]![1].cpuPct;
    const noRec = rows[1]![1].cpuPct;
    console.log(`sidecar CPU over ${windowMs / 1000} s windows (% of one core), 640x360 ~1 Mbps H.264 + Opus 64k:`);
    for (const [name, m] of rows) console.log(`  ${name.padEnd(26)} ${m.cpuPct.toFixed(2).padStart(6)} %   RSS ${m.rss.toFixed(0)} MB`);
    const rec = rows[2]![1].cpuPct;
    console.log(`  receiving costs ${(noRec - base).toFixed(2)} points over idle; recording adds ${(rec - noRec).toFixed(2)} points (x${(rec / Math.max(noRec, 0.01)).toFixed(2)} of receiving alone)`);
    return { windowMs, idleCpuPct: base, publishCpuPct: noRec, recordCpuPct: rec, recordingAddsCpuPct: rec - noRec };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) await measureRecording(Number(process.env.BENCH_WINDOW_MS ?? 10_000));
