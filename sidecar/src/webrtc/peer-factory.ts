// werift peer connections configured for a media server that only answers: host candidates (no STUN unless
// configured), H.264 packetization-mode 1 spelled `video/H264` (Chromium ignores lowercase `h264` answers), VP8
// for browsers without H.264, Opus. The offer is narrowed to one of them before werift answers (offer.ts).
import { RTCPeerConnection, RTCRtpCodecParameters, type PeerConfig } from "werift";
import type { SidecarConfig } from "../config.ts";
import { disableImplicitStun } from "./no-stun.ts";

export type PeerFactory = () => RTCPeerConnection;

export function peerFactory(cfg: Pick<SidecarConfig, "iceHostAddresses" | "rtpPortRange">): PeerFactory {
  disableImplicitStun();
  const config: Partial<PeerConfig> = {
    codecs: {
      video: [
        new RTCRtpCodecParameters({
          mimeType: "video/H264",
          clockRate: 90000,
          rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }, { type: "ccm", parameter: "fir" }],
          parameters: "packetization-mode=1",
        }),
        new RTCRtpCodecParameters({
          mimeType: "video/VP8",
          clockRate: 90000,
          rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }, { type: "ccm", parameter: "fir" }],
        }),
      ],
      audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 })],
    },
    iceServers: [],
    iceAdditionalHostAddresses: cfg.iceHostAddresses,
    icePortRange: cfg.rtpPortRange,
    iceUseIpv6: false,
  };
  return () => new RTCPeerConnection(config);
}
