import { test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import dns from "node:dns";
import { peerFactory } from "../../sidecar/src/webrtc/peer-factory.ts";
import { createWeriftViewer } from "../helpers/werift-viewer.ts";

test("answering an offer sends no packet off the machine (werift's implicit STUN fallback is off)", async () => {
  const destinations: string[] = [];
  const send = dgram.Socket.prototype.send;
  const lookup = dns.promises.lookup;
  // werift resolves a STUN host name before it sends; where DNS fails (a closed network) that lookup is all that shows.
  dns.promises.lookup = ((host: string, ...rest: unknown[]) => {
    destinations.push(host);
    return (lookup as (...a: unknown[]) => unknown)(host, ...rest);
  }) as typeof lookup;
  // Record where every UDP datagram goes while the viewer and the server gather and answer.
  dgram.Socket.prototype.send = function (this: dgram.Socket, ...args: unknown[]) {
    const addr = args.find((a, i) => i > 0 && typeof a === "string" && /[.:]/.test(a));
    if (typeof addr === "string") destinations.push(addr);
    return (send as (...a: unknown[]) => void).apply(this, args);
  } as typeof send;
  try {
    const viewer = await createWeriftViewer();
    const pc = peerFactory({ iceHostAddresses: ["127.0.0.1"], rtpPortRange: undefined })();
    await pc.setRemoteDescription({ type: "offer", sdp: viewer.offerSdp });
    await pc.setLocalDescription(await pc.createAnswer());
    const sdp = pc.localDescription?.sdp ?? "";
    assert.match(sdp, /typ host/);
    assert.doesNotMatch(sdp, /typ srflx/);
    await Promise.all([pc.close(), viewer.close()]);
  } finally {
    dgram.Socket.prototype.send = send;
    dns.promises.lookup = lookup;
  }
  const offMachine = destinations.filter((d) => !d.startsWith("127.") && d !== "::1");
  assert.deepEqual(offMachine, []);
});
