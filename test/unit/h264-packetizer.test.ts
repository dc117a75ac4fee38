import { test } from "node:test";
import assert from "node:assert/strict";
import { H264RtpPayload } from "werift";
import { DEFAULT_MAX_PAYLOAD, H264Packetizer, packetizeH264, splitAvcc } from "../../sidecar/src/rtp/h264-packetizer.ts";

interface Packet {
  payload: Uint8Array;
  marker: boolean;
}

let seed = 1;
/** A NAL unit of `size` bytes with a real header and bytes that never form a start code (so Annex-B splits cleanly). */
function nal(type: number, size: number, nri = 3): Uint8Array {
  const out = new Uint8Array(size);
  out[0] = (nri << 5) | type;
  for (let i = 1; i < size; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out[i] = 1 + ((seed >>> 16) % 255);
  }
  return out;
}

function avcc(nals: readonly Uint8Array[], lengthSize = 4): Uint8Array {
  const out = new Uint8Array(nals.reduce((sum, n) => sum + lengthSize + n.length, 0));
  let o = 0;
  for (const n of nals) {
    for (let i = 0; i < lengthSize; i++) out[o + i] = (n.length >>> (8 * (lengthSize - 1 - i))) & 0xff;
    out.set(n, o + lengthSize);
    o += lengthSize + n.length;
  }
  return out;
}

function run(p: H264Packetizer, sample: Uint8Array, keyframe = false): Packet[] {
  const out: Packet[] = [];
  const n = p.packetize(sample, (payload, marker) => out.push({ payload, marker }), keyframe);
  assert.equal(n, out.length, "returned count matches emitted packets");
  return out;
}

/** Independent reference depacketizer (RFC 6184 single NAL, STAP-A, FU-A), strict about FU-A sequencing. */
function depacketize(packets: readonly Packet[], maxPayload: number): Uint8Array[] {
  const nals: Uint8Array[] = [];
  let fu: Uint8Array[] | undefined;
  for (const { payload } of packets) {
    assert.ok(payload.length <= maxPayload, `payload of ${payload.length} bytes exceeds ${maxPayload}`);
    assert.ok(payload.length >= 1);
    const type = payload[0]! & 0x1f;
    if (type !== 28) assert.equal(fu, undefined, "FU-A interrupted by another packet");
    if (type >= 1 && type <= 23) {
      nals.push(payload);
    } else if (type === 24) {
      for (let o = 1; o < payload.length; ) {
        const len = (payload[o]! << 8) | payload[o + 1]!;
        assert.ok(o + 2 + len <= payload.length, "STAP-A length past the end");
        nals.push(payload.subarray(o + 2, o + 2 + len));
        o += 2 + len;
      }
    } else if (type === 28) {
      const s = (payload[1]! & 0x80) !== 0;
      const e = (payload[1]! & 0x40) !== 0;
      assert.equal(payload[1]! & 0x20, 0, "FU header R bit must be 0");
      assert.ok(payload.length > 2, "FU-A without data");
      if (s) {
        assert.equal(fu, undefined, "FU-A start inside another FU-A");
        fu = [Uint8Array.of((payload[0]! & 0xe0) | (payload[1]! & 0x1f))];
      } else {
        assert.ok(fu, "FU-A continuation without a start");
      }
      fu.push(payload.subarray(2));
      if (e) {
        nals.push(Buffer.concat(fu));
        fu = undefined;
      }
    } else {
      assert.fail(`unexpected packet type ${type}`);
    }
  }
  assert.equal(fu, undefined, "unfinished FU-A at the end of the access unit");
  return nals;
}

/** werift's depacketizer as a second, foreign oracle: Annex-B out. */
function weriftAnnexB(packets: readonly Packet[]): Buffer {
  const parts: Buffer[] = [];
  let fragment: Buffer | undefined;
  for (const { payload } of packets) {
    const h = H264RtpPayload.deSerialize(Buffer.from(payload), fragment);
    fragment = h.fragment;
    if (h.payload) parts.push(h.payload);
  }
  return Buffer.concat(parts);
}

function annexB(nals: readonly Uint8Array[]): Buffer {
  return Buffer.concat(nals.flatMap((n) => [Buffer.of(0, 0, 0, 1), Buffer.from(n)]));
}

function assertMarkers(packets: readonly Packet[]): void {
  assert.ok(packets.length > 0);
  packets.forEach((p, i) => assert.equal(p.marker, i === packets.length - 1, `marker on packet ${i} of ${packets.length}`));
}

function assertRoundTrip(packets: readonly Packet[], expected: readonly Uint8Array[], maxPayload: number): void {
  assertMarkers(packets);
  assert.deepEqual(
    depacketize(packets, maxPayload).map((n) => Buffer.from(n)),
    expected.map((n) => Buffer.from(n)),
  );
  assert.deepEqual(weriftAnnexB(packets), annexB(expected));
}

const SPS = nal(7, 12);
const PPS = nal(8, 4);
const params = { sps: [SPS], pps: [PPS] };

for (const maxPayload of [100, DEFAULT_MAX_PAYLOAD]) {
  test(`FU-A boundaries are exact around maxPayload=${maxPayload}`, () => {
    const p = new H264Packetizer({ nalLengthSize: 4, ...params, maxPayload });
    for (const size of [maxPayload - 1, maxPayload, maxPayload + 1, 3 * maxPayload]) {
      const unit = nal(1, size, 2);
      const packets = run(p, avcc([unit]));
      if (size <= maxPayload) {
        assert.equal(packets.length, 1, `${size} bytes fit one packet`);
        assert.deepEqual(Buffer.from(packets[0]!.payload), Buffer.from(unit));
      } else {
        // The NAL header byte travels in the FU indicator/header; the rest is cut into maxPayload-2 byte pieces.
        const data = size - 1;
        const chunk = maxPayload - 2;
        const pieces = Math.ceil(data / chunk);
        assert.equal(packets.length, pieces, `${size} bytes make ${pieces} fragments`);
        packets.forEach((pk, i) => {
          const expectedData = i < pieces - 1 ? chunk : data - chunk * (pieces - 1);
          assert.equal(pk.payload.length, 2 + expectedData, `fragment ${i} length`);
          assert.equal(pk.payload[0], (unit[0]! & 0xe0) | 28, "FU indicator keeps F|NRI, type 28");
          assert.equal(pk.payload[1], (i === 0 ? 0x80 : 0) | (i === pieces - 1 ? 0x40 : 0) | 1, "FU header S/E/type");
        });
      }
      assertRoundTrip(packets, [unit], maxPayload);
    }
  });
}

test("IDR without parameter sets gets SPS+PPS first as one STAP-A", () => {
  const p = new H264Packetizer({ nalLengthSize: 4, ...params, maxPayload: 200 });
  const sei = nal(6, 20, 0);
  const idr = nal(5, 450);
  const packets = run(p, avcc([sei, idr]));
  const stap = packets[0]!.payload;
  assert.equal(stap[0]! & 0x1f, 24);
  assert.equal(stap[0]! & 0x60, 0x60, "STAP-A NRI is the highest of its NAL units");
  assert.equal(stap.length, 1 + 2 + SPS.length + 2 + PPS.length);
  assertRoundTrip(packets, [SPS, PPS, sei, idr], 200);
});

test("a sync sample flagged as keyframe gets parameter sets even without an IDR slice", () => {
  const p = new H264Packetizer({ nalLengthSize: 4, ...params });
  const slice = nal(1, 300);
  assertRoundTrip(run(p, avcc([slice]), true), [SPS, PPS, slice], DEFAULT_MAX_PAYLOAD);
  assertRoundTrip(run(p, avcc([slice]), false), [slice], DEFAULT_MAX_PAYLOAD);
});

test("no parameter sets added when the access unit carries its own", () => {
  const p = new H264Packetizer({ nalLengthSize: 4, ...params });
  const ownSps = nal(7, 15);
  const ownPps = nal(8, 5);
  const idr = nal(5, 2000);
  const packets = run(p, avcc([ownSps, ownPps, idr]));
  assert.ok(packets.every((pk) => (pk.payload[0]! & 0x1f) !== 24), "no STAP-A");
  assertRoundTrip(packets, [ownSps, ownPps, idr], DEFAULT_MAX_PAYLOAD);
  // Half a set is no set: a decoder joining here would still miss the PPS.
  assertRoundTrip(run(p, avcc([ownSps, idr])), [SPS, PPS, ownSps, idr], DEFAULT_MAX_PAYLOAD);
});

test("parameter sets go as single NAL units when a STAP-A would not fit", () => {
  const bigSps = nal(7, 30);
  const p = new H264Packetizer({ nalLengthSize: 4, sps: [bigSps], pps: [PPS], maxPayload: 35 });
  const idr = nal(5, 100);
  const packets = run(p, avcc([idr]));
  assert.deepEqual(Buffer.from(packets[0]!.payload), Buffer.from(bigSps));
  assert.deepEqual(Buffer.from(packets[1]!.payload), Buffer.from(PPS));
  assertRoundTrip(packets, [bigSps, PPS, idr], 35);
});

test("marker only on the last packet of a many-NAL access unit", () => {
  const p = new H264Packetizer({ nalLengthSize: 4, ...params, maxPayload: 100 });
  const units = [nal(6, 40, 0), nal(5, 250), nal(5, 99), nal(5, 101)];
  const packets = run(p, avcc(units));
  assertRoundTrip(packets, [SPS, PPS, ...units], 100);
});

test("AUD and filler NAL units are dropped, SEI is kept", () => {
  const p = new H264Packetizer({ nalLengthSize: 4, ...params });
  const aud = nal(9, 2);
  const sei = nal(6, 30, 0);
  const slice = nal(1, 500, 2);
  const filler = nal(12, 50, 0);
  const packets = run(p, avcc([aud, sei, slice, filler]));
  // The filler is last in the sample: the marker must move to the slice before it.
  assertRoundTrip(packets, [sei, slice], DEFAULT_MAX_PAYLOAD);
  assert.deepEqual(run(p, avcc([aud]), true), [], "an access unit of only an AUD sends nothing");
});

test("NAL length sizes 1, 2 and 4 and zero-length NAL units", () => {
  for (const lengthSize of [1, 2, 4]) {
    const p = new H264Packetizer({ nalLengthSize: lengthSize, ...params, maxPayload: 100 });
    const units = [nal(1, 200), nal(1, 10)];
    const sample = avcc([units[0]!, new Uint8Array(0), units[1]!], lengthSize);
    assertRoundTrip(run(p, sample), units, 100);
    assert.deepEqual(
      splitAvcc(sample, lengthSize).map((n) => Buffer.from(n)),
      units.map((n) => Buffer.from(n)),
    );
  }
});

test("malformed samples throw before anything is emitted", () => {
  const p = new H264Packetizer({ nalLengthSize: 4, ...params });
  const good = avcc([nal(5, 50)]);
  const pastEnd = Uint8Array.of(...good.subarray(0, good.length - 1));
  const cutLength = Uint8Array.of(...good, 0, 0);
  const hugeLength = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x65, 1, 2);
  for (const sample of [pastEnd, cutLength, hugeLength]) {
    const emitted: Uint8Array[] = [];
    assert.throws(() => p.packetize(sample, (payload) => emitted.push(payload), true), /malformed AVCC sample/);
    assert.equal(emitted.length, 0);
    assert.throws(() => splitAvcc(sample, 4), /malformed AVCC sample/);
  }
  assert.throws(() => new H264Packetizer({ nalLengthSize: 3, ...params }), RangeError);
  assert.throws(() => new H264Packetizer({ nalLengthSize: 4, ...params, maxPayload: 2 }), RangeError);
});

test("single NAL units are zero-copy views; emitted payloads are never overwritten", () => {
  const p = new H264Packetizer({ nalLengthSize: 4, ...params, maxPayload: 100 });
  const first = avcc([nal(5, 60), nal(5, 350)]);
  const kept = run(p, first);
  const copies = kept.map((k) => Buffer.from(k.payload));
  assert.equal(kept[1]!.payload.buffer, first.buffer, "the single NAL packet is a view on the sample");
  for (let i = 0; i < 5; i++) run(p, avcc([nal(5, 70), nal(5, 420)]));
  assert.deepEqual(
    kept.map((k) => Buffer.from(k.payload)),
    copies,
  );
});

test("packetizeH264 one-shot form", () => {
  const idr = nal(5, 3000);
  const out: Packet[] = [];
  const n = packetizeH264(avcc([idr], 2), { nalLengthSize: 2, ...params, keyframe: false }, (payload, marker) => out.push({ payload, marker }));
  assert.equal(n, out.length);
  assertRoundTrip(out, [SPS, PPS, idr], DEFAULT_MAX_PAYLOAD);
});
