// The classifier, and the reader fields it relies on (rotation, edit shifts, co64 offsets), against ffprobe's view
// of the same generated files: ffprobe is the independent oracle, numbers are hard-coded only where it cannot tell.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { classify, planFor, videoCodecFor, type Classification } from "../../sidecar/src/mp4/classify.ts";
import { openMp4, readSample } from "../../sidecar/src/mp4/reader.ts";
import type { Mp4Index } from "../../sidecar/src/mp4/types.ts";
import {
  fixtures,
  probePackets,
  probeStreams,
  trackEdits,
  type FixtureName,
  type Fixtures,
  type ProbePacket,
  type ProbeStreamInfo,
} from "../helpers/fixtures.ts";

let tmp: string;
let fx: Fixtures;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "mp4-classify-"));
  fx = fixtures(tmp);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

interface Opened {
  file: string;
  ix: Mp4Index;
  c: Classification;
}

async function open(name: FixtureName): Promise<Opened> {
  const file = await fx[name]();
  const f = await new LocalDiskAccess(path.dirname(file)).open(path.basename(file));
  try {
    const ix = await openMp4(f);
    return { file, ix, c: classify(ix) };
  } finally {
    await f.close();
  }
}

async function stream(file: string, kind: "video" | "audio"): Promise<ProbeStreamInfo> {
  const s = (await probeStreams(file)).find((x) => x.codecType === kind);
  assert.ok(s, `ffprobe sees a ${kind} stream in ${path.basename(file)}`);
  return s;
}

/** ffprobe's packets of the file's first `kind` stream, with its time base in seconds. */
async function packets(file: string, kind: "video" | "audio"): Promise<{ packets: ProbePacket[]; tb: number }> {
  const probe = await probePackets(file);
  const s = probe.streams.find((x) => x.codecType === kind);
  assert.ok(s, `ffprobe sees a ${kind} stream in ${path.basename(file)}`);
  return { packets: probe.packets.filter((p) => p.streamIndex === s.index), tb: fraction(s.timeBase) };
}

function fraction(text: string): number {
  const [n, d] = text.split("/").map(Number);
  return n! / (d ?? 1);
}

function near(actual: number, expected: number, tolerance: number, what: string) {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected} (±${tolerance})`);
}

test("B-frames: x264's defaults have them and need preparing; baseline has none and is sent as it is", async () => {
  for (const [name, expected] of [
    ["highBframes", true],
    ["noAudio", false],
  ] as const) {
    const { file, c } = await open(name);
    const v = c.video;
    assert.ok(v, name);
    const probe = await stream(file, "video");
    // Two views from ffprobe: the decoder's reorder depth, and presentation times going back in decode order.
    const { packets: ps } = await packets(file, "video");
    const reordered = ps.some((p, i) => i > 0 && p.pts < ps[i - 1]!.pts);
    assert.equal(probe.hasBFrames! > 0, expected, `${name}: ffprobe has_b_frames ${probe.hasBFrames}`);
    assert.equal(reordered, expected, `${name}: ffprobe pts order`);
    assert.equal(v.bFrames, expected, `${name}: bFrames`);
    assert.equal(v.family, "h264");
    assert.equal(c.plan.video, expected ? "prepare" : "as-is", `${name}: plan`);
    assert.equal(c.reasons.includes("B-frames"), expected, `${name}: reasons ${c.reasons}`);
    if (expected) {
      assert.equal(probe.profile, "High");
      assert.equal(v.profileIdc, 100);
    } else {
      assert.match(probe.profile ?? "", /Baseline/);
      assert.equal(v.profileIdc, 66);
    }
  }
});

test("longest GOP: the largest distance between ffprobe's key packets, within a frame", async () => {
  for (const name of ["highBframes", "noAudio", "vfr"] as const) {
    const { file, c } = await open(name);
    const { packets: ps, tb } = await packets(file, "video");
    const keys = ps.filter((p) => p.key).map((p) => p.dts);
    let gap = 0;
    for (let i = 1; i < keys.length; i++) gap = Math.max(gap, keys[i]! - keys[i - 1]!);
    // The classifier also counts the stretch from the last keyframe to the end (a file with one keyframe has a
    // GOP as long as itself): take it from ffprobe too.
    const end = Math.max(...ps.map((p) => p.dts + p.duration));
    const tail = end - keys.at(-1)!;
    const frame = Math.max(...ps.map((p) => p.duration)) * tb;
    near(c.video!.maxGopSec, Math.max(gap, tail) * tb, 1e-9, `${name}: maxGopSec vs ffprobe, tail included`);
    if (keys.length > 1) near(c.video!.maxGopSec, gap * tb, frame, `${name}: maxGopSec vs ffprobe key-to-key`);
  }
  // The fixtures are what they claim: keyframes every 30 frames at 30 fps, every 15 at 30 fps, and every 15 frames
  // at 30 then 15 fps (GOPs of 0.5 s then 1 s: the longest is not the first).
  const gops = await Promise.all((["highBframes", "noAudio", "vfr"] as const).map(async (n) => (await open(n)).c.video!.maxGopSec));
  near(gops[0]!, 1, 1e-9, "highBframes GOP");
  near(gops[1]!, 0.5, 1e-9, "noAudio GOP");
  near(gops[2]!, 1, 1e-9, "vfr GOP");
});

// Sign convention: ffprobe reports the display matrix's rotation with av_display_rotation_get, counter-clockwise
// degrees in (-180, 180]; the reader reports the same angle counter-clockwise in [0, 360), so ffprobe's -90 is our
// 270. ffmpeg 5.1 turns `-metadata:s:v:0 rotate=N` into a matrix that ffprobe reads back as +N (90, -180, -90 for
// 90, 180, 270), so here our rotation equals N. The legacy rotate tag that phones and older ffmpeg write means
// clockwise (an iPhone portrait clip: tag 90, display matrix -90, our 270); ffprobe 5.1 no longer shows that tag.
test("rotation 0/90/180/270 as ffprobe reads the display matrix; quarter turns swap the displayed size", async () => {
  const seen: number[] = [];
  for (const name of ["noAudio", "rotated90", "rotated180", "rotated270"] as const) {
    const { file, ix, c } = await open(name);
    const v = c.video!;
    const probe = await stream(file, "video");
    const expected = ((probe.rotation % 360) + 360) % 360;
    assert.equal(v.rotation, expected, `${name}: rotation vs ffprobe ${probe.rotation}`);
    assert.equal(ix.video!.rotation, expected, `${name}: reader rotation`);
    seen.push(v.rotation);
    assert.equal(v.width, probe.width, `${name}: coded width`);
    assert.equal(v.height, probe.height, `${name}: coded height`);
    const quarter = Math.abs(probe.rotation) === 90;
    assert.deepEqual(
      [v.displayWidth, v.displayHeight],
      quarter ? [probe.height, probe.width] : [probe.width, probe.height],
      `${name}: displayed size`,
    );
    assert.equal(c.plan.video, expected === 0 ? "as-is" : "prepare", `${name}: plan`);
  }
  // The fixtures really differ: ffmpeg took each rotate value into the matrix.
  assert.deepEqual(seen, [0, 90, 180, 270]);
});

test("HEVC is prepared", async () => {
  const { file, c } = await open("hevc");
  const probe = await stream(file, "video");
  assert.equal(probe.codecName, "hevc");
  assert.equal(c.video?.family, "hevc");
  assert.match(c.video.codec, /^hvc1\./);
  assert.equal(c.video.profileIdc, undefined);
  assert.equal(c.plan.video, "prepare");
  assert.ok(c.reasons.some((r) => r.startsWith("video codec hvc1")), `reasons ${c.reasons}`);
});

const AUDIO: readonly { name: FixtureName; family: string; plan: string; rate: number; channels: number }[] = [
  { name: "aacMono22k", family: "aac", plan: "transcode", rate: 22050, channels: 1 },
  { name: "aac51", family: "aac", plan: "transcode", rate: 48000, channels: 6 },
  { name: "mp3", family: "mp3", plan: "transcode", rate: 48000, channels: 2 },
  { name: "ac3", family: "ac3", plan: "transcode", rate: 48000, channels: 2 },
  { name: "opusAudio", family: "opus", plan: "as-is", rate: 48000, channels: 2 },
];

test("audio codecs: family and sample rate as ffprobe sees them; only Opus is sent as it is", async () => {
  for (const a of AUDIO) {
    const { file, c } = await open(a.name);
    const probe = await stream(file, "audio");
    // ffprobe's codec names happen to be the family names for these five.
    assert.equal(c.audio?.family, probe.codecName, `${a.name}: family`);
    assert.equal(c.audio.family, a.family, `${a.name}: fixture codec`);
    assert.equal(c.audio.sampleRate, probe.sampleRate, `${a.name}: sample rate`);
    assert.equal(probe.sampleRate, a.rate, `${a.name}: fixture sample rate`);
    assert.equal(c.plan.audio, a.plan, `${a.name}: plan`);
    assert.equal(c.reasons.includes(`audio ${a.family}`), a.plan === "transcode", `${a.name}: reasons ${c.reasons}`);
    assert.equal(c.plan.video, a.name === "opusAudio" ? "none" : "as-is", `${a.name}: video plan`);
  }
});

// ffmpeg (as the ISO spec's template says) writes 2 into the mp4a sample entry whatever the stream holds: the real
// count is the esds AudioSpecificConfig's channelConfiguration.
test("audio codecs: channel count as ffprobe sees it", async () => {
  for (const a of AUDIO) {
    const { file, c } = await open(a.name);
    const probe = await stream(file, "audio");
    assert.equal(probe.channels, a.channels, `${a.name}: fixture channels`);
    assert.equal(c.audio?.channels, probe.channels, `${a.name}: channels`);
  }
});

test("variable frame rate: uneven frame durations, as ffprobe's packets and rates show", async () => {
  for (const [name, expected] of [
    ["vfr", true],
    ["noAudio", false],
    ["highBframes", false],
  ] as const) {
    const { file, c } = await open(name);
    const probe = await stream(file, "video");
    const { packets: ps } = await packets(file, "video");
    // Decode-order durations, without the last one (a muxer's guess): one value for a constant rate.
    const durations = new Set(ps.slice(0, -1).map((p) => p.duration));
    assert.equal(durations.size > 1, expected, `${name}: ffprobe packet durations ${[...durations]}`);
    // r_frame_rate is the timestamp grid, avg_frame_rate the mean: they part only when the rate varies.
    assert.equal(fraction(probe.rFrameRate) !== fraction(probe.avgFrameRate), expected, `${name}: ${probe.rFrameRate} vs ${probe.avgFrameRate}`);
    assert.equal(c.video?.vfr, expected, `${name}: vfr`);
    near(c.video.fps, fraction(probe.avgFrameRate), fraction(probe.avgFrameRate) * 0.01, `${name}: mean fps`);
  }
});

test("edit list: audio starting late is shifted by its leading empty edit, to ffprobe's start time", async () => {
  const { file, ix } = await open("audioLate");
  const audio = await stream(file, "audio");
  const video = await stream(file, "video");
  const a = ix.audio!;
  near(a.editShiftSec, audio.startTime, 0.001, "audio editShiftSec vs ffprobe start_time");
  // Where the first sample is presented, by the reader's numbers.
  const first = (a.samples.dts[0]! + a.samples.ctsOffset[0]!) / a.timescale + a.editShiftSec;
  near(first, audio.startTime, 0.001, "first audio sample vs ffprobe start_time");
  // The fixture: the empty edit is the 0.5 s delay less the encoder's priming (see audioLate).
  const edits = (await trackEdits(file)).find((t) => t.handler === "soun")!.edits;
  assert.equal(edits[0]?.mediaTime, -1, `leading empty edit: ${JSON.stringify(edits)}`);
  near(a.editShiftSec, 0.5 - 1024 / 48000, 0.001, "0.5 s less the AAC priming");
  near(ix.video!.editShiftSec, video.startTime, 0.001, "video editShiftSec vs ffprobe start_time");
  near(video.startTime, 0, 0.001, "video starts at 0");
});

test("edit list: the B-frame delay is skipped by media_time, to ffprobe's video start time", async () => {
  const { file, ix } = await open("highBframes");
  const v = ix.video!;
  const probe = await stream(file, "video");
  const track = (await trackEdits(file)).find((t) => t.handler === "vide")!;
  const edit = track.edits.find((e) => e.mediaTime !== -1)!;
  assert.ok(edit.mediaTime > 0, `media_time ${edit.mediaTime}: the fixture delays presentation`);
  assert.equal(track.timescale, v.timescale);
  near(v.editShiftSec, -edit.mediaTime / track.timescale, 1e-9, "editShiftSec is minus media_time");
  let firstPresented = Infinity;
  for (let i = 0; i < v.samples.count; i++) {
    firstPresented = Math.min(firstPresented, v.samples.dts[i]! + v.samples.ctsOffset[i]!);
  }
  near(firstPresented / v.timescale + v.editShiftSec, probe.startTime, 0.001, "first presented frame vs ffprobe start_time");
});

test("co64: 64-bit chunk offsets past 4 GiB give ffprobe's packet positions and the original bytes", async () => {
  const { file, ix } = await open("co64");
  const st = await fs.stat(file);
  assert.ok(st.size > 2 ** 32, `file is ${st.size} bytes`);
  assert.ok(st.blocks * 512 < 16 << 20, `sparse: ${st.blocks * 512} bytes on disk`);
  // The moov is within the first few KB: its offset tables are co64, none is left a 32-bit stco.
  const fh = await fs.open(file, "r");
  const head = Buffer.alloc(64 << 10);
  try {
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  assert.ok(head.includes("co64") && !head.includes("stco"), "co64 offset tables");
  const probe = await probePackets(file);
  const source = await open("co64Source");
  const src = await new LocalDiskAccess(path.dirname(source.file)).open(path.basename(source.file));
  const big = await new LocalDiskAccess(path.dirname(file)).open(path.basename(file));
  try {
    for (const kind of ["video", "audio"] as const) {
      const s = ix[kind]!.samples;
      const stream = probe.streams.find((x) => x.codecType === kind)!;
      const ps = probe.packets.filter((p) => p.streamIndex === stream.index);
      assert.equal(s.count, ps.length, `${kind} sample count`);
      assert.ok(s.count > 10, `${kind} has ${s.count} samples`);
      for (let i = 0; i < s.count; i++) {
        assert.equal(s.offset[i], ps[i]!.pos, `${kind} sample ${i} offset`);
        assert.equal(s.size[i], ps[i]!.size, `${kind} sample ${i} size`);
        assert.ok(s.offset[i]! > 2 ** 32, `${kind} sample ${i} at ${s.offset[i]}`);
      }
      const o = source.ix[kind]!.samples;
      assert.deepEqual([s.size, s.dts, s.ctsOffset, s.duration, s.sync], [o.size, o.dts, o.ctsOffset, o.duration, o.sync]);
      for (let i = 0; i < s.count; i++) {
        assert.deepEqual(await readSample(big, s, i), await readSample(src, o, i), `${kind} sample ${i} bytes`);
      }
    }
  } finally {
    await src.close();
    await big.close();
  }
});

test("the codec a viewer gets: a file's own VP8 to VP8 clients, else H.264 when offered, else a VP8 copy", () => {
  const video = (family: "h264" | "vp8" | "hevc", rotation: 0 | 90 = 0, bFrames = false): Classification => ({
    video: {
      family, codec: family, profileIdc: undefined, bFrames, maxGopSec: 2, rotation, width: 640, height: 360,
      displayWidth: 640, displayHeight: 360, vfr: false, fps: 30, kbps: 1000,
    },
    audio: undefined,
    plan: { video: family === "h264" && !bFrames && rotation === 0 ? "as-is" : "prepare", audio: "none" },
    reasons: [],
  });
  const both = new Set(["h264", "vp8"] as const);
  const vp8 = new Set(["vp8"] as const);
  const h264 = new Set(["h264"] as const);
  assert.equal(videoCodecFor(video("h264"), both), "h264");
  assert.equal(videoCodecFor(video("vp8"), both), "vp8", "a VP8 file goes out as it is to a client that takes VP8");
  assert.equal(videoCodecFor(video("vp8"), h264), "h264");
  assert.equal(videoCodecFor(video("h264"), vp8), "vp8");
  assert.equal(videoCodecFor(video("h264"), new Set()), undefined);
  assert.equal(planFor(video("h264"), "vp8").video, "prepare", "an H.264 file to a VP8 client: its VP8 copy");
  assert.equal(planFor(video("hevc"), "vp8").video, "prepare");
  assert.equal(planFor(video("vp8"), "vp8").video, "as-is");
  assert.equal(planFor(video("vp8", 90), "vp8").video, "prepare", "rotated VP8 is prepared upright");
  assert.equal(planFor(video("vp8"), "h264").video, "prepare", "a VP8 file to an H.264-only client: its H.264 copy");
  assert.equal(planFor(video("h264", 0, true), "h264").video, "prepare");
});
