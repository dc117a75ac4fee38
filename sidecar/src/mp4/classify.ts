// What a file holds and what it takes to send it over WebRTC, decided once per file version from its index (the
// result is cached with it). Browsers decode H.264 without B-frames (any profile, measured in Chromium) and Opus;
// everything else (B-frames, HEVC, rotated pictures, AAC/MP3/AC-3 audio) is prepared once into a WebRTC-ready copy.
import type { VideoCodec } from "../rtp/video-codec.ts";
import type { Mp4Index, Rotation } from "./types.ts";

export type VideoFamily = "h264" | "hevc" | "vp8" | "vp9" | "av1" | "mpeg4" | "other";
export type AudioFamily = "opus" | "aac" | "mp3" | "ac3" | "eac3" | "flac" | "alac" | "pcm" | "other";

export interface VideoClass {
  readonly family: VideoFamily;
  readonly codec: string;
  /** H.264 profile_idc (66 baseline, 77 main, 100 high ...), when H.264. */
  readonly profileIdc: number | undefined;
  readonly bFrames: boolean;
  /** Longest distance between keyframes, seconds (the file's length when it has one keyframe). */
  readonly maxGopSec: number;
  readonly rotation: Rotation;
  /** Coded size, and the size shown once rotated (portrait phone video: 1920x1080 coded, 1080x1920 shown). */
  readonly width: number;
  readonly height: number;
  readonly displayWidth: number;
  readonly displayHeight: number;
  /** Frame durations differ (phones): each frame keeps its own time. */
  readonly vfr: boolean;
  /** Mean frame rate. */
  readonly fps: number;
  /** Mean video bitrate, kbit/s (a re-encode to another codec aims near it, not at a fixed rate). */
  readonly kbps: number;
}

export interface AudioClass {
  readonly family: AudioFamily;
  readonly codec: string;
  readonly sampleRate: number;
  readonly channels: number;
}

/** as-is: sent from the file. prepare: re-encoded to H.264 (no B-frames, upright, keyframe every 2 s). none: no video. */
export type VideoPlan = "as-is" | "prepare" | "none";
/** transcode: to Opus (with the video when that is prepared too). none: no audio, or none anything can decode. */
export type AudioPlan = "as-is" | "transcode" | "none";

export interface Classification {
  readonly video: VideoClass | undefined;
  readonly audio: AudioClass | undefined;
  readonly plan: { readonly video: VideoPlan; readonly audio: AudioPlan };
  /** Why the file is not sent as it is, for logs and the status info. */
  readonly reasons: readonly string[];
}

/** Video codecs ffmpeg (Debian's build) decodes, by MP4 sample entry. */
const VIDEO_FAMILIES: Record<string, VideoFamily> = {
  avc1: "h264",
  avc3: "h264",
  hvc1: "hevc",
  hev1: "hevc",
  vp08: "vp8",
  vp09: "vp9",
  av01: "av1",
  mp4v: "mpeg4",
};

/** mp4a object type indications (ISO 14496-1 table 5) and sample entries ffmpeg decodes. */
function audioFamily(codec: string): AudioFamily {
  if (codec === "opus") return "opus";
  if (codec.startsWith("mp4a.40")) return "aac";
  if (codec === "mp4a.66" || codec === "mp4a.67" || codec === "mp4a.68") return "aac"; // MPEG-2 AAC
  if (codec === "mp4a.69" || codec === "mp4a.6b" || codec === ".mp3" || codec === "mp3") return "mp3";
  if (codec === "ac-3" || codec === "mp4a.a5") return "ac3";
  if (codec === "ec-3" || codec === "mp4a.a6") return "eac3";
  if (codec === "flac") return "flac";
  if (codec === "alac") return "alac";
  if (codec === "lpcm" || codec === "sowt" || codec === "twos" || codec === "ipcm" || codec === "fpcm") return "pcm";
  return "other";
}

export function classify(index: Mp4Index): Classification {
  const reasons: string[] = [];
  const video = index.video && index.video.samples.count > 0 ? classifyVideo(index) : undefined;
  const audio = index.audio && index.audio.samples.count > 0 ? classifyAudio(index) : undefined;
  let videoPlan: VideoPlan = "none";
  if (video) {
    videoPlan = "as-is";
    if (video.family !== "h264") reasons.push(`video codec ${video.codec}`);
    if (video.bFrames) reasons.push("B-frames");
    if (video.rotation !== 0) reasons.push(`rotated ${video.rotation}°`);
    // An unknown sample entry is still worth a try: ffmpeg decodes far more than this list names (MJPEG,
    // ProRes, ...); if it cannot, the prepare fails with "Unsupported video codec".
    if (reasons.length > 0) videoPlan = "prepare";
  }
  let audioPlan: AudioPlan = "none";
  if (audio) {
    if (audio.family === "opus") audioPlan = "as-is";
    else if (audio.family !== "other") {
      audioPlan = "transcode";
      reasons.push(`audio ${audio.family}`);
    } else {
      reasons.push(`audio codec ${audio.codec} cannot be decoded`);
    }
  }
  return { video, audio, plan: { video: videoPlan, audio: audioPlan }, reasons };
}

function classifyVideo(index: Mp4Index): VideoClass {
  const v = index.video!;
  const s = v.samples;
  const entry = v.codec.slice(0, 4);
  const family = VIDEO_FAMILIES[entry] ?? "other";
  let maxGop = 0;
  let lastKey = -1;
  let minDur = Infinity;
  let maxDur = 0;
  let bytes = 0;
  for (let i = 0; i < s.count; i++) {
    bytes += s.size[i]!;
    if (s.sync[i] === 1) {
      if (lastKey >= 0) maxGop = Math.max(maxGop, s.dts[i]! - s.dts[lastKey]!);
      lastKey = i;
    }
    // The last sample's duration is often a guess by the muxer: leave it out of the frame-rate judgement.
    if (i < s.count - 1) {
      const d = s.duration[i]!;
      if (d < minDur) minDur = d;
      if (d > maxDur) maxDur = d;
    }
  }
  const last = s.count - 1;
  const end = s.dts[last]! + s.duration[last]!;
  if (lastKey >= 0) maxGop = Math.max(maxGop, end - s.dts[lastKey]!);
  else maxGop = end - s.dts[0]!;
  const spanSec = (end - s.dts[0]!) / v.timescale;
  const quarter = v.rotation === 90 || v.rotation === 270;
  return {
    family,
    codec: v.codec,
    profileIdc: v.avc?.profileIdc,
    bFrames: v.hasBFrames,
    maxGopSec: maxGop / v.timescale,
    rotation: v.rotation,
    width: v.width,
    height: v.height,
    displayWidth: quarter ? v.height : v.width,
    displayHeight: quarter ? v.width : v.height,
    // 5 %: muxers round durations to the timescale (29.97 fps at 1/1000 alternates 33 and 34).
    vfr: minDur !== Infinity && maxDur > minDur * 1.05,
    fps: spanSec > 0 ? s.count / spanSec : 0,
    kbps: spanSec > 0 ? (bytes * 8) / spanSec / 1000 : 0,
  };
}

function classifyAudio(index: Mp4Index): AudioClass {
  const a = index.audio!;
  return { family: audioFamily(a.codec), codec: a.codec, sampleRate: a.sampleRate, channels: a.channels };
}

/**
 * Whether rotation is all that keeps the video from being sent as it is: a viewer whose browser takes the video
 * orientation extension (CVO) then gets the file's own video, turned upright by the browser.
 */
export function onlyRotated(c: Classification): boolean {
  const v = c.video;
  return v !== undefined && v.family === "h264" && !v.bFrames && v.rotation !== 0;
}

/** The clockwise turn that shows a picture upright, from its display rotation (counter-clockwise, as ffprobe's). */
export function clockwiseTurn(rotation: Rotation): Rotation {
  return ((360 - rotation) % 360) as Rotation;
}

/**
 * The codec a viewer gets the file's video in, from the codecs its offer takes: the file's own when it is one of them
 * (no prepare), else H.264 when offered, else VP8; undefined when it takes none of ours (or the file has no video).
 */
export function videoCodecFor(c: Classification, offered: ReadonlySet<VideoCodec>): VideoCodec | undefined {
  const v = c.video;
  if (!v) return undefined;
  if (v.family === "vp8" && offered.has("vp8")) return "vp8";
  if (offered.has("h264")) return "h264";
  if (offered.has("vp8")) return "vp8";
  return undefined;
}

/**
 * The plan for a viewer that gets the video in `codec`: H.264 as classified; VP8 as it is only from a VP8 file shown
 * upright (VP8 over RTP has no orientation of its own here), else from a VP8 copy.
 */
export function planFor(c: Classification, codec: VideoCodec): Classification["plan"] {
  if (codec === "h264" || !c.video) return c.plan;
  const asIs = c.video.family === "vp8" && c.video.rotation === 0;
  return { ...c.plan, video: asIs ? "as-is" : "prepare" };
}

/** The prepare a plan needs, if any: the video re-encoded (with its audio), or the audio alone to Opus. */
export function prepareFor(plan: Classification["plan"]): { kind: "video" | "audio"; withAudio: boolean } | undefined {
  if (plan.video === "prepare") return { kind: "video", withAudio: plan.audio !== "none" };
  if (plan.audio === "transcode") return { kind: "audio", withAudio: true };
  return undefined;
}
