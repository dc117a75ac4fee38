import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Info } from "@edge-vod/shared";
import { MediaError } from "../../sidecar/src/files/file-access.ts";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { classify } from "../../sidecar/src/mp4/classify.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import type { Mp4Index } from "../../sidecar/src/mp4/types.ts";
import { PrepareCache, type PrepareRequest, type Prepared } from "../../sidecar/src/prepare/prepare-cache.ts";
import { createVodPacketSource, type MediaPacket } from "../../sidecar/src/vod/packet-source.ts";
import { FFMPEG, FFPROBE, fixtures, makeFixture, SAMPLE_MP4, type Fixtures } from "../helpers/fixtures.ts";

const run = promisify(execFile);
let tmp: string;
let fx: Fixtures;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "prepare-cache-"));
  fx = fixtures(tmp);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function indexOf(file: string): Promise<Mp4Index> {
  const f = await new LocalDiskAccess(path.dirname(file)).open(path.basename(file));
  try {
    return await openMp4(f);
  } finally {
    await f.close();
  }
}

/** The identity LocalFile gives the file: the prepare re-checks it when it ends. */
async function request(sourcePath: string, kind: PrepareRequest["kind"], withAudio = true): Promise<PrepareRequest> {
  const file = await new LocalDiskAccess(path.dirname(sourcePath)).open(path.basename(sourcePath));
  try {
    return { source: await file.toolSource(), identity: file.identity, kind, withAudio };
  } finally {
    await file.close();
  }
}

function counting(dir: string, extra: Partial<ConstructorParameters<typeof PrepareCache>[0]> = {}) {
  const runs: PrepareRequest[] = [];
  const cache = new PrepareCache({ dir, onPrepare: (req) => runs.push(req), ...extra });
  return { cache, runs };
}

/** Waits for a prepare to end and returns the final file's path. */
async function finish(cache: PrepareCache, p: Prepared): Promise<string> {
  if (p.done) return path.join(cache.dir, p.name);
  const result = await p.job.finished;
  if (result instanceof MediaError) throw result;
  return path.join(cache.dir, result);
}

test("sample.mp4's AAC becomes an Opus-only copy, playable while it is written, then kept under its final name", async () => {
  const dir = path.join(tmp, "audio");
  const { cache, runs } = counting(dir);
  const p = await cache.get(await request(SAMPLE_MP4, "audio"));
  assert.equal(p.done, false);
  assert.equal(runs.length, 1);
  if (p.done) return;
  const reader = p.job.acquire();
  await p.job.index.started();
  const growing = p.job.index.audio;
  assert.ok(growing);
  assert.equal(growing.codec, "opus");
  // Played through a packet source from the growing table: it waits for samples rather than ending early.
  const source = createVodPacketSource({ audio: { file: reader, track: growing, growth: p.job.index } });
  const got: MediaPacket[] = [];
  while (!source.ended) {
    source.take(Infinity, got);
    await new Promise((r) => setTimeout(r, 5));
  }
  await source.close();
  await reader.close();
  const out = await finish(cache, p);
  assert.match(path.basename(out), /^[0-9a-f]{64}\.mp4$/);
  const ix = await indexOf(out);
  assert.equal(ix.video, undefined);
  const a = ix.audio;
  assert.ok(a);
  assert.equal(a.codec, "opus");
  assert.equal(a.sampleRate, 48000);
  assert.equal(a.channels, 2);
  assert.equal(got.length, a.samples.count, "every packet of the finished copy came out of the growing one");
  for (let i = 0; i < a.samples.count - 1; i++) assert.equal(a.samples.duration[i], 960, `20 ms frame ${i}`);
  assert.ok(Math.abs(ix.durationSec - 10) <= 0.1, `duration ${ix.durationSec}`);
  assert.deepEqual(await fs.readdir(dir), [path.basename(out)], "no partial files left");
});

test("concurrent gets share one prepare; later gets, even after a restart, are hits; a new version prepares anew", async () => {
  const dir = path.join(tmp, "shared");
  const src = path.join(tmp, "shared-src.mp4");
  await fs.copyFile(await fx.highBframes(), src);
  const { cache, runs } = counting(dir);
  const req = await request(src, "video");
  const [a, b] = await Promise.all([cache.get(req), cache.get(req)]);
  assert.equal(runs.length, 1);
  assert.ok(!a.done && !b.done && a.job === b.job, "one job for both");
  const out = await finish(cache, a);
  const { mtimeMs } = await fs.stat(out);
  assert.deepEqual(await cache.get(req), { done: true, name: path.basename(out) });
  const restarted = counting(dir);
  assert.deepEqual(await restarted.cache.get(req), { done: true, name: path.basename(out) });
  assert.equal(restarted.runs.length, 0);
  assert.equal(restarted.cache.stats.hits, 1);
  assert.ok((await fs.stat(out)).mtimeMs >= mtimeMs, "a hit refreshes the LRU clock");

  await fs.appendFile(src, Buffer.alloc(16));
  const changed = await cache.get(await request(src, "video"));
  assert.equal(runs.length, 2);
  assert.notEqual(await finish(cache, changed), out);
});

test("B-frames, rotation and AAC: the copy is upright constrained-baseline H.264 without B-frames, keyframes <= 2 s, Opus", async () => {
  const dir = path.join(tmp, "video");
  const { cache } = counting(dir);
  for (const [name, make, portrait] of [
    ["highBframes", fx.highBframes, false],
    ["rotated90", fx.rotated90, true],
  ] as const) {
    const src = await make();
    const before = classify(await indexOf(src));
    assert.equal(before.plan.video, "prepare", name);
    const out = await finish(cache, await cache.get(await request(src, "video", before.plan.audio !== "none")));
    const after = classify(await indexOf(out));
    const audio = before.plan.audio === "none" ? "none" : "as-is";
    assert.deepEqual(after.plan, { video: "as-is", audio }, `${name}: ${after.reasons.join(", ")}`);
    if (audio === "as-is") assert.equal(after.audio?.family, "opus", name);
    assert.equal(after.video?.profileIdc, 66, name);
    assert.equal(after.video?.rotation, 0, name);
    assert.ok(after.video!.maxGopSec <= 2.05, `${name}: keyframe gap ${after.video!.maxGopSec}`);
    assert.equal(after.video!.displayWidth < after.video!.displayHeight, portrait, `${name}: portrait`);
    assert.equal(after.video!.width, before.video!.displayWidth, `${name}: shown width kept`);
    assert.equal(after.video!.height, before.video!.displayHeight, `${name}: shown height kept`);
    // ffprobe agrees: no reordering, nothing rotated.
    const { stdout } = await run(FFPROBE, ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=profile,has_b_frames,width,height:stream_side_data", "-of", "json", out]);
    const stream = (JSON.parse(stdout) as { streams: { profile: string; has_b_frames: number; side_data_list?: unknown[] }[] }).streams[0]!;
    assert.equal(stream.profile, "Constrained Baseline", name);
    assert.equal(stream.has_b_frames, 0, name);
    assert.equal(stream.side_data_list, undefined, `${name}: no display matrix left`);
  }
});

test("a prepare that fails leaves nothing behind, fails its viewers, and is not retried at once", async () => {
  const dir = path.join(tmp, "fail");
  const bogus = path.join(tmp, "not-media.mp4");
  await fs.writeFile(bogus, "this is not a media file");
  const { cache, runs } = counting(dir);
  const p = await cache.get(await request(bogus, "video"));
  assert.equal(p.done, false);
  if (p.done) return;
  await assert.rejects(p.job.index.started(), (e: unknown) => e instanceof MediaError && e.info === Info.PREPARE_FAILED);
  assert.ok(p.job.index.error);
  assert.ok((await p.job.finished) instanceof MediaError);
  await assert.rejects(cache.get(await request(bogus, "video")), (e: unknown) => e instanceof MediaError && e.info === Info.PREPARE_FAILED);
  assert.equal(runs.length, 1, "the failure is remembered");
  assert.deepEqual(await fs.readdir(dir), []);
  assert.equal(cache.stats.failures, 1);
});

test("a transcoder killed midway fails the viewers following it and publishes nothing", async () => {
  const dir = path.join(tmp, "kill");
  // Long enough (60 s at 640x360) to still be running when it is killed.
  const src = await makeFixture(tmp, "long.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=60"],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-threads", "1"],
  ]);
  const { cache } = counting(dir);
  const p = await cache.get(await request(src, "video", false));
  if (p.done) assert.fail("a fresh cache cannot hit");
  const reader = p.job.acquire();
  await p.job.index.started();
  const { stdout } = await run("pgrep", ["-P", String(process.pid), "ffmpeg"]);
  for (const pid of stdout.trim().split("\n")) process.kill(Number(pid), "SIGKILL");
  const result = await p.job.finished;
  assert.ok(result instanceof MediaError && result.info === Info.PREPARE_FAILED, String(result));
  assert.match(result.message, /SIGKILL/);
  assert.equal(p.job.index.error, result);
  assert.ok(!p.job.index.complete);
  // A viewer's packet source fails with that info on its next take.
  const source = createVodPacketSource({ video: { file: reader, track: p.job.index.video!, growth: p.job.index } });
  const errors: MediaError[] = [];
  source.onError = (e) => errors.push(e);
  source.take(Infinity, []);
  await new Promise((r) => setImmediate(r));
  assert.equal(errors[0]?.info, Info.PREPARE_FAILED);
  await source.close();
  await reader.close();
  assert.deepEqual(await fs.readdir(dir), []);
});

test("a source that changes while being prepared is not kept", async () => {
  const dir = path.join(tmp, "changed");
  const src = path.join(tmp, "changing.mp4");
  await fs.copyFile(await fx.highBframes(), src);
  const { cache } = counting(dir);
  const req = await request(src, "video");
  await fs.appendFile(src, Buffer.alloc(8));
  const p = await cache.get(req);
  if (p.done) assert.fail("a fresh cache cannot hit");
  const result = await p.job.finished;
  assert.ok(result instanceof MediaError && /changed/.test(result.message), String(result));
  assert.deepEqual(await fs.readdir(dir), []);
});

test("the cache keeps to its size: least recently used copies go first", async () => {
  const dir = path.join(tmp, "lru");
  const { cache } = counting(dir, { maxBytes: 1 });
  const first = await finish(cache, await cache.get(await request(await fx.highBframes(), "video")));
  assert.ok(await exists(first));
  const second = await finish(cache, await cache.get(await request(await fx.rotated90(), "video", false)));
  // Eviction runs as a prepare ends: give it its turn.
  for (let i = 0; i < 50 && (await exists(first)); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await exists(first), false, "the older copy was evicted");
  assert.equal(await exists(second) || (await fs.readdir(dir)).length === 0, true);
});

test("a missing ffmpeg or one over its time limit fails the prepare with the reason", async () => {
  const missing = new PrepareCache({ dir: path.join(tmp, "missing"), ffmpegPath: path.join(tmp, "no-ffmpeg") });
  const p = await missing.get(await request(SAMPLE_MP4, "audio"));
  if (p.done) assert.fail("a fresh cache cannot hit");
  const r1 = await p.job.finished;
  assert.ok(r1 instanceof MediaError && r1.info === Info.PREPARE_FAILED && /cannot run/.test(r1.message), String(r1));

  const dir = path.join(tmp, "slow");
  const slow = new PrepareCache({ dir, timeoutMs: 1 });
  const q = await slow.get(await request(SAMPLE_MP4, "audio"));
  if (q.done) assert.fail("a fresh cache cannot hit");
  const r2 = await q.job.finished;
  assert.ok(r2 instanceof MediaError && /time limit/.test(r2.message), String(r2));
  assert.deepEqual(await fs.readdir(dir), []);
});

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

test("audio starting 0.5 s after video keeps that offset through the Opus copy, growing and finished", async () => {
  const src = await makeFixture(tmp, "audio-late.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30:duration=3"],
    ...["-itsoffset", "0.5", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2"],
    ...["-c:v", "libx264", "-threads", "1", "-profile:v", "baseline", "-c:a", "aac"],
  ]);
  const { stdout } = await run(FFPROBE, ["-v", "error", "-select_streams", "a:0", "-show_entries", "stream=start_time", "-of", "csv=p=0", src]);
  const audioStart = Number(stdout.trim());
  assert.ok(Math.abs(audioStart - 0.5) < 0.05, `ffprobe: audio starts at ${audioStart}`);
  const media = await new LocalDiskAccess(tmp).open("audio-late.mp4");
  const index = await openMp4(media);
  const cache = new PrepareCache({ dir: path.join(tmp, "late") });
  const p = await cache.get(await request(src, "audio"));
  if (p.done) assert.fail("a fresh cache cannot hit");
  const firstPackets = async (audio: { file: import("../../sidecar/src/files/file-access.ts").RandomAccessFile; track: NonNullable<Mp4Index["audio"]>; growth?: import("../../sidecar/src/vod/packet-source.ts").Growth }) => {
    const source = createVodPacketSource({ video: { file: media, track: index.video! }, audio });
    const out: MediaPacket[] = [];
    while (!source.ended) {
      source.take(Infinity, out);
      await new Promise((r) => setTimeout(r, 5));
    }
    await source.close();
    return { a: out.find((x) => x.kind === "audio")!, v: out.find((x) => x.kind === "video")! };
  };
  const reader = p.job.acquire();
  await p.job.index.started();
  const growing = await firstPackets({ file: reader, track: p.job.index.audio!, growth: p.job.index });
  await reader.close();
  const out = await finish(cache, p);
  const copy = await new LocalDiskAccess(path.dirname(out)).open(path.basename(out));
  const finished = await firstPackets({ file: copy, track: (await openMp4(copy)).audio! });
  await copy.close();
  await media.close();
  for (const [phase, { a, v }] of [["growing", growing], ["finished", finished]] as const) {
    assert.equal(v.timestamp, 0, phase);
    assert.equal(v.dueMs, 0, phase);
    // Opus pre-skip (6.5 ms) and the AAC priming ffmpeg trims shift it by a few ms; 40 ms is lip-sync tolerance.
    assert.ok(Math.abs(a.dueMs - audioStart * 1000) <= 40, `${phase}: audio due at ${a.dueMs} ms`);
    assert.ok(Math.abs(a.timestamp - audioStart * 48000) <= 0.04 * 48000, `${phase}: audio RTP timestamp ${a.timestamp}`);
  }
});

/** A copy of `src` whose video sample entry is renamed to a codec nothing knows. */
async function unknownCodec(src: string, out: string): Promise<string> {
  const bytes = Buffer.from(await fs.readFile(src));
  // The sample entry, not the ftyp's compatible brand of the same name: the one inside the moov.
  const moov = bytes.indexOf("moov");
  const entry = bytes.indexOf("avc1", moov);
  assert.ok(moov > 0 && entry > moov, "fixture has an avc1 sample entry");
  bytes.write("zzzz", entry, "latin1");
  await fs.writeFile(out, bytes);
  return out;
}

test("a video codec ffmpeg cannot decode fails with 'Unsupported video codec'", async () => {
  const src = await unknownCodec(await fx.noAudio(), path.join(tmp, "unknown-codec.mp4"));
  const c = classify(await indexOf(src));
  assert.equal(c.video?.family, "other");
  assert.equal(c.plan.video, "prepare", "ffmpeg gets to try");
  const cache = new PrepareCache({ dir: path.join(tmp, "unknown") });
  const p = await cache.get(await request(src, "video", false));
  if (p.done) assert.fail("a fresh cache cannot hit");
  const result = await p.job.finished;
  assert.ok(result instanceof MediaError, String(result));
  assert.equal(result.info, Info.UNSUPPORTED_VIDEO_CODEC);
  await assert.rejects(p.job.index.started(), (e: unknown) => e instanceof MediaError && e.info === Info.UNSUPPORTED_VIDEO_CODEC);
  assert.deepEqual(await fs.readdir(path.join(tmp, "unknown")), []);
});

test("a disk that fills while preparing fails the prepare's viewers and keeps nothing", async () => {
  // ffmpeg may write at most 300 KB (ulimit -f counts 1 KiB blocks): a full disk, as far as its writes can tell.
  const wrapper = path.join(tmp, "ffmpeg-small-disk.sh");
  await fs.writeFile(wrapper, `#!/bin/sh\nulimit -f 300\nexec ${FFMPEG} "$@"\n`, { mode: 0o755 });
  const src = await makeFixture(tmp, "big.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=20"],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-threads", "1"],
  ]);
  const dir = path.join(tmp, "full");
  const cache = new PrepareCache({ dir, ffmpegPath: wrapper });
  const p = await cache.get(await request(src, "video", false));
  if (p.done) assert.fail("a fresh cache cannot hit");
  const reader = p.job.acquire();
  const result = await p.job.finished;
  assert.ok(result instanceof MediaError && result.info === Info.PREPARE_FAILED, String(result));
  assert.ok(p.job.index.error, "viewers following it fail");
  await reader.close();
  assert.deepEqual(await fs.readdir(dir), [], "no partial copy left");
  // Nothing else is affected: the same cache prepares another file.
  const ok = await new PrepareCache({ dir }).get(await request(await fx.highBframes(), "video"));
  assert.ok(!ok.done && typeof (await ok.job.finished) === "string");
});

test("AAC mono at 22.05 kHz, AAC 5.1, MP3 and AC-3 in MP4 all become 48 kHz stereo Opus of the same length", async () => {
  const cache = new PrepareCache({ dir: path.join(tmp, "codecs") });
  for (const [name, make] of [
    ["aacMono22k", fx.aacMono22k],
    ["aac51", fx.aac51],
    ["mp3", fx.mp3],
    ["ac3", fx.ac3],
  ] as const) {
    const src = await make();
    const source = await indexOf(src);
    assert.equal(classify(source).plan.audio, "transcode", name);
    const out = await finish(cache, await cache.get(await request(src, "audio")));
    const copy = await indexOf(out);
    assert.equal(copy.audio?.codec, "opus", name);
    assert.equal(copy.audio?.sampleRate, 48000, name);
    assert.equal(copy.audio?.channels, 2, name);
    const length = (t: NonNullable<Mp4Index["audio"]>) => (t.samples.dts[t.samples.count - 1]! + t.samples.duration[t.samples.count - 1]! - t.samples.dts[0]!) / t.timescale;
    assert.ok(Math.abs(length(copy.audio!) - length(source.audio!)) < 0.1, `${name}: ${length(copy.audio!)} s vs ${length(source.audio!)} s`);
  }
});

test("variable frame rate survives a prepare: every frame keeps its own presentation time", async () => {
  // 30 fps for a second, then 15 fps, with B-frames so that it must be prepared.
  const src = await makeFixture(tmp, "vfr-bframes.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30:duration=2"],
    ...["-vf", "setpts='if(lt(N,30),N/30,1+(N-30)/15)/TB'", "-fps_mode", "passthrough"],
    ...["-c:v", "libx264", "-threads", "1", "-bf", "2", "-x264-params", "b-adapt=0"],
  ]);
  const source = classify(await indexOf(src));
  assert.equal(source.video?.vfr, true);
  const cache = new PrepareCache({ dir: path.join(tmp, "vfr") });
  const out = await finish(cache, await cache.get(await request(src, "video", false)));
  const a = await presentationTimes(src);
  const b = await presentationTimes(out);
  assert.equal(b.length, a.length, "every frame kept");
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(b[i]! - b[0]! - (a[i]! - a[0]!)) < 0.002, `frame ${i}: ${b[i]! - b[0]!} s vs ${a[i]! - a[0]!} s`);
  }
  assert.equal(classify(await indexOf(out)).video?.vfr, true);
});

/** Presentation times (seconds) of the video packets in display order, per ffprobe. */
async function presentationTimes(file: string): Promise<number[]> {
  const { stdout } = await run(FFPROBE, ["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0", file]);
  return stdout
    .trim()
    .split("\n")
    .map(Number)
    .sort((x, y) => x - y);
}

test("prepares beyond maxRunning wait their turn, then run", async () => {
  const cache = new PrepareCache({ dir: path.join(tmp, "slots"), maxRunning: 1 });
  const first = await cache.get(await request(await fx.highBframes(), "video"));
  const second = await cache.get(await request(await fx.rotated90(), "video", false));
  assert.ok(!first.done && !second.done);
  assert.equal(cache.stats.running, 2);
  assert.equal(cache.stats.waiting, 1, "the second waits for the first");
  assert.equal(typeof (await first.job.finished), "string");
  assert.equal(typeof (await second.job.finished), "string");
  assert.equal(cache.stats.waiting, 0);
  assert.equal(cache.stats.running, 0);
});

test("VP8 copies: upright VP8 alone, every frame at its source time, keyframes at 0, 0.25, 0.5, 1 s then <= 2 s, ffprobe-valid", async () => {
  const dir = path.join(tmp, "vp8");
  const { cache, runs } = counting(dir);
  const src = await makeFixture(tmp, "vp8-source.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=7"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=7"],
    ...["-c:v", "libx264", "-threads", "1", "-bf", "2", "-g", "150", "-c:a", "aac"],
  ]);
  for (const [name, file, portrait] of [
    ["B-frames + AAC", src, false],
    ["rotated 90", await fx.rotated90(), true],
  ] as const) {
    const first = await cache.get(await request(file, "vp8", false));
    assert.equal(first.done, false, `${name}: prepared on first ask`);
    const out = await finish(cache, first);
    const index = await indexOf(out);
    const after = classify(index);
    assert.equal(after.video?.family, "vp8", name);
    assert.equal(index.audio, undefined, `${name}: picture alone`);
    assert.equal(after.video?.rotation, 0, name);
    assert.equal(after.video!.displayWidth < after.video!.displayHeight, portrait, `${name}: portrait`);
    const s = index.video!.samples;
    const keys: number[] = [];
    for (let i = 0; i < s.count; i++) if (s.sync[i] === 1) keys.push((s.dts[i]! - s.dts[0]!) / index.video!.timescale);
    const length = (s.dts[s.count - 1]! + s.duration[s.count - 1]! - s.dts[0]!) / index.video!.timescale;
    const planned = [0, 0.25, 0.5, 1, 2, 4, 6, 8].filter((t) => t < length - 0.01);
    assert.deepEqual(keys.map((k) => Math.round(k * 20) / 20), planned, `${name}: keyframes`);
    assert.ok(after.video!.maxGopSec <= 2.05, `${name}: keyframe gap ${after.video!.maxGopSec}`);
    const a = await presentationTimes(file);
    const b = await presentationTimes(out);
    assert.equal(b.length, a.length, `${name}: every frame kept`);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(b[i]! - a[i]!) < 0.002, `${name}: frame ${i} at ${b[i]} s, source ${a[i]} s`);
    const { stdout } = await run(FFPROBE, ["-v", "error", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", out]);
    const streams = (JSON.parse(stdout) as { streams: { codec_name: string; nb_read_frames: string }[] }).streams;
    assert.deepEqual(streams.map((x) => x.codec_name), ["vp8"], name);
    assert.equal(Number(streams[0]!.nb_read_frames), a.length, `${name}: ffmpeg decodes every frame`);
    const again = await cache.get(await request(file, "vp8", false));
    assert.equal(again.done, true, `${name}: a hit once made`);
  }
  assert.equal(runs.length, 2);
});
