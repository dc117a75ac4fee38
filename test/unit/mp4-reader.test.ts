import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Info } from "@edge-vod/shared";
import { MediaError, type RandomAccessFile } from "../../sidecar/src/files/file-access.ts";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4, readSample } from "../../sidecar/src/mp4/reader.ts";
import type { Mp4Index, SampleTable } from "../../sidecar/src/mp4/types.ts";
import { fixtures, probePackets, SAMPLE_MP4, type FixtureName, type Fixtures } from "../helpers/fixtures.ts";

let tmp: string;
let fx: Fixtures;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "mp4-reader-"));
  fx = fixtures(tmp);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Opens a file by absolute path, counting what the reader asks for. */
async function openCounted(file: string): Promise<RandomAccessFile & { bytesRead: number; reads: number }> {
  const inner = await new LocalDiskAccess(path.dirname(file)).open(path.basename(file));
  const counted = {
    name: inner.name,
    size: inner.size,
    identity: inner.identity,
    bytesRead: 0,
    reads: 0,
    async read(target: Uint8Array, offset: number, length: number, position: number) {
      const n = await inner.read(target, offset, length, position);
      counted.reads++;
      counted.bytesRead += n;
      return n;
    },
    close: () => inner.close(),
  };
  return counted;
}

async function index(file: string): Promise<Mp4Index> {
  const f = await openCounted(file);
  try {
    return await openMp4(f);
  } finally {
    await f.close();
  }
}

async function fixtureIndex(name: FixtureName): Promise<Mp4Index> {
  return index(await fx[name]());
}

async function wrongFormat(name: FixtureName) {
  await assert.rejects(fixtureIndex(name), (err: unknown) => {
    assert.ok(err instanceof MediaError, String(err));
    assert.equal(err.info, Info.FILE_HAS_WRONG_FORMAT, err.message);
    return true;
  });
}

/** Every sample against ffprobe's packets of the same stream: count, size, file offset, keyframe flag, timing. */
async function matchesFfprobe(file: string, ix: Mp4Index) {
  const probe = await probePackets(file);
  for (const track of [ix.video, ix.audio]) {
    if (!track) continue;
    const stream = probe.streams.find((s) => s.codecType === track.kind);
    assert.ok(stream, `ffprobe sees a ${track.kind} stream`);
    assert.equal(stream.timeBase, `1/${track.timescale}`);
    const packets = probe.packets.filter((p) => p.streamIndex === stream.index);
    const s = track.samples;
    assert.equal(s.count, packets.length, `${track.kind} sample count`);
    // ffprobe applies edit lists (AAC priming, B-frame delay) to its timestamps, so compare relative to the first.
    const p0 = packets[0]!;
    for (let i = 0; i < s.count; i++) {
      const p = packets[i]!;
      const where: string = `${track.kind} sample ${i}`;
      assert.equal(s.size[i], p.size, `${where} size`);
      assert.equal(s.offset[i], p.pos, `${where} offset`);
      assert.equal(s.sync[i] === 1, p.key, `${where} sync`);
      assert.equal(s.dts[i]! - s.dts[0]!, p.dts - p0.dts, `${where} dts`);
      assert.equal(s.ctsOffset[i], p.pts - p.dts, `${where} cts offset`);
    }
  }
}

function assertMonotonic(s: SampleTable) {
  for (let i = 1; i < s.count; i++) assert.ok(s.dts[i]! > s.dts[i - 1]!, `dts ${i} increases`);
}

test("media/sample.mp4: 10 s of constrained baseline H.264 and AAC-LC", async () => {
  const ix = await index(SAMPLE_MP4);
  assert.equal(ix.fragmented, false);
  assert.ok(Math.abs(ix.durationSec - 10) < 0.1, `duration ${ix.durationSec}`);

  const v = ix.video;
  assert.ok(v);
  assert.match(v.codec, /^avc1\.42[ce]01e$/);
  assert.equal(v.width, 640);
  assert.equal(v.height, 360);
  assert.equal(v.timescale, 15360);
  assert.equal(v.hasBFrames, false);
  assert.ok(v.avc);
  assert.equal(v.avc.nalLengthSize, 4);
  assert.equal(v.avc.profileIdc, 66);
  assert.equal(v.avc.levelIdc, 30);
  assert.ok(v.avc.profileCompat & 0x40, "constraint_set1: constrained baseline");
  assert.equal(v.avc.sps.length, 1);
  assert.equal(v.avc.pps.length, 1);
  assert.equal(v.avc.sps[0]![0]! & 0x1f, 7, "SPS NAL type");
  assert.equal(v.avc.pps[0]![0]! & 0x1f, 8, "PPS NAL type");
  assert.equal(v.samples.count, 300);
  for (let i = 0; i < v.samples.count; i++) assert.equal(v.samples.sync[i], i % 30 === 0 ? 1 : 0, `sync ${i}`);
  assertMonotonic(v.samples);

  const a = ix.audio;
  assert.ok(a);
  assert.equal(a.codec, "mp4a.40.2");
  assert.equal(a.sampleRate, 48000);
  assert.equal(a.channels, 2);
  assert.equal(a.timescale, 48000);
  assert.ok(Math.abs(a.samples.count - 469) <= 3, `audio samples ${a.samples.count}`);
  assertMonotonic(a.samples);

  await matchesFfprobe(SAMPLE_MP4, ix);
});

test("readSample returns length-prefixed NAL units, into a given buffer without allocating", async () => {
  const file = await openCounted(SAMPLE_MP4);
  try {
    const v = (await openMp4(file)).video!;
    const target = new Uint8Array(Math.max(...v.samples.size));
    for (const i of [0, 1, 29, 30, 299]) {
      const bytes = await readSample(file, v.samples, i, target);
      assert.equal(bytes.buffer, target.buffer);
      assert.equal(bytes.byteOffset, 0);
      assert.equal(bytes.length, v.samples.size[i]);
      assert.deepEqual(bytes, await readSample(file, v.samples, i));
      // Walking the 4-byte length prefixes must land exactly on the sample's end.
      const types: number[] = [];
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
      let at = 0;
      while (at < bytes.length) {
        const len = view.getUint32(at);
        types.push(bytes[at + 4]! & 0x1f);
        at += 4 + len;
      }
      assert.equal(at, bytes.length, `sample ${i} NAL walk`);
      assert.equal(types.includes(5), v.samples.sync[i] === 1, `sample ${i} has an IDR slice iff sync (${types})`);
    }
    await assert.rejects(readSample(file, v.samples, 300), RangeError);
    await assert.rejects(readSample(file, v.samples, 0, new Uint8Array(1)), RangeError);
  } finally {
    await file.close();
  }
});

test("video only and audio only files", async () => {
  const noAudio = await fixtureIndex("noAudio");
  assert.equal(noAudio.audio, undefined);
  assert.equal(noAudio.video?.samples.count, 30);
  const noVideo = await fixtureIndex("noVideo");
  assert.equal(noVideo.video, undefined);
  assert.equal(noVideo.audio?.codec, "mp4a.40.2");
  await matchesFfprobe(await fx.noAudio(), noAudio);
  await matchesFfprobe(await fx.noVideo(), noVideo);
});

test("a moov at the end is found without reading the mdat, and gives the same samples as faststart", async () => {
  const atEnd = await fx.moovAtEnd();
  const counted = await openCounted(atEnd);
  let ixEnd: Mp4Index;
  try {
    ixEnd = await openMp4(counted);
  } finally {
    await counted.close();
  }
  assert.ok(counted.size > 2_000_000, `fixture is ${counted.size} bytes`);
  assert.ok(counted.bytesRead < counted.size / 2, `read ${counted.bytesRead} of ${counted.size} bytes`);
  await matchesFfprobe(atEnd, ixEnd);

  const fast = await fx.faststart();
  const ixFast = await index(fast);
  const a = await openCounted(atEnd);
  const b = await openCounted(fast);
  try {
    for (const kind of ["video", "audio"] as const) {
      const se = ixEnd[kind]!.samples;
      const sf = ixFast[kind]!.samples;
      assert.equal(se.count, sf.count);
      assert.deepEqual([se.size, se.dts, se.ctsOffset, se.duration, se.sync], [sf.size, sf.dts, sf.ctsOffset, sf.duration, sf.sync]);
      for (let i = 0; i < se.count; i++) {
        assert.deepEqual(await readSample(a, se, i), await readSample(b, sf, i), `${kind} sample ${i} bytes`);
      }
    }
  } finally {
    await a.close();
    await b.close();
  }
});

test("fragmented MP4: every sample of every fragment", async () => {
  const file = await fx.fragmented();
  const ix = await index(file);
  assert.equal(ix.fragmented, true);
  assert.equal(ix.video?.samples.count, 60);
  assert.ok(ix.audio && Math.abs(ix.audio.samples.count - 95) <= 2, `audio samples ${ix.audio?.samples.count}`);
  assertMonotonic(ix.video.samples);
  await matchesFfprobe(file, ix);
});

test("large fragmented MP4: the mdats between moofs are skipped, not read", async () => {
  const file = await fx.fragmentedLarge();
  const counted = await openCounted(file);
  let ix: Mp4Index;
  try {
    ix = await openMp4(counted);
  } finally {
    await counted.close();
  }
  assert.equal(ix.fragmented, true);
  assert.equal(ix.video?.samples.count, 60);
  assert.ok(counted.size > 2_000_000, `fixture is ${counted.size} bytes`);
  assert.ok(counted.bytesRead < counted.size / 2, `read ${counted.bytesRead} of ${counted.size} bytes in ${counted.reads} reads`);
  await matchesFfprobe(file, ix);
});

test("B-frames are detected from decode order differing from presentation order", async () => {
  const ix = await fixtureIndex("bframes");
  assert.equal(ix.video?.hasBFrames, true);
  assert.equal(ix.video.avc?.profileIdc, 100);
  await matchesFfprobe(await fx.bframes(), ix);
});

test("not an MP4, or cut before its moov: wrong format", async () => {
  await wrongFormat("notMp4");
  await wrongFormat("truncated");
  const empty = path.join(tmp, "empty.mp4");
  await fs.writeFile(empty, "");
  await assert.rejects(index(empty), (e: unknown) => e instanceof MediaError && e.info === Info.FILE_HAS_WRONG_FORMAT);
});

test("a faststart file cut inside its mdat: wrong format, not samples pointing past the end", async () => {
  const full = await fs.readFile(await fx.faststart());
  const cut = path.join(tmp, "cut-faststart.mp4");
  await fs.writeFile(cut, full.subarray(0, full.length - 1000));
  await assert.rejects(index(cut), (e: unknown) => e instanceof MediaError && e.info === Info.FILE_HAS_WRONG_FORMAT);
});

test("I/O errors are reported as failed reads", async () => {
  const broken: RandomAccessFile = {
    name: "broken.mp4",
    size: 1 << 20,
    identity: "x",
    read: () => Promise.reject(new Error("EIO: i/o error")),
    close: () => Promise.resolve(),
  };
  await assert.rejects(openMp4(broken), (e: unknown) => e instanceof MediaError && e.info === Info.FAILED_TO_READ_FILE);
});
