// An operator's seek of a whole `vod-live://` broadcast (REST `/vod/seek`), through the real edge and two registered
// sidecars: every viewer, on either sidecar, moves to the new position (from the keyframe before it, caught up), its
// timestamps and sequence numbers carry on, and afterwards all of them send the same frames with the same timestamps.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Info } from "@edge-vod/shared";
import { makeFixture } from "../helpers/fixtures.ts";
import { assertContinuous, framesOf, recordingViewer, steps, until, type Packet } from "../helpers/rtp-record.ts";
import { SdkClient } from "../helpers/sdk-client.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const FRAME_TICKS = 3000;
const REST_KEY = randomBytes(16).toString("hex");
const secret = randomBytes(24).toString("hex");

let edge: WranglerDev;
let mediaDir: string;
const sidecars: SidecarProcess[] = [];

before(async () => {
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-bseek-"));
  await makeFixture(mediaDir, "gop10.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=30"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=30"],
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p"],
    ...["-g", "300", "-keyint_min", "300", "-sc_threshold", "0", "-b:v", "300k"],
    ...["-c:a", "libopus", "-b:a", "32k", "-movflags", "+faststart"],
  ]);
  edge = await startWrangler({ sidecarUrl: "", secret, logLevel: "warn", vars: { VOD_LIVE_LOOP: "true", REST_API_KEY: REST_KEY } });
  for (const id of ["a", "b"]) {
    sidecars.push(await startSidecar({ secret, mediaDir, env: { EDGE_URL: edge.url, SIDECAR_ID: id, HEARTBEAT_MS: "300" } }));
  }
});

after(async () => {
  await edge?.stop();
  await Promise.all(sidecars.map((s) => s.stop()));
  await fs.rm(mediaDir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function rest(route: string, body: unknown, key = REST_KEY): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${edge.url}/rest-api${route}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function viewersOn(s: SidecarProcess): Promise<number> {
  return ((await (await signedFetch(secret, `${s.url}/v1/health`)).json()) as { viewers: number }).viewers;
}

async function join(name: string) {
  const client = await SdkClient.connect(edge.wsUrl);
  const viewer = await recordingViewer();
  const id = client.playStream({ name, sdp: viewer.offerSdp });
  const sdp = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id, { timeoutMs: 20_000 });
  await viewer.pc.setRemoteDescription({ type: "answer", sdp: String(sdp.data[1]) });
  await client.waitForStatus(id, "PLAYING", { timeoutMs: 20_000 });
  return {
    client,
    id,
    viewer,
    async close() {
      await viewer.pc.close();
      await client.close();
    },
  };
}

/** From the first keyframe at index `from` or after: how many frames came squeezed (a catch-up) before real time. */
function afterSeek(video: readonly Packet[], from: number): { keyAt: number; squeezed: number; frames: Packet[] } {
  const keyAt = video.findIndex((p, i) => i >= from && p.keyframe);
  const frames = framesOf(video, keyAt);
  const squeezed = steps(frames.map((p) => p.ts)).findIndex((d) => d >= FRAME_TICKS / 2);
  return { keyAt, squeezed, frames };
}

test("REST /vod/seek moves a vod-live:// broadcast for every viewer on both sidecars, in step, timestamps carrying on", async () => {
  const viewers: Awaited<ReturnType<typeof join>>[] = [];
  try {
    for (let i = 0; i < 4; i++) viewers.push(await join("vod-live://gop10.mp4"));
    const [onA, onB] = [await viewersOn(sidecars[0]!), await viewersOn(sidecars[1]!)];
    assert.ok(onA >= 1 && onB >= 1 && onA + onB === 4, `viewers on both sidecars (${onA} / ${onB})`);
    await until("2 s of video on every viewer", () => viewers.every((v) => framesOf(v.viewer.video).length >= 60));

    const marks = viewers.map((v) => v.viewer.video.length);
    const seek = await rest("/vod/seek", { uri: "vod-live://gop10.mp4", positionMs: 15_000 });
    assert.deepEqual(seek, { status: 200, body: { message: "Seek request is received", positionMs: 15_000, moved: 4 } });
    // The keyframe at 10 s, the frames up to where the broadcast is now squeezed, then on to the keyframe at 20 s.
    await until("the keyframe at 20 s on every viewer", () => viewers.every((v, k) => v.viewer.video.slice(marks[k]!).filter((p) => p.keyframe).length >= 2));
    const seen = viewers.map((v, k) => afterSeek(v.viewer.video, marks[k]!));
    for (const [k, s] of seen.entries()) {
      const video = viewers[k]!.viewer.video;
      const nextKey = framesOf(video.slice(s.keyAt, video.findIndex((p, i) => i > s.keyAt && p.keyframe))).length;
      // Every frame of the GOP, none skipped: the 150 before 15 s caught up, the rest in real time.
      const gapsOf = steps(s.frames.slice(0, nextKey + 1).map((p) => p.ts));
      assert.ok(Math.abs(nextKey - 300) <= 1, `viewer ${k}: ${nextKey} frames from the keyframe at 10 s to the one at 20 s; squeezed ${s.squeezed}; gaps ${JSON.stringify(gapsOf.slice(Math.max(0, s.squeezed - 3), s.squeezed + 40))}`);
      assert.ok(s.squeezed >= 140, `viewer ${k}: ${s.squeezed} frames caught up`);
      assertContinuous(viewers[k]!.viewer.video, `viewer ${k} video`);
      assertContinuous(viewers[k]!.viewer.audio, `viewer ${k} audio`);
    }
    // After the catch-up all four send the broadcast's frames, the same timestamps on both sidecars.
    await sleep(1000);
    const tails = viewers.map((v) => framesOf(v.viewer.video).slice(-30).map((p) => p.ts));
    const common = tails[0]!.filter((t) => tails.every((tail) => tail.includes(t)));
    assert.ok(common.length >= 20, `the viewers' last frames share their timestamps: ${common.length} of 30`);
  } finally {
    await Promise.all(viewers.map((v) => v.close()));
  }
});

test("REST /vod/seek by localStreamName moves a /vod/startup broadcast; refusals are 4xx with a body", async () => {
  const started = await rest("/vod/startup", { uri: "vod-live://gop10.mp4", localStreamName: "show", loop: true });
  assert.equal(started.status, 200, JSON.stringify(started.body));
  const v = await join("show");
  try {
    await until("video", () => framesOf(v.viewer.video).length >= 30);
    const mark = v.viewer.video.length;
    const seek = await rest("/vod/seek", { localStreamName: "show", positionMs: 25_000 });
    assert.equal(seek.status, 200, JSON.stringify(seek.body));
    assert.equal(seek.body.moved, 1);
    await until("the picture at 25 s", () => v.viewer.video.slice(mark).some((p) => p.keyframe) && framesOf(v.viewer.video, mark).length >= 200);
    const s = afterSeek(v.viewer.video, mark);
    assert.ok(s.squeezed >= 145, `caught up from the keyframe at 20 s: ${s.squeezed} frames`);
    assertContinuous(v.viewer.video, "video");
  } finally {
    await v.close();
  }
  assert.deepEqual(await rest("/vod/seek", { localStreamName: "show", positionMs: 40_000 }), { status: 400, body: { error: Info.POSITION_PAST_END } });
  assert.deepEqual(await rest("/vod/seek", { uri: "vod-live://nothing.mp4", positionMs: 0 }), { status: 404, body: { error: Info.STREAM_NOT_FOUND } });
  assert.deepEqual(await rest("/vod/seek", { localStreamName: "nobody", positionMs: 0 }), { status: 404, body: { error: Info.STREAM_NOT_FOUND } });
  assert.deepEqual(await rest("/vod/seek", { uri: "vod://gop10.mp4", positionMs: 0 }), { status: 400, body: { error: "uri must be vod-live://<file>" } });
  assert.deepEqual(await rest("/vod/seek", { positionMs: 0 }), { status: 400, body: { error: "localStreamName or uri is required" } });
  assert.equal((await rest("/vod/seek", { uri: "vod-live://gop10.mp4", positionMs: -1 })).status, 400);
  assert.equal((await rest("/vod/seek", { uri: "vod-live://gop10.mp4", positionMs: 0 }, "wrong")).status, 401);
  assert.equal((await rest("/vod/terminate", { localStreamName: "show" })).status, 200);
});
