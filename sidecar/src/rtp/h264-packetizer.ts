// RFC 6184 packetization-mode 1 (single NAL unit, STAP-A, FU-A) from AVCC samples as MP4 stores them.
// Written by hand because werift 0.24 ships only an H.264 depacketizer (its packetizer arrives in 0.25).
import { NAL_IDR, NAL_SPS, NAL_PPS, NAL_AUD, NAL_FILLER, STAP_A, FU_A } from "./h264-rtp.ts";

/**
 * Receives the RTP payloads of one access unit in send order; `marker` is true on the last one only.
 * Payloads are never written to after they are emitted, so they may be kept; they are read-only for the receiver
 * too: single NAL unit payloads are views on the sample, and the SPS+PPS STAP-A is shared by every keyframe.
 */
export type PayloadSink = (payload: Uint8Array, marker: boolean) => void;

export interface H264PacketizerOptions {
  /** Bytes of the length field before each NAL unit in a sample (1, 2 or 4). */
  nalLengthSize: number;
  /** Parameter sets from the avcC box, sent ahead of keyframes that do not carry their own. */
  sps: readonly Uint8Array[];
  pps: readonly Uint8Array[];
  /** Largest RTP payload, bytes. 1188 keeps IP, UDP, RTP (with extensions) and the SRTP tag under 1280 bytes. */
  maxPayload?: number;
}

export const DEFAULT_MAX_PAYLOAD = 1188;


export class H264Packetizer {
  readonly maxPayload: number;
  private readonly nalLengthSize: number;
  /** SPS+PPS ahead of keyframes: one STAP-A when it fits, else the NAL units themselves (each may be fragmented). */
  private readonly paramPackets: readonly Uint8Array[];
  private readonly paramsAreStap: boolean;

  constructor(opts: H264PacketizerOptions) {
    const { nalLengthSize } = opts;
    if (nalLengthSize !== 1 && nalLengthSize !== 2 && nalLengthSize !== 4) {
      throw new RangeError(`H.264 NAL length size must be 1, 2 or 4, not ${nalLengthSize}`);
    }
    const maxPayload = opts.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    // An FU-A needs its two header bytes plus at least one byte of the NAL unit.
    if (!Number.isInteger(maxPayload) || maxPayload < 3) throw new RangeError(`maxPayload must be an integer >= 3, not ${maxPayload}`);
    this.nalLengthSize = nalLengthSize;
    this.maxPayload = maxPayload;

    const params = [...opts.sps, ...opts.pps].filter((p) => p.length > 0);
    // Without both kinds a decoder cannot start from them anyway (avc3 streams carry them in band).
    const usable = opts.sps.some((p) => p.length > 0) && opts.pps.some((p) => p.length > 0);
    const stapLength = params.reduce((sum, p) => sum + 2 + p.length, 1);
    if (usable && stapLength <= maxPayload && params.every((p) => p.length <= 0xffff)) {
      const stap = new Uint8Array(stapLength);
      // RFC 6184 5.7.1: F is the OR and NRI the maximum over the aggregated NAL units.
      let f = 0;
      let nri = 0;
      let o = 1;
      for (const p of params) {
        f |= p[0]! & 0x80;
        nri = Math.max(nri, p[0]! & 0x60);
        stap[o] = p.length >> 8;
        stap[o + 1] = p.length & 0xff;
        stap.set(p, o + 2);
        o += 2 + p.length;
      }
      stap[0] = f | nri | STAP_A;
      this.paramPackets = [stap];
      this.paramsAreStap = true;
    } else {
      // Copies, so that what we emit cannot change if the caller later reuses the avcC buffers.
      this.paramPackets = usable ? params.map((p) => p.slice()) : [];
      this.paramsAreStap = false;
    }
  }

  /**
   * Emits the payloads of one access unit (an AVCC sample: length-prefixed NAL units); returns how many.
   * SPS+PPS go first when the unit holds an IDR slice, or `keyframe` is set (a sync sample that starts with a
   * recovery-point I slice needs them just as much), and the unit does not carry both itself.
   * AUD and filler NAL units are dropped: they only cost packets. A unit left empty emits nothing at all.
   * Throws, before emitting anything, when a length field runs past the end of the sample.
   * `sample` must not be modified afterwards: single NAL unit payloads are views on it.
   */
  packetize(sample: Uint8Array, emit: PayloadSink, keyframe = false): number {
    // First pass validates and classifies, so that a malformed sample emits nothing and the last packet
    // (the one with the marker) is known without collecting the NAL units into an array.
    const n = this.nalLengthSize;
    let hasIdr = false;
    let hasSps = false;
    let hasPps = false;
    let lastKept = -1;
    for (let pos = 0; pos < sample.length; ) {
      const len = readLength(sample, pos, n);
      const start = pos + n;
      if (start + len > sample.length) {
        throw new Error(`malformed AVCC sample: NAL unit of ${len} bytes at offset ${pos} runs past the end (${sample.length} bytes)`);
      }
      if (len > 0) {
        const type = sample[start]! & 0x1f;
        if (type === NAL_IDR) hasIdr = true;
        else if (type === NAL_SPS) hasSps = true;
        else if (type === NAL_PPS) hasPps = true;
        if (type !== NAL_AUD && type !== NAL_FILLER) lastKept = start;
      }
      pos = start + len;
    }

    // Nothing to show: parameter sets alone would not make a frame, and a marker without a frame confuses receivers.
    if (lastKept < 0) return 0;
    let count = 0;
    if ((hasIdr || keyframe) && !(hasSps && hasPps)) {
      for (const p of this.paramPackets) {
        if (this.paramsAreStap) {
          emit(p, false);
          count++;
        } else {
          count += this.emitNal(p, false, emit);
        }
      }
    }
    for (let pos = 0; pos < sample.length; ) {
      const len = readLength(sample, pos, n);
      const start = pos + n;
      pos = start + len;
      if (len === 0) continue;
      const type = sample[start]! & 0x1f;
      if (type === NAL_AUD || type === NAL_FILLER) continue;
      count += this.emitNal(sample.subarray(start, pos), start === lastKept, emit);
    }
    return count;
  }

  private emitNal(nal: Uint8Array, lastOfUnit: boolean, emit: PayloadSink): number {
    const max = this.maxPayload;
    if (nal.length <= max) {
      emit(nal, lastOfUnit);
      return 1;
    }
    const header = nal[0]!;
    const indicator = (header & 0xe0) | FU_A;
    const type = header & 0x1f;
    const chunk = max - 2;
    let count = 0;
    // The NAL header byte is not carried: FU indicator and FU header rebuild it.
    for (let pos = 1; pos < nal.length; pos += chunk) {
      const end = Math.min(pos + chunk, nal.length);
      const isEnd = end === nal.length;
      const fu = new Uint8Array(2 + end - pos);
      fu[0] = indicator;
      fu[1] = (pos === 1 ? 0x80 : 0) | (isEnd ? 0x40 : 0) | type;
      fu.set(nal.subarray(pos, end), 2);
      emit(fu, lastOfUnit && isEnd);
      count++;
    }
    return count;
  }
}

/** One-shot form of {@link H264Packetizer.packetize}; build an H264Packetizer once per track when streaming. */
export function packetizeH264(
  sample: Uint8Array,
  opts: H264PacketizerOptions & { keyframe?: boolean },
  emit: PayloadSink,
): number {
  return new H264Packetizer(opts).packetize(sample, emit, opts.keyframe ?? false);
}

/** Splits an AVCC sample into its NAL units (views, no copies; empty ones skipped). Throws on a length past the end. */
export function splitAvcc(sample: Uint8Array, nalLengthSize: number): Uint8Array[] {
  if (nalLengthSize !== 1 && nalLengthSize !== 2 && nalLengthSize !== 4) {
    throw new RangeError(`H.264 NAL length size must be 1, 2 or 4, not ${nalLengthSize}`);
  }
  const nals: Uint8Array[] = [];
  for (let pos = 0; pos < sample.length; ) {
    const len = readLength(sample, pos, nalLengthSize);
    const start = pos + nalLengthSize;
    if (start + len > sample.length) {
      throw new Error(`malformed AVCC sample: NAL unit of ${len} bytes at offset ${pos} runs past the end (${sample.length} bytes)`);
    }
    if (len > 0) nals.push(sample.subarray(start, start + len));
    pos = start + len;
  }
  return nals;
}

function readLength(sample: Uint8Array, pos: number, size: number): number {
  if (pos + size > sample.length) {
    throw new Error(`malformed AVCC sample: ${sample.length - pos} trailing bytes at offset ${pos} cannot hold a ${size}-byte NAL length`);
  }
  switch (size) {
    case 1:
      return sample[pos]!;
    case 2:
      return (sample[pos]! << 8) | sample[pos + 1]!;
    default:
      // Multiplication, not <<: a length with the top bit set must stay positive (and then fail the bounds check).
      return sample[pos]! * 0x1000000 + ((sample[pos + 1]! << 16) | (sample[pos + 2]! << 8) | sample[pos + 3]!);
  }
}
