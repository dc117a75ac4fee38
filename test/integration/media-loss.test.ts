// Loss on the media path, werift viewers straight against a sidecar. The viewer acts like a browser's decoder: an
// H.264 depacketizer that yields only decodable frames (a damaged frame and everything after it is dropped until a
// complete IDR) and, when it has to drop, asks for a keyframe with a PLI. Modest loss must be repaired by NACK alone;
// a burst longer than the receiver keeps NACKing cannot be, so the picture must come back at the next keyframe after
// the PLI, on vod://, vod-live:// and published streams alike (the last forward the PLI to the publisher). werift
// viewers, like Firefox, name their RTCP SSRC in a recvonly offer; the published-stream test is the one that shows
// the sidecar still hears their PLIs (on files the 1 s GOP of sample.mp4 brings a keyframe either way).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import type { RtpPacket } from "werift";
import { SIDECAR_PATHS, type PlayResponse } from "@edge-vod/shared";
import { H264Depacketizer, type AccessUnit } from "../../sidecar/src/record/h264-depacketizer.ts";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { SAMPLE_MP4 } from "../helpers/fixtures.ts";
import { videoPayloadTypes } from "../helpers/sdp.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { createWeriftPublisher } from "../helpers/werift-publisher.ts";
import { createWeriftViewer, interceptIncoming, interceptIncomingRtp, interceptOutgoing } from "../helpers/werift-viewer.ts";
import { until } from "../helpers/rtp-record.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secret = randomBytes(24).toString("hex");
/** Nobody listens: these viewers and publishers are driven by the test, not by an edge. */
const EVENTS_URL = "http://127.0.0.1:9/events";
/** 30 fps at 90 kHz. */
const FRAME_TICKS = 3000;
/**
 * Longer than the receiver keeps asking for (werift's NACK list holds the last 150 lost packets; libwebrtc gives up
 * past its own limit and asks for a keyframe), and than the sidecar's video NACK history at real time (256): the
 * start of such a burst is never retransmitted.
 */
const BURST = 300;
/** A browser does not send a PLI per damaged frame; one per this long while the picture is broken. */
const PLI_INTERVAL_MS = 300;

let sidecar: SidecarProcess;
let fileFrames: number;

before(async () => {
  sidecar = await startSidecar({ secret });
  const file = await new LocalDiskAccess("media").open("sample.mp4");
  fileFrames = (await openMp4(file)).video!.samples.count;
  await file.close();
});

after(async () => {
  await sidecar?.stop();
});

async function control(path: string, body: Record<string, unknown>): Promise<PlayResponse> {
  const res = await signedFetch(secret, sidecar.url + path, { method: "POST", body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  return (await res.json()) as PlayResponse;
}

function nalTypes(unit: AccessUnit): number[] {
  const out: number[] = [];
  for (let at = 0; at + 4 < unit.data.length; ) {
    const len = new DataView(unit.data.buffer, unit.data.byteOffset + at).getUint32(0);
    out.push(unit.data[at + 4]! & 0x1f);
    at += 4 + len;
  }
  return out;
}

/**
 * A viewer of `name` on the sidecar whose incoming video loses the first copy of packets `drop` picks (by the
 * count of video packets seen so far); retransmissions get through.
 */
async function decodingViewer(name: string, drop: (nth: number) => boolean, extra: Record<string, unknown> = {}) {
  const viewer = await createWeriftViewer();
  const units: AccessUnit[] = [];
  const plis: number[] = [];
  /** Any video packet on the wire, kept or dropped: a burst is not the end of the file. */
  let lastPacketAt = 0;
  let videoPts = new Set<number>();
  const dropped = new Set<number>();
  let seen = 0;
  interceptIncomingRtp(viewer.pc, (data) => {
    if (!videoPts.has(data[1]! & 0x7f)) return false;
    lastPacketAt = performance.now();
    const seq = data.readUInt16BE(2);
    if (dropped.has(seq)) return false;
    if (!drop(++seen)) return false;
    dropped.add(seq);
    return true;
  });
  let sendPli: () => void = () => {};
  const depacketizer = new H264Depacketizer({
    maxPackets: 2000,
    // Time for NACK round trips on loopback, with room for a busy machine.
    maxDelayMs: 400,
    onAccessUnit: (u) => units.push(u),
    onKeyframeNeeded: () => {
      const now = performance.now();
      if (plis.length > 0 && now - plis[plis.length - 1]! < PLI_INTERVAL_MS) return;
      plis.push(now);
      sendPli();
    },
  });
  viewer.pc.onTrack.subscribe((track) => {
    if (track.kind !== "video") return;
    const receiver = viewer.pc.getTransceivers().find((t) => t.kind === "video")!.receiver;
    sendPli = () => void receiver.sendRtcpPLI(track.ssrc!).catch(() => {});
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => depacketizer.push(rtp, performance.now()));
  });
  const answer = await control(SIDECAR_PATHS.play, { sessionRef: "loss", eventsUrl: EVENTS_URL, mediaSessionId: randomUUID(), name, sdp: viewer.offerSdp, ...extra });
  assert.ok(answer.ok, `play ${name}: ${JSON.stringify(answer)}`);
  videoPts = videoPayloadTypes(answer.sdp);
  await viewer.setAnswer(answer.sdp);
  return {
    units,
    plis,
    dropped,
    depacketizer,
    /** Resolves once video stopped coming for a second (the file is over). */
    async ended(timeoutMs = 30_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (lastPacketAt === 0 || performance.now() - lastPacketAt < 1000) {
        if (Date.now() > deadline) throw new Error(`${name}: video did not end`);
        await sleep(100);
      }
      depacketizer.flush();
    },
    close: () => viewer.close(),
  };
}

for (const [name, extra] of [
  ["vod://sample.mp4", () => ({})],
  ["vod-live://sample.mp4", () => ({ broadcast: { startedAt: Date.now() + 300, loop: false } })],
] as const) {
  test(`${name}: a loss burst NACK cannot repair → the viewer's PLI brings the picture back at the next keyframe`, async () => {
    const v = await decodingViewer(name, (nth) => nth > 60 && nth <= 60 + BURST, extra());
    try {
      await v.ended();
      assert.equal(v.dropped.size, BURST, "the burst was dropped");
      assert.ok(v.plis.length >= 1, "the loss was beyond repair: the viewer asked for a keyframe");
      const firstPli = v.plis[0]!;
      const k = v.units.findIndex((u) => u.arrivalMs > firstPli && u.keyframe);
      assert.ok(k >= 0, `a keyframe came after the PLI (${v.units.length} decodable frames in all)`);
      assert.ok(nalTypes(v.units[k]!).includes(5), `it holds an IDR slice (NAL types ${nalTypes(v.units[k]!).join(",")})`);
      const rest = v.units.slice(k);
      assert.ok(rest.length >= 60, `decodable frames after it: ${rest.length}`);
      for (let i = 1; i < rest.length; i++) {
        assert.equal((rest[i]!.timestamp - rest[i - 1]!.timestamp) >>> 0, FRAME_TICKS, `frame ${i} after the keyframe follows without a gap`);
      }
      assert.equal(v.plis.filter((t) => t > rest[0]!.arrivalMs).length, 0, "the picture stays whole: no PLI after the keyframe");
    } finally {
      await v.close();
    }
  });
}

test("vod://: 3 % random loss is repaired by NACK alone: every frame decodes, no keyframe is asked for", async () => {
  // Not the first packets nor the file's last ones: no receiver can NACK a packet before the first it got, or one
  // after the last (it never learns of it), and a browser asks for a keyframe then too. The file has ~1200.
  const v = await decodingViewer("vod://sample.mp4", (nth) => nth > 5 && nth < 1000 && Math.random() < 0.03);
  try {
    await v.ended();
    assert.ok(v.dropped.size >= 10, `${v.dropped.size} packets lost`);
    assert.equal(v.plis.length, 0, "no PLI");
    assert.equal(v.units.length, fileFrames, "every frame of the file decodes");
    assert.equal(v.depacketizer.stats.dropped, 0);
  } finally {
    await v.close();
  }
});

/** What a datagram's DTLS records hold (RFC 6347 4.1: 13-byte headers): a ChangeCipherSpec, records of epoch 1. */
function dtlsRecords(data: Buffer): { changeCipherSpec: boolean; epoch1: boolean } {
  const out = { changeCipherSpec: false, epoch1: false };
  for (let at = 0; at + 13 <= data.length; at += 13 + data.readUInt16BE(at + 11)) {
    if (data[at] === 20) out.changeCipherSpec = true;
    if (data.readUInt16BE(at + 3) === 1) out.epoch1 = true;
  }
  return out;
}

for (const direction of ["to", "from"] as const) {
  test(`the last DTLS flight ${direction} a viewer is lost once: it comes again, and the viewer plays`, async () => {
    // A flight's sender learns of its loss only from the other side: the client sends flight 5 again until it hears
    // flight 6, and the server must answer that repeat by sending flight 6 again, without handling flight 5 twice.
    // The sidecar is the DTLS server on the native path (it answers setup:passive, for AES-GCM), the client on the JS path.
    const viewer = await createWeriftViewer();
    let droppedChangeCipherSpec = 0;
    let droppedEpoch1 = 0;
    (direction === "to" ? interceptIncoming : interceptOutgoing)(viewer.pc, (data) => {
      // DTLS datagrams only (RFC 7983: first byte 20-63).
      if (data[0]! < 20 || data[0]! > 63) return false;
      const r = dtlsRecords(data);
      if (!((r.changeCipherSpec && droppedChangeCipherSpec === 0) || (r.epoch1 && droppedEpoch1 === 0))) return false;
      if (r.changeCipherSpec) droppedChangeCipherSpec++;
      if (r.epoch1) droppedEpoch1++;
      return true;
    });
    try {
      const answer = await control(SIDECAR_PATHS.play, { sessionRef: "loss", eventsUrl: EVENTS_URL, mediaSessionId: randomUUID(), name: "vod://sample.mp4", sdp: viewer.offerSdp });
      assert.ok(answer.ok, JSON.stringify(answer));
      await viewer.setAnswer(answer.sdp);
      await until("30 video frames after the lost flight", () => viewer.received.videoFrameTimestamps.length >= 30, 20_000);
      assert.equal(droppedChangeCipherSpec, 1, "a ChangeCipherSpec was lost");
      assert.equal(droppedEpoch1, 1, "a Finished was lost");
    } finally {
      await viewer.close();
    }
  });
}

test("a published stream: a viewer's PLI reaches the publisher", async () => {
  const name = `pli-${randomUUID().slice(0, 8)}`;
  const pub = await createWeriftPublisher(SAMPLE_MP4, { audio: false });
  const viewer = await createWeriftViewer();
  try {
    const published = await control(SIDECAR_PATHS.publish, { sessionRef: "loss", eventsUrl: EVENTS_URL, mediaSessionId: randomUUID(), name, sdp: pub.offerSdp, record: false, login: "" });
    assert.ok(published.ok, JSON.stringify(published));
    await pub.setAnswer(published.sdp);
    const answer = await control(SIDECAR_PATHS.play, { sessionRef: "loss", eventsUrl: EVENTS_URL, mediaSessionId: randomUUID(), name, sdp: viewer.offerSdp });
    assert.ok(answer.ok, JSON.stringify(answer));
    await viewer.setAnswer(answer.sdp);
    for (let i = 0; i < 100 && viewer.received.videoFrameTimestamps.length < 30; i++) await sleep(100);
    assert.ok(viewer.received.videoFrameTimestamps.length >= 30, "the viewer plays");
    // Past the publisher's PLI rate limit (300 ms), so nothing merges ours with an earlier request.
    await sleep(500);
    const before = pub.stats.plisReceived;
    const track = viewer.pc.getTransceivers().find((t) => t.kind === "video")!;
    const ssrc = track.receiver.tracks[0]!.ssrc!;
    await track.receiver.sendRtcpPLI(ssrc);
    for (let i = 0; i < 50 && pub.stats.plisReceived === before; i++) await sleep(100);
    assert.equal(pub.stats.plisReceived, before + 1, "the publisher got the viewer's keyframe request");
  } finally {
    await Promise.allSettled([viewer.close(), pub.close()]);
  }
});
