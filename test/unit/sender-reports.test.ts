// The sidecar's one RTCP sender reporter: werift's packets and fields for every registered sender, nothing for a
// stopped one or a closed transport, and no timer left once none is registered.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RtcpSourceDescriptionPacket, RtcpSrPacket, compactNtp, type RTCRtpSender } from "werift";
import { senderReports } from "../../sidecar/src/streams/sender-reports.ts";

function fakeSender(ssrc: number, cname?: string) {
  const sent: unknown[][] = [];
  const s = {
    ssrc,
    stopped: false,
    cname,
    rtpTimestamp: 123_456,
    packetCount: 42,
    octetCount: 42_000,
    lastSRtimestamp: undefined as number | undefined,
    lastSentSRTimestamp: undefined as number | undefined,
    dtlsTransport: {
      state: "connected",
      sendRtcp: async (packets: unknown[]) => {
        sent.push(packets);
        return 0;
      },
    },
  };
  // The track's clock: the NTP time of its last packet, read only when a report is built.
  const ntp = (3_900_000_000n << 32n) | 0x8000_0000n;
  return { s, sent, ntp, sender: s as unknown as RTCRtpSender, clock: { ntpTimestamp: () => ntp } };
}

test("every registered sender gets werift's report, a stopped or closed one none, and the timer goes with the last", async () => {
  const a = fakeSender(0x1111, "edge-vod");
  const b = fakeSender(0x2222);
  const closed = fakeSender(0x3333);
  closed.s.dtlsTransport.state = "closed";
  for (const f of [a, b, closed]) senderReports.add(f.sender, f.clock);
  senderReports.add(a.sender, a.clock);
  assert.equal(senderReports.size, 3);
  // Reports are 0.5-1.5 s apart: within 1.7 s each live sender has had its first.
  await new Promise((r) => setTimeout(r, 1700));
  assert.ok(a.sent.length >= 1 && b.sent.length >= 1, `reports: ${a.sent.length}, ${b.sent.length}`);
  assert.equal(closed.sent.length, 0);
  const [sr, sdes] = a.sent[0] as [RtcpSrPacket, RtcpSourceDescriptionPacket];
  assert.ok(sr instanceof RtcpSrPacket);
  assert.equal(sr.ssrc, 0x1111);
  assert.deepEqual(
    { ntp: sr.senderInfo.ntpTimestamp, rtp: sr.senderInfo.rtpTimestamp, packets: sr.senderInfo.packetCount, octets: sr.senderInfo.octetCount },
    { ntp: a.ntp, rtp: 123_456, packets: 42, octets: 42_000 },
  );
  assert.ok(sdes instanceof RtcpSourceDescriptionPacket);
  assert.equal(sdes.chunks[0]!.items[0]!.text, "edge-vod");
  assert.equal((b.sent[0] as unknown[]).length, 1, "no SDES without a cname");
  assert.equal(a.s.lastSRtimestamp, compactNtp(a.ntp));
  assert.ok(a.s.lastSentSRTimestamp! > 0);
  // A serialized report is what werift would send.
  assert.equal(sr.serialize().length, 28);

  a.s.stopped = true;
  b.s.stopped = true;
  const before = a.sent.length + b.sent.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(senderReports.size, 0);
  await new Promise((r) => setTimeout(r, 1600));
  assert.equal(a.sent.length + b.sent.length, before, "nothing after stop");
});
