import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { RtpHeader, type RTCDtlsTransport } from "werift";
import { AUDIO_SSRC, VIDEO_SSRC, hex, keys, packets, weriftReceiver, weriftSession, RFC3711_B2_KEYS, assertRfc3711B2Keystream, type Plain } from "../helpers/srtp-vectors.ts";
import { SrtpProtector, deriveSessionKeys, installFastSrtp, rtpHeaderLength } from "../../sidecar/src/rtp/srtp-protect.ts";

test("RFC 3711 B.3 key derivation", () => {
  const k = deriveSessionKeys(hex("E1F97A0D3E018BE0D64FA32C06DE4139"), hex("0EC675AD498AFEEBB6960B3AABE6"));
  assert.equal(Buffer.from(k.sessionKey).toString("hex"), "c61e7a93744f39ee10734afe3ff7a087");
  assert.equal(Buffer.from(k.sessionSalt).toString("hex"), "30cbbc08863d8c85d49db34a9ae1");
  assert.equal(Buffer.from(k.authKey).toString("hex"), "cebe321f6ff7716b6fd4ab49af256a156d38baa4");
});

test("RFC 3711 B.2 AES-CM keystream", () => {
  const p = new SrtpProtector(RFC3711_B2_KEYS);
  assertRfc3711B2Keystream((packet, length, out, offset) => p.protectInto(packet, length, out, offset));
});

test("derived keys match werift's context", () => {
  const k = keys();
  const ctx = weriftSession(k).localContext;
  const ours = deriveSessionKeys(k.localMasterKey, k.localMasterSalt);
  assert.deepEqual(Buffer.from(ours.sessionKey), ctx.srtpSessionKey);
  assert.deepEqual(Buffer.from(ours.sessionSalt), ctx.srtpSessionSalt);
  assert.deepEqual(Buffer.from(ours.authKey), ctx.srtpSessionAuthTag);
});

test("protectInto is byte-identical to werift across the sequence wrap, and werift decrypts it", () => {
  const k = keys();
  const werift = weriftSession(k);
  const receiver = weriftReceiver(k);
  const p = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  const out = Buffer.alloc(4000);
  let wrapped = false;
  for (const [i, { header, payload, packet }] of packets(40).entries()) {
    const expected = werift.encrypt(payload, header);
    // A few bytes of junk after the packet and a nonzero out offset: only [0, length) may be read.
    const input = Buffer.concat([packet, Buffer.from([9, 9, 9])]);
    const n = p.protectInto(input, packet.length, out, 7 + i);
    assert.equal(n, packet.length + 10);
    assert.deepEqual(out.subarray(7 + i, 7 + i + n), expected, `packet ${i} seq ${header.sequenceNumber}`);
    assert.deepEqual(receiver.decrypt(Buffer.from(out.subarray(7 + i, 7 + i + n))), packet);
    if (header.ssrc === VIDEO_SSRC && header.sequenceNumber < 0x10) wrapped = true;
  }
  assert.ok(wrapped);
  assert.equal(p.getRolloverCounter(VIDEO_SSRC), 1);
  assert.equal(p.getRolloverCounter(AUDIO_SSRC), 1);
});

test("protectParts (header and payload apart, as the sidecar sends) is byte-identical to werift across the sequence wrap", () => {
  const k = keys();
  const werift = weriftSession(k);
  const p = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  let wrapped = false;
  for (const [i, { header, payload }] of packets(40, 3).entries()) {
    const expected = werift.encrypt(payload, header);
    const out = Buffer.alloc(header.serializeSize + payload.length + 10);
    assert.equal(p.protectParts(header.serialize(header.serializeSize), payload, out, 0), out.length);
    assert.deepEqual(out, expected, `packet ${i} seq ${header.sequenceNumber}`);
    if (header.ssrc === VIDEO_SSRC && header.sequenceNumber < 0x10) wrapped = true;
  }
  assert.ok(wrapped);
  assert.throws(() => p.protectParts(Buffer.alloc(12), Buffer.alloc(10), Buffer.alloc(10), 0), RangeError);
});

test("protectBatch is byte-identical to werift across the sequence wrap", () => {
  const k = keys();
  const werift = weriftSession(k);
  const receiver = weriftReceiver(k);
  const p = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  const all = packets(40, 7);
  const out = Buffer.alloc(64 * 1024);
  const ends = new Uint32Array(16);
  // Batches of varying size, as a scheduler tick would hand them over.
  for (let i = 0, size = 1; i < all.length; i += size, size = (size % 9) + 1) {
    const batch = all.slice(i, i + size);
    const start = 5;
    const end = p.protectBatch(
      batch.map((b) => b.packet),
      batch.length,
      out,
      ends,
      start,
    );
    let from = start;
    for (const [j, { header, payload, packet }] of batch.entries()) {
      const got = out.subarray(from, ends[j]);
      assert.deepEqual(got, werift.encrypt(payload, header), `packet ${i + j} seq ${header.sequenceNumber}`);
      assert.deepEqual(receiver.decrypt(Buffer.from(got)), packet);
      from = ends[j]!;
    }
    assert.equal(end, from);
  }
  assert.equal(p.getRolloverCounter(VIDEO_SSRC), 1);
});

test("encrypt shim is byte-identical to werift across the sequence wrap", () => {
  const k = keys();
  const werift = weriftSession(k);
  const receiver = weriftReceiver(k);
  const p = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  for (const { header, payload, packet } of packets(40, 3)) {
    const got = p.encrypt(payload, header);
    assert.deepEqual(got, werift.encrypt(payload, header), `seq ${header.sequenceNumber}`);
    assert.deepEqual(receiver.decrypt(got), packet);
  }
});

test("the three paths share ROC state when interleaved", () => {
  const k = keys();
  const werift = weriftSession(k);
  const p = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  const out = Buffer.alloc(8000);
  const ends = [0, 0, 0];
  const all = packets(40, 11);
  for (let i = 0; i < all.length; ) {
    const path = i % 3;
    if (path === 2) {
      const batch = all.slice(i, i + 3);
      p.protectBatch(
        batch.map((b) => b.packet),
        batch.length,
        out,
        ends,
      );
      batch.forEach((b, j) => assert.deepEqual(out.subarray(j ? ends[j - 1] : 0, ends[j]), werift.encrypt(b.payload, b.header)));
      i += batch.length;
    } else {
      const { header, payload, packet } = all[i++]!;
      const got = path === 0 ? p.encrypt(payload, header) : out.subarray(0, p.protectInto(packet, packet.length, out, 0));
      assert.deepEqual(got, werift.encrypt(payload, header));
    }
  }
});

test("keystream computed ahead stays right through refills, size changes, empty, oversized and resent packets", () => {
  const k = keys();
  const werift = [weriftSession(k), weriftSession(k)];
  const receiver = weriftReceiver(k);
  const single = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  const batched = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  const sent: Plain[] = [];
  const seq: number[] = [0xff80, 0xffc0];
  for (let i = 0; i < 400; i++) {
    const a = i % 3 === 0 ? 1 : 0;
    let plain: Plain;
    if (i % 17 === 16) {
      plain = sent[sent.length - 6]!; // a retransmission: an older sequence number of the same stream again
    } else {
      const size = i % 50 === 7 ? 0 : i % 50 === 8 ? 1600 + i : 20 + ((i * 37) % 200) * (i < 200 ? 3 : 6);
      const header = new RtpHeader({ payloadType: 96 + a, ssrc: a ? AUDIO_SSRC : VIDEO_SSRC, sequenceNumber: seq[a]!++ & 0xffff, timestamp: i });
      const payload = crypto.randomBytes(size);
      plain = { header, payload, packet: Buffer.concat([header.serialize(header.serializeSize), payload]) };
    }
    sent.push(plain);
  }
  const out = Buffer.alloc(64 * 1024);
  const ends = new Uint32Array(8);
  for (let i = 0; i < sent.length; i += 5) {
    const batch = sent.slice(i, i + 5);
    batched.protectBatch(
      batch.map((b) => b.packet),
      batch.length,
      out,
      ends,
    );
    for (const [j, { header, payload, packet }] of batch.entries()) {
      const expected = werift[0]!.encrypt(payload, header);
      assert.deepEqual(out.subarray(j ? ends[j - 1] : 0, ends[j]), expected, `batch packet ${i + j}`);
      const n = single.protectInto(packet, packet.length, out, 40000);
      assert.deepEqual(out.subarray(40000, 40000 + n), werift[1]!.encrypt(payload, header), `single packet ${i + j}`);
      assert.deepEqual(receiver.decrypt(expected), packet);
    }
  }
});

test("setRolloverState mid-stream is honoured even where keystream was computed ahead", () => {
  const k = keys();
  const werift = weriftSession(k);
  const p = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  const out = Buffer.alloc(2000);
  const send = (seq: number) => {
    const header = new RtpHeader({ payloadType: 96, ssrc: VIDEO_SSRC, sequenceNumber: seq, timestamp: seq });
    const payload = crypto.randomBytes(300);
    const packet = Buffer.concat([header.serialize(header.serializeSize), payload]);
    const n = p.protectInto(packet, packet.length, out, 0);
    assert.deepEqual(out.subarray(0, n), werift.encrypt(payload, header), `seq ${seq}`);
  };
  for (let seq = 10; seq < 15; seq++) send(seq);
  p.setRolloverState(VIDEO_SSRC, 7, 14);
  Object.assign(werift.localContext.srtpSSRCStates[VIDEO_SSRC]!, { rolloverCounter: 7, lastSequenceNumber: 14 });
  for (let seq = 15; seq < 20; seq++) send(seq);
  assert.equal(p.getRolloverCounter(VIDEO_SSRC), 7);
});

test("a resent packet older than the keystream computed ahead", () => {
  const k = keys();
  const werift = weriftSession(k);
  const p = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  const out = Buffer.alloc(2000);
  const payloads = new Map<number, Buffer>();
  for (const seq of [100, ...Array.from({ length: 40 }, (_, i) => 101 + i), 131, 141, 100, 142, 99]) {
    const header = new RtpHeader({ payloadType: 96, ssrc: VIDEO_SSRC, sequenceNumber: seq, timestamp: seq });
    const payload = payloads.get(seq) ?? crypto.randomBytes(500);
    payloads.set(seq, payload);
    const packet = Buffer.concat([header.serialize(header.serializeSize), payload]);
    const n = p.protectInto(packet, packet.length, out, 0);
    assert.deepEqual(out.subarray(0, n), werift.encrypt(payload, header), `seq ${seq}`);
  }
});

test("encrypt shim serializes every header werift can like werift, side effects included", () => {
  const k = keys();
  const werift = weriftSession(k);
  const p = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  const ext = (...sizes: number[]) => sizes.map((n, i) => ({ id: i + 1, payload: crypto.randomBytes(n) }));
  const variants: Partial<RtpHeader>[] = [
    {},
    { marker: true, padding: true, payloadType: 127 },
    { csrc: [1, 0xffffffff, 3] },
    { extensionProfile: 0xbede, extensions: ext(1) },
    { extensionProfile: 0xbede, extensions: ext(2, 3, 16) },
    { extensionProfile: 0x1000, extensions: ext(0, 5, 255) },
    { extensionProfile: 0x1000, extensions: ext(2), csrc: [7] },
    // A profile of its own: werift's serialize copies the one extension's payload as it is.
    { extensionProfile: 0x0123 as RtpHeader["extensionProfile"], extensions: [{ id: 0, payload: crypto.randomBytes(8) }] },
  ];
  for (const [i, v] of variants.entries()) {
    const make = () => new RtpHeader({ ssrc: VIDEO_SSRC, sequenceNumber: 1000 + i, timestamp: 0xfffffff0 + i, payloadType: 96, ...v });
    const [ours, theirs] = [make(), make()];
    const payload = crypto.randomBytes(100 + i);
    assert.deepEqual(p.encrypt(payload, ours), werift.encrypt(payload, theirs), `variant ${i}`);
    assert.equal(ours.payloadOffset, theirs.payloadOffset);
    assert.equal(ours.extension, theirs.extension);
  }
});

test("a wrong ROC is caught: the receiver rejects a packet protected with ROC off by one", () => {
  const k = keys();
  const receiver = weriftReceiver(k);
  const p = new SrtpProtector(k.localMasterKey, k.localMasterSalt);
  const [first] = packets(1);
  const out = Buffer.alloc(2000);
  p.setRolloverState(first!.header.ssrc, 1, first!.header.sequenceNumber - 1);
  const n = p.protectInto(first!.packet, first!.packet.length, out, 0);
  assert.throws(() => receiver.decrypt(Buffer.from(out.subarray(0, n))));
});

test("rtpHeaderLength reads CSRCs and extensions and refuses what is not RTP", () => {
  const h = new RtpHeader({ ssrc: 1, csrc: [1, 2], extensionProfile: 0xbede, extensions: [{ id: 1, payload: Buffer.alloc(5) }] });
  const b = Buffer.concat([h.serialize(h.serializeSize), Buffer.alloc(4)]);
  assert.equal(rtpHeaderLength(b, b.length), h.serializeSize);
  assert.throws(() => rtpHeaderLength(Buffer.alloc(20), 20), RangeError);
  assert.throws(() => rtpHeaderLength(b, 11), RangeError);
});

test("installFastSrtp swaps encrypt for AES-CM, carries werift's ROC state over, and leaves GCM alone", () => {
  const k = keys();
  const srtp = weriftSession(k);
  const reference = weriftSession(k);
  const all = packets(40, 5);
  // werift sends the first packets (through the wrap for some), then the fast path takes over.
  for (const { header, payload } of all.slice(0, 20)) assert.deepEqual(srtp.encrypt(payload, header), reference.encrypt(payload, header));
  const transport = { srtp };
  const protector = installFastSrtp(transport);
  assert.ok(protector instanceof SrtpProtector);
  assert.equal(installFastSrtp(transport), protector);
  assert.ok(Object.hasOwn(srtp, "encrypt"));
  for (const { header, payload } of all.slice(20)) assert.deepEqual(srtp.encrypt(payload, header), reference.encrypt(payload, header));

  const gcm = weriftSession(k, "gcm");
  assert.equal(installFastSrtp({ srtp: gcm }), false);
  assert.ok(!Object.hasOwn(gcm, "encrypt"));
  assert.equal(installFastSrtp({}), false);
});

// Compile-time check (npm run typecheck): werift's own transport type is accepted as it is.
void ((t: RTCDtlsTransport) => installFastSrtp(t));
