// Seek, pause and resume of vod:// through the real edge (wrangler dev) and sidecar, with the Web SDK's frames
// (sendData, DataStatusEvent, notifyStreamEvent) from a Node stand-in and a werift peer that records every RTP packet.
// The file has keyframes 10 s apart: what a seek between them sends is told by the frames' timestamps (the catch-up
// frames before the position are squeezed together) and by where the keyframes are.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Info, VOD_STATE_EVENT_TYPE } from "@edge-vod/shared";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { makeFixture } from "../helpers/fixtures.ts";
import { SdkClient, type ServerFrame } from "../helpers/sdk-client.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";
import { assertContinuous, framesOf, recordingViewer, steps, until } from "../helpers/rtp-record.ts";

const FPS = 30;
const GOP_FRAMES = 300;
const DURATION_MS = 30_000;
const PAUSE_TIMEOUT_MS = 4000;
/** One frame at 30 fps in 90 kHz ticks; squeezed catch-up frames are 30 times closer. */
const FRAME_TICKS = 3000;

let sidecar: SidecarProcess;
let edge: WranglerDev;
let mediaDir: string;
/** The file's length as the server tells it (its longest track: a little over 30 s with Opus's last packet). */
let fileMs: number;

before(async () => {
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-seek-"));
  // 30 s, a keyframe every 10 s exactly, no B-frames, Opus sound (no transcode to wait for).
  await makeFixture(mediaDir, "gop10.mp4", [
    ...["-f", "lavfi", "-i", `testsrc2=size=320x180:rate=${FPS}:duration=30`],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=30"],
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p"],
    ...["-g", String(GOP_FRAMES), "-keyint_min", String(GOP_FRAMES), "-sc_threshold", "0", "-b:v", "300k"],
    ...["-c:a", "libopus", "-b:a", "32k", "-movflags", "+faststart"],
  ]);
  const file = await new LocalDiskAccess(mediaDir).open("gop10.mp4");
  fileMs = Math.round((await openMp4(file)).durationSec * 1000);
  await file.close();
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret, mediaDir, env: { VOD_PAUSE_TIMEOUT_MS: String(PAUSE_TIMEOUT_MS) } });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret, vars: { VOD_LIVE_LOOP: "gop10.mp4" } });
});

after(async () => {
  await edge?.stop();
  await sidecar?.stop();
  await fs.rm(mediaDir, { recursive: true, force: true });
});

type Viewer = Awaited<ReturnType<typeof recordingViewer>>;

async function play(client: SdkClient, name: string, custom?: unknown): Promise<{ id: string; viewer: Viewer }> {
  const viewer = await recordingViewer();
  const id = client.playStream({ name, sdp: viewer.offerSdp, ...(custom !== undefined ? { custom } : {}) });
  const sdp = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id, { timeoutMs: 20_000, label: "setRemoteSDP" });
  await viewer.pc.setRemoteDescription({ type: "answer", sdp: String(sdp.data[1]) });
  await client.waitForStatus(id, "PLAYING", { timeoutMs: 20_000 });
  return { id, viewer };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));






const stateEvents = (client: SdkClient, id: string, from = 0) =>
  client.frames
    .slice(from)
    .filter((f: ServerFrame) => f.message === "notifyStreamEvent" && (f.data[0] as { mediaSessionId?: string }).mediaSessionId === id)
    .map((f) => f.data[0] as { mediaSessionId: string; type: string; payload: { edgeVod: { state: string; positionMs: number; durationMs: number } } });

test("a seek between keyframes: the exact DataStatusEvent, frames from the keyframe before squeezed up to the position, then real time; timestamps and sequence numbers continuous", async () => {
  const client = await SdkClient.connect(edge.wsUrl);
  const { id, viewer } = await play(client, "vod://gop10.mp4");
  try {
    await until("3 s of video", () => framesOf(viewer.video).length >= 90);
    const from = viewer.video.length;
    const answer = await client.sendData({ edgeVod: { op: "seek", mediaSessionId: id, positionMs: 14_300 } });
    assert.ok(Math.abs(fileMs - DURATION_MS) < 100, `durationMs ${fileMs}`);
    const raw = client.frames.find((f) => f.message === "DataStatusEvent" && (f.data[0] as { operationId: string }).operationId === answer.operationId)!.raw;
    assert.equal(
      raw,
      JSON.stringify({
        message: "DataStatusEvent",
        data: [{ operationId: answer.operationId, status: "ACCEPTED", payload: { edgeVod: { state: "playing", positionMs: 14_300, durationMs: fileMs } } }],
      }),
    );
    // The keyframe at 10 s, then on to the one at 20 s: every frame between them, none skipped.
    await until("the keyframe at 20 s", () => viewer.video.slice(from).filter((p) => p.keyframe).length >= 2, 30_000).catch((err) => {
      const f = framesOf(viewer.video, from);
      throw new Error(`${String(err)}: ${f.length} frames, keyframes at ${viewer.video.slice(from).flatMap((p, i) => (p.keyframe ? [i] : [])).join(",")}, status ${client.streamStatus(id)}`);
    });
    const after = viewer.video.slice(from);
    const k1 = after.findIndex((p) => p.keyframe);
    const k2 = after.findIndex((p, i) => i > k1 && p.keyframe);
    const gop = framesOf(after.slice(k1, k2));
    assert.equal(gop.length, GOP_FRAMES, "frames from the keyframe at 10 s to the one at 20 s");
    // 14.3 s is frame 429: the 129 frames before it go out 30 times faster, the rest one frame apart.
    const gaps = steps(gop.map((p) => p.ts));
    const squeezed = gaps.filter((d) => d < FRAME_TICKS / 2).length;
    assert.ok(squeezed >= 127 && squeezed <= 130, `squeezed frame steps: ${squeezed}`);
    assert.ok(gaps.slice(135).every((d) => Math.abs(d - FRAME_TICKS) <= 2), "real-time frame steps after the position");
    assertContinuous(viewer.video, "video");
    assertContinuous(viewer.audio, "audio");
    // Audio from the position on, in step with the picture: its first packet after the seek is timed with frame 429.
    const events = stateEvents(client, id);
    assert.ok(events.length >= 1, "state events");
    assert.ok(events.every((e) => e.type === VOD_STATE_EVENT_TYPE && e.payload.edgeVod.durationMs === fileMs));
    // About once a second while playing, positions moving on from the seek.
    const seen = stateEvents(client, id).length;
    await until("two more state events", () => stateEvents(client, id).length >= seen + 2, 10_000);
    const later = stateEvents(client, id).slice(seen);
    assert.ok(later.every((e) => e.payload.edgeVod.state === "playing" && e.payload.edgeVod.positionMs >= 14_300));
    assert.ok(later[1]!.payload.edgeVod.positionMs > later[0]!.payload.edgeVod.positionMs, "position moves on");
  } finally {
    await viewer.pc.close();
    await client.close();
  }
});

test("seeking across the file, back and forth, then past its end: every seek starts at the keyframe before it; past the end is FAILED with an info and playback goes on", async () => {
  const client = await SdkClient.connect(edge.wsUrl);
  const { id, viewer } = await play(client, "vod://gop10.mp4");
  try {
    await until("1 s of video", () => framesOf(viewer.video).length >= 30);
    for (const positionMs of [25_000, 2_000, 19_990, 0]) {
      const from = viewer.video.length;
      const answer = await client.sendData({ edgeVod: { op: "seek", mediaSessionId: id, positionMs } });
      const answeredAt = performance.now();
      assert.equal(answer.status, "ACCEPTED");
      assert.deepEqual(answer.payload, { edgeVod: { state: "playing", positionMs, durationMs: fileMs } });
      const squeezedWanted = Math.round(((positionMs % 10_000) * FPS) / 1000);
      await until(`frames after the seek to ${positionMs}`, () => framesOf(viewer.video, from).length >= squeezedWanted + 20, 20_000);
      // What arrived before the answer may still be of the old position; from the keyframe on it is the new one.
      const k = viewer.video.slice(from).findIndex((p) => p.keyframe);
      assert.ok(viewer.video.slice(from, from + k).every((p) => p.at <= answeredAt), `the seek to ${positionMs} starts with a keyframe`);
      const after = viewer.video.slice(from + k);
      const gaps = steps(framesOf(after).map((p) => p.ts)).slice(0, squeezedWanted + 10);
      const squeezed = gaps.filter((d) => d < FRAME_TICKS / 2).length;
      assert.ok(Math.abs(squeezed - squeezedWanted) <= 2, `seek to ${positionMs}: ${squeezed} squeezed frames, wanted ${squeezedWanted}`);
    }
    const past = await client.sendData({ edgeVod: { op: "seek", mediaSessionId: id, positionMs: 60_000 } });
    assert.deepEqual({ status: past.status, info: past.info }, { status: "FAILED", info: Info.POSITION_PAST_END });
    const count = viewer.video.length;
    await until("playback going on after the refused seek", () => viewer.video.length > count + 30);
    assert.equal(client.streamStatus(id), "PLAYING");
    assertContinuous(viewer.video, "video");
    assertContinuous(viewer.audio, "audio");
  } finally {
    await viewer.pc.close();
    await client.close();
  }
});

test("pause stops the media without ending the stream, resume goes on from the paused position; a seek while paused sends the new picture and stays paused", async () => {
  const client = await SdkClient.connect(edge.wsUrl);
  const { id, viewer } = await play(client, "vod://gop10.mp4");
  try {
    await until("2 s of video", () => framesOf(viewer.video).length >= 60);
    const paused = await client.sendData({ edgeVod: { op: "pause", mediaSessionId: id } });
    assert.equal(paused.status, "ACCEPTED");
    const at = (paused.payload as { edgeVod: { state: string; positionMs: number } }).edgeVod;
    assert.equal(at.state, "paused");
    await sleep(300);
    const held = viewer.video.length;
    const heldAudio = viewer.audio.length;
    await sleep(1500);
    assert.equal(viewer.video.length, held, "no video while paused");
    assert.equal(viewer.audio.length, heldAudio, "no audio while paused");
    const state = await client.sendData({ edgeVod: { op: "state", mediaSessionId: id } });
    assert.deepEqual(state.payload, { edgeVod: { state: "paused", positionMs: at.positionMs, durationMs: fileMs } });

    // Seek while paused: the keyframe before 5 s and the frames up to it, then nothing more.
    const seek = await client.sendData({ edgeVod: { op: "seek", mediaSessionId: id, positionMs: 5000 } });
    assert.deepEqual(seek.payload, { edgeVod: { state: "paused", positionMs: 5000, durationMs: fileMs } });
    await until("the picture at 5 s", () => framesOf(viewer.video, held).length >= 151);
    await sleep(1000);
    const shown = framesOf(viewer.video, held);
    assert.equal(shown.length, 151, "frames 0 to 150, and no more while paused");
    assert.ok(viewer.video[held]!.keyframe);

    const before = viewer.video.length;
    const resumed = await client.sendData({ edgeVod: { op: "resume", mediaSessionId: id } });
    assert.deepEqual(resumed.payload && (resumed.payload as { edgeVod: { state: string } }).edgeVod.state, "playing");
    await until("playback after resume", () => framesOf(viewer.video, before).length >= 30);
    // Frames on from 5 s, one frame apart: no keyframe needed, no jump.
    const next = framesOf(viewer.video, before);
    assert.ok(!viewer.video[before]!.keyframe, "resume continues the GOP");
    assert.ok(steps(next.map((p) => p.ts)).every((d) => Math.abs(d - FRAME_TICKS) <= 2));
    assertContinuous(viewer.video, "video");
    assertContinuous(viewer.audio, "audio");
    assert.equal(client.streamStatus(id), "PLAYING");
    assert.equal(client.statusEvents(id).filter((e) => e.status !== "PLAYING").length, 0, "no other status while paused");
    const kinds = stateEvents(client, id).map((e) => e.payload.edgeVod.state);
    assert.ok(kinds.includes("paused") && kinds.lastIndexOf("playing") > kinds.indexOf("paused"), `state events: ${kinds.join(",")}`);
  } finally {
    await viewer.pc.close();
    await client.close();
  }
});

test("a pause longer than VOD_PAUSE_TIMEOUT_MS ends the stream with STOPPED and an info", async () => {
  const client = await SdkClient.connect(edge.wsUrl);
  const { id, viewer } = await play(client, "vod://gop10.mp4");
  try {
    await until("video", () => framesOf(viewer.video).length >= 10);
    assert.equal((await client.sendData({ edgeVod: { op: "pause", mediaSessionId: id } })).status, "ACCEPTED");
    const stopped = await client.waitForStatus(id, ["STOPPED", "FAILED"], { timeoutMs: PAUSE_TIMEOUT_MS + 15_000 });
    assert.deepEqual({ status: stopped.status, info: stopped.info }, { status: "STOPPED", info: Info.STOPPED_BY_PAUSE_TIMEOUT });
    const gone = await client.sendData({ edgeVod: { op: "state", mediaSessionId: id } });
    assert.deepEqual({ status: gone.status, info: gone.info }, { status: "FAILED", info: Info.STREAM_NOT_FOUND });
  } finally {
    await viewer.pc.close();
    await client.close();
  }
});

test("createStream custom.edgeVod.startMs starts at that picture; malformed start positions and ones past the end are FAILED", async () => {
  const client = await SdkClient.connect(edge.wsUrl);
  const { id, viewer } = await play(client, "vod://gop10.mp4", { edgeVod: { startMs: 20_500 } });
  try {
    await until("frames", () => framesOf(viewer.video).length >= 40);
    assert.ok(viewer.video[0]!.keyframe, `first packet: ${JSON.stringify(viewer.video.slice(0, 3))}`);
    const squeezed = steps(framesOf(viewer.video).map((p) => p.ts)).slice(0, 30).filter((d) => d < FRAME_TICKS / 2).length;
    assert.ok(Math.abs(squeezed - 15) <= 2, `frames 600 to 615 squeezed: ${squeezed}`);
    await until("a state event", () => stateEvents(client, id).length > 0);
    assert.ok(stateEvents(client, id)[0]!.payload.edgeVod.positionMs >= 20_500);
  } finally {
    await viewer.pc.close();
  }
  for (const [custom, info] of [
    [{ edgeVod: { startMs: 40_000 } }, Info.POSITION_PAST_END],
    [{ edgeVod: { startMs: -5 } }, Info.BAD_VOD_OPERATION],
    [{ edgeVod: { startMs: "10s" } }, Info.BAD_VOD_OPERATION],
  ] as const) {
    const v = await recordingViewer();
    const bad = client.playStream({ name: "vod://gop10.mp4", sdp: v.offerSdp, custom });
    const failed = await client.waitForStatus(bad, ["FAILED", "PLAYING"], { timeoutMs: 20_000 });
    assert.deepEqual({ status: failed.status, info: failed.info }, { status: "FAILED", info }, JSON.stringify(custom));
    await v.pc.close();
  }
  await client.close();
});

test("refused: another session's stream, vod-live:// and malformed ops; a payload that is not ours is ACCEPTED", async () => {
  const owner = await SdkClient.connect(edge.wsUrl);
  const other = await SdkClient.connect(edge.wsUrl);
  const { id, viewer } = await play(owner, "vod://gop10.mp4");
  const live = await play(other, "vod-live://gop10.mp4");
  try {
    const expect = async (client: SdkClient, payload: unknown, info: string) => {
      const a = await client.sendData(payload);
      assert.deepEqual({ status: a.status, info: a.info }, { status: "FAILED", info }, JSON.stringify(payload));
    };
    await expect(other, { edgeVod: { op: "pause", mediaSessionId: id } }, Info.STREAM_NOT_FOUND);
    await expect(other, { edgeVod: { op: "seek", mediaSessionId: live.id, positionMs: 1000 } }, Info.NOT_SUPPORTED);
    await expect(other, { edgeVod: { op: "pause", mediaSessionId: live.id } }, Info.NOT_SUPPORTED);
    await expect(owner, { edgeVod: { op: "jump", mediaSessionId: id } }, Info.BAD_VOD_OPERATION);
    await expect(owner, { edgeVod: { op: "seek", mediaSessionId: id } }, Info.BAD_VOD_OPERATION);
    await expect(owner, { edgeVod: { op: "seek", mediaSessionId: id, positionMs: -1 } }, Info.BAD_VOD_OPERATION);
    await expect(owner, { edgeVod: "pause" }, Info.BAD_VOD_OPERATION);
    const theirs = await owner.sendData({ hello: 1 });
    assert.deepEqual(theirs, { operationId: theirs.operationId, status: "ACCEPTED" });
    // The owner's stream was not touched by any of it.
    const count = viewer.video.length;
    await until("the owner's playback going on", () => viewer.video.length > count + 30);
    assert.equal(owner.streamStatus(id), "PLAYING");
  } finally {
    await viewer.pc.close();
    await live.viewer.pc.close();
    await owner.close();
    await other.close();
  }
});

test("a vod-live:// joiner mid-GOP gets the frames since the keyframe squeezed, then the shared frames, on the broadcast's clock and in step with an earlier viewer", async () => {
  const first = await SdkClient.connect(edge.wsUrl);
  const late = await SdkClient.connect(edge.wsUrl);
  const a = await play(first, "vod-live://gop10.mp4");
  try {
    // Well into a 10-s GOP: a joiner waiting for the next keyframe would see nothing for seconds.
    await until("5 s of the broadcast", () => framesOf(a.viewer.video).length >= 150);
    const b = await play(late, "vod-live://gop10.mp4");
    try {
      await until("the joiner's frames", () => framesOf(b.viewer.video).length >= 400, 30_000);
      const frames = framesOf(b.viewer.video);
      assert.ok(b.viewer.video[0]!.keyframe, "the joiner starts with a keyframe");
      const gaps = steps(frames.map((p) => p.ts));
      const squeezed = gaps.findIndex((d) => d >= FRAME_TICKS / 2);
      assert.ok(squeezed >= 30, `squeezed catch-up frames: ${squeezed}`);
      // (The step where the catch-up meets the broadcast is anything up to a frame.)
      const odd = gaps.flatMap((d, i) => (i > squeezed && Math.abs(d - FRAME_TICKS) > 2 ? [`${i}:${d}`] : []));
      assert.deepEqual(odd, [], `one frame apart after the catch-up (${squeezed} squeezed)`);
      // After the catch-up the joiner's frames are the earlier viewer's, timestamp for timestamp.
      const aTs = new Set(framesOf(a.viewer.video).map((p) => p.ts));
      const shared = frames.slice(squeezed + 1);
      const strangers = shared.filter((p) => !aTs.has(p.ts));
      assert.ok(
        shared.length > 100 && strangers.length === 0,
        `the joiner's frames after the catch-up are the broadcast's: ${strangers.length} of ${shared.length} not, first ${JSON.stringify(strangers.slice(0, 3))}; squeezed ${squeezed}; joiner ${JSON.stringify(frames.slice(squeezed - 2, squeezed + 3).map((p) => p.ts))}; first viewer near ${JSON.stringify([...aTs].filter((t) => Math.abs(t - frames[squeezed]!.ts) < 10000))}`,
      );
      // The keyframes of the broadcast are where the first viewer has them (10 s apart), none added for the joiner.
      const aKeys = a.viewer.video.filter((p) => p.keyframe).map((p) => p.ts);
      const bKeys = b.viewer.video.filter((p) => p.keyframe).slice(1).map((p) => p.ts);
      assert.ok(bKeys.every((t) => aKeys.includes(t)));
      assertContinuous(b.viewer.video, "joiner video");
      assertContinuous(b.viewer.audio, "joiner audio");
      // Sound from the join, on the same clock: the joiner's first audio packet is within a frame or two of its
      // first video frame's time (48 kHz vs 90 kHz ticks of one media clock).
      const firstAudioMs = b.viewer.audio[0]!.ts / 48;
      const firstVideoMs = frames[0]!.ts / 90;
      assert.ok(Math.abs(firstAudioMs - firstVideoMs) < 300, `first audio at ${firstAudioMs} ms, first video at ${firstVideoMs} ms`);
    } finally {
      await b.viewer.pc.close();
    }
  } finally {
    await a.viewer.pc.close();
    await first.close();
    await late.close();
  }
});
