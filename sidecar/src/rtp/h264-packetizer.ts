// RFC 6184 packetization-mode 1 from AVCC samples. Written by hand because werift 0.24 ships only a depacketizer.

export type PayloadSink = (payload: Uint8Array, marker: boolean) => void;

const NAL_IDR = 5;
const NAL_SPS = 7;
const NAL_PPS = 8;
const NAL_AUD = 9;
const NAL_FILLER = 12;
const STAP_A = 24;
const FU_A = 28;

/** Splits an AVCC access unit into its NAL units (subarrays, no copies). Throws on a length past the end. */
export function splitAvcc(sample: Uint8Array, nalLengthSize: number): Uint8Array[] {
  const nals: Uint8Array[] = [];
  let pos = 0;
  while (pos < sample.length) {
    if (pos + nalLengthSize > sample.length) throw new Error("malformed AVCC sample: truncated length field");
    let len = 0;
    for (let i = 0; i < nalLengthSize; i++) len = len * 256 + sample[pos + i]!;
    pos += nalLengthSize;
    if (len === 0) continue;
    if (pos + len > sample.length) throw new Error(`malformed AVCC sample: NAL of ${len} bytes past the end`);
    nals.push(sample.subarray(pos, pos + len));
    pos += len;
  }
  return nals;
}

export function packetizeH264(
  sample: Uint8Array,
  opts: { nalLengthSize: number; sps: readonly Uint8Array[]; pps: readonly Uint8Array[]; keyframe: boolean; maxPayload?: number },
  emit: PayloadSink,
): void {
  const maxPayload = opts.maxPayload ?? 1188;
  let nals = splitAvcc(sample, opts.nalLengthSize).filter((n) => {
    const t = n[0]! & 0x1f;
    return t !== NAL_AUD && t !== NAL_FILLER;
  });
  const hasIdr = nals.some((n) => (n[0]! & 0x1f) === NAL_IDR);
  const hasParams = nals.some((n) => (n[0]! & 0x1f) === NAL_SPS) && nals.some((n) => (n[0]! & 0x1f) === NAL_PPS);
  const out: Uint8Array[] = [];
  if ((hasIdr || opts.keyframe) && !hasParams && opts.sps.length && opts.pps.length) {
    const params = [...opts.sps, ...opts.pps];
    const stapLen = 1 + params.reduce((a, n) => a + 2 + n.length, 0);
    if (stapLen <= maxPayload) {
      const stap = new Uint8Array(stapLen);
      let nri = 0;
      for (const p of params) nri = Math.max(nri, p[0]! & 0x60);
      stap[0] = nri | STAP_A;
      let o = 1;
      for (const p of params) {
        stap[o] = p.length >> 8;
        stap[o + 1] = p.length & 0xff;
        stap.set(p, o + 2);
        o += 2 + p.length;
      }
      out.push(stap);
    } else {
      nals = [...params, ...nals];
    }
  }
  for (const nal of nals) {
    if (nal.length <= maxPayload) {
      out.push(nal);
      continue;
    }
    const indicator = (nal[0]! & 0xe0) | FU_A;
    const type = nal[0]! & 0x1f;
    const chunk = maxPayload - 2;
    for (let pos = 1; pos < nal.length; pos += chunk) {
      const end = Math.min(pos + chunk, nal.length);
      const fu = new Uint8Array(2 + end - pos);
      fu[0] = indicator;
      fu[1] = (pos === 1 ? 0x80 : 0) | (end === nal.length ? 0x40 : 0) | type;
      fu.set(nal.subarray(pos, end), 2);
      out.push(fu);
    }
  }
  for (let i = 0; i < out.length; i++) emit(out[i]!, i === out.length - 1);
}
