// A browser stand-in built on werift: offers recvonly H.264 + Opus the way the Web SDK does (offer taken before
// gathering, no candidates, none trickled) and records what arrives.
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, RTCPeerConnection, RTCRtpCodecParameters, type RtpPacket } from "werift";
import { randomUUID } from "node:crypto";
import { SIDECAR_PATHS, type PlayRequest, type PlayResponse } from "@edge-vod/shared";
import { disableImplicitStun } from "../../sidecar/src/webrtc/no-stun.ts";
import { signedFetch } from "./signed-fetch.ts";

export interface Received {
  /** RTP timestamps of the video packets that carry the marker bit: one per frame. */
  videoFrameTimestamps: number[];
  /** Wall-clock arrival (ms since epoch, sub-ms) of each packet in videoFrameTimestamps. */
  videoFrameArrivals: number[];
  /** Payload of the first video packet that arrived (a keyframe's first packet, if the server waits for one). */
  firstVideoPayload: Buffer | undefined;
  videoPackets: number;
  audioTimestamps: number[];
}

/** A werift peer as a browser would be: H.264 packetization-mode 1 (42e01f) and Opus, host candidates on loopback. */
export function testPeer(video: RTCRtpCodecParameters = H264_42E01F, opts: { bundlePolicy?: "max-bundle" } = {}): RTCPeerConnection {
  disableImplicitStun();
  return new RTCPeerConnection({
    ...opts,
    codecs: {
      video: [video],
      audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 })],
    },
    iceServers: [],
    iceAdditionalHostAddresses: ["127.0.0.1"],
    iceUseIpv6: false,
  });
}

export const H264_42E01F = new RTCRtpCodecParameters({
  mimeType: "video/H264",
  clockRate: 90000,
  rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
  parameters: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
});

/** VP8 as a browser without H.264 offers it (Firefox without OpenH264): nack and nack pli, or no feedback at all. */
export function vp8Codec(opts: { feedback?: boolean } = {}): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: "video/VP8",
    clockRate: 90000,
    rtcpFeedback: opts.feedback === false ? [] : [{ type: "nack" }, { type: "nack", parameter: "pli" }],
  });
}

/**
 * Which SRTP profiles a werift test peer takes, as a browser would: `chromium` (the default) AES-CM first, then
 * AEAD AES-GCM, which is Chromium's list: as the DTLS server it picks AES-CM, as the client it offers both and the
 * server picks (werift's server: GCM). `aes-cm`: AES-CM alone, a browser without GCM. `any`: werift's own list,
 * GCM first, whichever side the peer is.
 */
export type ViewerSrtp = "chromium" | "aes-cm" | "any";

/**
 * Sets a peer's SRTP profiles to `srtp`'s: werift test peers must get what browsers get. Call once the peer's
 * transports exist (after setLocalDescription or setRemoteDescription).
 */
export function offerSrtp(pc: RTCPeerConnection, srtp: ViewerSrtp): void {
  if (srtp === "any") return;
  // A new array per transport: werift's transports share one default list.
  for (const t of pc.dtlsTransports) {
    (t as unknown as { srtpProfiles: number[] }).srtpProfiles =
      srtp === "chromium" ? [ProtectionProfileAes128CmHmacSha1_80, ProtectionProfileAeadAes128Gcm] : [ProtectionProfileAes128CmHmacSha1_80];
  }
}

/**
 * Sees every incoming datagram (STUN, DTLS, SRTP, SRTCP) before werift does; `take` returns true to keep it from
 * werift. Install once the peer's transports exist.
 */
export function interceptIncoming(pc: RTCPeerConnection, take: (data: Buffer) => boolean): void {
  for (const dtls of pc.dtlsTransports) {
    const event = dtls.iceTransport.connection.onData as unknown as { execute: (data: Buffer) => void };
    const pass = event.execute.bind(event);
    event.execute = (data: Buffer) => {
      if (!take(data)) pass(data);
    };
  }
}

/** Sees every datagram the peer sends before it goes out; `take` returns true to keep it from the wire. */
export function interceptOutgoing(pc: RTCPeerConnection, take: (data: Buffer) => boolean): void {
  for (const dtls of pc.dtlsTransports) {
    const connection = dtls.iceTransport.connection as unknown as { send: (data: Buffer) => Promise<void> };
    const send = connection.send.bind(connection);
    connection.send = (data: Buffer) => (take(data) ? Promise.resolve() : send(data));
  }
}

/**
 * Sees every incoming RTP packet (not RTCP, still SRTP-protected: only the header is in the clear) before werift
 * does; `take` returns true to keep a packet from werift (dropped, or counted instead of decrypted). STUN, DTLS and
 * RTCP always go on to werift, so the connection stays alive. Install once the peer's transports exist.
 */
export function interceptIncomingRtp(pc: RTCPeerConnection, take: (packet: Buffer) => boolean): void {
  interceptIncoming(pc, (data) => {
    const b0 = data[0]!;
    const pt = data[1]! & 0x7f;
    // RTP (version 2) but not RTCP (payload types 64-95 once the marker bit is masked off).
    return b0 >= 128 && b0 < 192 && (pt < 64 || pt > 95) && take(data);
  });
}

/** The SDK's offer is taken before ICE gathering: werift's candidates are stripped so the server must rely on
 * peer-reflexive discovery exactly as with a browser. */
export function withoutCandidates(sdp: string): string {
  return sdp
    .split("\r\n")
    .filter((l) => !l.startsWith("a=candidate") && l !== "a=end-of-candidates")
    .join("\r\n");
}

/** `video`: the one video codec the viewer offers (default H.264 42e01f, as the Web SDK in Chromium). */
export async function createWeriftViewer(opts: { video?: RTCRtpCodecParameters } = {}) {
  const pc = testPeer(opts.video);
  const received: Received = { videoFrameTimestamps: [], videoFrameArrivals: [], firstVideoPayload: undefined, videoPackets: 0, audioTimestamps: [] };
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      if (track.kind === "video") {
        received.videoPackets++;
        received.firstVideoPayload ??= Buffer.from(rtp.payload);
        if (rtp.header.marker) {
          received.videoFrameTimestamps.push(rtp.header.timestamp);
          received.videoFrameArrivals.push(performance.timeOrigin + performance.now());
        }
      } else {
        received.audioTimestamps.push(rtp.header.timestamp);
      }
    });
  });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  offerSrtp(pc, "chromium");
  const offerSdp = withoutCandidates(pc.localDescription?.sdp ?? offer.sdp);
  return {
    pc,
    offerSdp,
    received,
    async setAnswer(sdp: string) {
      await pc.setRemoteDescription({ type: "answer", sdp });
    },
    async close() {
      await pc.close();
    },
  };
}

/**
 * Plays `name` on a sidecar straight through its control API (no edge), as a recvonly werift peer taking the SRTP
 * profiles `srtp` names (see offerSrtp): the play request is signed, the answer applied. For load tests and tests of
 * many viewers.
 */
export async function playOnSidecar(
  sidecar: { url: string; secret: string },
  pc: RTCPeerConnection,
  name: string,
  broadcast?: PlayRequest["broadcast"],
  srtp: ViewerSrtp = "chromium",
): Promise<{ sessionRef: string; mediaSessionId: string; answerSdp: string }> {
  await pc.setLocalDescription(await pc.createOffer());
  offerSrtp(pc, srtp);
  const body: PlayRequest = {
    sessionRef: "direct",
    // Nobody listens: the sidecar's event posts fail quietly, which costs it next to nothing.
    eventsUrl: "http://127.0.0.1:9/events",
    mediaSessionId: randomUUID(),
    name,
    sdp: withoutCandidates(pc.localDescription!.sdp),
    ...(broadcast ? { broadcast } : {}),
  };
  const res = await signedFetch(sidecar.secret, sidecar.url + SIDECAR_PATHS.play, { method: "POST", body: JSON.stringify(body) });
  const answer = (await res.json()) as PlayResponse;
  if (!answer.ok) throw new Error(`play refused: ${answer.info}`);
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  return { sessionRef: body.sessionRef, mediaSessionId: body.mediaSessionId, answerSdp: answer.sdp };
}
