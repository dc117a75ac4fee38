// `vod-live://`: one shared real-time broadcast of a file through the real edge (wrangler dev) and sidecar, with
// werift viewers speaking the SDK's frames.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { isH264KeyframeStart } from "../../sidecar/src/rtp/h264-rtp.ts";
import { makeFixture } from "../helpers/fixtures.ts";
import { measureProcess, rssMb } from "../helpers/proc-stats.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { joinViewer, mediaZeroAt, type JoinedViewer } from "../helpers/vod-live-viewer.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";

const FRAME_MS = 1000 / 30;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let sidecar: SidecarProcess;
let edge: WranglerDev;
let mediaDir: string;

before(async () => {
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-live-"));
  await fs.copyFile("media/sample.mp4", path.join(mediaDir, "sample.mp4"));
  // 3 s, keyframe every 0.5 s: short enough to see its end, and "short-loop.mp4" is the same file configured to loop.
  await makeFixture(mediaDir, "short.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=3"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3"],
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "15", "-sc_threshold", "0"],
    ...["-c:a", "aac", "-b:a", "64k", "-ac", "2", "-movflags", "+faststart"],
  ]);
  await fs.copyFile(path.join(mediaDir, "short.mp4"), path.join(mediaDir, "short-loop.mp4"));
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret, mediaDir });
  edge = await startWrangler({
    sidecarUrl: sidecar.url,
    secret,
    logLevel: "warn",
    vars: { VOD_LIVE_LOOP: "sample.mp4,short-loop.mp4", VOD_LIVE_GRACE_MS: "300" },
  });
});

after(async () => {
  await edge?.stop();
  await sidecar?.stop();
  await fs.rm(mediaDir, { recursive: true, force: true });
});

async function health(): Promise<{ viewers: number; broadcasts: number }> {
  const res = await signedFetch(sidecar.secret, `${sidecar.url}/v1/health`);
  return (await res.json()) as { viewers: number; broadcasts: number };
}

test("50 viewers joining over 5 s share one broadcast and see the same moment at the same time", async (t) => {
  const N = 50;
  const rssBefore = await rssMb(sidecar.pid);
  const viewers: JoinedViewer[] = [];
  const joinedAt: number[] = [];
  try {
    const joins = Array.from({ length: N }, async (_, i) => {
      await sleep((i * 5000) / N);
      const v = await joinViewer(edge.wsUrl, "vod-live://sample.mp4");
      joinedAt[i] = Date.now();
      viewers[i] = v;
    });
    const results = await Promise.allSettled(joins);
    const failed = results.filter((r) => r.status === "rejected");
    assert.equal(failed.length, 0, `every viewer joins: ${failed.map((r) => String((r as PromiseRejectedResult).reason)).join("; ")}`);
    const h = await health();
    assert.deepEqual({ viewers: h.viewers, broadcasts: h.broadcasts }, { viewers: N, broadcasts: 1 }, "one broadcast (one reader) serves every viewer");

    // Every viewer is now past its first keyframe; measure the sidecar while all 50 receive.
    await sleep(1500);
    const load = await measureProcess(sidecar.pid, 3000);
    const rssAfter = await rssMb(sidecar.pid);
    t.diagnostic(
      `sidecar with ${N} vod-live viewers of one 640x360 broadcast: CPU ${load.cpuPct.toFixed(1)} % of a core, ` +
        `RSS ${rssAfter.toFixed(0)} MB (${rssBefore.toFixed(0)} MB before, ${(((rssAfter - rssBefore) * 1024) / N).toFixed(0)} KB per viewer)`,
    );

    const zeros: number[] = [];
    for (const [i, v] of viewers.entries()) {
      const r = v.received;
      assert.ok(r.videoFrameTimestamps.length > 30, `viewer ${i} receives frames (${r.videoFrameTimestamps.length})`);
      assert.ok(r.firstVideoPayload && isH264KeyframeStart(r.firstVideoPayload), `viewer ${i} starts with a keyframe`);
      zeros.push(mediaZeroAt(r));
    }
    const spread = Math.max(...zeros) - Math.min(...zeros);
    t.diagnostic(`media time mapped to wall clock: spread ${spread.toFixed(1)} ms across ${N} viewers`);
    assert.ok(spread <= 100 + FRAME_MS, `viewers agree on the media clock within 100 ms + one frame (spread ${spread.toFixed(1)} ms)`);

    // Joined at the current position, not from the start: the last viewer came ~5 s after the first.
    const first = viewers[0]!.received.videoFrameTimestamps[0]! / 90;
    const last = viewers[N - 1]!.received.videoFrameTimestamps[0]! / 90;
    assert.ok(last - first >= 3500, `the last joiner starts ${((last - first) / 1000).toFixed(1)} s into the broadcast, not at its start`);
    assert.ok(last - first <= joinedAt[N - 1]! - joinedAt[0]! + 2000, "and within a GOP of where the broadcast was");

    // Personal VOD of the same file is independent: it starts at the beginning.
    const personal = await joinViewer(edge.wsUrl, "vod://sample.mp4");
    try {
      await sleep(500);
      assert.equal(personal.received.videoFrameTimestamps[0], 0, "vod:// starts at media time 0 while the broadcast runs");
    } finally {
      await personal.close();
    }
  } finally {
    await Promise.allSettled(viewers.filter(Boolean).map((v) => v.close()));
  }
  // The last viewer gone, the broadcast closes its reader on the sidecar.
  for (let i = 0; i < 50 && (await health()).broadcasts > 0; i++) await sleep(100);
  assert.equal((await health()).broadcasts, 0, "no broadcast runs without viewers");
});

test("at the end of the file every viewer gets STOPPED; the next viewer starts a new broadcast from the start", async () => {
  const a = await joinViewer(edge.wsUrl, "vod-live://short.mp4");
  await sleep(1000);
  const b = await joinViewer(edge.wsUrl, "vod-live://short.mp4");
  try {
    const [ea, eb] = await Promise.all([a.client.waitForStatus(a.id, ["STOPPED", "FAILED"], { timeoutMs: 15_000 }), b.client.waitForStatus(b.id, ["STOPPED", "FAILED"], { timeoutMs: 15_000 })]);
    assert.equal(ea.status, "STOPPED");
    assert.equal(eb.status, "STOPPED");
    const lastA = a.received.videoFrameTimestamps.at(-1)! / 90;
    const lastB = b.received.videoFrameTimestamps.at(-1)! / 90;
    assert.ok(lastA > 2800 && lastB > 2800, `both saw the end of the 3 s file (${lastA}, ${lastB} ms)`);
    assert.equal(lastA, lastB, "both end on the same last frame");
    assert.ok(b.received.videoFrameTimestamps[0]! / 90 >= 500, "the second viewer joined mid-file");
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
  await sleep(400);
  const c = await joinViewer(edge.wsUrl, "vod-live://short.mp4");
  try {
    await sleep(500);
    assert.equal(c.received.videoFrameTimestamps[0], 0, "a new broadcast starts at the beginning of the file");
  } finally {
    await c.close();
  }
});

test("a looping broadcast keeps PLAYING past the end with timestamps that keep increasing", async () => {
  const v = await joinViewer(edge.wsUrl, "vod-live://short-loop.mp4");
  try {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && (v.received.videoFrameTimestamps.at(-1) ?? 0) / 90 < 7000) await sleep(100);
    const ts = v.received.videoFrameTimestamps;
    assert.ok(ts.at(-1)! / 90 >= 7000, `media time passed two loops of the 3 s file (${ts.at(-1)! / 90} ms)`);
    for (let i = 1; i < ts.length; i++) {
      const step = ts[i]! - ts[i - 1]!;
      assert.ok(step > 0 && step <= 2 * 3000, `frame ${i}: timestamp steps by ${step} ticks (no reset at the loop)`);
    }
    const statuses = v.client.statusEvents(v.id).map((e) => e.status);
    assert.deepEqual(statuses, ["PLAYING"], "still PLAYING, never STOPPED");
  } finally {
    await v.close();
  }
});

test("a missing file fails with File not found, and bad names with Bad URI", async () => {
  for (const [name, info] of [
    ["vod-live://nothing.mp4", "File not found"],
    ["vod-live://../etc/passwd", "Bad URI"],
  ] as const) {
    await assert.rejects(joinViewer(edge.wsUrl, name), (err: Error) => err.message.includes(`"info":"${info}"`), name);
  }
});
