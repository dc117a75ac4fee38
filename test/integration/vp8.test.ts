// VP8 ("Every browser": clients without H.264 play and publish with VP8) through the real edge (wrangler dev) and
// sidecar, with werift clients speaking the Web SDK's frames: a VP8-only viewer of an H.264 file gets the file's VP8
// copy, made once; vod-live keeps H.264 and VP8 viewers on one clock; a VP8 publish is recorded as VP8 and plays
// back to both kinds of viewer; offers of codecs we do not serve are refused; broken VP8 input is survived.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { RTCRtpCodecParameters, type RTCPeerConnection, type RtpPacket } from "werift";
import { Info } from "@edge-vod/shared";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import type { Mp4Index } from "../../sidecar/src/mp4/types.ts";
import { isH264KeyframeStart } from "../../sidecar/src/rtp/h264-rtp.ts";
import { isVp8KeyframeStart } from "../../sidecar/src/rtp/vp8-rtp.ts";
import type { MediaPacket } from "../../sidecar/src/vod/packet-source.ts";
import { FFPROBE, makeFixture } from "../helpers/fixtures.ts";
import { assertWholeFile } from "../helpers/full-play.ts";
import { SdkClient, type StatusEvent } from "../helpers/sdk-client.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import { mediaZeroAt } from "../helpers/vod-live-viewer.ts";
import { makeVp8Fixture } from "../helpers/vp8-fixture.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";
import { createWeriftPublisher } from "../helpers/werift-publisher.ts";
import { createWeriftViewer, H264_42E01F, vp8Codec, type Received } from "../helpers/werift-viewer.ts";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FRAME_TICKS = 3000; // 30 fps at 90 kHz
const FRAME_MS = 1000 / 30;
const VP9 = () => new RTCRtpCodecParameters({ mimeType: "video/VP9", clockRate: 90000, rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }] });
const AV1 = () => new RTCRtpCodecParameters({ mimeType: "video/AV1", clockRate: 90000, rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }] });

let sidecar: SidecarProcess;
let edge: WranglerDev;
let mediaDir: string;
let recordDir: string;
let sourceDir: string;
/** 6 s H.264 + AAC, keyframes at 0 and 5 s: what a VP8-only browser cannot play as it is. */
let h264Aac: string;
/** 10 s H.264 + Opus, for vod-live. */
let liveFile: string;
/** 3 s VP8, no sound, in the media folder: goes out as it is to VP8 viewers. */
let vp8File: string;
/** What the VP8 publishers send: 8 s VP8 (keyframe every second) and 8 s of Opus beside it. */
let vp8Source: string;
let opusSource: string;

before(async () => {
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-vp8-media-"));
  recordDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-vp8-records-"));
  sourceDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-vp8-source-"));
  [h264Aac, liveFile, vp8File, vp8Source, opusSource] = await Promise.all([
    makeFixture(mediaDir, "h264-aac.mp4", [
      ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=6"],
      ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6"],
      ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "150", "-sc_threshold", "0", "-bf", "0"],
      ...["-c:a", "aac", "-b:a", "64k", "-ac", "2"],
    ]),
    makeFixture(mediaDir, "live.mp4", [
      ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=10"],
      ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10"],
      ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", "-sc_threshold", "0", "-bf", "0"],
      ...["-c:a", "libopus", "-b:a", "64k", "-ac", "2"],
    ]),
    makeVp8Fixture(mediaDir, "vp8-only.mp4", { seconds: 3 }),
    makeVp8Fixture(sourceDir, "vp8-source.mp4", { seconds: 8, keyframeEverySec: 1 }),
    makeFixture(sourceDir, "opus-source.mp4", [
      ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=8"],
      ...["-c:a", "libopus", "-b:a", "64k", "-ac", "2"],
    ]),
  ]);
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({
    secret,
    mediaDir,
    env: { RECORD_DIR: recordDir, RECORD_TEMPLATE: "rec-{mediaSessionId}-{videoCodec}" },
  });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
});

after(async () => {
  await edge?.stop();
  await sidecar?.stop();
  await Promise.all([mediaDir, recordDir, sourceDir].map((d) => d && fs.rm(d, { recursive: true, force: true })));
});

// ---------------------------------------------------------------------------------------------------------------
// Helpers

async function connect(): Promise<SdkClient> {
  try {
    return await SdkClient.connect(edge.wsUrl);
  } catch (err) {
    // The edge's last words say why the upgrade failed.
    throw new Error(`${String(err)}; the edge's output ends:\n${edge.output().slice(-4000)}`);
  }
}

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

async function indexOf(file: string): Promise<Mp4Index> {
  const f = await new LocalDiskAccess(path.dirname(file)).open(path.basename(file));
  try {
    return await openMp4(f);
  } finally {
    await f.close();
  }
}

/** Presentation times of a file's video frames, 90 kHz, from its first frame, in presentation order. */
function videoTimes(index: Mp4Index): { times: number[]; keyTimes: number[] } {
  const v = index.video!;
  const s = v.samples;
  const pts = (i: number) => s.dts[i]! + s.ctsOffset[i]!;
  const t0 = pts(0);
  const order = Array.from({ length: s.count }, (_, i) => i).sort((a, b) => pts(a) - pts(b));
  const ticks = (i: number) => Math.round(((pts(i) - t0) * 90000) / v.timescale);
  return { times: order.map(ticks), keyTimes: order.filter((i) => s.sync[i] === 1).map(ticks) };
}

/** The video section's rtpmap codec names of an SDP (upper case). */
function videoCodecsOf(sdp: string): string[] {
  const video = sdp.split(/(?=^m=)/m).find((s) => s.startsWith("m=video")) ?? "";
  return [...video.matchAll(/^a=rtpmap:\d+ ([^/]+)\//gm)].map((m) => m[1]!.toUpperCase());
}

interface Keyframes {
  /** RTP timestamps of the frames whose first packet starts a keyframe, in sequence order. */
  timestamps: number[];
  /** Wall-clock arrival (ms since epoch) of each. */
  arrivals: number[];
}

interface WirePacket {
  ts: number;
  marker: boolean;
  key: boolean;
  arrival: number;
  payload: Buffer;
}

/**
 * What a viewer received, by sequence number: a packet that came twice (a retransmission after a NACK, when this
 * busy process let the kernel drop a burst) counts once and in its place, and packets never received show as gaps.
 * Subscribe before the answer is applied.
 */
function watchWire(pc: RTCPeerConnection, codec: Codec) {
  const isKey = codec === "vp8" ? isVp8KeyframeStart : isH264KeyframeStart;
  const video = new Map<number, WirePacket>();
  const audio = new Map<number, number>();
  let duplicates = 0;
  // Extended sequence numbers: 16 bits unwrapped around the highest seen so far.
  const unwrapper = () => {
    let top: number | undefined;
    return (seq: number) => {
      if (top === undefined) return (top = seq + 0x10000);
      let d = (seq - top) & 0xffff;
      if (d >= 0x8000) d -= 0x10000;
      const ext = top + d;
      if (ext > top) top = ext;
      return ext;
    };
  };
  const vSeq = unwrapper();
  const aSeq = unwrapper();
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      const { sequenceNumber, timestamp, marker } = rtp.header;
      if (track.kind === "video") {
        const ext = vSeq(sequenceNumber);
        if (video.has(ext)) return void duplicates++;
        video.set(ext, { ts: timestamp, marker, key: isKey(rtp.payload), arrival: performance.timeOrigin + performance.now(), payload: Buffer.from(rtp.payload) });
      } else {
        const ext = aSeq(sequenceNumber);
        if (audio.has(ext)) return void duplicates++;
        audio.set(ext, timestamp);
      }
    });
  });
  const ordered = () => [...video.entries()].sort((a, b) => a[0] - b[0]);
  return {
    /** Like the viewer's Received, each packet once, in sequence order. */
    received(): Received {
      const v = ordered();
      const frames = v.filter(([, p]) => p.marker);
      return {
        videoFrameTimestamps: frames.map(([, p]) => p.ts),
        videoFrameArrivals: frames.map(([, p]) => p.arrival),
        firstVideoPayload: v[0]?.[1].payload,
        videoPackets: v.length,
        audioTimestamps: [...audio.entries()].sort((a, b) => a[0] - b[0]).map(([, t]) => t),
      };
    },
    keyframes(): Keyframes {
      // One per frame (an H.264 keyframe may have its parameter sets and its IDR each in a packet that says so).
      const seen = new Set<number>();
      const keys = ordered().filter(([, p]) => p.key && !seen.has(p.ts) && !!seen.add(p.ts));
      return { timestamps: keys.map(([, p]) => p.ts), arrivals: keys.map(([, p]) => p.arrival) };
    },
    /** Video packets missing between frame i-1's marker and frame i's (the received() frame indexes). */
    lostBeforeFrame(): number[] {
      const markers = ordered().filter(([, p]) => p.marker).map(([ext]) => ext);
      return markers.map((ext, i) => {
        if (i === 0) return 0;
        let have = 0;
        for (let e = markers[i - 1]! + 1; e <= ext; e++) if (video.has(e)) have++;
        return ext - markers[i - 1]! - have;
      });
    },
    stats() {
      const exts = [...video.keys()];
      const span = exts.length ? Math.max(...exts) - Math.min(...exts) + 1 : 0;
      return { lost: span - video.size, duplicates };
    },
  };
}

type Codec = "vp8" | "h264";

/** A werift viewer offering one video codec (and Opus), what it receives watched packet by packet. */
async function viewerFor(video: RTCRtpCodecParameters, codec: Codec) {
  const viewer = await createWeriftViewer({ video });
  const wire = watchWire(viewer.pc, codec);
  return { ...viewer, wire };
}

/**
 * Sends playStream for `name` from `client` and applies the answer; resolves at PLAYING, or with the FAILED event
 * when the server refuses.
 */
async function startPlay(client: SdkClient, viewer: Awaited<ReturnType<typeof viewerFor>>, name: string, label: string) {
  const id = client.playStream({ name, sdp: viewer.offerSdp });
  const first = await client.waitFor(
    (f) =>
      (f.message === "setRemoteSDP" && f.data[0] === id) ||
      (f.message === "notifyStreamStatusEvent" && (f.data[0] as StatusEvent).mediaSessionId === id && (f.data[0] as StatusEvent).status === "FAILED"),
    { timeoutMs: 30_000, label: `answer for ${label}` },
  );
  if (first.message !== "setRemoteSDP") return { id, answerSdp: undefined, failed: first.data[0] as StatusEvent };
  const answerSdp = String(first.data[1]);
  await viewer.setAnswer(answerSdp);
  const st = await client.waitForStatus(id, ["PLAYING", "FAILED"], { timeoutMs: 30_000 });
  return { id, answerSdp, failed: st.status === "FAILED" ? st : undefined };
}

interface Played {
  received: Received;
  keyframes: Keyframes;
  answerSdp: string;
  last: StatusEvent;
}

/** Plays `name` to its end (STOPPED or FAILED) with a viewer offering only `video`. */
async function playToEnd(name: string, video: RTCRtpCodecParameters, codec: Codec, timeoutMs = 60_000): Promise<Played> {
  const client = await connect();
  const viewer = await viewerFor(video, codec);
  try {
    const started = await startPlay(client, viewer, name, `${codec} viewer of ${name}`);
    assert.equal(started.failed, undefined, `${codec} viewer of ${name}: ${JSON.stringify(started.failed)}`);
    const last = await client.waitForStatus(started.id, ["STOPPED", "FAILED"], { timeoutMs });
    // The last packets may still be on their way.
    await sleep(300);
    const wire = viewer.wire.stats();
    // Not asserted (the kernel may drop a burst for this busy process), but it tells such a failure from the server's.
    if (wire.lost > 0 || wire.duplicates > 0) console.warn(`${codec} viewer of ${name}: ${wire.lost} video packets never arrived, ${wire.duplicates} came twice`);
    return { received: viewer.wire.received(), keyframes: viewer.wire.keyframes(), answerSdp: started.answerSdp!, last };
  } finally {
    await Promise.allSettled([viewer.close(), client.close()]);
  }
}

/** The cache folder's finished copies (not .part/.tmp), with their index. */
async function cachedCopies(): Promise<{ file: string; index: Mp4Index }[]> {
  const names = (await fs.readdir(sidecar.cacheDir)).filter((n) => n.endsWith(".mp4") && !n.startsWith("."));
  return Promise.all(names.map(async (n) => ({ file: path.join(sidecar.cacheDir, n), index: await indexOf(path.join(sidecar.cacheDir, n)) })));
}

interface Probe {
  streams: { codec_name: string; codec_type: string; nb_read_frames?: string; duration?: string; start_time?: string }[];
  format: { duration: string };
}

async function probe(file: string): Promise<Probe> {
  const { stdout } = await run(FFPROBE, ["-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", file]);
  return JSON.parse(stdout) as Probe;
}

/** The first video packet ffprobe reads: must be a keyframe for a file that plays from its start. */
async function firstVideoPacketIsKey(file: string): Promise<boolean> {
  const { stdout } = await run(FFPROBE, ["-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_entries", "packet=flags", "-of", "csv=p=0", file]);
  return stdout.trim().startsWith("K");
}

async function healthOk(): Promise<boolean> {
  const res = await signedFetch(sidecar.secret, `${sidecar.url}/v1/health`);
  await res.arrayBuffer();
  return res.status === 200;
}

/** Publishes `pub` as `name` through `client`; resolves at PUBLISHING with the mediaSessionId and the answer. */
async function startPublish(client: SdkClient, pub: Awaited<ReturnType<typeof createWeriftPublisher>>, name: string) {
  const id = client.publishStream({ name, sdp: pub.offerSdp, record: true });
  const answer = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id, { timeoutMs: 30_000, label: `publish answer for ${name}` });
  const answerSdp = String(answer.data[1]);
  await pub.setAnswer(answerSdp);
  await client.waitForStatus(id, "PUBLISHING", { timeoutMs: 30_000 });
  return { id, answerSdp };
}

// ---------------------------------------------------------------------------------------------------------------

describe("vod:// to a VP8-only viewer", () => {
  test("an H.264+AAC file: PLAYING, every frame of its VP8 copy at the copy's times, keyframes where the copy has them, Opus for the whole file, STOPPED; prepared once", async () => {
    const before = await sidecar.prepareStats();
    const vp8 = await playToEnd("vod://h264-aac.mp4", vp8Codec(), "vp8");
    assert.equal(vp8.last.status, "STOPPED", `ended with ${JSON.stringify(vp8.last)}`);
    assert.deepEqual(videoCodecsOf(vp8.answerSdp), ["VP8"], "the answer's video is VP8");

    // The copy is on disk once its prepare finished (it was played while it grew).
    await until("the prepares to finish", async () => (await sidecar.prepareStats()).running === 0, 60_000);
    const afterFirst = await sidecar.prepareStats();
    const copies = await cachedCopies();
    const vp8Copies = copies.filter((c) => c.index.video?.codec.startsWith("vp08"));
    assert.equal(vp8Copies.length, 1, `one VP8 copy in the cache: ${copies.map((c) => `${path.basename(c.file)} ${c.index.video?.codec ?? "-"}/${c.index.audio?.codec ?? "-"}`).join(", ")}`);
    const copy = vp8Copies[0]!;
    assert.equal(copy.index.audio, undefined, "the VP8 copy is picture only");
    // An AAC file's sound is its Opus copy, which H.264 viewers share: the VP8 copy and that one, nothing else.
    const opusCopies = copies.filter((c) => !c.index.video && c.index.audio?.codec === "opus");
    assert.equal(opusCopies.length, 1, "one Opus copy of the AAC sound");
    assert.equal(afterFirst.prepares - before.prepares, 2, "two prepares: the VP8 picture and the Opus sound");
    assert.equal(copies.length, 2, "nothing else was prepared");

    // Every frame of the copy at its presentation time (and the Opus sound for the file's length).
    await assertWholeFile(vp8.received, copy.file);
    // The copy keeps the file's own frames and times: the sound, from elsewhere, stays in step with the picture.
    const source = await indexOf(h264Aac);
    const copyTimes = videoTimes(copy.index);
    assert.deepEqual(copyTimes.times, videoTimes(source).times, "the VP8 copy has every frame of the file at the file's times");
    const audio = vp8.received.audioTimestamps;
    const audioSec = ((audio.at(-1)! - audio[0]! + 960) >>> 0) / 48000;
    assert.ok(Math.abs(audioSec - source.durationSec) <= 0.2, `Opus covers ${audioSec} s of the file's ${source.durationSec} s`);

    // Decodable from the first packet, and keyframes exactly where the copy says.
    assert.ok(vp8.received.firstVideoPayload && isVp8KeyframeStart(vp8.received.firstVideoPayload), "the first video packet starts a VP8 keyframe");
    const t0 = vp8.received.videoFrameTimestamps[0]!;
    const gotKeys = vp8.keyframes.timestamps.map((t) => (t - t0) >>> 0);
    assert.deepEqual(gotKeys, copyTimes.keyTimes, "the frames that start with a VP8 keyframe are the copy's sync samples");
    // The recipe: keyframes at 0, 0.25, 0.5 and 1 s, then at least every 2 s (a PLI or a join waits at most 2 s), though
    // the file itself has one only at 5 s.
    const keyFrames = copyTimes.keyTimes.map((t) => Math.round(t / FRAME_TICKS));
    assert.deepEqual(keyFrames.slice(0, 4), [0, 8, 15, 30], `the copy's first keyframes are at 0, 0.25, 0.5 and 1 s: ${keyFrames.join(",")}`);
    const ends = [...keyFrames, copyTimes.times.length];
    for (let i = 1; i < ends.length; i++) assert.ok(ends[i]! - ends[i - 1]! <= 60, `keyframes at most 2 s apart: ${keyFrames.join(",")} of ${copyTimes.times.length} frames`);

    // A second VP8 viewer, and an H.264 viewer, at once: the copies are reused, nothing is prepared again.
    const [again, h264] = await Promise.all([
      playToEnd("vod://h264-aac.mp4", vp8Codec(), "vp8"),
      playToEnd("vod://h264-aac.mp4", H264_42E01F, "h264"),
    ]);
    const afterAll = await sidecar.prepareStats();
    assert.equal(afterAll.prepares, afterFirst.prepares, "no new prepare for the second VP8 viewer nor the H.264 viewer");
    assert.ok(afterAll.hits >= afterFirst.hits + 2, `cache hits: ${afterFirst.hits} → ${afterAll.hits}`);

    assert.equal(again.last.status, "STOPPED");
    assert.deepEqual(videoCodecsOf(again.answerSdp), ["VP8"]);
    await assertWholeFile(again.received, copy.file);
    assert.ok(again.received.firstVideoPayload && isVp8KeyframeStart(again.received.firstVideoPayload), "the second VP8 viewer starts at a keyframe");

    assert.equal(h264.last.status, "STOPPED");
    assert.deepEqual(videoCodecsOf(h264.answerSdp), ["H264"], "the H.264 viewer's answer is H.264 alone");
    assert.ok(h264.received.firstVideoPayload && isH264KeyframeStart(h264.received.firstVideoPayload), "the H.264 viewer starts with an H.264 keyframe");
    // The file's own H.264: every frame at the file's times, keyframes only at 0 and 5 s as in the file.
    await assertWholeFile(h264.received, h264Aac);
    const h0 = h264.received.videoFrameTimestamps[0]!;
    assert.deepEqual(h264.keyframes.timestamps.map((t) => (t - h0) >>> 0), videoTimes(source).keyTimes, "H.264 keyframes are the file's own");
  });

  test("a VP8 viewer whose offer has no nack/pli feedback plays a file that is VP8 already: as it is, every frame, STOPPED", async () => {
    const before = await sidecar.prepareStats();
    const noFb = vp8Codec({ feedback: false });
    const played = await playToEnd("vod://vp8-only.mp4", noFb, "vp8");
    assert.equal(played.last.status, "STOPPED", JSON.stringify(played.last));
    assert.deepEqual(videoCodecsOf(played.answerSdp), ["VP8"]);
    const index = await indexOf(vp8File);
    const { times, keyTimes } = videoTimes(index);
    const t0 = played.received.videoFrameTimestamps[0]!;
    assert.deepEqual(played.received.videoFrameTimestamps.map((t) => (t - t0) >>> 0), times, "every frame of the file at its time");
    assert.deepEqual(played.keyframes.timestamps.map((t) => (t - t0) >>> 0), keyTimes, "keyframes where the file has them");
    assert.ok(played.received.firstVideoPayload && isVp8KeyframeStart(played.received.firstVideoPayload));
    assert.equal((await sidecar.prepareStats()).prepares, before.prepares, "a VP8 file goes out as it is: nothing prepared");
  });
});

describe("vod-live:// to VP8 and H.264 viewers", () => {
  test("both get frames from a keyframe on, on one media clock (within 100 ms)", async (t) => {
    const h264Client = await connect();
    const vp8Client = await connect();
    const h264 = await viewerFor(H264_42E01F, "h264");
    const vp8 = await viewerFor(vp8Codec(), "vp8");
    try {
      const a = await startPlay(h264Client, h264, "vod-live://live.mp4", "H.264 vod-live viewer");
      assert.equal(a.failed, undefined, JSON.stringify(a.failed));
      assert.deepEqual(videoCodecsOf(a.answerSdp!), ["H264"]);
      // The VP8 viewer comes a moment later: its packet source must join at the broadcast's position, not at 0.
      await sleep(1500);
      const b = await startPlay(vp8Client, vp8, "vod-live://live.mp4", "VP8 vod-live viewer");
      assert.equal(b.failed, undefined, JSON.stringify(b.failed));
      assert.deepEqual(videoCodecsOf(b.answerSdp!), ["VP8"]);
      await until("90 VP8 frames", () => vp8.received.videoFrameTimestamps.length >= 90, 30_000);
      assert.ok(h264.received.videoFrameTimestamps.length >= 90, `H.264 viewer: ${h264.received.videoFrameTimestamps.length} frames`);

      const gotH = h264.wire.received();
      const gotV = vp8.wire.received();
      assert.ok(gotH.firstVideoPayload && isH264KeyframeStart(gotH.firstVideoPayload), "the H.264 viewer starts at a keyframe");
      assert.ok(gotV.firstVideoPayload && isVp8KeyframeStart(gotV.firstVideoPayload), "the VP8 viewer starts at a VP8 keyframe");
      for (const [label, v, got] of [["H.264", h264, gotH], ["VP8", vp8, gotV]] as const) {
        const ts = got.videoFrameTimestamps;
        const lost = v.wire.lostBeforeFrame();
        const keys = new Set(v.wire.keyframes().timestamps);
        for (let i = 1; i < ts.length; i++) {
          const step = (ts[i]! - ts[i - 1]!) >>> 0;
          // Frame by frame; only where packets never arrived (dropped in this busy process) may frames be missing.
          if (lost[i]! > 0) assert.ok(step > 0 && step % FRAME_TICKS === 0, `${label} frame ${i}: step ${step} after ${lost[i]} lost packets`);
          else assert.equal(step, FRAME_TICKS, `${label} frame ${i} after ${i - 1} (${keys.has(ts[i]!) ? "keyframe" : "inter frame"})`);
        }
        t.diagnostic(`${label} viewer: ${ts.length} frames, ${JSON.stringify(v.wire.stats())}`);
      }
      const vp8Start = gotV.videoFrameTimestamps[0]! / 90;
      assert.ok(vp8Start >= 1000, `the VP8 viewer joined the broadcast where it was (${vp8Start} ms in), not at its start`);

      // Frames that arrive at the same moment show the same media time: each viewer's media-time-0 on the wall
      // clock, from its least delayed frame of the last second (the VP8 viewer's first frames may come in a burst
      // while its copy is still being made).
      const zH = mediaZeroAt(gotH, gotH.videoFrameTimestamps.length - 30);
      const zV = mediaZeroAt(gotV, gotV.videoFrameTimestamps.length - 30);
      assert.ok(Math.abs(zH - zV) <= 100 + FRAME_MS, `media time 0 is at ${zH.toFixed(1)} for H.264 and ${zV.toFixed(1)} for VP8 (${(zV - zH).toFixed(1)} ms apart)`);
      // And directly: when the VP8 viewer's latest frame came, the H.264 viewer's latest frame showed (nearly) the same time.
      const lastV = gotV.videoFrameArrivals.length - 1;
      const at = gotV.videoFrameArrivals[lastV]!;
      const hIdx = gotH.videoFrameArrivals.findLastIndex((x) => x <= at);
      const dMs = (gotV.videoFrameTimestamps[lastV]! - gotH.videoFrameTimestamps[hIdx]!) / 90;
      assert.ok(Math.abs(dMs) <= 100 + FRAME_MS, `at the same moment the viewers show media times ${dMs.toFixed(1)} ms apart`);
    } finally {
      await Promise.allSettled([h264.close(), vp8.close(), h264Client.close(), vp8Client.close()]);
    }
  });
});

describe("publishing VP8", () => {
  test("PUBLISHING; a VP8 live viewer from a keyframe; an H.264-only viewer refused; UNPUBLISHED with a VP8 recording that plays back to VP8 and H.264 viewers", async () => {
    const name = `vp8-pub-${randomUUID().slice(0, 8)}`;
    const client = await connect();
    const other = await connect();
    const pub = await createWeriftPublisher(vp8Source, { video: vp8Codec(), audioFile: opusSource, exactSenderReports: true });
    const live = await viewerFor(vp8Codec(), "vp8");
    const h264Only = await viewerFor(H264_42E01F, "h264");
    try {
      const { id, answerSdp } = await startPublish(client, pub, name);
      assert.deepEqual(videoCodecsOf(answerSdp), ["VP8"], "the publisher's VP8 is taken");

      const v = await startPlay(other, live, name, "VP8 live viewer");
      assert.equal(v.failed, undefined, JSON.stringify(v.failed));
      assert.deepEqual(videoCodecsOf(v.answerSdp!), ["VP8"]);

      const refused = await startPlay(other, h264Only, name, "H.264-only live viewer");
      assert.equal(refused.failed?.status, "FAILED", "an H.264-only player of a VP8 stream is refused");
      assert.equal(refused.failed.info, "Player does not support the stream's video codec");
      assert.equal(refused.failed.info, Info.STREAM_CODEC_NOT_SUPPORTED);

      await sleep(5000);
      assert.equal(client.streamStatus(id), "PUBLISHING", "still publishing");
      const got = live.received;
      assert.ok(got.videoFrameTimestamps.length >= 60, `live viewer got ${got.videoFrameTimestamps.length} frames`);
      assert.ok(got.firstVideoPayload && isVp8KeyframeStart(got.firstVideoPayload), "the live viewer's first packet starts a VP8 keyframe");
      assert.ok(got.audioTimestamps.length > 50, `live viewer got ${got.audioTimestamps.length} audio packets`);
      const liveKeys = live.wire.keyframes().timestamps.length;
      assert.ok(liveKeys >= 3, `keyframes arrive about every second (${liveKeys})`);

      // As the SDK's stream.stop(): the media stops, then unPublishStream. Let the last packets land first, so that
      // what was sent is what the recorder got.
      pub.pause();
      await sleep(300);
      const framesSent = pub.stats.videoFramesSent;
      // From the publisher's first frame (it sends once connected, a moment before PUBLISHING) to the end of its last.
      const publishedSec = (pub.stats.lastVideoFrameAt! - pub.stats.firstVideoFrameAt!) / 1000 + FRAME_MS / 1000;
      client.unPublishStream(id);
      const done = await client.waitForStatus(id, "UNPUBLISHED", { timeoutMs: 30_000 });
      assert.equal(done.info, Info.STOPPED_BY_USER);
      const recordName = done.recordName;
      assert.equal(typeof recordName, "string", "UNPUBLISHED names the record");
      assert.equal(recordName, `rec-${id}-VP8.mp4`, "{videoCodec} is VP8");
      assert.ok(!recordName!.includes("H264"), recordName);
      const stopped = await other.waitForStatus(v.id, "STOPPED", { timeoutMs: 15_000 });
      assert.equal(stopped.info, Info.STOPPED_BY_PUBLISHER_STOP);

      const file = path.join(recordDir, recordName!);
      const p = await probe(file);
      const vs = p.streams.find((s) => s.codec_type === "video");
      const as = p.streams.find((s) => s.codec_type === "audio");
      assert.equal(vs?.codec_name, "vp8");
      assert.equal(as?.codec_name, "opus");
      const frames = Number(vs!.nb_read_frames);
      assert.ok(Math.abs(frames - framesSent) <= Math.max(2, framesSent * 0.02), `recorded ${frames} frames, sent ${framesSent}`);
      const duration = Number(p.format.duration);
      assert.ok(Math.abs(duration - publishedSec) <= 0.5, `duration ${duration} s, published ${publishedSec.toFixed(2)} s`);
      // Lip sync: the sound starts with the picture (within one 20 ms Opus frame and a bit) and lasts as long.
      const avStart = Number(as!.start_time) - Number(vs!.start_time);
      assert.ok(Math.abs(avStart) <= 0.04, `audio starts ${avStart.toFixed(3)} s after video`);
      assert.ok(Math.abs(Number(as!.duration) - Number(vs!.duration)) <= 0.1, `audio lasts ${as!.duration} s, video ${vs!.duration} s`);
      assert.ok(await firstVideoPacketIsKey(file), "the recording starts with a keyframe");

      // Back as vod:// to a VP8-only viewer: the recording as it is, every frame.
      const beforePrepare = await sidecar.prepareStats();
      const back = await playToEnd(`vod://${recordName}`, vp8Codec(), "vp8");
      assert.equal(back.last.status, "STOPPED", JSON.stringify(back.last));
      assert.deepEqual(videoCodecsOf(back.answerSdp), ["VP8"]);
      assert.equal(back.received.videoFrameTimestamps.length, frames, `played back ${back.received.videoFrameTimestamps.length} of ${frames} frames`);
      assert.ok(back.received.firstVideoPayload && isVp8KeyframeStart(back.received.firstVideoPayload));
      assert.ok(back.received.audioTimestamps.length > 50, "Opus plays back");
      assert.equal((await sidecar.prepareStats()).prepares, beforePrepare.prepares, "a VP8 recording goes to VP8 viewers as it is");

      // And to an H.264-only viewer, through an H.264 copy.
      const h264Back = await playToEnd(`vod://${recordName}`, H264_42E01F, "h264");
      assert.equal(h264Back.last.status, "STOPPED", JSON.stringify(h264Back.last));
      assert.deepEqual(videoCodecsOf(h264Back.answerSdp), ["H264"]);
      assert.ok(h264Back.received.videoFrameTimestamps.length >= frames * 0.9, `H.264 playback: ${h264Back.received.videoFrameTimestamps.length} of ${frames} frames`);
      assert.ok(h264Back.received.firstVideoPayload && isH264KeyframeStart(h264Back.received.firstVideoPayload), "H.264 from a keyframe");
      assert.ok(h264Back.received.audioTimestamps.length > 50, "Opus plays back with the H.264 copy");
      assert.equal((await sidecar.prepareStats()).prepares, beforePrepare.prepares + 1, "one H.264 prepare of the VP8 recording");
    } finally {
      await Promise.allSettled([pub.close(), live.close(), h264Only.close(), client.close(), other.close()]);
    }
  });
});

describe("offers of codecs we do not serve", () => {
  for (const [label, codec] of [["VP9", VP9], ["AV1", AV1]] as const) {
    test(`a ${label}-only viewer gets FAILED 'No common codecs' for vod:// and vod-live://; nothing is prepared`, async () => {
      const client = await connect();
      try {
        const before = await sidecar.prepareStats();
        for (const name of ["vod://h264-aac.mp4", "vod-live://live.mp4", "vod://vp8-only.mp4"]) {
          const viewer = await viewerFor(codec(), "vp8");
          try {
            assert.deepEqual(videoCodecsOf(viewer.offerSdp), [label], `the offer's video is ${label} alone`);
            const r = await startPlay(client, viewer, name, `${label} viewer of ${name}`);
            assert.equal(r.failed?.status, "FAILED", `${name}: refused`);
            assert.equal(r.failed.info, "No common codecs", name);
          } finally {
            await viewer.close();
          }
        }
        assert.equal((await sidecar.prepareStats()).prepares, before.prepares, "nothing prepared for a viewer that can take none of it");
      } finally {
        await client.close();
      }
    });
  }

  test("a VP9-only publisher gets FAILED 'No common codecs'; nothing is recorded", async () => {
    const filesBefore = await fs.readdir(recordDir);
    const client = await connect();
    const pub = await createWeriftPublisher(vp8Source, { video: VP9(), audioFile: opusSource });
    try {
      assert.deepEqual(videoCodecsOf(pub.offerSdp), ["VP9"]);
      const id = client.publishStream({ name: `vp9-${randomUUID()}`, sdp: pub.offerSdp, record: true });
      const failed = await client.waitForStatus(id, "FAILED", { timeoutMs: 30_000 });
      assert.equal(failed.info, "No common codecs");
      assert.deepEqual(await fs.readdir(recordDir), filesBefore, "no record file");
    } finally {
      await Promise.allSettled([pub.close(), client.close()]);
    }
  });
});

describe("bad VP8 input", () => {
  test("truncated frames and a keyframe with a lost packet: still PUBLISHING, the live viewer recovers at the next keyframe, the sidecar lives, the recording is valid", async () => {
    // What the publisher damages, and when (wall clock).
    let frameNo = 0;
    let keyNo = 0;
    let inKeyframe = false;
    let packetInFrame = 0;
    let truncated = 0;
    let lostKeyframeAt: number | undefined;
    let cutKeyframes = 0;
    const tamper = (p: MediaPacket): MediaPacket | null => {
      if (packetInFrame === 0) {
        inKeyframe = p.keyframeStart;
        if (inKeyframe) keyNo++;
      }
      const index = packetInFrame;
      packetInFrame = p.marker ? 0 : packetInFrame + 1;
      if (p.marker) frameNo++;
      // The 3rd keyframe loses its second packet (its first, if it has only one): nothing after it decodes until
      // the next keyframe.
      if (inKeyframe && keyNo === 3 && (index === 1 || (index === 0 && p.marker))) {
        lostKeyframeAt = Date.now();
        return null;
      }
      // The 5th keyframe and every 10th inter frame are cut short: their last packet loses half its bytes.
      if (p.marker && ((inKeyframe && keyNo === 5) || (!inKeyframe && frameNo % 10 === 0)) && p.payload.length > 8) {
        if (inKeyframe) cutKeyframes++;
        else truncated++;
        return { ...p, payload: p.payload.subarray(0, 4 + Math.floor((p.payload.length - 4) / 2)) };
      }
      return p;
    };
    const name = `vp8-bad-${randomUUID().slice(0, 8)}`;
    const client = await connect();
    const other = await connect();
    const pub = await createWeriftPublisher(vp8Source, { video: vp8Codec(), audioFile: opusSource, tamper, exactSenderReports: true });
    const live = await viewerFor(vp8Codec(), "vp8");
    try {
      const { id } = await startPublish(client, pub, name);
      const v = await startPlay(other, live, name, "VP8 live viewer of a damaged publish");
      assert.equal(v.failed, undefined, JSON.stringify(v.failed));

      await until("the damaged keyframe to be sent", () => lostKeyframeAt !== undefined, 20_000);
      const framesAtLoss = live.received.videoFrameTimestamps.length;
      // Past the 5th keyframe (cut short) and on, at a keyframe a second.
      await until("keyframe 7", () => keyNo >= 7, 20_000);
      await sleep(1000);

      assert.equal(client.streamStatus(id), "PUBLISHING", "the publish goes on");
      assert.ok(!client.statusEvents(id).some((e) => e.status === "FAILED"), `no FAILED: ${JSON.stringify(client.statusEvents(id))}`);
      assert.ok(truncated >= 5 && cutKeyframes === 1, `damaged: ${truncated} inter frames and ${cutKeyframes} keyframe cut, one keyframe packet lost`);
      const framesNow = live.received.videoFrameTimestamps.length;
      assert.ok(framesNow - framesAtLoss >= 60, `the live viewer kept receiving: ${framesNow - framesAtLoss} frames after the loss`);
      const keyAfter = live.wire.keyframes().arrivals.filter((t) => t > lostKeyframeAt! + 100);
      assert.ok(keyAfter.length >= 2, `keyframes reach the live viewer after the damaged one (${keyAfter.length})`);
      assert.ok(await healthOk(), "the sidecar answers");

      pub.pause();
      await sleep(300);
      const framesSent = pub.stats.videoFramesSent;
      client.unPublishStream(id);
      const done = await client.waitForStatus(id, "UNPUBLISHED", { timeoutMs: 30_000 });
      assert.ok(done.recordName, "UNPUBLISHED names the record");
      const file = path.join(recordDir, done.recordName);
      const p = await probe(file);
      const vs = p.streams.find((s) => s.codec_type === "video");
      assert.equal(vs?.codec_name, "vp8");
      assert.equal(p.streams.find((s) => s.codec_type === "audio")?.codec_name, "opus");
      const frames = Number(vs!.nb_read_frames);
      // A lost packet that NACK brings back costs nothing; one that stays lost costs the frames up to the next keyframe.
      assert.ok(frames > framesSent / 2 && frames <= framesSent, `recorded ${frames} of ${framesSent} frames sent`);
      assert.ok(await firstVideoPacketIsKey(file), "the recording starts with a keyframe");
      assert.ok(Number(p.format.duration) > 5, `duration ${p.format.duration} s`);
      assert.ok(await healthOk(), "the sidecar still answers");
    } finally {
      await Promise.allSettled([pub.close(), live.close(), client.close(), other.close()]);
    }
  });
});
