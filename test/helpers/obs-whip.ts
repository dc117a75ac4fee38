// What OBS Studio (30.2+, libdatachannel) sends as a WHIP client, in front of a werift publisher that does the
// media: OBS's offer layout (ICE and DTLS attributes at session level, `a=group:LS`, audio first as mid 0 with Opus
// PT 111, video as mid 1 with a single H.264 PT 96 that always claims 42e01f, sendonly, no candidates at all),
// `Authorization: Bearer` on POST and DELETE, never a PATCH. OBS gives up on anything but exactly 201 with a body
// and a Location, so the client refuses those too.
import { randomBytes } from "node:crypto";
import { createWeriftPublisher } from "./werift-publisher.ts";

interface Section {
  kind: string;
  lines: string[];
}

function sectionsOf(sdp: string): { session: string[]; media: Section[] } {
  const lines = sdp.split(/\r?\n/).filter((l) => l.length > 0);
  const session: string[] = [];
  const media: Section[] = [];
  for (const line of lines) {
    const m = /^m=(\w+) /.exec(line);
    if (m) media.push({ kind: m[1]!, lines: [line] });
    else (media.at(-1)?.lines ?? session).push(line);
  }
  return { session, media };
}

const attr = (lines: readonly string[], name: string) => lines.find((l) => l.startsWith(`a=${name}:`))?.slice(name.length + 3);

/**
 * OBS's offer for the SSRCs, ICE credentials and certificate of `weriftOffer` (werift's sendonly offer: video mid 0,
 * audio mid 1). OBS lists audio first, so the mids are swapped; `forWerift` swaps them back in the answer.
 */
export function obsOffer(weriftOffer: string): string {
  const { media } = sectionsOf(weriftOffer);
  const video = media.find((s) => s.kind === "video")!.lines;
  const audio = media.find((s) => s.kind === "audio")!.lines;
  const ssrc = (lines: string[]) => /^a=ssrc:(\d+) cname:(\S+)/.exec(lines.find((l) => l.startsWith("a=ssrc:"))!)!;
  const [, videoSsrc, cname] = ssrc(video);
  const [, audioSsrc] = ssrc(audio);
  const msid = randomBytes(8).toString("hex");
  return [
    "v=0",
    `o=rtc ${randomBytes(4).readUInt32BE()} 0 IN IP4 127.0.0.1`,
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=group:LS 0 1",
    "a=msid-semantic:WMS *",
    "a=setup:actpass",
    `a=ice-ufrag:${attr(video, "ice-ufrag")}`,
    `a=ice-pwd:${attr(video, "ice-pwd")}`,
    "a=ice-options:ice2,trickle",
    `a=fingerprint:${attr(video, "fingerprint")}`,
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    "a=mid:0",
    "a=sendonly",
    `a=ssrc:${audioSsrc} cname:${cname}`,
    `a=ssrc:${audioSsrc} msid:${msid} ${msid}-audio`,
    `a=msid:${msid} ${msid}-audio`,
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=fmtp:111 minptime=10;maxaveragebitrate=96000;stereo=1;sprop-stereo=1;useinbandfec=1",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0",
    "a=mid:1",
    "a=sendonly",
    `a=ssrc:${videoSsrc} cname:${cname}`,
    `a=ssrc:${videoSsrc} msid:${msid} ${msid}-video`,
    `a=msid:${msid} ${msid}-video`,
    "a=rtcp-mux",
    "a=rtpmap:96 H264/90000",
    "a=rtcp-fb:96 nack",
    "a=rtcp-fb:96 nack pli",
    "a=rtcp-fb:96 goog-remb",
    "a=fmtp:96 profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1",
    "",
  ].join("\r\n");
}

/**
 * The server's answer to `obsOffer` as werift's own offer would have had it: video first as mid 0, audio as mid 1.
 * The payload types stay the answer's (111, 96): werift sends with the negotiated ones.
 */
export function forWerift(answer: string): string {
  const { session, media } = sectionsOf(answer);
  const remid = (s: Section) => s.lines.map((l) => (l === "a=mid:0" ? "a=mid:1" : l === "a=mid:1" ? "a=mid:0" : l));
  const video = media.find((s) => s.kind === "video");
  const audio = media.find((s) => s.kind === "audio");
  return [...session, ...(video ? remid(video) : []), ...(audio ? remid(audio) : []), ""].join("\r\n");
}

export interface ObsWhipClient {
  /** The offer it POSTed. */
  offer: string;
  /** What the POST got, exactly as OBS looks at it. */
  status: number;
  body: string;
  location: string | null;
  /** Whether OBS would go on streaming: exactly 201, a body and a Location (obs-studio #9459). */
  started: boolean;
  stats: Awaited<ReturnType<typeof createWeriftPublisher>>["stats"];
  /** DELETE of the resource with the Bearer token, as OBS stops streaming; its status. */
  stop(): Promise<number>;
  /** Media and connection torn down without telling the server. */
  close(): Promise<void>;
}

/** Starts streaming `file` to `whipUrl` as OBS would; when OBS would give up, nothing is sent and `started` is false. */
export async function startObs(whipUrl: string, file: string, bearer: string): Promise<ObsWhipClient> {
  const pub = await createWeriftPublisher(file);
  let closing: Promise<void> | undefined;
  // Once: stop() closes it, and a test's cleanup may close it again.
  const close = () => (closing ??= pub.close());
  try {
    const offer = obsOffer(pub.offerSdp);
    const res = await fetch(whipUrl, {
      method: "POST",
      headers: { "content-type": "application/sdp", authorization: `Bearer ${bearer}`, "user-agent": "Mozilla/5.0 (OBS-Studio/31.0.0; Linux x86_64; en-US)" },
      body: offer,
    });
    const body = await res.text();
    const location = res.headers.get("location");
    const started = res.status === 201 && body.length > 0 && location !== null;
    if (started) await pub.setAnswer(forWerift(body));
    else await close();
    return {
      offer,
      status: res.status,
      body,
      location,
      started,
      stats: pub.stats,
      async stop() {
        if (!started) throw new Error("OBS never started streaming, so it has nothing to DELETE");
        const del = await fetch(new URL(location!, whipUrl), { method: "DELETE", headers: { authorization: `Bearer ${bearer}` } });
        await del.body?.cancel();
        await close();
        return del.status;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
