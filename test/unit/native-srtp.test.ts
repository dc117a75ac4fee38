// The native media send (sidecar/native/srtp-send.c): its SRTP is byte-identical to werift's and to the JS
// protector, matches the RFC vectors, and its batched send over real loopback sockets delivers every packet in order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import dgram from "node:dgram";
import { once } from "node:events";
import { nativeAddon, nativeStatus } from "../../sidecar/src/native/addon.ts";
import { NativeSrtp, installNativeSrtp } from "../../sidecar/src/native/native-srtp.ts";
import { SendBatch, type NativeTarget } from "../../sidecar/src/native/send-batch.ts";
import { SrtpProtector, deriveSessionKeys } from "../../sidecar/src/rtp/srtp-protect.ts";
import { writeRtpHeader } from "../../sidecar/src/rtp/rtp-header.ts";
import { connectedFdOf, connectedSender } from "../../sidecar/src/webrtc/connected-socket.ts";
import { AUDIO_SSRC, VIDEO_SSRC, hex, keys, packets, weriftReceiver, weriftSession, RFC3711_B2_KEYS, assertRfc3711B2Keystream, type Keys, type Profile } from "../helpers/srtp-vectors.ts";

const addon = nativeAddon;

test("the native send is built and loaded (npm ci builds it with cc)", () => {
  assert.equal(nativeStatus.mode, "native", nativeStatus.reason);
});

/** The native context for werift's local keys of the profile. */
function nativeFor(k: Keys, profile: Profile): NativeSrtp {
  const ctx = weriftSession(k, profile).localContext;
  return new NativeSrtp(profile === "cm" ? "aes-cm-128-hmac-sha1-80" : "aead-aes-128-gcm", {
    sessionKey: ctx.srtpSessionKey,
    sessionSalt: ctx.srtpSessionSalt,
    authKey: ctx.srtpSessionAuthTag,
  });
}

test("RFC 3711 B.2 AES-CM keystream", () => {
  const p = new NativeSrtp("aes-cm-128-hmac-sha1-80", RFC3711_B2_KEYS);
  assertRfc3711B2Keystream((packet, length, out, offset) => p.protectInto(packet, length, out, offset));
});

test("RFC 7714 §16.1.1 AEAD_AES_128_GCM packet", () => {
  const n = new NativeSrtp("aead-aes-128-gcm", { sessionKey: hex("000102030405060708090a0b0c0d0e0f"), sessionSalt: hex("517569642070726f2071756f") });
  const plain = hex("8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573");
  const out = Buffer.alloc(plain.length + 16);
  assert.equal(n.protectInto(plain, plain.length, out, 0), plain.length + 16);
  assert.equal(
    out.toString("hex"),
    "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce",
  );
});

for (const profile of ["cm", "gcm"] as const) {
  test(`${profile}: byte-identical to werift${profile === "cm" ? " and to the JS protector" : ""} across the sequence wrap, and werift decrypts it`, () => {
    const k = keys();
    const werift = weriftSession(k, profile);
    const receiver = weriftReceiver(k, profile);
    const native = nativeFor(k, profile);
    const js = profile === "cm" ? new SrtpProtector(k.localMasterKey, k.localMasterSalt) : undefined;
    const tag = profile === "cm" ? 10 : 16;
    const out = Buffer.alloc(4000);
    const jsOut = Buffer.alloc(4000);
    let wrapped = false;
    for (const [i, { header, payload, packet }] of packets(60, 3).entries()) {
      const expected = werift.encrypt(payload, header);
      const n = native.protectInto(packet, packet.length, out, 5 + i);
      assert.equal(n, packet.length + tag);
      const got = out.subarray(5 + i, 5 + i + n);
      assert.deepEqual(got, expected, `packet ${i} seq ${header.sequenceNumber}`);
      if (js) assert.deepEqual(jsOut.subarray(0, js.protectInto(packet, packet.length, jsOut, 0)), got);
      assert.deepEqual(receiver.decrypt(Buffer.from(got)), packet);
      if (header.ssrc === VIDEO_SSRC && header.sequenceNumber < 0x10) wrapped = true;
    }
    assert.ok(wrapped);
    assert.equal(native.getRolloverCounter(VIDEO_SSRC), 1);
    assert.equal(native.getRolloverCounter(AUDIO_SSRC), 1);
  });

  test(`${profile}: installNativeSrtp carries werift's ROC state over and its encrypt stays byte-identical`, () => {
    const k = keys();
    const srtp = weriftSession(k, profile);
    const reference = weriftSession(k, profile);
    const all = packets(40, 11);
    for (const { header, payload } of all.slice(0, 20)) assert.deepEqual(srtp.encrypt(payload, header), reference.encrypt(payload, header));
    const transport = { srtp };
    const native = installNativeSrtp(transport);
    assert.ok(native instanceof NativeSrtp);
    assert.equal(installNativeSrtp(transport), native);
    for (const { header, payload } of all.slice(20)) assert.deepEqual(srtp.encrypt(payload, header), reference.encrypt(payload, header));
  });
}

test("the JS protector and the native context agree on derived keys", () => {
  const k = keys();
  const derived = deriveSessionKeys(k.localMasterKey, k.localMasterSalt);
  const a = new NativeSrtp("aes-cm-128-hmac-sha1-80", derived);
  const b = nativeFor(k, "cm");
  const { packet } = packets(1, 4)[0]!;
  const x = Buffer.alloc(packet.length + 10);
  const y = Buffer.alloc(packet.length + 10);
  a.protectInto(packet, packet.length, x, 0);
  b.protectInto(packet, packet.length, y, 0);
  assert.deepEqual(x, y);
});

test("bad input is refused with an error, never a crash", () => {
  const n = nativeFor(keys(), "cm");
  assert.throws(() => n.protectInto(Buffer.from([0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 12, Buffer.alloc(40), 0), /not an RTP packet/);
  assert.throws(() => n.protectInto(Buffer.alloc(30, 0x80), 30, Buffer.alloc(35), 0), /too small/);
  assert.throws(() => addon!.createContext(9, Buffer.alloc(16), Buffer.alloc(14), null), /unknown SRTP profile/);
  assert.throws(() => addon!.createContext(1, Buffer.alloc(15), Buffer.alloc(14), Buffer.alloc(20)), /16 bytes/);
  assert.throws(() => addon!.flush(n.ctx, -1, Buffer.alloc(100), new Uint32Array([90]), new Uint16Array([20]), 1), /outside the arena/);
  assert.throws(() => addon!.flush({} as never, -1, Buffer.alloc(100), new Uint32Array(1), new Uint16Array(1), 1), /flush\(/);
});

interface Frame {
  seq: number;
  size: number;
}

/** A loopback pair: `sender` connected to `receiver`, through connectedSender as the sidecar does it. */
async function socketPair() {
  const receiver = dgram.createSocket({ type: "udp4", recvBufferSize: 4 << 20 });
  receiver.bind(0, "127.0.0.1");
  await once(receiver, "listening");
  const sender = dgram.createSocket("udp4");
  sender.bind(0, "127.0.0.1");
  await once(sender, "listening");
  const transport = { socket: sender, send: (d: Buffer) => void sender.send(d) };
  const send = connectedSender(transport, "127.0.0.1", receiver.address().port);
  // connect() completes a turn later.
  for (let i = 0; i < 50 && connectedFdOf(sender).fd() < 0; i++) await new Promise((r) => setTimeout(r, 10));
  return { receiver, sender, send, fd: connectedFdOf(sender) };
}

/** Video frames: runs of 1188-byte FU-A packets and a shorter last one, audio between them: GSO's shape. */
function frameSizes(count: number): Frame[] {
  const out: Frame[] = [];
  let seq = 0xffe0;
  for (let f = 0; out.length < count; f++) {
    const packetsInFrame = 1 + (f % 7);
    for (let p = 0; p < packetsInFrame && out.length < count; p++) out.push({ seq: seq++ & 0xffff, size: p === packetsInFrame - 1 ? 300 + f : 1188 });
  }
  return out;
}

for (const mode of ["kernel", "queued"] as const) {
  test(`a batch ${mode === "kernel" ? "sent by sendmmsg and GSO" : "the kernel did not take goes out by Node's queue, and"} arrives whole and in order, werift decrypts it`, async (t) => {
    const k = keys();
    const native = nativeFor(k, "cm");
    const receiverSession = weriftReceiver(k, "cm");
    const { receiver, sender, send, fd } = await socketPair();
    const batch = new SendBatch(addon!);
    let queuedSends = 0;
    const target: NativeTarget = {
      srtp: native,
      // "queued": the fd is not usable, as when libuv already holds datagrams for the socket: all go through Node.
      fd: mode === "kernel" ? fd.fd : () => -1,
      queued: fd.queued,
      sendQueued: (d) => {
        queuedSends++;
        send(d);
      },
    };
    const frames = frameSizes(600);
    const plain = frames.map(({ seq, size }, i) => {
      const payload = crypto.randomBytes(size);
      const header = Buffer.alloc(12);
      writeRtpHeader(header, 96, false, seq, i * 10, VIDEO_SSRC);
      return { header, payload };
    });
    const got: Buffer[] = [];
    receiver.on("message", (m) => got.push(m));
    const before = new Float64Array(7);
    addon!.counters(before);
    // Ten "ticks" of 60 packets, each flushed at the end of the job as the sidecar's scheduler does.
    for (let t = 0; t < 10; t++) {
      for (const { header, payload } of plain.slice(t * 60, t * 60 + 60)) batch.append(target, header, payload);
      await new Promise((r) => setImmediate(r));
    }
    for (let i = 0; i < 200 && got.length < plain.length; i++) await new Promise((r) => setTimeout(r, 10));
    const after = new Float64Array(7);
    addon!.counters(after);
    receiver.close();
    sender.close();
    assert.equal(got.length, plain.length);
    for (let i = 0; i < got.length; i++) {
      const decrypted = receiverSession.decrypt(got[i]!);
      assert.deepEqual(decrypted, Buffer.concat([plain[i]!.header, plain[i]!.payload]), `packet ${i}`);
    }
    if (mode === "kernel") {
      const syscalls = after[0]! - before[0]!;
      const gso = after[5]! - before[5]!;
      assert.ok(gso > 0, "frames left as GSO datagrams");
      assert.ok(syscalls <= 10 + (after[3]! - before[3]!), `one sendmmsg per flush, ${syscalls} for 10`);
      // Whatever met a full buffer went through Node's queue, counted once.
      assert.equal(queuedSends, batch.queuedPackets);
      t.diagnostic(`syscalls ${syscalls}, GSO datagrams ${gso}, EAGAIN ${after[3]! - before[3]!}, queued ${queuedSends}`);
    } else {
      assert.equal(queuedSends, plain.length);
    }
  });
}

test("without the addon (EDGE_VOD_NATIVE=0, or a missing build) the sidecar says why and uses the JS path", () => {
  const probe = `import("./sidecar/src/native/addon.ts").then((m) => console.log(JSON.stringify(m.nativeStatus)))`;
  const run = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "-e", probe], { env: { ...process.env, ...env }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim()) as { mode: string; reason: string };
  };
  assert.deepEqual(run({ EDGE_VOD_NATIVE: "0" }), { mode: "js", reason: "EDGE_VOD_NATIVE=0" });
  const missing = run({ EDGE_VOD_NATIVE_ADDON: "/nonexistent/srtp-send.node" });
  assert.equal(missing.mode, "js");
  assert.match(missing.reason, /not built/);
});

test("a batch the addon refuses is dropped with a log line, never thrown at the end of the job", async () => {
  const batch = new SendBatch(addon!);
  const target: NativeTarget = { srtp: nativeFor(keys(), "cm"), fd: () => -1, queued: () => 0, sendQueued: () => assert.fail("nothing to send") };
  // Version 1 in the first byte: not RTP, which the addon refuses.
  batch.append(target, Buffer.from([0x40, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]), Buffer.alloc(100));
  const errors: unknown[] = [];
  const log = console.error;
  console.error = (...a: unknown[]) => void errors.push(a);
  try {
    await new Promise((r) => setImmediate(r));
  } finally {
    console.error = log;
  }
  assert.equal(batch.failedFlushes, 1);
  assert.match(String((errors[0] as unknown[])[0]), /native send: flush failed/);
});
