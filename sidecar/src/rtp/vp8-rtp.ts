// VP8 over RTP (RFC 7741): the one place that knows the payload descriptor and the frame header, for sending
// (Vp8Packetizer, from the frames MP4 stores), routing (isVp8KeyframeStart) and recording (Vp8Depacketizer).
//
// Written by hand: werift 0.24 has no VP8 packetizer, and its Vp8RtpPayload parses through strings (getBit) and
// knows nothing about sequence numbers, so it can neither keep up on the hot path nor tell a complete frame from one
// with a hole in it. The depacketizer shares H.264's reorder window and its loss rules: a frame that lost a packet is
// dropped, and so is everything after it until a keyframe that is provably complete.
//
// What we send: every packet carries a 4-byte descriptor (X=1, I=1, 15-bit picture ID), because receivers such as
// libwebrtc use the picture ID to work out frame references and to notice frames missing between the ones they got.
// The frame goes out as two partitions (RFC 7741 4.4): the first partition (frame header, modes, motion vectors;
// PID 0) and everything after it (the DCT token partitions; PID 1), never mixed in one packet, so a receiver that
// lost token data can still tell it kept the whole first partition.
import { DEFAULT_MAX_PAYLOAD, type PayloadSink } from "./h264-packetizer.ts";
import { FrameDepacketizer, type DepacketizerStats, type ReorderOptions } from "../record/h264-depacketizer.ts";

// Descriptor, first byte. N (non-reference frame) stays 0: MP4 does not say which frames nobody references.
const X_BIT = 0x80;
const S_BIT = 0x10;
const PID_MASK = 0x07;
// Extension byte.
const I_BIT = 0x80;
const L_BIT = 0x40;
const T_BIT = 0x20;
const K_BIT = 0x10;
// First picture ID byte: M=1 means 15 bits.
const M_BIT = 0x80;

/** What we write: X byte, extension byte with I only, 15-bit picture ID. */
const SEND_DESCRIPTOR = 4;
/** Frame tag (3) + start code (3) + width (2) + height (2). */
const KEYFRAME_HEADER = 10;
const FRAME_TAG = 3;

// ---------------------------------------------------------------------------------------------------------------
// Frame header

/**
 * End of the first partition (RFC 6386 9.1: frame tag, keyframe start code and size, then first_part_size bytes),
 * or `frame.length` when the header cannot be trusted: then the frame goes out as one partition, which any decoder
 * accepts, instead of a PID 1 boundary in the wrong place.
 */
function firstPartitionEnd(frame: Uint8Array): number {
  const n = frame.length;
  if (n < FRAME_TAG) return n;
  const b0 = frame[0]!;
  const keyframe = (b0 & 1) === 0;
  const headerLen = keyframe ? KEYFRAME_HEADER : FRAME_TAG;
  if (keyframe && !hasStartCode(frame)) return n;
  const size = (b0 >> 5) | (frame[1]! << 3) | (frame[2]! << 11);
  // An empty first partition cannot be decoded: the header is lying.
  if (size === 0) return n;
  const end = headerLen + size;
  return end > n ? n : end;
}

function hasStartCode(frame: Uint8Array): boolean {
  return frame.length >= KEYFRAME_HEADER && frame[3] === 0x9d && frame[4] === 0x01 && frame[5] === 0x2a;
}

/** Picture size from a keyframe's header (scaling bits dropped), undefined when `frame` is not a usable keyframe. */
export function vp8KeyframeSize(frame: Uint8Array): { width: number; height: number } | undefined {
  if (frame.length < KEYFRAME_HEADER || (frame[0]! & 1) !== 0 || !hasStartCode(frame)) return undefined;
  const width = (frame[6]! | (frame[7]! << 8)) & 0x3fff;
  const height = (frame[8]! | (frame[9]! << 8)) & 0x3fff;
  if (width === 0 || height === 0) return undefined;
  return { width, height };
}

// ---------------------------------------------------------------------------------------------------------------
// Payload descriptor

/**
 * Bytes of the payload descriptor (all of RFC 7741 4.2's optional fields), or -1 when the payload is shorter than
 * its own bits say the descriptor is.
 */
export function vp8DescriptorLength(payload: Uint8Array): number {
  const len = payload.length;
  if (len < 1) return -1;
  if ((payload[0]! & X_BIT) === 0) return 1;
  if (len < 2) return -1;
  const ext = payload[1]!;
  let n = 2;
  if ((ext & I_BIT) !== 0) {
    if (len <= n) return -1;
    n += (payload[n]! & M_BIT) !== 0 ? 2 : 1;
  }
  if ((ext & L_BIT) !== 0) n++; // TL0PICIDX
  if ((ext & (T_BIT | K_BIT)) !== 0) n++; // TID/Y/KEYIDX share one byte
  return n > len ? -1 : n;
}

/**
 * True when this packet starts a keyframe: first packet of partition 0 (S=1, PID=0) whose VP8 payload header has
 * P=0. That is where a new viewer can start decoding. False for anything too short to tell.
 */
export function isVp8KeyframeStart(payload: Uint8Array): boolean {
  const n = vp8DescriptorLength(payload);
  if (n < 0 || n >= payload.length) return false;
  const b0 = payload[0]!;
  return (b0 & S_BIT) !== 0 && (b0 & PID_MASK) === 0 && (payload[n]! & 1) === 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Packetizer

export interface Vp8PacketizerOptions {
  /** Largest RTP payload, bytes, descriptor included. */
  maxPayload?: number;
}

export class Vp8Packetizer {
  readonly maxPayload: number;

  constructor(opts: Vp8PacketizerOptions = {}) {
    const maxPayload = opts.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    if (!Number.isInteger(maxPayload) || maxPayload < SEND_DESCRIPTOR + 1) {
      throw new RangeError(`maxPayload must be an integer >= ${SEND_DESCRIPTOR + 1}, not ${maxPayload}`);
    }
    this.maxPayload = maxPayload;
  }

  /**
   * Emits the payloads of one VP8 frame (as MP4 stores it: the raw frame, tag first); returns how many.
   * `keyframe` is only a hint, kept for parity with H264Packetizer: receivers go by the frame's own P bit, so a sample
   * the MP4 calls sync while its bytes say inter frame is still sent as the bytes say. An empty frame emits nothing.
   * All payloads of a frame are views on one fresh buffer that is never written again, so they may be kept.
   */
  packetize(frame: Uint8Array, emit: PayloadSink, keyframe: boolean, pictureId: number): number {
    const total = frame.length;
    if (total === 0) return 0;
    const chunk = this.maxPayload - SEND_DESCRIPTOR;
    const split = firstPartitionEnd(frame);
    const count0 = Math.ceil(split / chunk);
    const count1 = Math.ceil((total - split) / chunk);
    const count = count0 + count1;
    const out = new Uint8Array(total + SEND_DESCRIPTOR * count);
    // The frame goes in at the far end once, then each packet's bytes move left into place (copyWithin, no views):
    // a packet's destination always ends before the next packet's bytes start, so nothing is overwritten unread.
    const src = SEND_DESCRIPTOR * count;
    out.set(frame, src);
    const pid = pictureId & 0x7fff;
    const pidHigh = M_BIT | (pid >> 8);
    const pidLow = pid & 0xff;

    let o = 0;
    let sent = 0;
    for (let partition = 0; partition < 2; partition++) {
      const from = partition === 0 ? 0 : split;
      const length = partition === 0 ? split : total - split;
      const packets = partition === 0 ? count0 : count1;
      if (packets === 0) continue;
      // Balanced sizes: the first `extra` packets carry one byte more, none is a tiny tail.
      const base = Math.floor(length / packets);
      const extra = length - base * packets;
      let at = from;
      for (let i = 0; i < packets; i++) {
        const size = base + (i < extra ? 1 : 0);
        const start = o;
        out[o] = X_BIT | (i === 0 ? S_BIT : 0) | partition;
        out[o + 1] = I_BIT;
        out[o + 2] = pidHigh;
        out[o + 3] = pidLow;
        out.copyWithin(o + SEND_DESCRIPTOR, src + at, src + at + size);
        o += SEND_DESCRIPTOR + size;
        at += size;
        sent++;
        emit(out.subarray(start, o), sent === count);
      }
    }
    return count;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Depacketizer

export interface Vp8Frame {
  /** The frame as a decoder (and MP4) takes it: the descriptors stripped, partitions joined. */
  readonly data: Uint8Array;
  /** RTP timestamp (32 bits, 90 kHz) as received. */
  readonly timestamp: number;
  /** P bit of the frame tag is 0. */
  readonly keyframe: boolean;
  /** Arrival time of the frame's earliest packet (the clock passed to push). */
  readonly arrivalMs: number;
  /** Picture size from the keyframe header; undefined on inter frames. */
  readonly width: number | undefined;
  readonly height: number | undefined;
}

export interface Vp8DepacketizerOptions extends ReorderOptions {
  onFrame: (frame: Vp8Frame) => void;
  /** A frame was lost or dropped and decoding cannot resume before a keyframe. Called for every dropped frame. */
  onKeyframeNeeded?: () => void;
}

export type Vp8DepacketizerStats = DepacketizerStats;

export class Vp8Depacketizer extends FrameDepacketizer {
  private readonly onFrame: (frame: Vp8Frame) => void;
  private ts = 0;
  private arrivalMs = 0;
  private corrupt = false;
  /** Packets of `skipTs` belong to a frame already dropped for loss. */
  private skipping = false;
  private skipTs = 0;

  constructor(opts: Vp8DepacketizerOptions) {
    super(opts);
    this.onFrame = opts.onFrame;
  }

  protected onPacket(payload: Uint8Array, ts: number, marker: boolean, arrivalMs: number, lostBefore: number): void {
    if (lostBefore > 0) {
      // The missing packets may belong to the open frame (its middle or its end): it cannot be trusted.
      if (this.active) {
        this.drop();
        // Its remaining packets would otherwise open a headless frame and count the same frame dropped twice.
        this.skipping = true;
        this.skipTs = this.ts;
      }
      this.waitKey = true;
    } else if (this.active && ts !== this.ts) {
      // New timestamp without a marker on the previous packet: the previous frame ended there (nothing is missing).
      this.complete();
    }
    if (this.skipping) {
      if (ts === this.skipTs) return;
      this.skipping = false;
    }
    // Empty payloads (padding) only occupy a sequence number.
    if (payload.length === 0) return;
    const first = !this.active;
    if (first) {
      this.active = true;
      this.ts = ts;
      this.arrivalMs = arrivalMs;
      this.len = 0;
      this.corrupt = false;
    } else if (arrivalMs < this.arrivalMs) {
      this.arrivalMs = arrivalMs;
    }

    if (!this.corrupt) {
      const n = vp8DescriptorLength(payload);
      const b0 = payload[0]!;
      // Only the first packet of a frame may start partition 0: that is what tells a frame's head from its middle,
      // and a second head under one timestamp means the stream is not what it claims.
      const startsFrame = (b0 & S_BIT) !== 0 && (b0 & PID_MASK) === 0;
      if (n < 0 || n >= payload.length || startsFrame !== first) {
        this.corrupt = true;
      } else {
        const size = payload.length - n;
        this.reserve(size);
        this.buf.set(payload.subarray(n), this.len);
        this.len += size;
      }
    }
    if (marker) this.complete();
  }

  private complete(): void {
    if (this.corrupt) return this.drop();
    const keyframe = (this.buf[0]! & 1) === 0;
    let width: number | undefined;
    let height: number | undefined;
    if (keyframe) {
      // A keyframe whose header is cut short cannot be decoded, and nothing after it can either.
      const size = vp8KeyframeSize(this.buf.subarray(0, this.len));
      if (!size) return this.drop();
      width = size.width;
      height = size.height;
    } else if (this.waitKey) {
      return this.drop();
    }
    this.waitKey = false;
    const data = this.buf.slice(0, this.len);
    this.active = false;
    this.units++;
    if (keyframe) this.keyframes++;
    this.onFrame({ data, timestamp: this.ts, keyframe, arrivalMs: this.arrivalMs, width, height });
  }

}
