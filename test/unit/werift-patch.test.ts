// sidecar/patches/werift+0.24.4.patch, applied at npm ci: werift's events keep their methods on the prototype (no
// closures per instance) and behave as before; a connected session keeps no handshake state it will not use again
// and no slices of Buffer's pool. Fails if the patch was not applied.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Event, RTCPeerConnection, RtpHeader, RtpPacket } from "werift";
import { testPeer } from "../helpers/werift-viewer.ts";

test("werift's Event has no per-instance methods nor lists of its own until subscribed, and subscribe, once, asPromise, complete and the bound triggers work as before", async () => {
  const e = new Event<[number]>();
  assert.deepEqual(Object.keys(e).sort(), ["ended", "eventId", "onended", "promiseStack", "stack"], "only state on the instance");
  const lists = (x: Event<[number]>) => x as unknown as { stack: unknown[]; promiseStack: unknown[] };
  assert.equal(lists(e).stack, lists(new Event<[number]>()).promiseStack, "events nobody subscribed to share one empty list");
  const got: string[] = [];
  const { unSubscribe } = e.subscribe((n) => got.push(`a${n}`));
  e.once((n) => got.push(`once${n}`));
  const next = e.asPromise();
  const { execute } = e.returnTrigger;
  execute(1);
  unSubscribe();
  e.execute(2);
  assert.deepEqual(await next, [1]);
  let queued = 0;
  e.queuingSubscribe(async (n) => void (queued += n));
  e.execute(5);
  await new Promise((r) => setImmediate(r));
  assert.equal(queued, 5, "an asynchronous subscriber still runs");
  let completed = false;
  e.subscribe(() => {}, () => void (completed = true));
  assert.equal(lists(e).stack.length, 1, "unsubscribed entries are gone");
  e.complete();
  e.execute(3);
  assert.deepEqual(got, ["a1", "once1"]);
  assert.equal(completed, true);
  assert.equal(e.ended, true);
});

test("a peer connection's events are the patched class", async () => {
  const pc = new RTCPeerConnection();
  assert.equal(Object.hasOwn(pc.onTrack, "execute"), false);
  assert.equal(Object.hasOwn(pc.onTrack, "subscribe"), false);
  await pc.close();
});

/** The DTLS side of a connected peer: werift's internals the patch changes. */
interface DtlsInternals {
  dtls: {
    connected: boolean;
    flight5?: unknown;
    extensions: unknown[];
    dtls: { handshakeCache: object; lastFlight: unknown[]; lastMessage: unknown[] };
    cipher: { masterSecret: Buffer; localPrivateKey: object; cipher: { clientWriteKey: Buffer; serverWriteKey: Buffer } };
  };
  srtp: { config: { keys: Record<string, Buffer> }; localContext: Record<string, unknown>; remoteContext: Record<string, unknown> };
  srtcp: { localContext: Record<string, unknown> };
}

const internals = (pc: RTCPeerConnection) => pc.dtlsTransports[0] as unknown as DtlsInternals;
/** A buffer that is a slice of Buffer's shared pool keeps a whole 8-KB slab alive; the patch's keys are not. */
const ownsItsBytes = (b: Buffer) => b.buffer.byteLength < Buffer.poolSize;

test("once connected, a DTLS client keeps no handshake state, the session keys are out of Buffer's pool, and media still decrypts", async () => {
  const offerer = testPeer(undefined, { bundlePolicy: "max-bundle" });
  const answerer = testPeer(undefined, { bundlePolicy: "max-bundle" });
  try {
    const sending = offerer.addTransceiver("video", { direction: "sendonly" });
    const received = new Promise<Buffer>((resolve) =>
      answerer.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => resolve(rtp.payload))),
    );
    await offerer.setLocalDescription(await offerer.createOffer());
    await answerer.setRemoteDescription(offerer.localDescription!);
    await answerer.setLocalDescription(await answerer.createAnswer());
    await offerer.setRemoteDescription(answerer.localDescription!);
    await Promise.all([offerer, answerer].map((pc) => new Promise<void>((resolve) => {
      if (pc.connectionState === "connected") return resolve();
      pc.connectionStateChange.subscribe((s) => s === "connected" && resolve());
    })));
    // werift answers an actpass offer as the DTLS client.
    const client = internals(answerer);
    assert.equal(client.dtls.connected, true);
    assert.equal(client.dtls.flight5, undefined, "the client's last flight is gone");
    assert.deepEqual([client.dtls.dtls.handshakeCache, client.dtls.dtls.lastFlight, client.dtls.dtls.lastMessage, client.dtls.extensions], [{}, [], [], []]);
    for (const side of [client, internals(offerer)]) {
      assert.ok(ownsItsBytes(side.dtls.cipher.masterSecret), "master secret");
      assert.ok(ownsItsBytes(side.dtls.cipher.cipher.clientWriteKey) && ownsItsBytes(side.dtls.cipher.cipher.serverWriteKey), "DTLS record keys");
      for (const [name, key] of Object.entries(side.srtp.config.keys)) assert.ok(ownsItsBytes(key), name);
      for (const ctx of [side.srtp.localContext, side.srtp.remoteContext, side.srtcp.localContext]) {
        for (const name of ["masterKey", "srtpSessionKey", "srtpSessionSalt", "srtpSessionAuthTag", "srtcpSessionKey", "srtcpSessionSalt", "srtcpSessionAuthTag"]) {
          assert.ok(ownsItsBytes(ctx[name] as Buffer), name);
        }
        assert.equal(ctx.srtpSessionAuth, undefined, "no HMAC made and left unused");
      }
    }
    assert.equal(client.dtls.cipher.localPrivateKey, internals(offerer).dtls.cipher.localPrivateKey, "one parse of the shared certificate's key");
    const payload = Buffer.from("after the handshake state went");
    sending.sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: 96, sequenceNumber: 1, timestamp: 1, marker: true }), payload));
    assert.deepEqual(await received, payload, "SRTP with the copied keys decrypts on the other side");
  } finally {
    await Promise.all([offerer.close(), answerer.close()]);
  }
});
