// The video codecs this server sends and receives over RTP, and what the media path asks of each one's wire format
// (h264-*.ts, vp8-rtp.ts) without knowing which it is.
import { isH264KeyframeStart } from "./h264-rtp.ts";
import type { PayloadSink } from "./h264-packetizer.ts";
import { isVp8KeyframeStart } from "./vp8-rtp.ts";

/** H.264 whenever the browser offers it (every file and publisher is H.264 first); VP8 for those that do not. */
export type VideoCodec = "h264" | "vp8";

/** Codecs a sender prefers, best first. */
export const SEND_PREFERENCE: readonly VideoCodec[] = ["h264", "vp8"];

/** One frame of a track as MP4 stores it, to RTP payloads. `frameNo` numbers frames in send order (VP8's picture ID). */
export interface VideoPacketizer {
  packetize(sample: Uint8Array, emit: PayloadSink, keyframe: boolean, frameNo: number): number;
}

/** True when this RTP payload starts a frame a decoder can begin at. */
export function isKeyframeStart(codec: VideoCodec, payload: Uint8Array): boolean {
  return codec === "vp8" ? isVp8KeyframeStart(payload) : isH264KeyframeStart(payload);
}

/** The codec's name in record names, REST and logs, as WCS spells it. */
export function codecLabel(codec: VideoCodec): string {
  return codec === "vp8" ? "VP8" : "H264";
}
