// Shapes the browser's offer before werift answers it. werift keeps every offered codec whose MIME type it knows
// and sends with the first one, so the offer is narrowed to the one video payload type we use (H.264
// packetization-mode=1 with the closest profile, or VP8) and to Opus; the answer then names exactly what we send.
import type { VideoCodec } from "../rtp/video-codec.ts";

export interface OfferShape {
  sdp: string;
  /** The video codec chosen and its payload type, when the offer had a video section with one we take. */
  videoCodec: VideoCodec | undefined;
  videoPt: number | undefined;
  opusPt: number | undefined;
  hasVideoSection: boolean;
  hasAudioSection: boolean;
  /** The offer's extmap id for the video orientation extension (CVO), if its video section has one. */
  cvoId: number | undefined;
}

export const CVO_URI = "urn:3gpp:video-orientation";

/** Whether the offer's video can carry the video orientation extension (Chromium and Safari offer it). */
export function offersVideoOrientation(sdp: string): boolean {
  return videoOrientationId(sdp.split(/\r?\n/)) !== undefined;
}

function videoOrientationId(lines: readonly string[]): number | undefined {
  let inVideo = false;
  for (const line of lines) {
    if (line.startsWith("m=")) inVideo = line.startsWith("m=video ");
    const m = inVideo ? /^a=extmap:(\d+)(?:\/\w+)? (\S+)/.exec(line) : null;
    // One-byte header extension ids only (1-14): the only form this server writes.
    if (m && m[2] === CVO_URI && Number(m[1]) >= 1 && Number(m[1]) <= 14) return Number(m[1]);
  }
  return undefined;
}

export class OfferError extends Error {}

interface Codec {
  pt: number;
  name: string;
  clock: number;
  fmtp: Map<string, string>;
}

function parseCodecs(lines: string[]): Map<number, Codec> {
  const codecs = new Map<number, Codec>();
  for (const line of lines) {
    const rtpmap = /^a=rtpmap:(\d+) ([^/]+)\/(\d+)/.exec(line);
    if (rtpmap) {
      const pt = Number(rtpmap[1]);
      codecs.set(pt, { pt, name: rtpmap[2]!.toLowerCase(), clock: Number(rtpmap[3]), fmtp: codecs.get(pt)?.fmtp ?? new Map() });
    }
  }
  for (const line of lines) {
    const fmtp = /^a=fmtp:(\d+) (.*)$/.exec(line);
    const codec = fmtp && codecs.get(Number(fmtp[1]));
    if (!codec) continue;
    for (const kv of fmtp[2]!.split(";")) {
      const [k, v] = kv.split("=");
      if (k) codec.fmtp.set(k.trim().toLowerCase(), (v ?? "").trim().toLowerCase());
    }
  }
  return codecs;
}

/** Lower is better: how well an offered profile-level-id suits a file of this profile_idc. */
function profileRank(offered: string | undefined, fileProfileIdc: number): number {
  const idc = offered && offered.length >= 2 ? parseInt(offered.slice(0, 2), 16) : 66;
  if (idc === fileProfileIdc) return 0;
  // Chromium's receiver decodes any profile with FFmpeg; a baseline file also fits main/high declarations.
  if (fileProfileIdc === 66) return idc === 77 ? 1 : 2;
  return idc === 100 ? 1 : idc === 77 ? 2 : 3;
}

/** The offer's payload types usable as `codec`, best first. */
function videoCandidates(codecs: Map<number, Codec>, codec: VideoCodec, fileProfileIdc: number | undefined): Codec[] {
  const all = [...codecs.values()];
  if (codec === "vp8") return all.filter((c) => c.name === "vp8" && c.clock === 90000);
  const idc = fileProfileIdc ?? 66;
  return all
    .filter((c) => c.name === "h264" && c.clock === 90000 && c.fmtp.get("packetization-mode") === "1")
    .sort((a, b) => profileRank(a.fmtp.get("profile-level-id"), idc) - profileRank(b.fmtp.get("profile-level-id"), idc));
}

/**
 * The video codecs we serve that a viewer's offer can take (its first video section). Asked before the file is
 * opened: what the viewer takes decides whether the file goes out as it is or from a prepared copy.
 */
export function offeredVideoCodecs(sdp: string): Set<VideoCodec> {
  const out = new Set<VideoCodec>();
  const lines = sdp.split(/\r?\n/);
  const start = lines.findIndex((l) => l.startsWith("m=video "));
  if (start < 0) return out;
  let end = lines.findIndex((l, i) => i > start && l.startsWith("m="));
  if (end < 0) end = lines.length;
  const codecs = parseCodecs(lines.slice(start, end));
  for (const codec of ["h264", "vp8"] as const) if (videoCandidates(codecs, codec, undefined).length > 0) out.add(codec);
  return out;
}

function keepPayloadTypes(section: string[], keep: Set<number>): string[] {
  const out: string[] = [];
  for (const line of section) {
    const m = /^m=(\w+) (\d+) ([^ ]+) (.*)$/.exec(line);
    if (m) {
      const pts = m[4]!.split(" ").filter((p) => keep.has(Number(p)));
      out.push(`m=${m[1]} ${m[2]} ${m[3]} ${pts.join(" ")}`);
      continue;
    }
    const attr = /^a=(rtpmap|fmtp|rtcp-fb):(\d+)/.exec(line);
    if (attr && !keep.has(Number(attr[2]))) continue;
    out.push(line);
  }
  return out;
}

/**
 * `flow`: what the offerer must do in at least one audio or video section, `receive` for a viewer (recvonly or
 * sendrecv), `send` for a publisher (sendonly or sendrecv): a player's offer sent to publish, or an encoder's to
 * play, is refused as what it is, not answered with nothing flowing.
 */
export function shapeOffer(
  sdp: string,
  fileProfileIdc: number | undefined,
  flow?: "receive" | "send",
  /** Video codecs we can use here, best first: the first one the offer has is chosen. */
  videoCodecs: readonly VideoCodec[] = ["h264"],
): OfferShape {
  if (!sdp.startsWith("v=0")) throw new OfferError("not an SDP offer");
  const lines = sdp.split(/\r?\n/).filter((l) => l.length > 0);
  const sections: string[][] = [[]];
  for (const line of lines) {
    if (line.startsWith("m=")) sections.push([]);
    sections[sections.length - 1]!.push(line);
  }
  if (sections.length < 2) throw new OfferError("offer has no media sections");
  // Checked before the codecs: a malformed offer is a bad offer, not one without a codec we take.
  for (const section of sections.slice(1)) {
    if (!/^m=[a-z]+ \d+(\/\d+)? [A-Za-z/]+( \S+)+$/.test(section[0]!)) throw new OfferError(`malformed media line '${section[0]!.slice(0, 80)}'`);
  }
  for (const attr of ["ice-ufrag", "ice-pwd", "fingerprint"]) {
    if (!lines.some((l) => l.startsWith(`a=${attr}:`))) throw new OfferError(`offer has no a=${attr}`);
  }
  if (flow) {
    const sessionDir = directionOf(sections[0]!) ?? "sendrecv";
    const wanted = flow === "receive" ? ["recvonly", "sendrecv"] : ["sendonly", "sendrecv"];
    const media = sections.slice(1).filter((sec) => /^m=(audio|video) /.test(sec[0]!));
    if (!media.some((sec) => wanted.includes(directionOf(sec) ?? sessionDir))) {
      throw new OfferError(flow === "receive" ? "offer receives nothing (a publisher's offer, sent to play?)" : "offer sends nothing (a player's offer, sent to publish?)");
    }
  }
  let videoCodec: VideoCodec | undefined;
  let videoPt: number | undefined;
  let opusPt: number | undefined;
  let hasVideoSection = false;
  let hasAudioSection = false;
  const shaped = sections.map((section, i) => {
    if (i === 0) return section;
    const kind = /^m=(\w+) /.exec(section[0]!)?.[1];
    const codecs = parseCodecs(section);
    if (kind === "video") {
      hasVideoSection = true;
      let chosen: Codec | undefined;
      let codec: VideoCodec | undefined;
      for (const want of videoCodecs) {
        chosen = videoCandidates(codecs, want, fileProfileIdc)[0];
        codec = want;
        if (chosen) break;
      }
      if (!chosen || !codec) return section;
      if (videoPt === undefined) {
        videoPt = chosen.pt;
        videoCodec = codec;
      }
      const keep = new Set([chosen.pt]);
      for (const c of codecs.values()) if (c.name === "rtx" && c.fmtp.get("apt") === String(chosen.pt)) keep.add(c.pt);
      return keepPayloadTypes(section, keep);
    }
    if (kind === "audio") {
      hasAudioSection = true;
      const opus = [...codecs.values()].find((c) => c.name === "opus" && c.clock === 48000);
      if (!opus) return section;
      opusPt ??= opus.pt;
      return keepPayloadTypes(section, new Set([opus.pt]));
    }
    return section;
  });
  return { sdp: shaped.flat().join("\r\n") + "\r\n", videoCodec, videoPt, opusPt, hasVideoSection, hasAudioSection, cvoId: videoOrientationId(lines) };
}

function directionOf(section: readonly string[]): string | undefined {
  for (const l of section) {
    const m = /^a=(sendrecv|sendonly|recvonly|inactive)$/.exec(l);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * A viewer's offer without its `a=ssrc` / `a=ssrc-group` lines. Firefox and werift list the SSRC they send RTCP from
 * even in recvonly sections; werift then files that SSRC as a receiver and routes the viewer's PLIs (looked up by
 * sender SSRC first) there instead of to our sender, so a keyframe request would never arrive. We receive nothing
 * from a viewer, so its SSRCs mean nothing to us.
 */
export function withoutRemoteSsrcs(sdp: string): string {
  return sdp.replace(/^a=ssrc(-group)?:[^\r\n]*\r?\n/gm, "");
}

/**
 * Final touches on werift's answer: sending sections get the discard port 9 instead of werift's 0 (port 0 in an
 * answer means "rejected" to strict parsers and to the SDK's MSE provider), and with a configured public address
 * (1:1 NAT) host candidates carry that address; loopback candidates stay as they are.
 */
export function finishAnswer(sdp: string, publicIp: string | undefined): string {
  const ported = sdp.replace(/^m=(audio|video) 0 /gm, "m=$1 9 ");
  if (!publicIp) return ported;
  return ported.replace(
    /^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host)/gm,
    (all, pre: string, ip: string, post: string) => (ip.startsWith("127.") || ip === "::1" ? all : `${pre}${publicIp}${post}`),
  );
}
