// One outgoing RTP track of a viewer fed from a file (vod://, vod-live://): our own sequence numbers over the
// packets' media timestamps, through werift's sender (which adds SSRC, header extensions, SRTP and RTCP).
import { RtpHeader, RtpPacket, type RTCRtpSender } from "werift";

export class RtpOut {
  private seq = Math.floor(Math.random() * 0x10000);

  constructor(
    readonly sender: RTCRtpSender,
    private readonly payloadType: number,
  ) {}

  static of(t: { sender: RTCRtpSender; payloadType: number } | undefined): RtpOut | undefined {
    return t ? new RtpOut(t.sender, t.payloadType) : undefined;
  }

  send(timestamp: number, marker: boolean, payload: Uint8Array): void {
    this.seq = (this.seq + 1) & 0xffff;
    const header = new RtpHeader({ payloadType: this.payloadType, sequenceNumber: this.seq, timestamp: timestamp >>> 0, marker });
    const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    void this.sender.sendRtp(new RtpPacket(header, body)).catch(() => {});
  }
}
