// Real media as a publisher would send it, for the recorder tests: an H.264 constrained-baseline + Opus MP4 made
// with ffmpeg, read with the repo's MP4 reader, packetized (single NAL / STAP-A / FU-A, one Opus packet per RTP
// packet) into werift RtpPackets whose timestamps start just below 2^32 (so they wrap) and whose sequence numbers
// start at random.
import path from "node:path";
import { RtpHeader, RtpPacket } from "werift";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4, readSample } from "../../sidecar/src/mp4/reader.ts";
import { H264Packetizer } from "../../sidecar/src/rtp/h264-packetizer.ts";
import { unixMsToNtp } from "../../sidecar/src/record/rtp-clock.ts";
import { makeFixture } from "./fixtures.ts";

export interface MediaSample {
  data: Uint8Array;
  /** Decode time in the track's timescale (no B-frames here, so also presentation time). */
  dts: number;
  key: boolean;
}

export interface LoadedMedia {
  video: MediaSample[];
  audio: MediaSample[];
  videoTimescale: number;
  audioTimescale: number;
  nalLengthSize: number;
  sps: Uint8Array[];
  pps: Uint8Array[];
}

export interface RecordFixtureOptions {
  seconds: number;
  size?: string;
  fps?: number;
  /** Keyframe interval in frames. */
  gop?: number;
  videoBitrate?: string;
  /** Adds noise so frames are big (many FU-A packets). */
  noise?: boolean;
}

/** Makes `dir/name`: H.264 constrained baseline without B-frames + Opus (20 ms frames), both starting at 0. */
export function makeRecordFixture(dir: string, name: string, o: RecordFixtureOptions): Promise<string> {
  const fps = o.fps ?? 30;
  return makeFixture(dir, name, [
    ...["-f", "lavfi", "-i", `testsrc2=size=${o.size ?? "320x180"}:rate=${fps}:duration=${o.seconds}`],
    ...["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${o.seconds}`],
    ...(o.noise ? ["-vf", "noise=alls=30:allf=t"] : []),
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-bf", "0", "-pix_fmt", "yuv420p"],
    ...["-g", String(o.gop ?? fps), "-keyint_min", String(o.gop ?? fps), "-sc_threshold", "0"],
    ...["-b:v", o.videoBitrate ?? "500k"],
    ...["-c:a", "libopus", "-b:a", "48k", "-ac", "2", "-frame_duration", "20"],
    ...["-movflags", "+faststart"],
  ]);
}

export async function loadMedia(file: string): Promise<LoadedMedia> {
  const f = await new LocalDiskAccess(path.dirname(file)).open(path.basename(file));
  try {
    const ix = await openMp4(f);
    const v = ix.video;
    const a = ix.audio;
    if (!v?.avc || !a) throw new Error(`${file}: needs H.264 video and audio`);
    const read = async (t: typeof v.samples) => {
      const out: MediaSample[] = [];
      for (let i = 0; i < t.count; i++) {
        out.push({ data: await readSample(f, t, i), dts: t.dts[i]!, key: t.sync[i] === 1 });
      }
      return out;
    };
    return {
      video: await read(v.samples),
      audio: await read(a.samples),
      videoTimescale: v.timescale,
      audioTimescale: a.timescale,
      nalLengthSize: v.avc.nalLengthSize,
      sps: [...v.avc.sps],
      pps: [...v.avc.pps],
    };
  } finally {
    await f.close();
  }
}

export interface RtpEvent {
  kind: "video" | "audio";
  packet: RtpPacket;
  /** Media time of the packet (ms from the start of the input). */
  mediaMs: number;
  /** Index of the input sample this packet carries. */
  sample: number;
}

export interface RtpStreams {
  /** Both tracks' packets in send order (by media time; video before audio at the same instant). */
  events: RtpEvent[];
  videoTs0: number;
  audioTs0: number;
  /** Sender reports mapping media time 0 to `wallMs0` on each track. */
  videoSr: { ntp: bigint; rtp: number };
  audioSr: { ntp: bigint; rtp: number };
  wallMs0: number;
}

export interface RtpOptions {
  /** Seconds of media before the 32-bit timestamps wrap. */
  videoWrapAfterS?: number;
  audioWrapAfterS?: number;
  seed?: number;
  wallMs0?: number;
  maxPayload?: number;
  /** First sequence numbers (default: random). */
  videoSeq0?: number;
  audioSeq0?: number;
}

/** Packetizes the loaded media into RTP as a publisher sends it. */
export function toRtp(m: LoadedMedia, o: RtpOptions = {}): RtpStreams {
  let seed = o.seed ?? 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed >>> 8;
  };
  const videoTs0 = (2 ** 32 - Math.round((o.videoWrapAfterS ?? 1.5) * 90000)) >>> 0;
  const audioTs0 = (2 ** 32 - Math.round((o.audioWrapAfterS ?? 0.7) * 48000)) >>> 0;
  let vSeq = o.videoSeq0 ?? rand() & 0xffff;
  let aSeq = o.audioSeq0 ?? rand() & 0xffff;
  const vSsrc = rand();
  const aSsrc = rand();
  const events: RtpEvent[] = [];
  const packetizer = new H264Packetizer({ nalLengthSize: m.nalLengthSize, sps: m.sps, pps: m.pps, maxPayload: o.maxPayload ?? 1188 });
  m.video.forEach((s, i) => {
    const ts = (videoTs0 + Math.round((s.dts * 90000) / m.videoTimescale)) >>> 0;
    const mediaMs = (s.dts * 1000) / m.videoTimescale;
    packetizer.packetize(
      s.data,
      (payload, marker) => {
        const header = new RtpHeader({ payloadType: 108, sequenceNumber: vSeq, timestamp: ts, marker, ssrc: vSsrc });
        vSeq = (vSeq + 1) & 0xffff;
        events.push({ kind: "video", packet: new RtpPacket(header, Buffer.from(payload)), mediaMs, sample: i });
      },
      s.key,
    );
  });
  m.audio.forEach((s, i) => {
    const ts = (audioTs0 + Math.round((s.dts * 48000) / m.audioTimescale)) >>> 0;
    const header = new RtpHeader({ payloadType: 111, sequenceNumber: aSeq, timestamp: ts, marker: false, ssrc: aSsrc });
    aSeq = (aSeq + 1) & 0xffff;
    events.push({ kind: "audio", packet: new RtpPacket(header, Buffer.from(s.data)), mediaMs: (s.dts * 1000) / m.audioTimescale, sample: i });
  });
  // Stable sort: each track keeps its own order.
  events.sort((x, y) => x.mediaMs - y.mediaMs || (x.kind === y.kind ? 0 : x.kind === "video" ? -1 : 1));
  const wallMs0 = o.wallMs0 ?? 1_750_000_000_000;
  const ntp = unixMsToNtp(wallMs0);
  return { events, videoTs0, audioTs0, videoSr: { ntp, rtp: videoTs0 }, audioSr: { ntp, rtp: audioTs0 }, wallMs0 };
}
