import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { RtpPacket } from "werift";
import {
  avcCodecString,
  buildAvcDecoderConfig,
  H264Depacketizer,
  parseSps,
  RtpReorderBuffer,
  type AccessUnit,
} from "../../sidecar/src/record/h264-depacketizer.ts";
import { splitAvcc } from "../../sidecar/src/rtp/h264-packetizer.ts";
import { FFPROBE, makeFixture } from "../helpers/fixtures.ts";
import { loadMedia, makeRecordFixture, toRtp, type LoadedMedia, type RtpEvent } from "../helpers/record-media.ts";

const run = promisify(execFile);

let tmp: string;
let media: LoadedMedia;
/** Video packets of `media`, in send order. */
let packets: RtpEvent[];

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "record-depack-"));
  // Noise makes frames big: IDRs and P-frames both span several FU-A packets. Keyframe every 20 frames.
  const file = await makeRecordFixture(tmp, "in.mp4", { seconds: 3, size: "320x240", gop: 20, noise: true, videoBitrate: "1500k" });
  media = await loadMedia(file);
  // Sequence numbers wrap early on, timestamps after 1.5 s.
  packets = toRtp(media, { videoSeq0: 65500 }).events.filter((e) => e.kind === "video");
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** The NAL units the depacketizer should emit for input sample `i`: AUD/filler out, SPS+PPS ahead of keyframes. */
function expectedNals(i: number): Buffer[] {
  const s = media.video[i]!;
  const nals = splitAvcc(s.data, media.nalLengthSize).filter((n) => ![9, 12].includes(n[0]! & 0x1f));
  const types = nals.map((n) => n[0]! & 0x1f);
  const params = s.key && !(types.includes(7) && types.includes(8)) ? [...media.sps, ...media.pps] : [];
  return [...params, ...nals].map((n) => Buffer.from(n));
}

interface Collected {
  units: AccessUnit[];
  keyframeRequests: number;
  depack: H264Depacketizer;
}

/** Feeds `list` (arrival time = media time + `delay(i)`) and flushes. */
function depacketize(list: readonly RtpPacket[], arrival: (i: number) => number = () => 0): Collected {
  const out: Collected = { units: [], keyframeRequests: 0, depack: undefined as never };
  out.depack = new H264Depacketizer({
    onAccessUnit: (u) => out.units.push(u),
    onKeyframeNeeded: () => out.keyframeRequests++,
  });
  list.forEach((p, i) => out.depack.push(p, arrival(i)));
  out.depack.flush();
  return out;
}

/** Input sample index of each emitted unit, checked against the input: bytes, timestamp, keyframe flag. */
function matchUnits(units: readonly AccessUnit[]): number[] {
  const tsToSample = new Map<number, number>();
  for (const e of packets) tsToSample.set(e.packet.header.timestamp, e.sample);
  return units.map((u) => {
    const i = tsToSample.get(u.timestamp);
    assert.ok(i !== undefined, `unit with unknown timestamp ${u.timestamp}`);
    assert.deepEqual(splitAvcc(u.data, 4).map((n) => Buffer.from(n)), expectedNals(i), `bytes of frame ${i}`);
    assert.equal(u.keyframe, media.video[i]!.key, `keyframe flag of frame ${i}`);
    return i;
  });
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
const keyIndexes = () => media.video.flatMap((s, i) => (s.key ? [i] : []));
const nextKey = (after: number) => keyIndexes().find((k) => k > after) ?? media.video.length;
/** Packet indexes (into `packets`) of video frame `i`. */
const packetsOf = (i: number) => packets.flatMap((e, k) => (e.sample === i ? [k] : []));

test("real H.264 through single NAL, STAP-A and FU-A comes back byte for byte, across seq and timestamp wrap", () => {
  const types = new Set(packets.map((e) => e.packet.payload[0]! & 0x1f));
  assert.ok(types.has(28) && types.has(24), `FU-A and STAP-A both exercised (types ${[...types].join(",")})`);
  const seqs = packets.map((e) => e.packet.header.sequenceNumber);
  assert.ok(seqs.includes(65535) && seqs.includes(0), "sequence numbers wrap");
  assert.ok(packets.some((e) => e.packet.header.timestamp < 90000), "timestamps wrap");

  const { units, keyframeRequests, depack } = depacketize(packets.map((e) => e.packet));
  assert.deepEqual(matchUnits(units), range(0, media.video.length));
  assert.equal(keyframeRequests, 0);
  assert.equal(depack.stats.packets.lost, 0);
  // Keyframes carry the parameter sets in force, equal to the encoder's.
  for (const u of units.filter((x) => x.keyframe)) {
    assert.deepEqual(Buffer.from(u.sps!), Buffer.from(media.sps[0]!));
    assert.deepEqual(Buffer.from(u.pps!), Buffer.from(media.pps[0]!));
  }
});

test("a lost packet in a P-frame drops that frame and every frame up to the next IDR, and asks for a keyframe", () => {
  const keys = keyIndexes();
  const lostFrame = keys[1]! + 5;
  const frameP = packetsOf(lostFrame);
  assert.ok(frameP.length >= 3, `frame ${lostFrame} spans ${frameP.length} packets`);
  const drop = frameP[1]!; // a middle fragment
  const { units, keyframeRequests } = depacketize(packets.filter((_, k) => k !== drop).map((e) => e.packet));
  const resume = nextKey(lostFrame);
  const expected = range(0, media.video.length).filter((i) => i < lostFrame || i >= resume);
  assert.deepEqual(matchUnits(units), expected);
  assert.ok(keyframeRequests >= 1, "keyframe requested");
});

for (const [name, pick] of [
  ["its first packet (the SPS/PPS STAP-A)", (p: number[]) => p[0]!],
  ["its last packet (with the marker)", (p: number[]) => p.at(-1)!],
  ["a middle FU-A fragment", (p: number[]) => p[Math.floor(p.length / 2)]!],
] as const) {
  test(`an IDR that lost ${name} is not emitted; decoding resumes at the IDR after it`, () => {
    const keys = keyIndexes();
    const frame = keys[1]!;
    const drop = pick(packetsOf(frame));
    const { units, keyframeRequests } = depacketize(packets.filter((_, k) => k !== drop).map((e) => e.packet));
    const resume = nextKey(frame);
    assert.deepEqual(matchUnits(units), range(0, media.video.length).filter((i) => i < frame || i >= resume));
    assert.ok(keyframeRequests >= 1);
  });
}

test("losing a whole P-frame right before an IDR loses nothing else: that IDR is provably complete", () => {
  const keys = keyIndexes();
  const frame = keys[2]! - 1;
  const lost = new Set(packetsOf(frame));
  const { units } = depacketize(packets.filter((_, k) => !lost.has(k)).map((e) => e.packet));
  assert.deepEqual(matchUnits(units), range(0, media.video.length).filter((i) => i !== frame));
});

test("neighbouring packets swapped (inside FU-A runs and across frames) lose nothing", () => {
  const list = packets.map((e) => e.packet);
  let swaps = 0;
  for (let k = 3; k + 1 < list.length; k += 7) {
    [list[k], list[k + 1]] = [list[k + 1]!, list[k]!];
    swaps++;
  }
  assert.ok(swaps > 50);
  const { units, keyframeRequests, depack } = depacketize(list);
  assert.deepEqual(matchUnits(units), range(0, media.video.length));
  assert.equal(keyframeRequests, 0);
  assert.equal(depack.stats.packets.lost, 0);
});

test("duplicates and empty padding packets change nothing", () => {
  // Padding: an empty packet taking the next sequence number after some frames, as a sender's padding would.
  const withPadding: RtpPacket[] = [];
  let shift = 0;
  packets.forEach((e, k) => {
    const c = e.packet.clone();
    c.header.sequenceNumber = (c.header.sequenceNumber + shift) & 0xffff;
    withPadding.push(c);
    if (c.header.marker && k % 3 === 0) {
      shift++;
      const pad = c.clone();
      pad.header.sequenceNumber = (c.header.sequenceNumber + 1) & 0xffff;
      pad.header.marker = false;
      pad.payload = Buffer.alloc(0);
      withPadding.push(pad);
    }
  });
  assert.ok(shift > 10);
  const list: RtpPacket[] = [];
  withPadding.forEach((p, k) => {
    list.push(p);
    if (k % 5 === 0) list.push(p.clone());
  });
  const { units, keyframeRequests, depack } = depacketize(list);
  assert.deepEqual(matchUnits(units), range(0, media.video.length));
  assert.equal(keyframeRequests, 0);
  assert.equal(depack.stats.packets.lost, 0);
  assert.equal(depack.stats.packets.duplicates, list.length - withPadding.length);
});

test("a packet later than the reorder window counts as lost, and its late copy is ignored", () => {
  const keys = keyIndexes();
  const frame = keys[1]! + 3;
  const k = packetsOf(frame)[0]!;
  const list = packets.map((e) => e.packet);
  const [late] = list.splice(k, 1);
  list.splice(k + 15, 0, late!); // 15 packets later: beyond the 10-packet window
  const { units, depack } = depacketize(list);
  assert.deepEqual(matchUnits(units), range(0, media.video.length).filter((i) => i < frame || i >= nextKey(frame)));
  assert.equal(depack.stats.packets.lost, 1);
  assert.ok(depack.stats.packets.duplicates >= 1);
});

test("the window also gives up on a hole after maxDelayMs of arrival time, even with few packets behind it", () => {
  const keys = keyIndexes();
  const frame = keys[1]! + 3;
  const k = packetsOf(frame)[0]!;
  const list = packets.map((e) => e.packet).filter((_, j) => j !== k);
  // Two packets after the hole arrive 60 ms apart: the second one ends the wait.
  const arrivals = list.map((_, j) => (j < k ? 0 : j === k ? 0 : 60 + j));
  const got: number[] = [];
  const depack = new H264Depacketizer({ onAccessUnit: (u) => got.push(u.timestamp) });
  for (let j = 0; j <= k + 1; j++) depack.push(list[j]!, arrivals[j]!);
  // Without a flush: the hole was given up because of time, so frames before it are out and it counts as lost.
  assert.equal(depack.stats.packets.lost, 1);
  assert.ok(depack.waitingForKeyframe);
});

test("reorder buffer: in order across the 16-bit wrap, holes reported once with their size", () => {
  const out: { ts: number; lost: number }[] = [];
  const rb = new RtpReorderBuffer((_p, ts, _m, _a, lost) => out.push({ ts, lost }), { maxPackets: 4, maxDelayMs: 1000 });
  const payload = new Uint8Array([1]);
  // 65533 65535 65534 0 (1 lost) 2 3 4 5
  for (const seq of [65533, 65535, 65534, 0, 2, 3, 4, 5]) rb.pushRaw(seq, seq, false, payload, 0);
  rb.flush();
  assert.deepEqual(
    out.map((o) => [o.ts, o.lost]),
    [
      [65533, 1], // the first packet counts as following an unknown gap
      [65534, 0],
      [65535, 0],
      [0, 0],
      [2, 1],
      [3, 0],
      [4, 0],
      [5, 0],
    ],
  );
  assert.equal(rb.stats.lost, 1);
});

test("reorder buffer: a sender that restarts its sequence numbers behind the window is followed after a while", () => {
  const seen: number[] = [];
  const rb = new RtpReorderBuffer((_p, ts) => seen.push(ts));
  const payload = new Uint8Array([1]);
  for (let s = 0; s < 100; s++) rb.pushRaw(30000 + s, s, false, payload, 0);
  for (let s = 0; s < 400; s++) rb.pushRaw(1000 + s, 1000 + s, false, payload, 0);
  rb.flush();
  assert.equal(seen.filter((t) => t < 100).length, 100);
  assert.ok(seen.filter((t) => t >= 1000).length >= 100, "packets after the restart are delivered");
});

test("SPS parsing gives the picture size ffprobe reports, with cropping and for high profile", async () => {
  const cases: [string, string[]][] = [
    ["a.mp4", ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=10:duration=0.3", "-c:v", "libx264", "-profile:v", "baseline"]],
    ["b.mp4", ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=10:duration=0.3", "-c:v", "libx264", "-profile:v", "main"]],
    ["c.mp4", ["-f", "lavfi", "-i", "testsrc2=size=642x362:rate=10:duration=0.3", "-c:v", "libx264", "-profile:v", "high"]],
    [
      "d.mp4",
      ["-f", "lavfi", "-i", "testsrc2=size=352x288:rate=10:duration=0.3", "-c:v", "libx264", "-profile:v", "high444", "-pix_fmt", "yuv444p"],
    ],
  ];
  for (const [name, args] of cases) {
    const file = await makeFixture(tmp, name, [...args, "-pix_fmt", args.includes("yuv444p") ? "yuv444p" : "yuv420p"]);
    const m = await loadMedia2(file);
    const info = parseSps(m.sps);
    const { stdout } = await run(FFPROBE, ["-v", "error", "-select_streams", "v", "-show_entries", "stream=width,height,profile", "-of", "json", file]);
    const probed = (JSON.parse(stdout) as { streams: { width: number; height: number }[] }).streams[0]!;
    assert.ok(info, `${name}: parsed`);
    assert.equal(info.width, probed.width, `${name} width`);
    assert.equal(info.height, probed.height, `${name} height`);
    assert.match(avcCodecString(m.sps), /^avc1\.[0-9a-f]{6}$/);
    // The avcC we build matches the one ffmpeg wrote, byte for byte.
    assert.deepEqual(Buffer.from(buildAvcDecoderConfig(m.sps, [m.pps])), m.avcC, `${name} avcC`);
  }
});

/** SPS, PPS and the raw avcC box payload of a video-only MP4. */
async function loadMedia2(file: string): Promise<{ sps: Uint8Array; pps: Uint8Array; avcC: Buffer }> {
  const bytes = await fs.readFile(file);
  const at = bytes.indexOf("avcC");
  assert.ok(at > 4, "avcC box present");
  const size = bytes.readUInt32BE(at - 4);
  const avcC = bytes.subarray(at + 4, at - 4 + size);
  const spsLen = avcC.readUInt16BE(6);
  const sps = avcC.subarray(8, 8 + spsLen);
  const ppsLen = avcC.readUInt16BE(8 + spsLen + 1);
  const pps = avcC.subarray(8 + spsLen + 3, 8 + spsLen + 3 + ppsLen);
  return { sps, pps, avcC: Buffer.from(avcC) };
}

// Hand-made streams for what real encoders rarely do.
const SPS = Uint8Array.of(0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84, 0x00);
const PPS = Uint8Array.of(0x68, 0xce, 0x3c, 0x80);
/** A slice NAL: IDR (type 5) or not (type 1); `firstMbZero` sets the first bit of first_mb_in_slice. */
const slice = (idr: boolean, firstMbZero = true, size = 40) => {
  const n = new Uint8Array(size).fill(0x55);
  n[0] = idr ? 0x65 : 0x41;
  n[1] = firstMbZero ? 0x88 : 0x08;
  return n;
};
const stap = (...nals: Uint8Array[]) => {
  const parts = nals.flatMap((n) => [Uint8Array.of(n.length >> 8, n.length & 0xff), n]);
  return Uint8Array.from([0x78, ...parts.flatMap((p) => [...p])]);
};
const fu = (nal: Uint8Array, start: boolean, end: boolean, part: Uint8Array) =>
  Uint8Array.from([(nal[0]! & 0xe0) | 28, (start ? 0x80 : 0) | (end ? 0x40 : 0) | (nal[0]! & 0x1f), ...part]);

function feed(units: { payloads: Uint8Array[] }[], skipSeq: number[] = []): { emitted: number[]; dropped: number } {
  const emitted: number[] = [];
  const d = new H264Depacketizer({ onAccessUnit: (u) => emitted.push(u.timestamp) });
  let seq = 100;
  units.forEach((u, i) => {
    u.payloads.forEach((p, k) => {
      const s = seq++;
      if (!skipSeq.includes(s)) d.pushRaw(s, i * 3000, k === u.payloads.length - 1, p, 0);
    });
  });
  d.flush();
  return { emitted: emitted.map((t) => t / 3000), dropped: d.stats.dropped };
}

test("an FU-A continuation without its start (no sequence gap: a sender glitch) drops the frame until the next IDR", () => {
  const p = slice(false, true, 100);
  const units = [
    { payloads: [stap(SPS, PPS), slice(true)] },
    { payloads: [slice(false)] },
    // frame 2: the FU-A start is replaced by a padding-free SEI-less glitch: only middle and end fragments
    { payloads: [fu(p, false, false, p.subarray(1, 50)), fu(p, false, true, p.subarray(50))] },
    { payloads: [slice(false)] },
    { payloads: [stap(SPS, PPS), slice(true)] },
    { payloads: [slice(false)] },
  ];
  const { emitted, dropped } = feed(units);
  assert.deepEqual(emitted, [0, 1, 4, 5]);
  assert.equal(dropped, 2);
});

test("after a loss, an IDR whose first slice does not start the picture is not a place to resume", () => {
  const units = [
    { payloads: [stap(SPS, PPS), slice(true)] },
    { payloads: [slice(false)] },
    { payloads: [slice(false)] }, // lost (seq 103)
    // Parameter sets present, IDR present, but its first slice starts mid-picture (slice 0 went missing earlier)
    { payloads: [stap(SPS, PPS, slice(true, false))] },
    { payloads: [slice(false)] },
    { payloads: [stap(SPS, PPS), slice(true)] },
  ];
  const { emitted } = feed(units, [103]);
  assert.deepEqual(emitted, [0, 1, 5]);
});

test("malformed STAP-A lengths and reserved packet types drop the frame", () => {
  const bad = stap(slice(false));
  bad[2] = 200; // length past the end
  const units = [
    { payloads: [stap(SPS, PPS), slice(true)] },
    { payloads: [bad] },
    { payloads: [slice(false)] },
    { payloads: [stap(SPS, PPS), slice(true)] },
    { payloads: [Uint8Array.of(0x5e, 1, 2, 3)] }, // type 30: reserved
    { payloads: [stap(SPS, PPS), slice(true)] },
  ];
  assert.deepEqual(feed(units).emitted, [0, 3, 5]);
});
