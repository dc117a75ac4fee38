import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Info } from "@edge-vod/shared";
import { MediaError, type RandomAccessFile } from "../../sidecar/src/files/file-access.ts";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4, readSample } from "../../sidecar/src/mp4/reader.ts";
import type { AudioTrack, SampleTable, VideoTrack } from "../../sidecar/src/mp4/types.ts";
import { createVodPacketSource, type MediaPacket, type PacketSource } from "../../sidecar/src/vod/packet-source.ts";
import { PacketStore } from "../../sidecar/src/vod/packet-store.ts";
import { SAMPLE_MP4 } from "../helpers/fixtures.ts";

// ---------- synthetic media ----------

/** In-memory file that records reads and can be slowed down (gate) or broken (fail). */
class MemFile implements RandomAccessFile {
  readonly identity = "mem";
  readonly reads: Array<{ position: number; length: number }> = [];
  gate: Promise<void> | undefined;
  fail: ((readNo: number) => Error | "short" | undefined) | undefined;

  constructor(
    readonly name: string,
    readonly data: Uint8Array,
  ) {}

  get size(): number {
    return this.data.length;
  }

  async read(target: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.reads.push({ position, length });
    await this.gate;
    const f = this.fail?.(this.reads.length);
    if (f instanceof Error) throw f;
    const end = Math.min(position + length, this.data.length);
    const n = f === "short" ? Math.max(0, end - position - 1) : end - position;
    target.set(this.data.subarray(position, position + n), offset);
    return n;
  }

  async close(): Promise<void> {}
}

let seed = 7;
function bytes(size: number, first?: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out[i] = 1 + ((seed >>> 16) % 255);
  }
  if (first !== undefined && size > 0) out[0] = first;
  return out;
}

function avcc(nals: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(nals.reduce((s, n) => s + 4 + n.length, 0));
  const view = new DataView(out.buffer);
  let o = 0;
  for (const n of nals) {
    view.setUint32(o, n.length);
    out.set(n, o + 4);
    o += 4 + n.length;
  }
  return out;
}

interface SyntheticSample {
  data: Uint8Array;
  dts: number;
  cts: number;
  duration: number;
  sync: boolean;
}

function table(samples: readonly SyntheticSample[], offsets: readonly number[]): SampleTable {
  return {
    count: samples.length,
    offset: Float64Array.from(offsets),
    size: Uint32Array.from(samples.map((s) => s.data.length)),
    dts: Float64Array.from(samples.map((s) => s.dts)),
    ctsOffset: Int32Array.from(samples.map((s) => s.cts)),
    duration: Uint32Array.from(samples.map((s) => s.duration)),
    sync: Uint8Array.from(samples.map((s) => (s.sync ? 1 : 0))),
  };
}

const SPS = bytes(12, 0x67);
const PPS = bytes(4, 0x68);

interface VideoOpts {
  frames: number;
  timescale: number;
  frameDuration: number;
  gop: number;
  firstDts?: number;
  cts?: number;
  /** Bytes of each frame's slice; some above the payload size to exercise FU-A. */
  sliceSize?: (i: number) => number;
}

function videoSamples(o: VideoOpts): SyntheticSample[] {
  return Array.from({ length: o.frames }, (_, i) => {
    const sync = i % o.gop === 0;
    const slice = bytes(o.sliceSize?.(i) ?? (sync ? 3000 : 200 + (i % 7) * 150), sync ? 0x65 : 0x41);
    // An AUD first in some frames, as x264 writes it: it must never reach the wire.
    const nals = i % 3 === 0 ? [Uint8Array.of(0x09, 0xf0), slice] : [slice];
    return { data: avcc(nals), dts: (o.firstDts ?? 0) + i * o.frameDuration, cts: o.cts ?? 0, duration: o.frameDuration, sync };
  });
}

function audioSamples(count: number, duration: number, firstDts = 0): SyntheticSample[] {
  return Array.from({ length: count }, (_, i) => ({
    data: bytes(40 + (i % 5) * 10, 0xfc),
    dts: firstDts + i * duration,
    cts: 0,
    duration,
    sync: true,
  }));
}

function videoTrack(samples: SampleTable, timescale: number, editShiftSec = 0): VideoTrack {
  return {
    kind: "video",
    id: 1,
    codec: "avc1.42c01e",
    timescale,
    width: 160,
    height: 90,
    avc: { nalLengthSize: 4, sps: [SPS], pps: [PPS], profileIdc: 66, profileCompat: 0xc0, levelIdc: 30 },
    hasBFrames: false,
    rotation: 0,
    editShiftSec,
    samples,
  };
}

function audioTrack(samples: SampleTable, timescale: number, editShiftSec = 0): AudioTrack {
  return { kind: "audio", id: 2, codec: "opus", timescale, sampleRate: 48000, channels: 2, editShiftSec, samples };
}

/** Lays samples out one after another in their own file. */
function ownFile(name: string, samples: readonly SyntheticSample[]): { file: MemFile; table: SampleTable } {
  const offsets: number[] = [];
  let size = 0;
  for (const s of samples) {
    offsets.push(size);
    size += s.data.length;
  }
  const data = new Uint8Array(size);
  samples.forEach((s, i) => data.set(s.data, offsets[i]!));
  return { file: new MemFile(name, data), table: table(samples, offsets) };
}

/** Lays both tracks out interleaved in chunks (5 video, 8 audio samples) in one file, after a fake header. */
function interleaved(video: readonly SyntheticSample[], audio: readonly SyntheticSample[]) {
  const vOff: number[] = [];
  const aOff: number[] = [];
  const parts: Uint8Array[] = [bytes(100)];
  let pos = 100;
  for (let v = 0, a = 0; v < video.length || a < audio.length; ) {
    for (let k = 0; k < 5 && v < video.length; k++, v++) {
      vOff.push(pos);
      parts.push(video[v]!.data);
      pos += video[v]!.data.length;
    }
    for (let k = 0; k < 8 && a < audio.length; k++, a++) {
      aOff.push(pos);
      parts.push(audio[a]!.data);
      pos += audio[a]!.data.length;
    }
  }
  const file = new MemFile("interleaved.mp4", Buffer.concat(parts));
  return { file, video: table(video, vOff), audio: table(audio, aOff) };
}

// ---------- helpers ----------

/** Rebuilds the NAL units of one access unit from its payloads (single NAL, STAP-A, FU-A). */
function depacketize(payloads: readonly Uint8Array[]): Buffer[] {
  const nals: Buffer[] = [];
  let fu: Buffer[] = [];
  for (const p of payloads) {
    const type = p[0]! & 0x1f;
    if (type === 24) {
      for (let o = 1; o < p.length; o += 2 + ((p[o]! << 8) | p[o + 1]!)) {
        nals.push(Buffer.from(p.subarray(o + 2, o + 2 + ((p[o]! << 8) | p[o + 1]!))));
      }
    } else if (type === 28) {
      if (p[1]! & 0x80) fu = [Buffer.of((p[0]! & 0xe0) | (p[1]! & 0x1f))];
      fu.push(Buffer.from(p.subarray(2)));
      if (p[1]! & 0x40) nals.push(Buffer.concat(fu));
    } else {
      nals.push(Buffer.from(p));
    }
  }
  return nals;
}

function nalsOf(sample: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  const view = new DataView(sample.buffer, sample.byteOffset, sample.byteLength);
  for (let o = 0; o < sample.length; ) {
    const len = view.getUint32(o);
    const type = sample[o + 4]! & 0x1f;
    if (type !== 9 && type !== 12) out.push(Buffer.from(sample.subarray(o + 4, o + 4 + len)));
    o += 4 + len;
  }
  return out;
}

/** Groups video packets into access units (by marker). */
function accessUnits(packets: readonly MediaPacket[]): MediaPacket[][] {
  const aus: MediaPacket[][] = [];
  let cur: MediaPacket[] = [];
  for (const p of packets) {
    if (p.kind !== "video") continue;
    cur.push(p);
    if (p.marker) {
      aus.push(cur);
      cur = [];
    }
  }
  assert.equal(cur.length, 0, "video ends with a marker");
  return aus;
}

function assertSendOrder(packets: readonly MediaPacket[]): void {
  for (let i = 1; i < packets.length; i++) {
    const a = packets[i - 1]!;
    const b = packets[i]!;
    assert.ok(a.dueMs <= b.dueMs, `packet ${i} due ${b.dueMs} after ${a.dueMs}`);
    if (a.dueMs === b.dueMs && a.kind === "video" && b.kind === "audio") {
      // Audio first on ties, unless the video packet continues an access unit already started.
      assert.fail(`audio at ${b.dueMs} ms after video of the same time (packet ${i})`);
    }
  }
}

/** Plays the source the way a scheduler does: take every `stepMs` of media, letting reads complete in between. */
async function drain(source: PacketSource, stepMs: number, check?: (untilMs: number, got: MediaPacket[]) => void): Promise<MediaPacket[]> {
  const all: MediaPacket[] = [];
  for (let t = 0; !source.ended; t += stepMs) {
    const got: MediaPacket[] = [];
    assert.equal(source.take(t, got), got.length);
    check?.(t, got);
    all.push(...got);
    assert.ok(t < 1e6, "source never ended");
    await sleep(0);
  }
  return all;
}

// ---------- tests ----------

test("merges both tracks in due order with the specified timestamps", async () => {
  // ffmpeg-like video timescale, a decode start that is not 0, and a composition offset, with edit lists that put
  // both tracks' first presentation at 0 (as x264 + AAC files have them): timestamps count from presentation time
  // 0, due times are decode times on the same clock (video's first two go out before 0).
  const v = videoSamples({ frames: 90, timescale: 15360, frameDuration: 512, gop: 30, firstDts: 1000, cts: 1024 });
  const a = audioSamples(150, 960, 480);
  const media = interleaved(v, a);
  const source = createVodPacketSource({
    video: { file: media.file, track: videoTrack(media.video, 15360, -2024 / 15360) },
    audio: { file: media.file, track: audioTrack(media.audio, 48000, -480 / 48000) },
    prefetchMs: 10_000,
  });
  await source.ready();
  assert.equal(source.ended, false);
  const out: MediaPacket[] = [];
  const n = source.take(Infinity, out);
  assert.equal(n, out.length);
  assert.equal(source.ended, true);
  assertSendOrder(out);
  assert.ok(
    out.some((p, i) => i > 0 && p.kind === "video" && out[i - 1]!.kind === "audio" && out[i - 1]!.dueMs === p.dueMs),
    "the layout has ties (audio at 100 ms steps meets video frames), and audio went first",
  );

  const audio = out.filter((p) => p.kind === "audio");
  assert.equal(audio.length, a.length);
  audio.forEach((p, i) => {
    assert.equal(p.timestamp, i * 960);
    assert.equal(p.dueMs, i * 20);
    assert.equal(p.marker, false);
    assert.equal(p.keyframeStart, false);
    assert.deepEqual(Buffer.from(p.payload), Buffer.from(a[i]!.data));
  });

  const aus = accessUnits(out);
  assert.equal(aus.length, v.length);
  aus.forEach((au, i) => {
    for (const p of au) {
      assert.equal(p.timestamp, i * 3000, `frame ${i} timestamp`);
      assert.equal(p.dueMs, ((1000 + i * 512 - 2024) * 1000) / 15360, `frame ${i} due`);
      assert.ok(p.payload.length <= 1188);
    }
    au.forEach((p, k) => assert.equal(p.keyframeStart, k === 0 && i % 30 === 0, `keyframeStart frame ${i} packet ${k}`));
    const expected = nalsOf(v[i]!.data);
    if (i % 30 === 0) expected.unshift(Buffer.from(SPS), Buffer.from(PPS));
    assert.deepEqual(depacketize(au.map((p) => p.payload)), expected, `frame ${i} NAL units`);
  });
  // take(Infinity) once everything is queued must not start a refill round with nothing to read: that loop once
  // spun on microtasks and starved the event loop (on regression this sleep never returns and the file times out).
  source.take(Infinity, []);
  await sleep(1);
  assert.equal(media.file.reads.length, 1, "the whole (small) window came in one read");
  await source.close();
});

test("playbacks of one file share a packet store: a later one reads nothing and sends the same packets; a small budget keeps the newest", async () => {
  const v = videoSamples({ frames: 90, timescale: 15360, frameDuration: 512, gop: 30, firstDts: 1000, cts: 1024 });
  const a = audioSamples(150, 960, 480);
  const media = interleaved(v, a);
  const tracks = {
    video: { file: media.file, track: videoTrack(media.video, 15360, -2024 / 15360) },
    audio: { file: media.file, track: audioTrack(media.audio, 48000, -480 / 48000) },
  };
  const alone = createVodPacketSource({ ...tracks, prefetchMs: 10_000 });
  await alone.ready();
  const expected: MediaPacket[] = [];
  alone.take(Infinity, expected);

  const store = new PacketStore(64 << 20);
  const first = createVodPacketSource({ ...tracks, prefetchMs: 10_000, store });
  await first.ready();
  const got1: MediaPacket[] = [];
  first.take(Infinity, got1);
  const readsBefore = media.file.reads.length;
  const second = createVodPacketSource({ ...tracks, prefetchMs: 10_000, store });
  await second.ready();
  const got2: MediaPacket[] = [];
  second.take(Infinity, got2);
  assert.equal(second.ended, true);
  assert.equal(media.file.reads.length, readsBefore, "the second playback read nothing from the file");
  const plain = (ps: MediaPacket[]) => ps.map((p) => ({ ...p, payload: Buffer.from(p.payload).toString("hex") }));
  assert.deepEqual(plain(got1), plain(expected), "with a store, the packets are those of a playback without one");
  assert.deepEqual(plain(got2), plain(expected), "and the second playback sends the same");
  assert.ok(got2.every((p, i) => p === got1[i]), "the very same packet objects: packetized once");
  assert.equal(store.hits, v.length + a.length);
  const held = store.bytes;
  assert.ok(held >= v.reduce((n, s) => n + s.data.length, 0), `the store accounts for the bytes it holds (${held})`);

  // A budget of a few samples: the store keeps the most recent ones and never more than the budget.
  const small = new PacketStore(20_000);
  const third = createVodPacketSource({ ...tracks, prefetchMs: 10_000, store: small });
  await third.ready();
  third.take(Infinity, []);
  assert.ok(small.bytes <= 20_000 && small.size > 0, `held ${small.bytes} bytes in ${small.size} samples`);
  await Promise.all([alone.close(), first.close(), second.close(), third.close()]);
});

test("audio timestamps are rescaled to 48 kHz and video to 90 kHz from other timescales", async () => {
  const v = videoSamples({ frames: 40, timescale: 30000, frameDuration: 1001, gop: 20 });
  const a = audioSamples(60, 1024);
  const vf = ownFile("v.mp4", v);
  const af = ownFile("a.mp4", a);
  const source = createVodPacketSource({
    video: { file: vf.file, track: videoTrack(vf.table, 30000) },
    audio: { file: af.file, track: audioTrack(af.table, 44100) },
  });
  const out = await drain(source, 7);
  assertSendOrder(out);
  out.filter((p) => p.kind === "audio").forEach((p, i) => {
    assert.equal(p.timestamp, Math.round((i * 1024 * 48000) / 44100));
    assert.equal(p.dueMs, (i * 1024 * 1000) / 44100);
  });
  accessUnits(out).forEach((au, i) => assert.equal(au[0]!.timestamp, Math.round((i * 1001 * 90000) / 30000)));
});

test("take releases exactly what is due, the prefetch stays within its window, reads are batched", async () => {
  const v = videoSamples({ frames: 300, timescale: 15360, frameDuration: 512, gop: 60 });
  const a = audioSamples(500, 960);
  const vf = ownFile("v.mp4", v);
  const af = ownFile("a.mp4", a);
  const source = createVodPacketSource({
    video: { file: vf.file, track: videoTrack(vf.table, 15360) },
    audio: { file: af.file, track: audioTrack(af.table, 48000) },
  });
  await source.ready();
  // The first window (1500 ms) is one read per file, and nothing beyond it was read.
  assert.equal(vf.file.reads.length, 1);
  assert.equal(af.file.reads.length, 1);
  const lastVideo = Math.floor((1500 * 15360) / 512 / 1000); // frame 45 is due at exactly 1500 ms
  assert.equal(vf.file.reads[0]!.length, vf.table.offset[lastVideo]! + vf.table.size[lastVideo]!);
  assert.equal(af.file.reads[0]!.length, af.table.offset[75]! + af.table.size[75]!);

  let previous = -Infinity;
  const all = await drain(source, 10, (until, got) => {
    for (const p of got) {
      assert.ok(p.dueMs <= until, `packet due ${p.dueMs} released at ${until}`);
      // Reads keep up, so nothing is released late.
      assert.ok(p.dueMs > previous, `packet due ${p.dueMs} held back past ${previous}`);
    }
    previous = until;
  });
  assert.equal(source.ended, true);
  assertSendOrder(all);
  assert.equal(all.filter((p) => p.kind === "audio").length, 500);
  assert.equal(accessUnits(all).length, 300);
  // 10 s of media in about a read per 750 ms per track, not one per sample.
  assert.ok(vf.file.reads.length <= 16, `${vf.file.reads.length} video reads`);
  assert.ok(af.file.reads.length <= 16, `${af.file.reads.length} audio reads`);
  const out: MediaPacket[] = [];
  assert.equal(source.take(Infinity, out), 0);
});

test("skipVideoToNextKeyframe drops video until the next keyframe, audio continues", async () => {
  const m = interleaved(videoSamples({ frames: 60, timescale: 90000, frameDuration: 3000, gop: 10 }), audioSamples(100, 960));
  const make = () =>
    createVodPacketSource({
      video: { file: m.file, track: videoTrack(m.video, 90000) },
      audio: { file: m.file, track: audioTrack(m.audio, 48000) },
      prefetchMs: 5000,
    });
  const reference = make();
  await reference.ready();
  const full: MediaPacket[] = [];
  reference.take(Infinity, full);

  const source = make();
  await source.ready();
  const out: MediaPacket[] = [];
  source.take(150, out);
  source.skipVideoToNextKeyframe();
  source.take(500, out);
  // Frames 0..4 (due <= 133 ms) went out; 5..9 are dropped; frame 10 (333 ms) is a keyframe and plays on.
  const expected = full.filter((p) => p.dueMs <= 500 && (p.kind === "audio" || p.dueMs <= 150 || p.dueMs >= 1000 / 3));
  assert.deepEqual(out, expected);
  const firstAfter = out.find((p) => p.kind === "video" && p.dueMs > 150)!;
  assert.equal(firstAfter.keyframeStart, true);
  assert.equal(firstAfter.timestamp, 10 * 3000);
  assert.equal(
    out.filter((p) => p.kind === "audio").length,
    full.filter((p) => p.kind === "audio" && p.dueMs <= 500).length,
  );

  // A skip right at a keyframe drops nothing; one near the end with no keyframe left drops the tail and still ends.
  const atKey: MediaPacket[] = [];
  source.take(666, atKey);
  source.skipVideoToNextKeyframe();
  source.take(700, atKey);
  assert.deepEqual(atKey, full.filter((p) => p.dueMs > 500 && p.dueMs <= 700));
  source.take(1700, []);
  source.skipVideoToNextKeyframe();
  const tail: MediaPacket[] = [];
  source.take(Infinity, tail);
  assert.ok(tail.every((p) => p.kind === "audio"));
  assert.equal(source.ended, true);
});

test("a track whose read is slow holds the other back instead of sending out of order", async () => {
  const v = videoSamples({ frames: 60, timescale: 90000, frameDuration: 3000, gop: 30 });
  const a = audioSamples(100, 960);
  const vf = ownFile("v.mp4", v);
  const af = ownFile("a.mp4", a);
  let open!: () => void;
  af.file.gate = new Promise((resolve) => (open = resolve));
  const source = createVodPacketSource({
    video: { file: vf.file, track: videoTrack(vf.table, 90000) },
    audio: { file: af.file, track: audioTrack(af.table, 48000) },
  });
  await sleep(5);
  const out: MediaPacket[] = [];
  assert.equal(source.take(1000, out), 0, "audio at 0 ms may still come: nothing goes out");
  open();
  await source.ready();
  source.take(1000, out);
  assertSendOrder(out);
  assert.equal(out[0]!.kind, "audio");
  assert.equal(out.filter((p) => p.kind === "audio").length, 51);
  assert.equal(accessUnits(out).length, 31);
  await source.close();
});

test("a read error calls onError once with FAILED_TO_READ_FILE and ends without throwing", async () => {
  const v = videoSamples({ frames: 120, timescale: 90000, frameDuration: 3000, gop: 30 });
  const a = audioSamples(200, 960);
  const m = interleaved(v, a);
  m.file.fail = (n) => (n === 6 ? new Error("EIO: i/o error, read") : undefined);
  const source = createVodPacketSource({
    video: { file: m.file, track: videoTrack(m.video, 90000) },
    audio: { file: m.file, track: audioTrack(m.audio, 48000) },
    prefetchMs: 200,
  });
  const errors: MediaError[] = [];
  source.onError = (err) => errors.push(err);
  await source.ready();
  let taken = 0;
  for (let t = 0; t < 5000 && !source.ended; t += 20) {
    taken += source.take(t, []);
    await sleep(0);
  }
  assert.ok(taken > 0, "packets before the failure went out");
  assert.equal(source.ended, true);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof MediaError);
  assert.equal(errors[0].info, Info.FAILED_TO_READ_FILE);
  assert.match(errors[0].message, /EIO/);
  assert.equal(source.take(Infinity, []), 0);
  await sleep(5);
  assert.equal(errors.length, 1);
  await source.close();
});

test("a short read fails the same way, and a failure before onError is set is delivered when it is", async () => {
  const v = videoSamples({ frames: 30, timescale: 90000, frameDuration: 3000, gop: 30 });
  const vf = ownFile("v.mp4", v);
  vf.file.fail = () => "short";
  const source = createVodPacketSource({ video: { file: vf.file, track: videoTrack(vf.table, 90000) } });
  await source.ready();
  assert.equal(source.ended, true);
  const errors: MediaError[] = [];
  source.onError = (err) => errors.push(err);
  assert.equal(errors.length, 0, "delivered asynchronously, not inside the setter");
  await sleep(0);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.info, Info.FAILED_TO_READ_FILE);
  source.onError = (err) => errors.push(err);
  await sleep(0);
  assert.equal(errors.length, 1, "only once");
});

test("a malformed video sample fails the playback instead of sending garbage", async () => {
  const v = videoSamples({ frames: 10, timescale: 90000, frameDuration: 3000, gop: 10 });
  v[3]!.data = Uint8Array.of(0, 0, 1, 0, 0x41, 1, 2);
  const vf = ownFile("v.mp4", v);
  const source = createVodPacketSource({ video: { file: vf.file, track: videoTrack(vf.table, 90000) } });
  const errors: MediaError[] = [];
  source.onError = (err) => errors.push(err);
  await source.ready();
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.info, Info.GOT_EXCEPTION_WHILE_STREAMING_FILE);
  assert.match(errors[0]!.message, /video sample 3/);
  assert.equal(source.ended, true);
});

test("close waits for the read in flight and reports nothing after", async () => {
  const v = videoSamples({ frames: 30, timescale: 90000, frameDuration: 3000, gop: 30 });
  const vf = ownFile("v.mp4", v);
  let open!: () => void;
  vf.file.gate = new Promise((resolve) => (open = resolve));
  vf.file.fail = () => new Error("EBADF: file closed");
  const source = createVodPacketSource({ video: { file: vf.file, track: videoTrack(vf.table, 90000) } });
  const errors: MediaError[] = [];
  source.onError = (err) => errors.push(err);
  let closed = false;
  const closing = source.close().then(() => (closed = true));
  await sleep(5);
  assert.equal(closed, false, "close waits for the read");
  open();
  await closing;
  await source.ready();
  assert.equal(errors.length, 0);
  assert.equal(source.ended, true);
  assert.equal(source.take(Infinity, []), 0);
});

test("a video track without avcC is refused; empty tracks end at once", async () => {
  const vf = ownFile("v.mp4", videoSamples({ frames: 2, timescale: 90000, frameDuration: 3000, gop: 1 }));
  const { avc: _avc, ...noAvc } = videoTrack(vf.table, 90000);
  assert.throws(
    () => createVodPacketSource({ video: { file: vf.file, track: { ...noAvc, codec: "hvc1.1.6.L93.B0" } } }),
    (err: unknown) => err instanceof MediaError && err.info === Info.FILE_HAS_WRONG_FORMAT,
  );
  const empty = ownFile("a.mp4", []);
  const source = createVodPacketSource({ audio: { file: empty.file, track: audioTrack(empty.table, 48000) } });
  await source.ready();
  assert.equal(source.ended, true);
});

test("media/sample.mp4 through the real reader: 300 access units, last at 299*3000", async () => {
  const access = new LocalDiskAccess(path.dirname(SAMPLE_MP4));
  const opened = await access.open(path.basename(SAMPLE_MP4));
  let reads = 0;
  let bytesRead = 0;
  let largestRead = 0;
  const file: RandomAccessFile = {
    name: opened.name,
    size: opened.size,
    identity: opened.identity,
    async read(target, offset, length, position) {
      const n = await opened.read(target, offset, length, position);
      reads++;
      bytesRead += n;
      largestRead = Math.max(largestRead, length);
      return n;
    },
    close: () => opened.close(),
  };
  try {
    const index = await openMp4(file);
    const video = index.video!;
    const audio = index.audio!;
    assert.equal(video.samples.count, 300);
    reads = 0;
    bytesRead = 0;
    largestRead = 0;
    // The audio here is AAC, not Opus; the source does not look inside audio payloads, so it still tests the merge.
    const source = createVodPacketSource({ video: { file, track: video }, audio: { file, track: audio } });
    const errors: MediaError[] = [];
    source.onError = (err) => errors.push(err);
    await source.ready();
    const all = await drain(source, 50);
    const playbackReads = reads;
    const playbackBytes = bytesRead;
    assert.deepEqual(errors, []);
    assertSendOrder(all);

    const aus = accessUnits(all);
    assert.equal(aus.length, 300);
    assert.equal(all.filter((p) => p.kind === "video" && p.marker).length, 300);
    assert.equal(aus[299]![0]!.timestamp, 299 * 3000);
    assert.equal(aus[0]![0]!.timestamp, 0);
    assert.equal(aus[0]![0]!.keyframeStart, true);
    assert.equal(all.filter((p) => p.kind === "audio").length, audio.samples.count);
    for (let i = 0; i < 300; i++) {
      const sample = await readSample(file, video.samples, i);
      const expected = nalsOf(sample);
      const types = expected.map((n) => n[0]! & 0x1f);
      if (video.samples.sync[i] === 1 && !(types.includes(7) && types.includes(8))) {
        expected.unshift(...video.avc!.sps.map((s) => Buffer.from(s)), ...video.avc!.pps.map((p) => Buffer.from(p)));
      }
      assert.deepEqual(depacketize(aus[i]!.map((p) => p.payload)), expected, `frame ${i}`);
    }
    // Both tracks share the file and are interleaved sample by sample: a read per refill round, each sample once.
    const sampleBytes = [video, audio].reduce((s, t) => s + t.samples.size.reduce((x, y) => x + y, 0), 0);
    assert.ok(playbackReads <= 20, `${playbackReads} reads for 10 s of media`);
    assert.ok(playbackBytes >= sampleBytes && playbackBytes < sampleBytes * 1.05, `read ${playbackBytes} bytes for ${sampleBytes} bytes of samples`);
    assert.ok(largestRead < file.size / 2, `a read of ${largestRead} bytes from a ${file.size}-byte file`);

    // Video alone from the same file reads across the AAC samples between frames instead of one read per frame.
    reads = 0;
    bytesRead = 0;
    const videoOnly = createVodPacketSource({ video: { file, track: video } });
    const frames = accessUnits(await drain(videoOnly, 50));
    assert.equal(frames.length, 300);
    const videoBytes = video.samples.size.reduce((x, y) => x + y, 0);
    assert.ok(reads <= 20, `${reads} reads for 10 s of video`);
    assert.ok(bytesRead < videoBytes * 1.2, `read ${bytesRead} bytes for ${videoBytes} bytes of video`);
  } finally {
    await file.close();
  }
});

test("startMs: video from the first keyframe at or after it, audio from it, on the file's own clock", async () => {
  // 3 s of 30 fps video with a keyframe every 15 frames (0.5 s), 20 ms audio.
  const { file, video, audio } = interleaved(
    videoSamples({ frames: 90, timescale: 90000, frameDuration: 3000, gop: 15 }),
    audioSamples(150, 960),
  );
  const source = createVodPacketSource({
    video: { file, track: videoTrack(video, 90000) },
    audio: { file, track: audioTrack(audio, 48000) },
    startMs: 1100,
  });
  await source.ready();
  const got: MediaPacket[] = [];
  source.take(Infinity, got);
  const firstVideo = got.find((p) => p.kind === "video")!;
  const firstAudio = got.find((p) => p.kind === "audio")!;
  assert.equal(firstVideo.timestamp, 45 * 3000, "video starts at the keyframe at 1.5 s");
  assert.equal(firstVideo.keyframeStart, true);
  assert.equal(firstAudio.timestamp, 55 * 960, "audio starts at 1.1 s");
  assertSendOrder(got);
  await source.close();
});

test("loop: passes follow each other with timestamps and due times continued by the file's period", async () => {
  const { file, video, audio } = interleaved(
    videoSamples({ frames: 30, timescale: 90000, frameDuration: 3000, gop: 15 }),
    audioSamples(50, 960),
  );
  const source = createVodPacketSource({
    video: { file, track: videoTrack(video, 90000) },
    audio: { file, track: audioTrack(audio, 48000) },
    loop: true,
    prefetchMs: 300,
  });
  assert.equal(source.periodSec, 1);
  const all: MediaPacket[] = [];
  for (let t = 0; t <= 3500; t += 50) {
    source.take(t, all);
    await sleep(0);
  }
  assert.equal(source.ended, false, "a looping source never ends");
  assertSendOrder(all);
  const frames = accessUnits(all).map((au) => au[0]!.timestamp);
  // 3.5 s of media: frames at 0..3.5 s in 3000-tick steps, across three pass boundaries without a reset.
  assert.deepEqual(frames, Array.from({ length: 106 }, (_, i) => i * 3000));
  const keyframes = accessUnits(all).filter((au) => au[0]!.keyframeStart).map((au) => au[0]!.timestamp / 90);
  assert.deepEqual(keyframes, [0, 500, 1000, 1500, 2000, 2500, 3000, 3500]);
  const audioTs = all.filter((p) => p.kind === "audio").map((p) => p.timestamp);
  assert.deepEqual(audioTs, Array.from({ length: audioTs.length }, (_, i) => i * 960));
  assert.ok(audioTs.length >= 175, `audio continues across passes (${audioTs.length} packets)`);
  await source.close();

  // Starting in a later pass (a broadcast joined after it looped) lands in the same timeline.
  const late = createVodPacketSource({ video: { file, track: videoTrack(video, 90000) }, loop: true, startMs: 2600 });
  await late.ready();
  const got: MediaPacket[] = [];
  late.take(3100, got);
  assert.equal(got[0]!.timestamp, 3000 * 90, "the keyframe after 2.6 s is the start of the fourth pass, at 3 s");
  await late.close();
});

test("seek: video from the keyframe at or before the position (or after it, on ask), audio from the position; a read in flight is dropped", async () => {
  // 10 fps, a keyframe every 30 frames (3 s), audio every 20 ms.
  const v = videoSamples({ frames: 90, timescale: 90000, frameDuration: 9000, gop: 30 });
  const a = audioSamples(450, 960);
  const media = interleaved(v, a);
  const source = createVodPacketSource({
    video: { file: media.file, track: videoTrack(media.video, 90000) },
    audio: { file: media.file, track: audioTrack(media.audio, 48000) },
    prefetchMs: 1000,
  });
  await source.ready();
  assert.equal(source.videoStartMs, 0);
  const first: MediaPacket[] = [];
  source.take(500, first);
  assert.ok(first.length > 0);

  // A seek while a read is held up: the held read's samples must not come out.
  media.file.gate = new Promise((r) => setTimeout(r, 30));
  source.take(1400, []);
  source.seek(4_250, "before");
  await source.ready();
  media.file.gate = undefined;
  assert.equal(source.videoStartMs, 3_000, "the keyframe at 3 s, before 4.25 s");
  const got: MediaPacket[] = [];
  source.take(4_600, got);
  const video = got.filter((p) => p.kind === "video");
  const audio = got.filter((p) => p.kind === "audio");
  assert.equal(video[0]!.dueMs, 3_000);
  assert.ok(video[0]!.keyframeStart);
  assert.deepEqual([...new Set(video.map((p) => p.dueMs))], [3000, 3100, 3200, 3300, 3400, 3500, 3600, 3700, 3800, 3900, 4000, 4100, 4200, 4300, 4400, 4500, 4600]);
  assert.ok(audio.length > 0 && audio[0]!.dueMs >= 4_250 && audio[0]!.dueMs < 4_270, `audio from 4.25 s: ${audio[0]?.dueMs}`);
  assertSendOrder(got);

  source.seek(4_250, "after");
  await source.ready();
  assert.equal(source.videoStartMs, 6_000, "the next keyframe, 6 s");
  const after: MediaPacket[] = [];
  // The window read at the seek ends before the next keyframe: it is read as the takes come.
  for (let i = 0; i < 20 && !after.some((p) => p.kind === "video"); i++) {
    source.take(6_100, after);
    await sleep(5);
  }
  assert.equal(after.find((p) => p.kind === "video")!.dueMs, 6_000);
  // Back to the start, and to the end: the source ends there.
  source.seek(0, "before");
  await source.ready();
  assert.equal(source.videoStartMs, 0);
  source.seek(8_950, "before");
  await source.ready();
  assert.equal(source.videoStartMs, 6_000);
  const tail = await drain(source, 500);
  assert.equal(tail.filter((p) => p.kind === "video" && p.keyframeStart).length, 1);
  assert.equal(source.ended, true);
});
