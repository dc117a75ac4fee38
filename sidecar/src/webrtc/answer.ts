// Answers a browser's offer with werift for the two roles a sidecar plays: sending to a viewer (vod://, vod-live://,
// a live published name) and receiving from a publisher. The offer is narrowed first (see offer.ts).
import { randomUUID } from "node:crypto";
import type { RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver } from "werift";
import { Info } from "@edge-vod/shared";
import { sendBatch } from "../native/send-batch.ts";
import type { VideoCodec } from "../rtp/video-codec.ts";
import { CVO_URI, OfferError, finishAnswer, shapeOffer, withoutRemoteSsrcs } from "./offer.ts";

export interface SendAnswer {
  sdp: string;
  video: { sender: RTCRtpSender; payloadType: number; codec: VideoCodec; orientation?: Orientation } | undefined;
  audio: { sender: RTCRtpSender; payloadType: number } | undefined;
}

export interface ReceiveAnswer {
  sdp: string;
  video:
    | { transceiver: RTCRtpTransceiver; receiver: RTCRtpReceiver; payloadType: number; codec: VideoCodec; profileIdc: number | undefined }
    | undefined;
  audio: { transceiver: RTCRtpTransceiver; receiver: RTCRtpReceiver; payloadType: number } | undefined;
}

/** The video orientation extension to send on every frame: its negotiated id and the clockwise turn to display. */
export interface Orientation {
  id: number;
  clockwise: 0 | 90 | 180 | 270;
}

// The DTLS server picks the SRTP profile, from its own list. Chromium as the server picks AES-CM (its list puts
// GCM last); as the client it offers GCM as well, and werift's server takes GCM first. The native path protects
// AES-GCM for less sidecar CPU per viewer than AES-CM end to end (bench/results/2026-12-03-gcm.json: 3-11 % from
// 100 to 600 viewers; -gcm-answer-cm.json: 7-9 % at 400 and 600), the JS path only AES-CM fast: so on the native
// path a viewer's DTLS server is the sidecar (the answer says setup:passive).
const VIEWER_DTLS_ROLE = sendBatch ? "server" : "auto";

/**
 * The DTLS role to answer with: the other one when the offer took one (werift itself would answer setup:active to
 * an offer's setup:active), else `prefer` ("auto": werift answers as the client).
 */
function setDtlsRole(pc: RTCPeerConnection, offerSdp: string, prefer: "server" | "auto"): void {
  const setup = /^a=setup:(\w+)/m.exec(offerSdp)?.[1];
  const role = setup === "active" ? "server" : setup === "passive" ? "client" : prefer;
  for (const t of pc.dtlsTransports) t.role = role;
}

/** Thrown when the offer and what we have to send or accept share no codec. */
export class NoCommonCodecs extends Error {}

/** What a viewer is sent: the video in one codec (H.264 by default), audio in Opus. */
export interface SendHave {
  video: boolean;
  audio: boolean;
  videoCodec?: VideoCodec;
  profileIdc: number | undefined;
  clockwise?: Orientation["clockwise"];
}

/**
 * Answers a recvonly offer with sendonly tracks for what we have (`video`/`audio`) and the browser can take.
 * Throws OfferError for an offer that is not SDP, NoCommonCodecs when nothing can be sent, or when there is video to
 * send and the offer's video section takes none of our codecs (sound alone is not what a player of a video asked
 * for; an offer without a video section gets the sound).
 */
export async function answerAsSender(pc: RTCPeerConnection, offerSdp: string, have: SendHave, publicIp: string | undefined): Promise<SendAnswer> {
  const videoCodec = have.videoCodec ?? "h264";
  const offer = shapeOffer(offerSdp, have.profileIdc, "receive", [videoCodec]);
  const sendVideo = have.video && offer.videoPt !== undefined;
  const sendAudio = have.audio && offer.opusPt !== undefined;
  if (!sendVideo && !sendAudio) throw new NoCommonCodecs();
  if (have.video && offer.hasVideoSection && !sendVideo) throw new NoCommonCodecs();
  await pc.setRemoteDescription({ type: "offer", sdp: withoutRemoteSsrcs(offer.sdp) });
  setDtlsRole(pc, offer.sdp, VIEWER_DTLS_ROLE);
  // Transceivers made from a recvonly offer default to inactive in werift until told they send.
  // One msid for both tracks: the SDK attaches `event.streams[0]` to its <video>, which needs a stream id.
  const streamId = `edge-vod-${randomUUID()}`;
  for (const t of pc.getTransceivers()) {
    const sends = (t.kind === "video" && sendVideo) || (t.kind === "audio" && sendAudio);
    t.setDirection(sends ? "sendonly" : "inactive");
    t.sender.streamId = streamId;
  }
  const senderOf = (kind: string) => pc.getTransceivers().find((t) => t.kind === kind)?.sender;
  await pc.setLocalDescription(await pc.createAnswer());
  const videoSender = sendVideo ? senderOf("video") : undefined;
  const audioSender = sendAudio ? senderOf("audio") : undefined;
  let sdp = finishAnswer(pc.localDescription?.sdp ?? "", publicIp);
  // werift answers no header extension it was not configured with; this one is written by our own send path, so the
  // answer names it here, with the offer's id.
  const orientation = videoSender && have.clockwise && offer.cvoId !== undefined ? { id: offer.cvoId, clockwise: have.clockwise } : undefined;
  if (orientation) sdp = withExtmap(sdp, "video", `a=extmap:${orientation.id} ${CVO_URI}`);
  return {
    sdp,
    video: videoSender ? { sender: videoSender, payloadType: offer.videoPt!, codec: videoCodec, ...(orientation ? { orientation } : {}) } : undefined,
    audio: audioSender ? { sender: audioSender, payloadType: offer.opusPt! } : undefined,
  };
}

/**
 * Answers a publisher's sendonly offer with recvonly tracks: H.264 (packetization-mode 1, constrained baseline
 * preferred, which every browser encoder offers) when offered, else VP8 (Firefox without its H.264 plugin), and
 * Opus. Video is required: a recording or a live stream without picture is not what a publisher of this server is
 * for (NoCommonCodecs).
 */
export async function answerAsReceiver(pc: RTCPeerConnection, offerSdp: string, publicIp: string | undefined): Promise<ReceiveAnswer> {
  const offer = shapeOffer(offerSdp, 66, "send", ["h264", "vp8"]);
  if (offer.videoPt === undefined || offer.videoCodec === undefined) throw new NoCommonCodecs();
  await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
  setDtlsRole(pc, offer.sdp, "auto");
  const videoPt = offer.videoPt;
  const codec = offer.videoCodec;
  for (const t of pc.getTransceivers()) {
    const receives = t.kind === "video" || (t.kind === "audio" && offer.opusPt !== undefined);
    t.setDirection(receives ? "recvonly" : "inactive");
  }
  await pc.setLocalDescription(await pc.createAnswer());
  const tr = (kind: string) => pc.getTransceivers().find((t) => t.kind === kind);
  const v = tr("video");
  const a = offer.opusPt !== undefined ? tr("audio") : undefined;
  const pli = codec === "h264" ? new RegExp(`^a=fmtp:${videoPt} .*profile-level-id=([0-9a-fA-F]{6})`, "m").exec(offer.sdp) : null;
  return {
    sdp: finishAnswer(pc.localDescription?.sdp ?? "", publicIp),
    video: v ? { transceiver: v, receiver: v.receiver, payloadType: videoPt, codec, profileIdc: pli ? parseInt(pli[1]!.slice(0, 2), 16) : undefined } : undefined,
    audio: a ? { transceiver: a, receiver: a.receiver, payloadType: offer.opusPt! } : undefined,
  };
}

/** Adds an attribute line to the first media section of `kind`, right after its m= and c= lines. */
function withExtmap(sdp: string, kind: string, line: string): string {
  const lines = sdp.split("\r\n");
  const m = lines.findIndex((l) => l.startsWith(`m=${kind} `));
  if (m < 0) return sdp;
  let at = m + 1;
  while (at < lines.length && lines[at]!.startsWith("c=")) at++;
  lines.splice(at, 0, line);
  return lines.join("\r\n");
}

/** The info a client gets when its offer could not be answered. */
export function answerFailureInfo(err: unknown, what: string): string {
  if (err instanceof OfferError) return Info.SDP_INVALID;
  if (err instanceof NoCommonCodecs) return Info.NO_COMMON_CODECS;
  // werift throws plain Errors for offers it cannot answer (no codec, broken m-lines).
  console.warn(`${what}: answering the offer failed: ${String(err)}`);
  return /codec/i.test(String(err)) ? Info.NO_COMMON_CODECS : Info.SDP_INVALID;
}
