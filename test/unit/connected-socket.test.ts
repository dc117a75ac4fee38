// The ICE pair's socket connected to the peer: nothing sent while connect() runs is lost or reordered, werift's own
// addressed sends to the peer still go out, and what is addressed elsewhere is dropped instead of failing the socket.
import { test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { connectedSender, type UdpTransportLike } from "../../sidecar/src/webrtc/connected-socket.ts";

async function bound(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  return s;
}

test("datagrams sent at once and while connecting all arrive in order; werift's addressed sends to the peer too; other addresses are dropped", async () => {
  const peer = await bound();
  const stranger = await bound();
  const ours = await bound();
  const got: string[] = [];
  const strangerGot: string[] = [];
  peer.on("message", (m) => got.push(m.toString()));
  stranger.on("message", (m) => strangerGot.push(m.toString()));
  const addressed: string[] = [];
  const transport: UdpTransportLike = {
    socket: ours,
    send: (data, addr) => {
      addressed.push(data.toString());
      ours.send(data, addr![1], addr![0]);
    },
  };
  try {
    const port = peer.address().port;
    const send = connectedSender(transport, "127.0.0.1", port);
    // Straight away, before connect() completed.
    for (let i = 0; i < 20; i++) send(Buffer.from(`rtp ${i}`));
    await transport.send(Buffer.from("stun"), ["127.0.0.1", port]);
    await transport.send(Buffer.from("elsewhere"), ["127.0.0.1", stranger.address().port]);
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 20; i < 40; i++) send(Buffer.from(`rtp ${i}`));
    // A second track of the same peer connection shares the socket and its connection.
    const again = connectedSender(transport, "127.0.0.1", port);
    again(Buffer.from("audio"));
    await new Promise((r) => setTimeout(r, 100));

    const rtp = got.filter((m) => m.startsWith("rtp "));
    assert.deepEqual(rtp, Array.from({ length: 40 }, (_, i) => `rtp ${i}`), "every datagram, in order");
    assert.ok(got.includes("stun") && got.includes("audio"));
    assert.deepEqual(strangerGot, [], "nothing reaches another address once the pair is chosen");
    assert.deepEqual(addressed, [], "werift's transport send is taken over: no addressed send on the connected socket");
    assert.equal(ours.remoteAddress().port, port, "the socket is connected to the peer");
  } finally {
    for (const s of [peer, stranger, ours]) s.close();
  }
});

test("a peer that goes away (ICMP port unreachable: ECONNREFUSED on the connected socket) does not bring the process down", async () => {
  const peer = await bound();
  const ours = await bound();
  const transport: UdpTransportLike = { socket: ours, send: () => {} };
  try {
    const send = connectedSender(transport, "127.0.0.1", peer.address().port);
    send(Buffer.from("hello"));
    await new Promise((r) => setTimeout(r, 50));
    await new Promise<void>((r) => peer.close(() => r()));
    // Sends to the closed port come back as ICMP errors, which the connected socket reports as 'error' events.
    for (let i = 0; i < 5; i++) {
      send(Buffer.from(`after ${i}`));
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(ours.listenerCount("error") > 0, "the socket has an error listener");
  } finally {
    ours.close();
  }
});
