/** Writes a 12-byte RTP header (version 2, no padding, extension or CSRC) at the start of `b`. */
export function writeRtpHeader(b: Uint8Array, payloadType: number, marker: boolean, seq: number, timestamp: number, ssrc: number): void {
  b[0] = 0x80;
  b[1] = (marker ? 0x80 : 0) | payloadType;
  b[2] = (seq >> 8) & 0xff;
  b[3] = seq & 0xff;
  b[4] = timestamp >>> 24;
  b[5] = (timestamp >>> 16) & 0xff;
  b[6] = (timestamp >>> 8) & 0xff;
  b[7] = timestamp & 0xff;
  b[8] = ssrc >>> 24;
  b[9] = (ssrc >>> 16) & 0xff;
  b[10] = (ssrc >>> 8) & 0xff;
  b[11] = ssrc & 0xff;
}
