// H.264 over RTP (RFC 6184): the NAL unit types the packetizer, the depacketizer and the live router share, and
// just enough reading of a payload to route packets without depacketizing them.

export const NAL_SLICE = 1;
export const NAL_IDR = 5;
export const NAL_SPS = 7;
export const NAL_PPS = 8;
export const NAL_AUD = 9;
export const NAL_FILLER = 12;
export const STAP_A = 24;
export const FU_A = 28;

/**
 * True when this packet starts a keyframe: an IDR or SPS NAL unit, alone, first fragment of an FU-A, or inside a
 * STAP-A. Chromium sends SPS + PPS (often in a STAP-A) right before each IDR, so the SPS packet is the place a new
 * viewer can start decoding.
 */
export function isH264KeyframeStart(payload: Uint8Array): boolean {
  if (payload.length < 2) return false;
  const type = payload[0]! & 0x1f;
  if (type === NAL_IDR || type === NAL_SPS) return true;
  if (type === FU_A) {
    const fuType = payload[1]! & 0x1f;
    return (payload[1]! & 0x80) !== 0 && (fuType === NAL_IDR || fuType === NAL_SPS);
  }
  if (type === STAP_A) {
    for (let i = 1; i + 2 < payload.length; ) {
      const size = (payload[i]! << 8) | payload[i + 1]!;
      const nalType = payload[i + 2]! & 0x1f;
      if (nalType === NAL_IDR || nalType === NAL_SPS) return true;
      i += 2 + size;
    }
  }
  return false;
}
