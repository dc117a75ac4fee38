// Small MP4 fixtures made with ffmpeg in a temp folder, plus ffprobe as an independent oracle for the MP4 reader.
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { findFfmpeg } from "../../sidecar/src/tools/ffmpeg.ts";

const run = promisify(execFile);
export const FFMPEG = findFfmpeg(process.env.FFMPEG_PATH);
export const FFPROBE = FFMPEG.endsWith("/ffmpeg") ? FFMPEG.replace(/ffmpeg$/, "ffprobe") : "ffprobe";
export const SAMPLE_MP4 = path.resolve(import.meta.dirname, "../../media/sample.mp4");

/** Runs ffmpeg with `ffmpegArgs` (inputs and options, without the output) and returns the path of `dir/name`. */
export async function makeFixture(dir: string, name: string, ffmpegArgs: readonly string[]): Promise<string> {
  const out = path.join(dir, name);
  await run(FFMPEG, ["-nostdin", "-hide_banner", "-loglevel", "error", "-y", ...ffmpegArgs, out]);
  return out;
}

const video = (seconds: number, size = "160x90") => ["-f", "lavfi", "-i", `testsrc2=size=${size}:rate=30:duration=${seconds}`];
const audio = (seconds: number) => ["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${seconds}`];
const baseline = ["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "15", "-sc_threshold", "0"];
const aac = ["-c:a", "aac", "-b:a", "64k", "-ac", "2"];

export type FixtureName =
  | "noAudio"
  | "noVideo"
  | "moovAtEnd"
  | "faststart"
  | "fragmented"
  | "fragmentedLarge"
  | "bframes"
  | "notMp4"
  | "truncated";

export type Fixtures = Record<FixtureName, () => Promise<string>>;

/** Lazily made fixtures in `dir`: each is built on first use, once. */
export function fixtures(dir: string): Fixtures {
  const recipes: Fixtures = {
    noAudio: () => makeFixture(dir, "no-audio.mp4", [...video(1), ...baseline, "-movflags", "+faststart"]),
    noVideo: () => makeFixture(dir, "no-video.mp4", [...audio(1), ...aac, "-movflags", "+faststart"]),
    // Noise makes the frames incompressible so the file is ~2.5 MB: big enough that reading only its moov is
    // measurably different from reading all of it.
    moovAtEnd: () =>
      makeFixture(dir, "moov-at-end.mp4", [
        ...video(2, "320x180"),
        ...audio(2),
        ...["-vf", "noise=alls=60:allf=t", ...baseline, "-b:v", "10M", "-maxrate", "10M", "-bufsize", "10M", ...aac],
      ]),
    // The same samples as moovAtEnd, remuxed with the moov first.
    faststart: async () =>
      makeFixture(dir, "faststart.mp4", ["-i", await get("moovAtEnd"), "-c", "copy", "-movflags", "+faststart"]),
    fragmented: () =>
      makeFixture(dir, "fragmented.mp4", [
        ...video(2),
        ...audio(2),
        ...baseline,
        ...aac,
        ...["-movflags", "frag_keyframe+empty_moov"],
      ]),
    // ~2.5 MB in four fragments: past the moov the reader must jump over each mdat rather than read it.
    fragmentedLarge: () =>
      makeFixture(dir, "fragmented-large.mp4", [
        ...video(2, "320x180"),
        ...audio(2),
        ...["-vf", "noise=alls=60:allf=t", ...baseline, "-b:v", "10M", "-maxrate", "10M", "-bufsize", "10M", ...aac],
        ...["-movflags", "frag_keyframe+empty_moov"],
      ]),
    // b-adapt=0 forces the B-frames in: with adaptive placement x264 may pick none for a simple pattern.
    bframes: () =>
      makeFixture(dir, "bframes.mp4", [
        ...video(1),
        ...["-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-x264-params", "b-adapt=0", "-pix_fmt", "yuv420p"],
      ]),
    notMp4: async () => {
      const out = path.join(dir, "not-mp4.mp4");
      await fs.writeFile(out, pseudoRandomBytes(64 * 1024, 0x9e3779b9));
      return out;
    },
    // First half of a file whose moov is at the end: the mdat header promises more than there is, and no moov.
    truncated: async () => {
      const full = await fs.readFile(await get("moovAtEnd"));
      const out = path.join(dir, "truncated.mp4");
      await fs.writeFile(out, full.subarray(0, Math.floor(full.length / 2)));
      return out;
    },
  };
  const made = new Map<FixtureName, Promise<string>>();
  const get = (name: FixtureName): Promise<string> => {
    let p = made.get(name);
    if (!p) {
      p = recipes[name]();
      made.set(name, p);
    }
    return p;
  };
  return Object.fromEntries(Object.keys(recipes).map((n) => [n, () => get(n as FixtureName)])) as Fixtures;
}

/** Deterministic bytes (xorshift32), so a failure with "random" input can be reproduced. */
function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export interface ProbePacket {
  streamIndex: number;
  codecType: "video" | "audio";
  /** In the stream's time base (see ProbeStream.timeBase). */
  pts: number;
  dts: number;
  duration: number;
  size: number;
  pos: number;
  key: boolean;
}

export interface ProbeStream {
  index: number;
  codecType: string;
  codecName: string;
  timeBase: string;
}

/** `ffprobe -show_packets`: the reader's independent oracle for sample counts, sizes, offsets and timestamps. */
export async function probePackets(file: string): Promise<{ streams: ProbeStream[]; packets: ProbePacket[] }> {
  const { stdout } = await run(
    FFPROBE,
    ["-v", "error", "-show_streams", "-show_packets", "-of", "json", file],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const json = JSON.parse(stdout) as {
    streams: { index: number; codec_type: string; codec_name: string; time_base: string }[];
    packets: {
      stream_index: number;
      codec_type: string;
      pts?: number;
      dts?: number;
      duration?: number;
      size: string;
      pos: string;
      flags: string;
    }[];
  };
  return {
    streams: json.streams.map((s) => ({
      index: s.index,
      codecType: s.codec_type,
      codecName: s.codec_name,
      timeBase: s.time_base,
    })),
    packets: json.packets.map((p) => ({
      streamIndex: p.stream_index,
      codecType: p.codec_type === "video" ? "video" : "audio",
      pts: p.pts ?? Number.NaN,
      dts: p.dts ?? Number.NaN,
      duration: p.duration ?? Number.NaN,
      size: Number(p.size),
      pos: Number(p.pos),
      key: p.flags.startsWith("K"),
    })),
  };
}
