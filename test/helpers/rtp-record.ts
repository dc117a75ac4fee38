// A recvonly werift peer that keeps the header of every RTP packet it gets, and what the tests of seeks and
// catch-ups read from them: frames, keyframes (from the H.264 payload), timestamp steps and continuity.
import assert from "node:assert/strict";
import type { RtpPacket } from "werift";
import { offerSrtp, testPeer, withoutCandidates, type ViewerSrtp } from "./werift-viewer.ts";

export interface Packet {
  seq: number;
  ts: number;
  marker: boolean;
  keyframe: boolean;
  at: number;
}

/**
 * H.264 payload starts a keyframe: its SPS (sent ahead of every IDR), an IDR NAL, a STAP-A holding one, or an FU-A
 * start of one.
 */
export function startsIdr(payload: Buffer): boolean {
  const type = payload[0]! & 0x1f;
  if (type === 5 || type === 7) return true;
  if (type === 28) return (payload[1]! & 0x80) !== 0 && (payload[1]! & 0x1f) === 5;
  if (type === 24) {
    for (let i = 1; i + 2 < payload.length; ) {
      const size = payload.readUInt16BE(i);
      if ((payload[i + 2]! & 0x1f) === 5) return true;
      i += 2 + size;
    }
  }
  return false;
}

/** Marks the first packet of every frame that holds an IDR (x264 puts an SEI before the first one). */
export function markKeyframes(packets: Packet[]): void {
  let start = 0;
  let key = false;
  for (let i = 0; i < packets.length; i++) {
    if (packets[i]!.keyframe) key = true;
    if (!packets[i]!.marker) continue;
    for (let j = start; j <= i; j++) packets[j]!.keyframe = false;
    packets[start]!.keyframe = key;
    start = i + 1;
    key = false;
  }
}

/**
 * Packets of one track by sequence number: a retransmission (NACK) of a packet already here is dropped, and one of a
 * packet that was lost takes its place, so the list reads as the sender numbered it.
 */
class TrackRecord {
  private readonly arrived: (Packet & { ext: number; idr: boolean })[] = [];
  private readonly seen = new Set<number>();
  private highest = -1;
  private sorted: Packet[] = [];
  private dirty = false;

  add(seq: number, ts: number, marker: boolean, idr: boolean): void {
    // Extended sequence number: the 16-bit one unwrapped against the highest so far.
    let ext = seq;
    if (this.highest >= 0) {
      const base = this.highest - (this.highest & 0xffff);
      ext = base + seq;
      if (ext - this.highest > 0x8000) ext -= 0x10000;
      else if (this.highest - ext > 0x8000) ext += 0x10000;
    }
    if (this.seen.has(ext)) return;
    this.seen.add(ext);
    if (ext > this.highest) this.highest = ext;
    this.arrived.push({ seq, ts, marker, keyframe: idr, idr, at: performance.now(), ext });
    this.dirty = true;
  }

  get packets(): Packet[] {
    if (this.dirty) {
      const list = [...this.arrived].sort((a, b) => a.ext - b.ext).map((p) => ({ seq: p.seq, ts: p.ts, marker: p.marker, keyframe: p.idr, at: p.at }));
      markKeyframes(list);
      this.sorted = list;
      this.dirty = false;
    }
    return this.sorted;
  }
}

/**
 * A recvonly werift peer that keeps every video and audio RTP packet's header, in sequence number order. It takes
 * the SRTP profiles Chromium does unless `srtp` says otherwise (see offerSrtp).
 */
export async function recordingViewer(opts: { srtp?: ViewerSrtp } = {}) {
  const pc = testPeer();
  const video = new TrackRecord();
  const audio = new TrackRecord();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      const h = rtp.header;
      if (track.kind === "video") video.add(h.sequenceNumber, h.timestamp, h.marker, startsIdr(rtp.payload));
      else audio.add(h.sequenceNumber, h.timestamp, h.marker, false);
    });
  });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  offerSrtp(pc, opts.srtp ?? "chromium");
  return {
    pc,
    /** Video packets so far (a new array when more came). */
    get video(): Packet[] {
      return video.packets;
    },
    get audio(): Packet[] {
      return audio.packets;
    },
    offerSdp: withoutCandidates(pc.localDescription?.sdp ?? offer.sdp),
  };
}

/** Frames (marker packets) from index `from` on. */
export const framesOf = (packets: readonly Packet[], from = 0) => packets.slice(from).filter((p) => p.marker);

/** Differences of consecutive 32-bit timestamps (wrapping), as signed numbers. */
export function steps(ts: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 1; i < ts.length; i++) out.push((ts[i]! - ts[i - 1]!) | 0);
  return out;
}

/** Every sequence number follows the one before (no gap, no reorder, none twice) across the whole playback. */
export function assertContinuous(packets: readonly Packet[], what: string): void {
  for (let i = 1; i < packets.length; i++) {
    assert.equal(packets[i]!.seq, (packets[i - 1]!.seq + 1) & 0xffff, `${what}: sequence number ${i} of ${packets.length}`);
  }
  const backwards = steps(packets.map((p) => p.ts)).findIndex((d) => d < 0);
  assert.equal(backwards, -1, `${what}: a timestamp went backwards at packet ${backwards + 1}`);
}

/** Resolves once `cond()` holds (polled every 20 ms); rejects after `timeoutMs` naming `what`. */
export async function until(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
