// Viewers joining and leaving all the time leak nothing: after rounds of werift viewers of vod:// and vod-live://
// that play and are stopped (the edge's /v1/stop) or just vanish (their peer closed, nothing said), the sidecar's
// sockets (fds) and timers are back where they were before the first round, and it still serves a new viewer.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { RTCPeerConnection } from "werift";
import { SIDECAR_PATHS } from "@edge-vod/shared";
import { makeFixture } from "../helpers/fixtures.ts";
import { until } from "../helpers/rtp-record.ts";
import { EXPECTED_MEDIA_SEND, startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import { playOnSidecar, testPeer } from "../helpers/werift-viewer.ts";
import type { ProcessStats } from "../../sidecar/src/runtime/process-stats.ts";

const ROUNDS = 4;
const PER_ROUND = 24;

let sidecar: SidecarProcess;
let dir: string;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-churn-"));
  await makeFixture(dir, "light.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15:duration=30"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=30"],
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "15", "-bf", "0", "-b:v", "150k"],
    ...["-c:a", "libopus", "-b:a", "24k", "-ac", "2"],
  ]);
  sidecar = await startSidecar({ secret: randomBytes(24).toString("hex"), mediaDir: dir, env: { MAX_VIEWERS: "1000" } });
});

after(async () => {
  await sidecar?.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

async function health(): Promise<{ viewers: number; process: ProcessStats }> {
  const res = await signedFetch(sidecar.secret, `${sidecar.url}/v1/health`);
  return (await res.json()) as { viewers: number; process: ProcessStats };
}

interface Joined {
  pc: RTCPeerConnection;
  sessionRef: string;
  mediaSessionId: string;
  packets: number;
}

async function joinOne(name: string, startedAt: number): Promise<Joined> {
  const pc = testPeer();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const joined = { pc, sessionRef: "", mediaSessionId: "", packets: 0 };
  pc.onTrack.subscribe((track) => track.onReceiveRtp.subscribe(() => joined.packets++));
  const ids = await playOnSidecar(sidecar, pc, name, name.startsWith("vod-live") ? { startedAt, loop: true } : undefined);
  joined.sessionRef = ids.sessionRef;
  joined.mediaSessionId = ids.mediaSessionId;
  return joined;
}

const count = (s: ProcessStats, type: string) => s.resources[type] ?? 0;

test(`${ROUNDS} rounds of ${PER_ROUND} viewers joining and leaving leave no socket, timer or viewer behind`, { timeout: 300_000 }, async (t) => {
  const startedAt = Date.now();
  const baseline = (await health()).process;
  const rounds: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const viewers = await Promise.all(
      Array.from({ length: PER_ROUND }, (_, i) => joinOne(i % 2 ? "vod-live://light.mp4" : "vod://light.mp4", startedAt)),
    );
    await until(`round ${round}: media to every viewer`, () => viewers.every((v) => v.packets > 20), 60_000);
    // Half are stopped as the edge stops them; the other half vanish (their peer closes, nothing is said).
    for (const [i, v] of viewers.entries()) {
      if (i % 4 < 2) {
        const res = await signedFetch(sidecar.secret, sidecar.url + SIDECAR_PATHS.stop, {
          method: "POST",
          body: JSON.stringify({ sessionRef: v.sessionRef, mediaSessionId: v.mediaSessionId }),
        });
        assert.equal(res.status, 200);
      }
    }
    await Promise.all(viewers.map((v) => v.pc.close()));
    const deadline = Date.now() + 60_000;
    let h = await health();
    while (h.viewers > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      h = await health();
    }
    assert.equal(h.viewers, 0, `round ${round}: viewers left on the sidecar`);
    rounds.push(`round ${round}: fds ${h.process.fds}, timers ${count(h.process, "Timeout")}, RSS ${(h.process.rssBytes / 2 ** 20).toFixed(0)} MB`);
  }
  // Sockets close and timers clear as the last viewers go; a moment for the last of them.
  let end = (await health()).process;
  for (let i = 0; i < 40 && (end.fds! > baseline.fds! || count(end, "Timeout") > count(baseline, "Timeout") + 2); i++) {
    await new Promise((r) => setTimeout(r, 250));
    end = (await health()).process;
  }
  t.diagnostic(`baseline: fds ${baseline.fds} ${JSON.stringify(baseline.resources)}; end: fds ${end.fds} ${JSON.stringify(end.resources)}; ${rounds.join("; ")}`);
  // Every viewer's UDP sockets are fds: they must all be closed again.
  assert.equal(typeof baseline.fds, "number", "the sidecar counts its fds (Linux /proc)");
  assert.ok(end.fds! <= baseline.fds!, `fds back to the baseline (${baseline.fds} → ${end.fds})`);
  // The scheduler's timer and a report or two may be running when sampled; per-viewer timers would be dozens.
  assert.ok(count(end, "Timeout") <= count(baseline, "Timeout") + 2, `timers back to the baseline (${count(baseline, "Timeout")} → ${count(end, "Timeout")})`);
  assert.equal((await sidecar.mediaSend()).mode, EXPECTED_MEDIA_SEND);
  // And it still serves.
  const last = await joinOne("vod://light.mp4", startedAt);
  try {
    await until("a viewer after the churn gets media", () => last.packets > 20, 30_000);
  } finally {
    await last.pc.close();
  }
});
