import { test } from "node:test";
import assert from "node:assert/strict";
import { dePacketizeRtpPackets, RtpHeader, RtpPacket, Vp8RtpPayload } from "werift";
import { DEFAULT_MAX_PAYLOAD } from "../../sidecar/src/rtp/h264-packetizer.ts";
import {
  isVp8KeyframeStart,
  vp8DescriptorLength,
  vp8KeyframeSize,
  Vp8Depacketizer,
  Vp8Packetizer,
  type Vp8Frame,
} from "../../sidecar/src/rtp/vp8-rtp.ts";

let seed = 7;
function rand(n: number): number {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return (seed >>> 8) % n;
}

interface FrameSpec {
  key: boolean;
  /** Total frame bytes. */
  size: number;
  /** first_part_size as written in the tag; default: a third of what follows the header. */
  firstPart?: number;
  width?: number;
  height?: number;
}

/** A VP8 frame with a real frame tag (and keyframe start code + size), random bytes after the header. */
function vp8Frame(spec: FrameSpec): Uint8Array {
  const out = new Uint8Array(spec.size);
  for (let i = 0; i < out.length; i++) out[i] = rand(256);
  const headerLen = spec.key ? 10 : 3;
  if (spec.size < 3) {
    if (spec.size > 0) out[0] = (out[0]! & 0xfe) | (spec.key ? 0 : 1);
    return out;
  }
  const firstPart = spec.firstPart ?? Math.max(1, Math.floor((spec.size - headerLen) / 3));
  // key_frame (0 = key), version 0, show_frame 1, first_part_size.
  const tag = (spec.key ? 0 : 1) | (1 << 4) | (firstPart << 5);
  out[0] = tag & 0xff;
  out[1] = (tag >> 8) & 0xff;
  out[2] = (tag >> 16) & 0xff;
  if (spec.key && spec.size >= 10) {
    out.set([0x9d, 0x01, 0x2a], 3);
    const w = spec.width ?? 640;
    const h = spec.height ?? 360;
    out[6] = w & 0xff;
    out[7] = w >> 8;
    out[8] = h & 0xff;
    out[9] = h >> 8;
  }
  return out;
}

interface Packet {
  payload: Uint8Array;
  marker: boolean;
}

function packetize(p: Vp8Packetizer, frame: Uint8Array, pictureId = 0, keyframe = false): Packet[] {
  const out: Packet[] = [];
  const n = p.packetize(frame, (payload, marker) => out.push({ payload, marker }), keyframe, pictureId);
  assert.equal(n, out.length, "returned count equals packets emitted");
  return out;
}

interface Rtp {
  seq: number;
  ts: number;
  marker: boolean;
  payload: Uint8Array;
  /** Index of the frame it carries. */
  frame: number;
}

/** Packets of `frames` in send order, seq starting at `seq0`, 3000 ticks per frame. */
function stream(frames: readonly Uint8Array[], opts: { maxPayload?: number; seq0?: number; ts0?: number } = {}): Rtp[] {
  const p = new Vp8Packetizer({ maxPayload: opts.maxPayload });
  const out: Rtp[] = [];
  let seq = opts.seq0 ?? 0;
  frames.forEach((f, i) => {
    const ts = ((opts.ts0 ?? 1000) + i * 3000) >>> 0;
    for (const pk of packetize(p, f, i)) {
      out.push({ seq: seq & 0xffff, ts, marker: pk.marker, payload: pk.payload, frame: i });
      seq++;
    }
  });
  return out;
}

interface Collected {
  frames: Vp8Frame[];
  keyframeRequests: number;
  depack: Vp8Depacketizer;
}

function depacketize(list: readonly Rtp[], arrival: (i: number) => number = () => 0): Collected {
  const out: Collected = { frames: [], keyframeRequests: 0, depack: undefined as never };
  out.depack = new Vp8Depacketizer({
    onFrame: (f) => out.frames.push(f),
    onKeyframeNeeded: () => out.keyframeRequests++,
  });
  list.forEach((r, i) => out.depack.pushRaw(r.seq, r.ts, r.marker, r.payload, arrival(i)));
  out.depack.flush();
  return out;
}

/** Which input frames came out, checking bytes, timestamp, keyframe flag and picture size against the input. */
function matchFrames(got: readonly Vp8Frame[], frames: readonly Uint8Array[], list: readonly Rtp[]): number[] {
  const tsToFrame = new Map<number, number>();
  for (const r of list) tsToFrame.set(r.ts, r.frame);
  return got.map((f) => {
    const i = tsToFrame.get(f.timestamp);
    assert.ok(i !== undefined, `frame with unknown timestamp ${f.timestamp}`);
    assert.deepEqual(Buffer.from(f.data), Buffer.from(frames[i]!), `bytes of frame ${i}`);
    const key = (frames[i]![0]! & 1) === 0;
    assert.equal(f.keyframe, key, `keyframe flag of frame ${i}`);
    const size = vp8KeyframeSize(frames[i]!);
    assert.equal(f.width, key ? size!.width : undefined);
    assert.equal(f.height, key ? size!.height : undefined);
    return i;
  });
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

/** Descriptor fields as the payload says (our 4-byte form). */
function descriptor(payload: Uint8Array): { s: boolean; pid: number; pictureId: number } {
  assert.equal(payload[0]! & 0x80, 0x80, "X");
  assert.equal(payload[1], 0x80, "I only");
  assert.equal(payload[2]! & 0x80, 0x80, "M (15-bit picture ID)");
  return { s: (payload[0]! & 0x10) !== 0, pid: payload[0]! & 7, pictureId: ((payload[2]! & 0x7f) << 8) | payload[3]! };
}

/** A GOP: a keyframe and `n - 1` inter frames of mixed sizes. */
function gop(n: number, keySize = 20_000): Uint8Array[] {
  const out = [vp8Frame({ key: true, size: keySize })];
  for (let i = 1; i < n; i++) out.push(vp8Frame({ key: false, size: 1000 + rand(4000) }));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Packetizer

test("round trip: packetize then depacketize gives back every frame, across sequence and timestamp wrap", () => {
  for (const maxPayload of [DEFAULT_MAX_PAYLOAD, 100, 5]) {
    const chunk = maxPayload - 4;
    const frames: Uint8Array[] = [
      vp8Frame({ key: true, size: maxPayload === 5 ? 3000 : 100_000, width: 1920, height: 1080 }),
      vp8Frame({ key: false, size: 1 }),
      vp8Frame({ key: false, size: 2 }),
      vp8Frame({ key: false, size: chunk }),
      vp8Frame({ key: false, size: chunk, firstPart: chunk - 3 }), // one partition, exactly one full packet
      vp8Frame({ key: false, size: chunk + 1 }),
      vp8Frame({ key: true, size: 10, firstPart: 0 }), // header only
      vp8Frame({ key: true, size: 11, firstPart: 1, width: 16, height: 16 }),
    ];
    for (let i = 0; i < 30; i++) {
      const key = rand(10) === 0;
      frames.push(vp8Frame({ key, size: (key ? 10 : 1) + rand(8000) }));
    }
    const list = stream(frames, { maxPayload, seq0: 65530, ts0: 0xffffffff - 5000 });
    assert.ok(list.some((r) => r.seq === 0) && list.some((r) => r.ts < 5000), "seq and timestamp wrap");
    for (const r of list) assert.ok(r.payload.length <= maxPayload, `payload ${r.payload.length} > ${maxPayload}`);
    // Marker on the last packet of each frame and nowhere else.
    list.forEach((r, k) => assert.equal(r.marker, list[k + 1]?.frame !== r.frame, `marker of packet ${k}`));

    const { frames: got, keyframeRequests, depack } = depacketize(list);
    assert.deepEqual(matchFrames(got, frames, list), range(0, frames.length), `maxPayload ${maxPayload}`);
    assert.equal(keyframeRequests, 0);
    assert.equal(depack.stats.units, frames.length);
    assert.equal(depack.stats.keyframes, frames.filter((f) => (f[0]! & 1) === 0).length);
    assert.equal(depack.stats.dropped, 0);
    assert.equal(depack.stats.packets.lost, 0);
    assert.equal(depack.stats.packets.delivered, list.length);
    assert.equal(depack.waitingForKeyframe, false);
  }
});

test("a frame of exactly maxPayload - 4 bytes in one partition fits one packet; one byte more takes two", () => {
  const p = new Vp8Packetizer();
  const chunk = DEFAULT_MAX_PAYLOAD - 4;
  const fits = packetize(p, vp8Frame({ key: false, size: chunk, firstPart: chunk - 3 }));
  assert.equal(fits.length, 1);
  assert.equal(fits[0]!.payload.length, DEFAULT_MAX_PAYLOAD);
  assert.equal(fits[0]!.marker, true);
  const over = packetize(p, vp8Frame({ key: false, size: chunk + 1, firstPart: chunk - 2 }));
  assert.deepEqual(over.map((x) => x.payload.length), [4 + 593, 4 + 592]);
  assert.deepEqual(over.map((x) => x.marker), [false, true]);
});

test("each partition is split into as few packets as fit, balanced in size", () => {
  for (const maxPayload of [DEFAULT_MAX_PAYLOAD, 300, 7]) {
    const chunk = maxPayload - 4;
    for (let round = 0; round < 50; round++) {
      const size = 20 + rand(30_000);
      const firstPart = 1 + rand(size - 10);
      const frame = vp8Frame({ key: true, size, firstPart });
      const boundary = Math.min(10 + firstPart, size);
      const packets = packetize(new Vp8Packetizer({ maxPayload }), frame);
      const first = packets.filter((x) => (x.payload[0]! & 7) === 0).map((x) => x.payload.length - 4);
      const rest = packets.filter((x) => (x.payload[0]! & 7) === 1).map((x) => x.payload.length - 4);
      for (const [sizes, length] of [
        [first, boundary],
        [rest, size - boundary],
      ] as const) {
        assert.equal(sizes.length, Math.ceil(length / chunk), `as few packets as fit (${length} bytes, chunk ${chunk})`);
        assert.equal(sizes.reduce((a, b) => a + b, 0), length);
        if (sizes.length > 0) assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `balanced: ${sizes.join(",")}`);
      }
    }
  }
});

test("picture ID goes out in 15 bits on every packet and wraps 32767 -> 0", () => {
  const p = new Vp8Packetizer({ maxPayload: 200 });
  const seen: number[][] = [];
  for (const id of [32766, 32767, 32768, 32769]) {
    const packets = packetize(p, vp8Frame({ key: false, size: 1000 }), id);
    assert.ok(packets.length > 1);
    seen.push(packets.map((x) => descriptor(x.payload).pictureId));
  }
  assert.deepEqual(seen.map((ids) => [...new Set(ids)]), [[32766], [32767], [0], [1]]);
});

test("the packet starting at the end of the first partition has S=1 PID=1, and no packet spans that boundary", () => {
  for (const [key, firstPart, size, maxPayload] of [
    [true, 1500, 5000, DEFAULT_MAX_PAYLOAD],
    [false, 100, 101 + 3, DEFAULT_MAX_PAYLOAD], // one byte of token data
    [false, 1181, 3000, DEFAULT_MAX_PAYLOAD], // first partition fills a packet exactly
    [true, 5, 40, 9],
  ] as const) {
    const frame = vp8Frame({ key, size, firstPart });
    const boundary = (key ? 10 : 3) + firstPart;
    const packets = packetize(new Vp8Packetizer({ maxPayload }), frame);
    let offset = 0;
    let starts = 0;
    for (const [k, x] of packets.entries()) {
      const d = descriptor(x.payload);
      const end = offset + x.payload.length - 4;
      assert.ok(!(offset < boundary && end > boundary), `packet ${k} [${offset}, ${end}) spans ${boundary}`);
      if (offset === 0) assert.deepEqual([d.s, d.pid], [true, 0], "first packet");
      else if (offset === boundary) assert.deepEqual([d.s, d.pid], [true, 1], "first token partition packet");
      else assert.deepEqual([d.s, d.pid], [false, offset < boundary ? 0 : 1], `packet ${k} at ${offset}`);
      if (offset === boundary) starts++;
      offset = end;
    }
    assert.equal(offset, size);
    assert.equal(starts, 1, "a packet starts exactly at the boundary");
  }
});

test("a malformed header or a first_part_size past the frame end sends the frame as one partition", () => {
  const cases: [string, Uint8Array][] = [
    ["first_part_size past the end", vp8Frame({ key: false, size: 3000, firstPart: 5000 })],
    ["first_part_size one past the end", vp8Frame({ key: true, size: 3000, firstPart: 2991 })],
    ["first_part_size 0", vp8Frame({ key: false, size: 3000, firstPart: 0 })],
    ["keyframe without start code", (() => {
      const f = vp8Frame({ key: true, size: 3000, firstPart: 100 });
      f[4] = 0x02;
      return f;
    })()],
    ["keyframe shorter than its header", vp8Frame({ key: true, size: 8 })],
  ];
  for (const [name, frame] of cases) {
    const packets = packetize(new Vp8Packetizer({ maxPayload: 500 }), frame);
    const d = packets.map((x) => descriptor(x.payload));
    assert.ok(d.every((x) => x.pid === 0), `${name}: all PID 0`);
    assert.deepEqual(d.map((x) => x.s), d.map((_, k) => k === 0), `${name}: S on the first packet only`);
    assert.equal(packets.length, Math.ceil(frame.length / 496), `${name}: packet count`);
    assert.deepEqual(Buffer.concat(packets.map((x) => x.payload.subarray(4))), Buffer.from(frame));
  }
});

test("packets of one frame share one buffer that later frames never write", () => {
  const p = new Vp8Packetizer({ maxPayload: 300 });
  const frame = vp8Frame({ key: true, size: 5000 });
  const first = packetize(p, frame, 1);
  const copies = first.map((x) => Buffer.from(x.payload));
  assert.ok(first.every((x) => x.payload.buffer === first[0]!.payload.buffer), "one allocation per frame");
  assert.equal(first[0]!.payload.buffer.byteLength, frame.length + 4 * first.length);
  frame.fill(0); // the caller reusing its sample buffer
  packetize(p, vp8Frame({ key: false, size: 5000 }), 2);
  first.forEach((x, k) => assert.deepEqual(Buffer.from(x.payload), copies[k], `packet ${k} unchanged`));
});

test("an empty frame emits nothing; maxPayload too small for descriptor + 1 byte is a RangeError", () => {
  assert.deepEqual(packetize(new Vp8Packetizer(), new Uint8Array(0)), []);
  for (const bad of [0, 4, 4.5, Number.NaN]) {
    assert.throws(() => new Vp8Packetizer({ maxPayload: bad }), RangeError, `maxPayload ${bad}`);
  }
  assert.equal(new Vp8Packetizer({ maxPayload: 5 }).maxPayload, 5);
  assert.equal(new Vp8Packetizer().maxPayload, DEFAULT_MAX_PAYLOAD);
});

test("the keyframe argument is only a hint: the frame's P bit decides what goes on the wire", () => {
  const p = new Vp8Packetizer();
  const inter = vp8Frame({ key: false, size: 3000 });
  const key = vp8Frame({ key: true, size: 3000 });
  assert.equal(isVp8KeyframeStart(packetize(p, inter, 0, true)[0]!.payload), false);
  assert.equal(isVp8KeyframeStart(packetize(p, key, 0, false)[0]!.payload), true);
  assert.deepEqual(
    packetize(p, inter, 3, true).map((x) => Buffer.from(x.payload)),
    packetize(p, inter, 3, false).map((x) => Buffer.from(x.payload)),
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Descriptor parsing

test("isVp8KeyframeStart and vp8DescriptorLength read every optional descriptor field", () => {
  const KEY = [0x50, 0x2a, 0x00]; // tag with P=0
  const INTER = [0x51, 0x2a, 0x00];
  const cases: [string, number[], number, boolean][] = [
    // name, descriptor, its length, is a keyframe start (with KEY after it)
    ["no X", [0x10], 1, true],
    ["X, no extension fields", [0x90, 0x00], 2, true],
    ["7-bit picture ID", [0x90, 0x80, 0x7f], 3, true],
    ["15-bit picture ID", [0x90, 0x80, 0xff, 0xff], 4, true],
    ["L (TL0PICIDX)", [0x90, 0x40, 0x05], 3, true],
    ["T", [0x90, 0x20, 0x40], 3, true],
    ["K", [0x90, 0x10, 0x1f], 3, true],
    ["T and K share a byte", [0x90, 0x30, 0x5f], 3, true],
    ["all: I 15-bit, L, T, K", [0x90, 0xf0, 0x81, 0x02, 0x07, 0x40], 6, true],
    ["all: I 7-bit, L, T", [0x90, 0xe0, 0x01, 0x07, 0x40], 5, true],
    ["N set", [0xb0, 0x80, 0x01], 3, true],
    ["S=0", [0x80, 0x80, 0x01], 3, false],
    ["PID=1", [0x91, 0x80, 0x01], 3, false],
    ["S=1 PID=2", [0x92, 0xf0, 0x81, 0x02, 0x07, 0x40], 6, false],
  ];
  for (const [name, d, len, start] of cases) {
    const payload = Uint8Array.from([...d, ...KEY, 1, 2, 3]);
    assert.equal(vp8DescriptorLength(payload), len, `${name}: length`);
    assert.equal(isVp8KeyframeStart(payload), start, `${name}: keyframe start`);
    assert.equal(isVp8KeyframeStart(Uint8Array.from([...d, ...INTER, 1, 2, 3])), false, `${name}: inter frame`);
    // Exactly the descriptor: valid length, but no payload header to read.
    assert.equal(vp8DescriptorLength(Uint8Array.from(d)), len, `${name}: bare descriptor length`);
    assert.equal(isVp8KeyframeStart(Uint8Array.from(d)), false, `${name}: bare descriptor`);
    // Any shorter and its bits announce more than is there.
    for (let cut = 0; cut < len; cut++) {
      assert.equal(vp8DescriptorLength(Uint8Array.from(d.slice(0, cut))), -1, `${name}: cut to ${cut}`);
      assert.equal(isVp8KeyframeStart(Uint8Array.from(d.slice(0, cut))), false, `${name}: cut to ${cut}`);
    }
  }
});

test("isVp8KeyframeStart and vp8DescriptorLength never throw on garbage", () => {
  for (let round = 0; round < 20_000; round++) {
    const g = new Uint8Array(rand(8));
    for (let i = 0; i < g.length; i++) g[i] = rand(256);
    const n = vp8DescriptorLength(g);
    assert.ok(n === -1 || (n >= 1 && n <= g.length && n <= 6), `length ${n} of ${g.length}-byte garbage`);
    const start = isVp8KeyframeStart(g);
    if (start) assert.ok(n >= 1 && n < g.length && (g[n]! & 1) === 0 && (g[0]! & 0x17) === 0x10);
  }
});

test("vp8KeyframeSize reads 14-bit width and height and rejects what is not a keyframe header", () => {
  assert.deepEqual(vp8KeyframeSize(vp8Frame({ key: true, size: 10, width: 1280, height: 720 })), { width: 1280, height: 720 });
  assert.deepEqual(vp8KeyframeSize(vp8Frame({ key: true, size: 50, width: 16383, height: 1 })), { width: 16383, height: 1 });
  const scaled = vp8Frame({ key: true, size: 20, width: 320, height: 240 });
  scaled[7] = scaled[7]! | 0xc0; // horizontal scale 3
  scaled[9] = scaled[9]! | 0x40;
  assert.deepEqual(vp8KeyframeSize(scaled), { width: 320, height: 240 }, "scale bits dropped");
  const badCode = vp8Frame({ key: true, size: 20 });
  badCode[5] = 0x2b;
  assert.equal(vp8KeyframeSize(badCode), undefined, "start code");
  assert.equal(vp8KeyframeSize(vp8Frame({ key: true, size: 20 }).subarray(0, 9)), undefined, "9 bytes");
  assert.equal(vp8KeyframeSize(vp8Frame({ key: false, size: 20 })), undefined, "inter frame");
  assert.equal(vp8KeyframeSize(vp8Frame({ key: true, size: 20, width: 0 })), undefined, "zero width");
  assert.equal(vp8KeyframeSize(vp8Frame({ key: true, size: 20, height: 0x4000 })), undefined, "zero height after scale bits");
  assert.equal(vp8KeyframeSize(new Uint8Array(0)), undefined);
});

// ---------------------------------------------------------------------------------------------------------------
// Interop

test("werift's Vp8RtpPayload reads our descriptors and reassembles our frames", () => {
  const frames = [vp8Frame({ key: true, size: 9000, firstPart: 2000 }), vp8Frame({ key: false, size: 2500, firstPart: 700 })];
  const p = new Vp8Packetizer();
  frames.forEach((frame, i) => {
    const pictureId = 32767 + i; // 32767, then 0
    const packets = packetize(p, frame, pictureId);
    const boundary = ((frame[0]! & 1) === 0 ? 10 : 3) + (i === 0 ? 2000 : 700);
    let offset = 0;
    for (const [k, x] of packets.entries()) {
      const w = Vp8RtpPayload.deSerialize(Buffer.from(x.payload.buffer, x.payload.byteOffset, x.payload.length));
      assert.equal(w.xBit, 1);
      assert.equal(w.iBit, 1);
      assert.equal(w.mBit, 1);
      assert.equal(w.pictureId, pictureId & 0x7fff, `picture ID of packet ${k}`);
      assert.equal(w.sBit, offset === 0 || offset === boundary ? 1 : 0, `S of packet ${k}`);
      assert.equal(w.pid, offset < boundary ? 0 : 1, `PID of packet ${k}`);
      if (k === 0) {
        assert.equal(w.isKeyframe, i === 0, "keyframe by werift");
        assert.equal(w.size, i === 0 ? 2000 : 700, "first_part_size by werift");
      }
      assert.deepEqual(Buffer.from(w.payload), Buffer.from(frame.subarray(offset, offset + w.payload.length)));
      offset += w.payload.length;
    }
    const rtp = packets.map(
      (x, k) => new RtpPacket(new RtpHeader({ sequenceNumber: k, timestamp: 90 * i, marker: x.marker }), Buffer.from(x.payload)),
    );
    const whole = dePacketizeRtpPackets("VP8", rtp);
    assert.deepEqual(whole.data, Buffer.from(frame));
    assert.equal(whole.isKeyframe, i === 0);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Depacketizer

test("push takes werift RtpPackets; arrivalMs is the frame's earliest packet", () => {
  const frames = gop(3);
  const list = stream(frames, { maxPayload: 500 });
  const got: Vp8Frame[] = [];
  const d = new Vp8Depacketizer({ onFrame: (f) => got.push(f) });
  assert.equal(d.waitingForKeyframe, true, "starts waiting for a keyframe");
  list.forEach((r, k) => {
    const rtp = new RtpPacket(new RtpHeader({ sequenceNumber: r.seq, timestamp: r.ts, marker: r.marker }), Buffer.from(r.payload));
    d.push(rtp, 1000 + k);
  });
  d.flush();
  assert.deepEqual(matchFrames(got, frames, list), [0, 1, 2]);
  assert.deepEqual(got.map((f) => f.arrivalMs), [0, 1, 2].map((i) => 1000 + list.findIndex((r) => r.frame === i)));
  assert.equal(got[0]!.width, 640);
  assert.equal(got[0]!.height, 360);
});

test("a lost packet in an inter frame drops it and every frame up to the next keyframe, asking for a keyframe", () => {
  const frames = [...gop(5), ...gop(3)];
  const list = stream(frames, { maxPayload: 400 });
  const of2 = list.flatMap((r, k) => (r.frame === 2 ? [k] : []));
  assert.ok(of2.length >= 3);
  const lossy = list.filter((_, k) => k !== of2[1]);
  const { frames: got, keyframeRequests, depack } = depacketize(lossy);
  assert.deepEqual(matchFrames(got, frames, lossy), [0, 1, 5, 6, 7]);
  assert.ok(keyframeRequests >= 1);
  assert.equal(keyframeRequests, depack.stats.dropped);
  assert.deepEqual(
    { units: depack.stats.units, keyframes: depack.stats.keyframes, dropped: depack.stats.dropped, lost: depack.stats.packets.lost },
    { units: 5, keyframes: 2, dropped: 3, lost: 1 },
  );
  assert.equal(depack.waitingForKeyframe, false);
});

for (const [name, pick] of [
  ["its first packet", (p: number[]) => p[0]!],
  ["its last packet (with the marker)", (p: number[]) => p.at(-1)!],
  ["a middle packet", (p: number[]) => p[Math.floor(p.length / 2)]!],
  ["the first packet of its token partitions", (p: number[]) => p[1]!],
] as const) {
  test(`a keyframe that lost ${name} is not emitted; decoding resumes at the keyframe after it`, () => {
    const frames = [...gop(3), vp8Frame({ key: true, size: 3000, firstPart: 100 }), ...gop(2, 5000).slice(1), ...gop(2)];
    const list = stream(frames, { maxPayload: 1000 });
    const of3 = list.flatMap((r, k) => (r.frame === 3 ? [k] : []));
    assert.ok(of3.length >= 3);
    const lossy = list.filter((_, k) => k !== pick(of3));
    const { frames: got, keyframeRequests, depack } = depacketize(lossy);
    assert.deepEqual(matchFrames(got, frames, lossy), [0, 1, 2, 5, 6]);
    assert.ok(keyframeRequests >= 1);
    assert.equal(depack.stats.dropped, 2);
  });
}

test("losing a whole inter frame right before a keyframe loses nothing else", () => {
  const frames = [...gop(4), ...gop(3)];
  const list = stream(frames, { maxPayload: 600 });
  const lossy = list.filter((r) => r.frame !== 3);
  const { frames: got } = depacketize(lossy);
  assert.deepEqual(matchFrames(got, frames, lossy), [0, 1, 2, 4, 5, 6]);
});

test("packets reordered within the window still make whole frames", () => {
  const frames = gop(10, 8000);
  const list = stream(frames, { maxPayload: 500, seq0: 65520 });
  const shuffled = [...list];
  // Swap neighbours, and reverse runs of 5 that straddle frame edges. The very first packet stays first: the window
  // takes it as the start of the sequence.
  for (let k = 1; k + 1 < shuffled.length; k += 7) [shuffled[k], shuffled[k + 1]] = [shuffled[k + 1]!, shuffled[k]!];
  for (let k = 3; k + 5 < shuffled.length; k += 23) shuffled.splice(k, 5, ...shuffled.slice(k, k + 5).reverse());
  assert.notDeepEqual(shuffled.map((r) => r.seq), list.map((r) => r.seq));
  const { frames: got, keyframeRequests, depack } = depacketize(shuffled);
  assert.deepEqual(matchFrames(got, frames, list), range(0, frames.length));
  assert.equal(keyframeRequests, 0);
  assert.equal(depack.stats.packets.lost, 0);
});

test("duplicates are ignored and padding-only packets take a sequence number without breaking the frame", () => {
  const frames = gop(3);
  const list = stream(frames, { maxPayload: 500 });
  const withDup = list.flatMap((r) => (r.frame === 1 ? [r, r] : [r]));
  const a = depacketize(withDup);
  assert.deepEqual(matchFrames(a.frames, frames, list), [0, 1, 2]);
  assert.ok(a.depack.stats.packets.duplicates > 0);

  // An empty payload in the middle of frame 1: later sequence numbers shift up by one.
  const at = list.findIndex((r) => r.frame === 1) + 1;
  const padded = [...list.slice(0, at), { ...list[at]!, payload: new Uint8Array(0), marker: false }, ...list.slice(at)].map(
    (r, k) => ({ ...r, seq: k }),
  );
  const b = depacketize(padded);
  assert.deepEqual(matchFrames(b.frames, frames, list), [0, 1, 2]);
});

test("malformed packets drop their frame without throwing, and decoding waits for a complete keyframe", () => {
  type Damage = (r: Rtp) => Uint8Array;
  const damages: [string, Damage][] = [
    ["descriptor longer than its packet", () => Uint8Array.from([0x80, 0x80])],
    ["descriptor only, empty VP8 payload", (r) => r.payload.subarray(0, 4)],
    ["one-byte descriptor only", () => Uint8Array.from([0x00])],
    ["a second frame start inside the frame", (r) => Uint8Array.from([0x90, ...r.payload.subarray(1)])],
  ];
  for (const [name, damage] of damages) {
    const frames = [...gop(3), ...gop(2)];
    const list = stream(frames, { maxPayload: 300 });
    const k = list.findIndex((r) => r.frame === 1) + 1;
    assert.equal(list[k]!.frame, 1);
    const bad = list.map((r, i) => (i === k ? { ...r, payload: damage(r) } : r));
    const { frames: got, keyframeRequests, depack } = depacketize(bad);
    assert.deepEqual(matchFrames(got, frames, list), [0, 3, 4], name);
    assert.equal(keyframeRequests, 2, `${name}: frames 1 and 2 dropped`);
    assert.equal(depack.stats.packets.lost, 0);
  }
});

test("a frame whose first packet does not start partition 0 is dropped", () => {
  const frames = gop(3);
  const list = stream(frames, { maxPayload: 300 });
  const k = list.findIndex((r) => r.frame === 1);
  const notStart = list.map((r, i) => (i === k ? { ...r, payload: Uint8Array.from([r.payload[0]! & ~0x10, ...r.payload.subarray(1)]) } : r));
  const { frames: got, keyframeRequests } = depacketize(notStart);
  assert.deepEqual(matchFrames(got, frames, list), [0]);
  assert.equal(keyframeRequests, 2);
});

test("a keyframe with a truncated header is dropped, and so is what follows until a valid keyframe", () => {
  const truncated = vp8Frame({ key: true, size: 20 }).slice(0, 7); // tag, start code, half the width
  const zeroSize = vp8Frame({ key: true, size: 900, width: 0 });
  const frames = [...gop(2), truncated, ...gop(2).slice(1), zeroSize, vp8Frame({ key: false, size: 50 }), ...gop(2)];
  const list = stream(frames, { maxPayload: 300 });
  const { frames: got, keyframeRequests, depack } = depacketize(list);
  assert.deepEqual(matchFrames(got, frames, list), [0, 1, 6, 7]);
  assert.equal(keyframeRequests, 4);
  assert.equal(depack.stats.dropped, 4);
});

test("the stream must start at a keyframe; requireKeyframe drops inter frames until the next one", () => {
  const frames = [vp8Frame({ key: false, size: 500 }), ...gop(4), ...gop(2)];
  const list = stream(frames, { maxPayload: 300 });
  const got: Vp8Frame[] = [];
  let requests = 0;
  const d = new Vp8Depacketizer({ onFrame: (f) => got.push(f), onKeyframeNeeded: () => requests++ });
  for (const r of list) {
    d.pushRaw(r.seq, r.ts, r.marker, r.payload, 0);
    if (r.marker && r.frame === 2) {
      d.requireKeyframe();
      assert.equal(d.waitingForKeyframe, true);
    }
  }
  d.flush();
  assert.deepEqual(matchFrames(got, frames, list), [1, 2, 5, 6]);
  assert.equal(requests, 3); // frames 0, 3, 4
  assert.equal(d.stats.dropped, 3);
});

test("a new timestamp without a marker completes the previous frame; a frame still open at flush is dropped", () => {
  const frames = gop(4);
  const list = stream(frames, { maxPayload: 300 });
  const noMarker = list.map((r) => (r.marker && r.frame === 1 ? { ...r, marker: false } : r));
  const a = depacketize(noMarker);
  assert.deepEqual(matchFrames(a.frames, frames, list), [0, 1, 2, 3]);
  assert.equal(a.keyframeRequests, 0);

  const openEnd = list.map((r) => (r.marker && r.frame === 3 ? { ...r, marker: false } : r));
  const b = depacketize(openEnd);
  assert.deepEqual(matchFrames(b.frames, frames, list), [0, 1, 2]);
  assert.equal(b.keyframeRequests, 1);
  assert.equal(b.depack.stats.dropped, 1);
});
