// RFC 6184 packetization-mode 1 (single NAL unit, STAP-A, FU-A) back to access units in AVCC form, for recording.
// Written by hand rather than with werift's H264RtpPayload: that one allocates per packet (Buffer.concat per FU-A
// fragment) and knows nothing about sequence numbers, so it cannot tell a complete frame from one that lost a packet,
// and a recording must never contain a frame that was put together with a hole in it.
//
// Packets go through a small reorder window first (mild reordering loses nothing, duplicates are dropped); a
// sequence number still missing when the window runs out is lost: the frame it belonged to is dropped, and so is
// every frame after it until an IDR that is provably complete.
import type { RtpPacket } from "werift";
import { NAL_SLICE, NAL_IDR, NAL_SPS, NAL_PPS, NAL_AUD, NAL_FILLER, STAP_A, FU_A } from "../rtp/h264-rtp.ts";


// ---------------------------------------------------------------------------------------------------------------
// Reorder window

/** Receives packets in sequence-number order. `lostBefore` > 0 when that many sequence numbers were given up on. */
export type OrderedPacketSink = (
  payload: Uint8Array,
  timestamp: number,
  marker: boolean,
  arrivalMs: number,
  lostBefore: number,
) => void;

export interface ReorderOptions {
  /** Packets held behind a missing one before it is declared lost. Default 10. */
  maxPackets?: number;
  /** How long (ms, by arrival) a packet may wait for a missing predecessor. Default 50. */
  maxDelayMs?: number;
}

export interface ReorderStats {
  /** Packets delivered. */
  delivered: number;
  /** Sequence numbers given up on. */
  lost: number;
  /** Copies of packets already held or delivered, and packets that came after their place was given up. */
  duplicates: number;
}

/**
 * Puts RTP packets back in sequence-number order with a bounded wait. Preallocated rings, no allocation per packet.
 * Packets are checked for a timeout only when another packet is pushed (no timers): media keeps flowing, and
 * {@link flush} delivers the rest at the end.
 */
export class RtpReorderBuffer {
  readonly stats: ReorderStats = { delivered: 0, lost: 0, duplicates: 0 };
  private readonly maxPackets: number;
  private readonly maxDelayMs: number;
  private readonly size: number;
  private readonly mask: number;
  private readonly payloads: (Uint8Array | undefined)[];
  private readonly seqs: Int32Array;
  private readonly timestamps: Float64Array;
  private readonly markers: Uint8Array;
  private readonly arrivals: Float64Array;
  private held = 0;
  /** Next sequence number to deliver; -1 before the first packet. */
  private expected = -1;
  /** Sequence numbers skipped since the last delivery; the first packet ever counts as following a loss of 1. */
  private lostPending = 1;
  /** Consecutive packets that came behind `expected`. */
  private lateRun = 0;

  constructor(
    private readonly deliver: OrderedPacketSink,
    opts: ReorderOptions = {},
  ) {
    this.maxPackets = Math.max(1, opts.maxPackets ?? 10);
    this.maxDelayMs = Math.max(0, opts.maxDelayMs ?? 50);
    let size = 64;
    while (size < this.maxPackets * 4) size *= 2;
    this.size = size;
    this.mask = size - 1;
    this.payloads = new Array<Uint8Array | undefined>(size).fill(undefined);
    this.seqs = new Int32Array(size).fill(-1);
    this.timestamps = new Float64Array(size);
    this.markers = new Uint8Array(size);
    this.arrivals = new Float64Array(size);
  }

  push(rtp: RtpPacket, arrivalMs: number): void {
    const h = rtp.header;
    this.pushRaw(h.sequenceNumber, h.timestamp, h.marker, rtp.payload ?? EMPTY, arrivalMs);
  }

  pushRaw(seq: number, timestamp: number, marker: boolean, payload: Uint8Array, arrivalMs: number): void {
    seq &= 0xffff;
    if (this.expected < 0) this.expected = seq;
    const distance = ((seq - this.expected) << 16) >> 16;
    if (distance < 0) {
      this.stats.duplicates++;
      // A long run of nothing but "old" packets is a sender that restarted its sequence numbers behind us.
      if (++this.lateRun < LATE_RUN_RESET) return;
    }
    this.lateRun = 0;
    if (distance < 0 || distance >= this.size) {
      // A jump further than the window can hold (long outage, restarted sender): give up on everything before it.
      this.flush();
      // Forward: that many are lost. Backward (a restart): how many is unknowable, but there is a break.
      const skipped = distance < 0 ? 0 : (seq - this.expected) & 0xffff;
      this.lostPending += Math.max(1, skipped);
      this.stats.lost += skipped;
      this.expected = seq;
    }
    const slot = seq & this.mask;
    if (this.seqs[slot] === seq) {
      this.stats.duplicates++;
      return;
    }
    this.payloads[slot] = payload;
    this.seqs[slot] = seq;
    this.timestamps[slot] = timestamp;
    this.markers[slot] = marker ? 1 : 0;
    this.arrivals[slot] = arrivalMs;
    this.held++;
    this.drain();
    while (this.held > 0) {
      const next = this.nextHeld();
      if (this.held < this.maxPackets && arrivalMs - this.arrivals[next & this.mask]! < this.maxDelayMs) break;
      this.skipTo(next);
      this.drain();
    }
  }

  /** Delivers everything held, giving up on the holes between. */
  flush(): void {
    while (this.held > 0) {
      this.skipTo(this.nextHeld());
      this.drain();
    }
  }

  private drain(): void {
    for (;;) {
      const slot = this.expected & this.mask;
      if (this.seqs[slot] !== this.expected) return;
      const payload = this.payloads[slot]!;
      this.payloads[slot] = undefined;
      this.seqs[slot] = -1;
      this.held--;
      this.expected = (this.expected + 1) & 0xffff;
      const lost = this.lostPending;
      this.lostPending = 0;
      this.stats.delivered++;
      this.deliver(payload, this.timestamps[slot]!, this.markers[slot] === 1, this.arrivals[slot]!, lost);
    }
  }

  /** Sequence number of the first held packet after `expected` (call only with held > 0). */
  private nextHeld(): number {
    let seq = this.expected;
    for (let i = 0; i < this.size; i++) {
      if (this.seqs[seq & this.mask] === seq) return seq;
      seq = (seq + 1) & 0xffff;
    }
    throw new Error("reorder buffer: held count out of step");
  }

  private skipTo(seq: number): void {
    const skipped = (seq - this.expected) & 0xffff;
    this.lostPending += skipped;
    this.stats.lost += skipped;
    this.expected = seq;
  }
}

const EMPTY = new Uint8Array(0);
/** Consecutive packets behind the window after which the stream is taken to have restarted. */
const LATE_RUN_RESET = 256;

// ---------------------------------------------------------------------------------------------------------------
// Frame assembly, shared by the H.264 and VP8 depacketizers

export interface DepacketizerStats {
  units: number;
  keyframes: number;
  /** Units dropped: damaged by loss, malformed, or not decodable (waiting for a keyframe). */
  dropped: number;
  packets: ReorderStats;
}

/**
 * What both codecs' depacketizers do alike: the reorder window in front, the counters, the assembly buffer, and the
 * rule that a dropped frame makes everything after it wait for a keyframe that is provably complete. Each codec says
 * how packets make a frame (onPacket) and when a keyframe is complete.
 */
export abstract class FrameDepacketizer {
  private readonly reorder: RtpReorderBuffer;
  private readonly onKeyframeNeeded: (() => void) | undefined;
  protected units = 0;
  protected keyframes = 0;
  protected dropped = 0;
  /** True until a keyframe that is provably complete: at start and after any loss. */
  protected waitKey = true;
  // The frame being assembled: its bytes go into `buf` (reused, grows as needed).
  protected buf = new Uint8Array(64 * 1024);
  protected len = 0;
  protected active = false;

  constructor(opts: ReorderOptions & { onKeyframeNeeded?: () => void }) {
    this.onKeyframeNeeded = opts.onKeyframeNeeded;
    this.reorder = new RtpReorderBuffer((p, ts, m, arrival, lost) => this.onPacket(p, ts, m, arrival, lost), opts);
  }

  get stats(): DepacketizerStats {
    return { units: this.units, keyframes: this.keyframes, dropped: this.dropped, packets: { ...this.reorder.stats } };
  }

  /** True while frames are dropped until the next complete keyframe. */
  get waitingForKeyframe(): boolean {
    return this.waitKey;
  }

  push(rtp: RtpPacket, arrivalMs: number): void {
    this.reorder.push(rtp, arrivalMs);
  }

  pushRaw(seq: number, timestamp: number, marker: boolean, payload: Uint8Array, arrivalMs: number): void {
    this.reorder.pushRaw(seq, timestamp, marker, payload, arrivalMs);
  }

  /**
   * Delivers what the reorder window holds. A frame still open afterwards (its marker never came) is dropped: it may
   * be missing its end.
   */
  flush(): void {
    this.reorder.flush();
    if (this.active) this.drop();
  }

  /** Drops frames until the next complete keyframe (the caller could not use a frame, e.g. its timestamp went back). */
  requireKeyframe(): void {
    this.waitKey = true;
  }

  /** Packets in sequence-number order, as the reorder window delivers them (see OrderedPacketSink). */
  protected abstract onPacket(payload: Uint8Array, ts: number, marker: boolean, arrivalMs: number, lostBefore: number): void;

  /** Gives up the frame being assembled: decoding resumes at the next complete keyframe, which is asked for. */
  protected drop(): void {
    this.active = false;
    this.dropped++;
    this.waitKey = true;
    this.onKeyframeNeeded?.();
  }

  /** Room for `extra` more bytes in `buf`. */
  protected reserve(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Depacketizer

export interface AccessUnit {
  /** NAL units with 4-byte big-endian lengths. AUD and filler are left out; SPS, PPS and SEI stay in band. */
  readonly data: Uint8Array;
  /** RTP timestamp (32 bits, 90 kHz) as received. */
  readonly timestamp: number;
  /** Holds an IDR slice. */
  readonly keyframe: boolean;
  /** Arrival time of the unit's earliest packet (the clock passed to push). */
  readonly arrivalMs: number;
  /** The parameter sets in force for this unit (latest seen): set on keyframes, for the avcC. */
  readonly sps: Uint8Array | undefined;
  readonly pps: Uint8Array | undefined;
}

export interface H264DepacketizerOptions extends ReorderOptions {
  onAccessUnit: (unit: AccessUnit) => void;
  /** A unit was lost or dropped and decoding cannot resume before an IDR. Called for every dropped unit. */
  onKeyframeNeeded?: () => void;
}

export type H264DepacketizerStats = DepacketizerStats;

export class H264Depacketizer extends FrameDepacketizer {
  private readonly onAccessUnit: (unit: AccessUnit) => void;

  /** Latest parameter sets seen in a unit that was emitted (immutable copies). */
  private sps: Uint8Array | undefined;
  private pps: Uint8Array | undefined;
  private ts = 0;
  private arrivalMs = 0;
  /** No sequence number is missing between the previous unit's last packet and this unit's first one. */
  private startClean = false;
  private corrupt = false;
  private hasIdr = false;
  private spsAt = -1;
  private spsLen = 0;
  private ppsAt = -1;
  private ppsLen = 0;
  /** -1 no slice yet, 1 the first slice starts at macroblock 0, 0 it does not. */
  private firstSliceAtZero = -1;
  /** Offset of the open FU-A's length field, -1 when none is open. */
  private fuAt = -1;

  constructor(opts: H264DepacketizerOptions) {
    super(opts);
    this.onAccessUnit = opts.onAccessUnit;
  }

  protected onPacket(payload: Uint8Array, ts: number, marker: boolean, arrivalMs: number, lostBefore: number): void {
    if (lostBefore > 0) {
      // The missing packets may belong to the open unit (its middle or its end): it cannot be trusted.
      if (this.active) this.drop();
      this.waitKey = true;
    } else if (this.active && ts !== this.ts) {
      // New timestamp without a marker on the previous packet: the previous unit ended there (nothing is missing).
      this.complete();
    }
    // Empty payloads (padding) only occupy a sequence number.
    if (payload.length === 0) return;
    if (!this.active) this.begin(ts, arrivalMs, lostBefore === 0);
    else if (arrivalMs < this.arrivalMs) this.arrivalMs = arrivalMs;

    const type = payload[0]! & 0x1f;
    if (type === FU_A) {
      this.fuA(payload);
    } else if (this.fuAt >= 0) {
      this.corrupt = true; // an FU-A interrupted by another packet
    } else if (type >= 1 && type <= 23) {
      this.nal(payload, 0, payload.length);
    } else if (type === STAP_A) {
      for (let o = 1; o < payload.length; ) {
        if (o + 2 > payload.length) {
          this.corrupt = true;
          break;
        }
        const size = (payload[o]! << 8) | payload[o + 1]!;
        o += 2;
        if (size === 0 || o + size > payload.length) {
          this.corrupt = true;
          break;
        }
        this.nal(payload, o, size);
        o += size;
      }
    } else {
      this.corrupt = true; // STAP-B, MTAP, FU-B and reserved types are not part of packetization-mode 1
    }
    if (marker) this.complete();
  }

  private begin(ts: number, arrivalMs: number, clean: boolean): void {
    this.active = true;
    this.ts = ts;
    this.arrivalMs = arrivalMs;
    this.startClean = clean;
    this.len = 0;
    this.corrupt = false;
    this.hasIdr = false;
    this.spsAt = -1;
    this.ppsAt = -1;
    this.firstSliceAtZero = -1;
    this.fuAt = -1;
  }

  /** Appends one whole NAL unit from `src[at, at + size)`. */
  private nal(src: Uint8Array, at: number, size: number): void {
    const type = src[at]! & 0x1f;
    if (type === NAL_AUD || type === NAL_FILLER) return;
    this.noteNal(type, size > 1 ? src[at + 1]! : -1, this.len + 4, size);
    this.reserve(4 + size);
    const b = this.buf;
    const o = this.len;
    b[o] = size >>> 24;
    b[o + 1] = (size >>> 16) & 0xff;
    b[o + 2] = (size >>> 8) & 0xff;
    b[o + 3] = size & 0xff;
    b.set(src.subarray(at, at + size), o + 4);
    this.len = o + 4 + size;
  }

  private fuA(p: Uint8Array): void {
    if (p.length < 3) {
      this.corrupt = true;
      return;
    }
    const start = (p[1]! & 0x80) !== 0;
    const end = (p[1]! & 0x40) !== 0;
    if (start) {
      if (this.fuAt >= 0) this.corrupt = true; // the previous FU-A never ended
      const type = p[1]! & 0x1f;
      this.reserve(5 + p.length - 2);
      this.fuAt = this.len;
      this.noteNal(type, p[2]!, this.len + 4, -1);
      this.buf[this.len + 4] = (p[0]! & 0xe0) | type; // the NAL header, rebuilt from indicator and FU header
      this.len += 5;
    } else if (this.fuAt < 0) {
      this.corrupt = true; // a continuation without its start
      return;
    }
    const chunk = p.length - 2;
    this.reserve(chunk);
    this.buf.set(p.subarray(2), this.len);
    this.len += chunk;
    if (end) {
      const size = this.len - this.fuAt - 4;
      const b = this.buf;
      const o = this.fuAt;
      b[o] = size >>> 24;
      b[o + 1] = (size >>> 16) & 0xff;
      b[o + 2] = (size >>> 8) & 0xff;
      b[o + 3] = size & 0xff;
      if (this.spsAt === o + 4) this.spsLen = size;
      if (this.ppsAt === o + 4) this.ppsLen = size;
      this.fuAt = -1;
    }
  }

  /** Bookkeeping for a NAL unit starting at `buf[at]` (`size` -1 when not known yet: an FU-A). */
  private noteNal(type: number, secondByte: number, at: number, size: number): void {
    if (type === NAL_IDR) this.hasIdr = true;
    if ((type === NAL_SLICE || type === NAL_IDR) && this.firstSliceAtZero < 0) {
      // first_mb_in_slice is the slice header's first field, ue(v): a leading 1 bit means 0.
      this.firstSliceAtZero = secondByte >= 0 && (secondByte & 0x80) !== 0 ? 1 : 0;
    } else if (type === NAL_SPS) {
      this.spsAt = at;
      this.spsLen = size;
    } else if (type === NAL_PPS) {
      this.ppsAt = at;
      this.ppsLen = size;
    }
  }

  private complete(): void {
    if (this.corrupt || this.fuAt >= 0) return this.drop();
    if (this.len === 0) {
      // Nothing but AUD/filler: not a frame, nothing lost.
      this.active = false;
      return;
    }
    const hasSps = this.spsAt >= 0 && this.spsLen > 0;
    const hasPps = this.ppsAt >= 0 && this.ppsLen > 0;
    if (this.waitKey) {
      // Decoding can resume here only with an IDR that is all there: its first slice starts the picture, and either
      // nothing is missing before it or it carries its own parameter sets (lost ones might have been new).
      const paramsKnown = (hasSps || this.sps !== undefined) && (hasPps || this.pps !== undefined);
      const ok =
        this.hasIdr && this.firstSliceAtZero === 1 && paramsKnown && (this.startClean || (hasSps && hasPps));
      if (!ok) return this.drop();
      this.waitKey = false;
    }
    if (hasSps) this.sps = keep(this.sps, this.buf, this.spsAt, this.spsLen);
    if (hasPps) this.pps = keep(this.pps, this.buf, this.ppsAt, this.ppsLen);
    const data = this.buf.slice(0, this.len);
    this.active = false;
    this.units++;
    if (this.hasIdr) this.keyframes++;
    this.onAccessUnit({
      data,
      timestamp: this.ts,
      keyframe: this.hasIdr,
      arrivalMs: this.arrivalMs,
      sps: this.hasIdr ? this.sps : undefined,
      pps: this.hasIdr ? this.pps : undefined,
    });
  }

  protected override drop(): void {
    this.fuAt = -1;
    super.drop();
  }
}

/** `current` when it already holds these bytes, else a copy of them. */
function keep(current: Uint8Array | undefined, src: Uint8Array, at: number, size: number): Uint8Array {
  if (current && current.length === size) {
    let same = true;
    for (let i = 0; i < size; i++) {
      if (current[i] !== src[at + i]) {
        same = false;
        break;
      }
    }
    if (same) return current;
  }
  return src.slice(at, at + size);
}

// ---------------------------------------------------------------------------------------------------------------
// Parameter sets

export interface SpsInfo {
  profileIdc: number;
  /** constraint_set flags byte (the middle byte of `avc1.PPCCLL`). */
  constraintFlags: number;
  levelIdc: number;
  chromaFormatIdc: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
  /** Picture size after cropping. */
  width: number;
  height: number;
}

/** Parses an H.264 sequence parameter set (NAL header included) far enough for the picture size. */
export function parseSps(nal: Uint8Array): SpsInfo | undefined {
  if (nal.length < 4 || (nal[0]! & 0x1f) !== NAL_SPS) return undefined;
  const r = new BitReader(unescapeRbsp(nal.subarray(1)));
  try {
    const profileIdc = r.bits(8);
    const constraintFlags = r.bits(8);
    const levelIdc = r.bits(8);
    r.ue(); // seq_parameter_set_id
    let chromaFormatIdc = 1;
    let bitDepthLuma = 8;
    let bitDepthChroma = 8;
    let separateColourPlane = 0;
    if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profileIdc)) {
      chromaFormatIdc = r.ue();
      if (chromaFormatIdc === 3) separateColourPlane = r.bits(1);
      bitDepthLuma = r.ue() + 8;
      bitDepthChroma = r.ue() + 8;
      r.bits(1); // qpprime_y_zero_transform_bypass_flag
      if (r.bits(1)) {
        // seq_scaling_matrix_present_flag
        const lists = chromaFormatIdc !== 3 ? 8 : 12;
        for (let i = 0; i < lists; i++) {
          if (r.bits(1)) skipScalingList(r, i < 6 ? 16 : 64);
        }
      }
    }
    r.ue(); // log2_max_frame_num_minus4
    const pocType = r.ue();
    if (pocType === 0) {
      r.ue(); // log2_max_pic_order_cnt_lsb_minus4
    } else if (pocType === 1) {
      r.bits(1); // delta_pic_order_always_zero_flag
      r.se(); // offset_for_non_ref_pic
      r.se(); // offset_for_top_to_bottom_field
      const cycle = r.ue();
      if (cycle > 255) return undefined;
      for (let i = 0; i < cycle; i++) r.se();
    }
    r.ue(); // max_num_ref_frames
    r.bits(1); // gaps_in_frame_num_value_allowed_flag
    const widthMbs = r.ue() + 1;
    const heightMapUnits = r.ue() + 1;
    const frameMbsOnly = r.bits(1);
    if (!frameMbsOnly) r.bits(1); // mb_adaptive_frame_field_flag
    r.bits(1); // direct_8x8_inference_flag
    let cropLeft = 0;
    let cropRight = 0;
    let cropTop = 0;
    let cropBottom = 0;
    if (r.bits(1)) {
      cropLeft = r.ue();
      cropRight = r.ue();
      cropTop = r.ue();
      cropBottom = r.ue();
    }
    const chromaArrayType = separateColourPlane ? 0 : chromaFormatIdc;
    const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
    const subHeightC = chromaArrayType === 1 ? 2 : 1;
    const cropUnitX = chromaArrayType === 0 ? 1 : subWidthC;
    const cropUnitY = (chromaArrayType === 0 ? 1 : subHeightC) * (2 - frameMbsOnly);
    const width = widthMbs * 16 - cropUnitX * (cropLeft + cropRight);
    const height = (2 - frameMbsOnly) * heightMapUnits * 16 - cropUnitY * (cropTop + cropBottom);
    if (width <= 0 || height <= 0) return undefined;
    return { profileIdc, constraintFlags, levelIdc, chromaFormatIdc, bitDepthLuma, bitDepthChroma, width, height };
  } catch {
    return undefined; // ran off the end
  }
}

/** RFC 6381 codec string for the SPS, e.g. `avc1.42e01f`. */
export function avcCodecString(sps: Uint8Array): string {
  const hex = (b: number) => b.toString(16).padStart(2, "0");
  return `avc1.${hex(sps[1] ?? 0)}${hex(sps[2] ?? 0)}${hex(sps[3] ?? 0)}`;
}

/** AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1, the `avcC` box payload) with 4-byte NAL lengths. */
export function buildAvcDecoderConfig(sps: Uint8Array, pps: readonly Uint8Array[]): Uint8Array {
  const info = parseSps(sps);
  const high = info !== undefined && ![66, 77, 88].includes(info.profileIdc);
  const size = 6 + 2 + sps.length + 1 + pps.reduce((n, p) => n + 2 + p.length, 0) + (high ? 4 : 0);
  const out = new Uint8Array(size);
  let o = 0;
  out[o++] = 1; // configurationVersion
  out[o++] = sps[1]!; // AVCProfileIndication
  out[o++] = sps[2]!; // profile_compatibility
  out[o++] = sps[3]!; // AVCLevelIndication
  out[o++] = 0xfc | 3; // lengthSizeMinusOne = 3
  out[o++] = 0xe0 | 1; // one SPS
  out[o++] = sps.length >> 8;
  out[o++] = sps.length & 0xff;
  out.set(sps, o);
  o += sps.length;
  out[o++] = pps.length;
  for (const p of pps) {
    out[o++] = p.length >> 8;
    out[o++] = p.length & 0xff;
    out.set(p, o);
    o += p.length;
  }
  if (high && info) {
    out[o++] = 0xfc | (info.chromaFormatIdc & 3);
    out[o++] = 0xf8 | ((info.bitDepthLuma - 8) & 7);
    out[o++] = 0xf8 | ((info.bitDepthChroma - 8) & 7);
    out[o++] = 0; // numOfSequenceParameterSetExt
  }
  return out;
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/** Removes emulation-prevention bytes (00 00 03 -> 00 00). */
function unescapeRbsp(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(src.length);
  let n = 0;
  let zeros = 0;
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out[n++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, n);
}

class BitReader {
  private pos = 0;
  constructor(private readonly data: Uint8Array) {}

  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.data[this.pos >> 3];
      if (byte === undefined) throw new RangeError("end of data");
      v = v * 2 + ((byte >> (7 - (this.pos & 7))) & 1);
      this.pos++;
    }
    return v;
  }

  ue(): number {
    let zeros = 0;
    while (this.bits(1) === 0) {
      if (++zeros > 31) throw new RangeError("bad exp-Golomb code");
    }
    return zeros === 0 ? 0 : 2 ** zeros - 1 + this.bits(zeros);
  }

  se(): number {
    const k = this.ue();
    return k & 1 ? (k + 1) / 2 : -(k / 2);
  }
}
