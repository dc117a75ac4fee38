import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createFmp4Recorder } from "../../sidecar/src/record/fmp4-recorder.ts";
import { finalizeRecord } from "../../sidecar/src/record/finalize.ts";
import { FFMPEG, probePackets } from "../helpers/fixtures.ts";
import { loadMedia, makeRecordFixture, toRtp, type RtpStreams } from "../helpers/record-media.ts";

let tmp: string;
let rtp: RtpStreams;
let videoFrames: number;
let audioFrames: number;
let n = 0;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "record-finalize-"));
  const media = await loadMedia(await makeRecordFixture(tmp, "in.mp4", { seconds: 3, gop: 30 }));
  rtp = toRtp(media);
  videoFrames = media.video.length;
  audioFrames = media.audio.length;
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** A fresh fragmented recording of the fixture in its own folder. */
async function recordFragmented(): Promise<string> {
  const dir = path.join(tmp, `case-${++n}`);
  const file = path.join(dir, "rec.fragmented.mp4");
  let now = 0;
  const rec = createFmp4Recorder({ path: file, tracks: { video: true, audio: { channels: 2 } }, now: () => now });
  rec.senderReport("video", rtp.videoSr.ntp, rtp.videoSr.rtp);
  rec.senderReport("audio", rtp.audioSr.ntp, rtp.audioSr.rtp);
  for (const e of rtp.events) {
    now = e.mediaMs;
    if (e.kind === "video") rec.pushVideo(e.packet);
    else rec.pushAudio(e.packet);
  }
  const info = await rec.finish();
  assert.equal(info.videoFrames, videoFrames);
  return file;
}

/** Top-level box types, in file order. */
async function topLevelBoxes(file: string): Promise<string[]> {
  const bytes = await fs.readFile(file);
  const types: string[] = [];
  for (let o = 0; o + 8 <= bytes.length; ) {
    let size = bytes.readUInt32BE(o);
    if (size === 1) size = Number(bytes.readBigUInt64BE(o + 8));
    else if (size === 0) size = bytes.length - o;
    types.push(bytes.toString("latin1", o + 4, o + 8));
    assert.ok(size >= 8, `box at ${o} has size ${size}`);
    o += size;
  }
  return types;
}

async function timestamps(file: string): Promise<{ video: number[]; audio: number[] }> {
  const { packets } = await probePackets(file);
  const secs = (kind: string) => packets.filter((p) => p.codecType === kind).map((p) => p.pts);
  return { video: secs("video"), audio: secs("audio") };
}

async function leftovers(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((f) => f.endsWith(".tmp"));
}

test("a fragmented recording becomes a fast-start MP4 with the same frames, and the fragmented file goes", async () => {
  const frag = await recordFragmented();
  const before = await topLevelBoxes(frag);
  assert.ok(before.includes("moof"), `input is fragmented: ${before.join(" ")}`);
  const ts = await timestamps(frag);
  const final = path.join(path.dirname(frag), "rec.mp4");

  assert.deepEqual(await finalizeRecord(frag, final, { ffmpegPath: FFMPEG }), { fastStart: true });

  const boxes = await topLevelBoxes(final);
  assert.equal(boxes[0], "ftyp");
  assert.ok(boxes.indexOf("moov") >= 0 && boxes.indexOf("moov") < boxes.indexOf("mdat"), `moov before mdat: ${boxes.join(" ")}`);
  assert.ok(!boxes.includes("moof"), "no fragments left");
  const probe = await probePackets(final);
  assert.deepEqual(probe.streams.map((s) => s.codecName), ["h264", "opus"]);
  const after = await timestamps(final);
  assert.equal(after.video.length, videoFrames);
  assert.equal(after.audio.length, audioFrames);
  // Same presentation times (both files keep the 90 kHz / 48 kHz time bases).
  assert.deepEqual(after.video, ts.video);
  assert.deepEqual(after.audio, ts.audio);
  await assert.rejects(fs.stat(frag), { code: "ENOENT" });
  assert.deepEqual(await leftovers(path.dirname(final)), []);
});

test("finalizing in place (same path) works through the temp file", async () => {
  const frag = await recordFragmented();
  assert.deepEqual(await finalizeRecord(frag, frag, { ffmpegPath: FFMPEG }), { fastStart: true });
  const boxes = await topLevelBoxes(frag);
  assert.ok(boxes.indexOf("moov") < boxes.indexOf("mdat") && !boxes.includes("moof"), boxes.join(" "));
  assert.equal((await timestamps(frag)).video.length, videoFrames);
  assert.deepEqual(await leftovers(path.dirname(frag)), []);
});

test("when ffmpeg cannot run, the fragmented file itself becomes the record", async () => {
  const frag = await recordFragmented();
  const bytes = await fs.readFile(frag);
  const final = path.join(path.dirname(frag), "rec.mp4");
  // The final name may already exist (reserved empty): it is replaced.
  await fs.writeFile(final, "");
  const result = await finalizeRecord(frag, final, { ffmpegPath: path.join(tmp, "no-such-ffmpeg") });
  assert.deepEqual(result, { fastStart: false });
  assert.deepEqual(await fs.readFile(final), bytes);
  await assert.rejects(fs.stat(frag), { code: "ENOENT" });
  assert.equal((await timestamps(final)).video.length, videoFrames, "and it plays");
  assert.deepEqual(await leftovers(path.dirname(final)), []);
});

test("an ffmpeg that hangs is killed at the time limit and the fragmented file is kept", async () => {
  const frag = await recordFragmented();
  const bytes = await fs.readFile(frag);
  const hang = path.join(tmp, "hanging-ffmpeg.sh");
  await fs.writeFile(hang, "#!/bin/sh\nexec sleep 60\n", { mode: 0o755 });
  const final = path.join(path.dirname(frag), "rec.mp4");
  assert.deepEqual(await finalizeRecord(frag, final, { ffmpegPath: hang, timeoutMs: 300 }), { fastStart: false });
  assert.deepEqual(await fs.readFile(final), bytes);
  assert.deepEqual(await leftovers(path.dirname(final)), []);
});

test("an ffmpeg that fails on its input leaves no temp file and keeps the input as the record", async () => {
  const dir = path.join(tmp, "garbage");
  await fs.mkdir(dir);
  const frag = path.join(dir, "broken.fragmented.mp4");
  await fs.writeFile(frag, Buffer.from("not an mp4 at all"));
  const final = path.join(dir, "broken.mp4");
  assert.deepEqual(await finalizeRecord(frag, final, { ffmpegPath: FFMPEG }), { fastStart: false });
  assert.equal(await fs.readFile(final, "utf8"), "not an mp4 at all");
  assert.deepEqual(await leftovers(dir), []);
});

const BUNDLED_FFMPEG = path.resolve(import.meta.dirname, "../../node_modules/@ffmpeg-installer/linux-x64/ffmpeg");

test("the bundled 2018 ffmpeg (no setts filter, Opus in MP4 experimental) still produces a fast-start file", async (t) => {
  if (!(await fs.stat(BUNDLED_FFMPEG).then((s) => s.isFile(), () => false))) return t.skip("@ffmpeg-installer/linux-x64 not installed");
  const frag = await recordFragmented();
  const final = path.join(path.dirname(frag), "rec.mp4");
  assert.deepEqual(await finalizeRecord(frag, final, { ffmpegPath: BUNDLED_FFMPEG }), { fastStart: true });
  const boxes = await topLevelBoxes(final);
  assert.ok(boxes.indexOf("moov") < boxes.indexOf("mdat") && !boxes.includes("moof"), boxes.join(" "));
  const ts = await timestamps(final);
  assert.equal(ts.video.length, videoFrames);
  // Without setts the last Opus packet is cut (see finalize.ts).
  assert.ok(ts.audio.length >= audioFrames - 1, `${ts.audio.length} audio packets`);
});
