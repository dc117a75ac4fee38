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
const audio = (seconds: number, rate = 48000) => [
  ...["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=${rate}:duration=${seconds}`],
];
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
  | "truncated"
  | "highBframes"
  | "hevc"
  | "rotated90"
  | "rotated180"
  | "rotated270"
  | "vfr"
  | "audioLate"
  | "aacMono22k"
  | "aac51"
  | "mp3"
  | "ac3"
  | "opusAudio"
  | "co64Source"
  | "co64";

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
    // What most files in the wild look like: x264's default preset and High profile. b-adapt=0 so the B-frames are
    // really there; no scene cuts so keyframes fall exactly every second and the longest GOP is known.
    highBframes: () =>
      makeFixture(dir, "high-bframes.mp4", [
        ...video(2),
        ...audio(2),
        ...["-c:v", "libx264", "-threads:v", "1", "-pix_fmt", "yuv420p", "-bf", "2", "-x264-params", "b-adapt=0"],
        ...["-g", "30", "-sc_threshold", "0", ...aac],
      ]),
    // hvc1 (parameter sets only in the sample entry) is the tag Apple devices write and Safari requires. x265 makes a
    // thread pool per core unless told not to.
    hevc: () =>
      makeFixture(dir, "hevc.mp4", [
        ...video(1),
        ...audio(1),
        ...["-c:v", "libx265", "-x265-params", "log-level=error:pools=1:frame-threads=1", "-tag:v", "hvc1"],
        ...["-pix_fmt", "yuv420p", ...aac],
      ]),
    // ffmpeg 5.1 turns the stream's rotate tag into the track header matrix on a plain remux (5.1 has no
    // -display_rotation yet). The sign ffmpeg gives it is checked against ffprobe by the tests, not assumed here.
    rotated90: async () => rotated(await get("noAudio"), 90),
    rotated180: async () => rotated(await get("noAudio"), 180),
    rotated270: async () => rotated(await get("noAudio"), 270),
    // A phone that slows down in low light: 30 fps for a second, then 15 fps. Passthrough keeps the timestamps
    // instead of duplicating frames back to a constant rate.
    vfr: () =>
      makeFixture(dir, "vfr.mp4", [
        ...video(2),
        ...["-vf", "setpts='if(lt(N,30),N/30,1+(N-30)/15)/TB'", "-fps_mode", "passthrough", ...baseline],
      ]),
    // Delaying the audio input makes the muxer start the audio track with an empty edit. It moves that edit back by
    // the AAC encoder's priming (1024 samples) rather than skipping the priming with media_time: the priming
    // packet starts at 0.5 - 1024/48000 s and the first real sound at 0.5 s.
    audioLate: () =>
      makeFixture(dir, "audio-late.mp4", [
        ...video(2),
        ...["-itsoffset", "0.5", ...audio(1.5)],
        ...["-map", "0:v", "-map", "1:a", ...baseline, ...aac],
      ]),
    // HE-AAC (mp4a.40.5) is missing from these variants: Debian's ffmpeg has no libfdk_aac to encode it.
    aacMono22k: () =>
      makeFixture(dir, "aac-mono-22k.mp4", [
        ...video(1),
        ...audio(1, 22050),
        ...[...baseline, "-c:a", "aac", "-b:a", "32k", "-ac", "1"],
      ]),
    aac51: () =>
      makeFixture(dir, "aac-51.mp4", [...video(1), ...audio(1), ...[...baseline, "-c:a", "aac", "-b:a", "192k", "-ac", "6"]]),
    mp3: () =>
      makeFixture(dir, "mp3.mp4", [...video(1), ...audio(1), ...[...baseline, "-c:a", "libmp3lame", "-b:a", "64k", "-ac", "2"]]),
    ac3: () => makeFixture(dir, "ac3.mp4", [...video(1), ...audio(1), ...[...baseline, "-c:a", "ac3", "-b:a", "96k", "-ac", "2"]]),
    opusAudio: () => makeFixture(dir, "opus-audio.mp4", [...audio(1), "-c:a", "libopus", "-b:a", "32k", "-ac", "2"]),
    // Two tracks, so the co64 file has two offset tables whose growth both shift the data.
    co64Source: () =>
      makeFixture(dir, "co64-source.mp4", [...video(1), ...audio(1), ...baseline, ...aac, "-movflags", "+faststart"]),
    co64: async () => withCo64(await get("co64Source"), path.join(dir, "co64.mp4")),
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

async function rotated(source: string, degrees: number): Promise<string> {
  const name = `rotated-${degrees}.mp4`;
  return makeFixture(path.dirname(source), name, ["-i", source, "-c", "copy", "-metadata:s:v:0", `rotate=${degrees}`]);
}

/**
 * Copies a faststart MP4 (ftyp, moov, ..., mdat last) with its sample data moved past 4 GiB, as ffmpeg's muxer
 * would only do for a real 4 GiB file: every stco becomes a co64, the mdat gets a 64-bit size, and a hole of just
 * over 4 GiB opens its payload. The hole is never written, so the file is sparse and takes a few KB on disk.
 */
async function withCo64(source: string, out: string): Promise<string> {
  const src = await fs.readFile(source);
  const top = [...boxes(src, 0, src.length)];
  const mdat = top.at(-1);
  if (!mdat || mdat.type !== "mdat" || top.filter((b) => b.type === "mdat").length !== 1 || !top.some((b) => b.type === "moov")) {
    throw new Error(`${source}: expected a faststart MP4 with one mdat at the end (${top.map((b) => b.type).join(" ")})`);
  }
  const oldPayload = mdat.start + mdat.headerSize;
  const payload = src.subarray(oldPayload, mdat.end);
  const hole = 2 ** 32 + 4096;
  const rebuild = (delta: number) =>
    top.slice(0, -1).map((b) => (b.type === "moov" ? withCo64Offsets(src, b, delta) : src.subarray(b.start, b.end)));
  // The new moov's size does not depend on the shift (only on the entry count), so a first pass measures it.
  const headLength = rebuild(0).reduce((n, b) => n + b.length, 0) + 16;
  const newPayload = headLength + hole;
  const head = Buffer.concat([...rebuild(newPayload - oldPayload), mdatHeader(16 + hole + payload.length)]);
  const fh = await fs.open(out, "w");
  try {
    await fh.write(head, 0, head.length, 0);
    await fh.write(payload, 0, payload.length, newPayload);
  } finally {
    await fh.close();
  }
  return out;
}

interface Box {
  type: string;
  start: number;
  headerSize: number;
  end: number;
}

/** The boxes laid out between `start` and `end` of `buf`, without looking inside them. */
function* boxes(buf: Uint8Array, start: number, end: number): Generator<Box> {
  let at = start;
  while (at + 8 <= end) {
    const box = boxAt(buf, at, end);
    yield box;
    at = box.end;
  }
  if (at !== end) throw new Error(`trailing ${end - at} bytes at ${at}`);
}

/** The box whose header starts `buf` at `at`: its header must be in `buf`, its body may lie beyond, up to `end`. */
function boxAt(buf: Uint8Array, at: number, end: number, filePosition = 0): Box {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const size32 = view.getUint32(at);
  const type = String.fromCharCode(...buf.subarray(at + 4, at + 8));
  let headerSize = 8;
  let size = size32;
  if (size32 === 1) {
    headerSize = 16;
    size = Number(view.getBigUint64(at + 8));
  } else if (size32 === 0) {
    size = end - (filePosition + at);
  }
  const start = filePosition + at;
  if (size < headerSize || start + size > end) throw new Error(`box ${type} at ${start}: bad size ${size}`);
  return { type, start, headerSize, end: start + size };
}

/** Boxes on the way from moov down to the chunk offset tables: their sizes grow with the tables. */
const CO64_PATH = new Set(["moov", "trak", "mdia", "minf", "stbl"]);

/** `box` rebuilt with each stco below it turned into a co64 whose offsets are moved by `delta`. */
function withCo64Offsets(buf: Uint8Array, box: Box, delta: number): Uint8Array {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (box.type === "stco") {
    // Full box: version and flags, entry count, then 32-bit offsets; a co64 has the same with 64-bit offsets.
    const count = view.getUint32(box.start + box.headerSize + 4);
    const out = new Uint8Array(8 + 8 + 8 * count);
    const w = new DataView(out.buffer);
    w.setUint32(0, out.length);
    out.set(new TextEncoder().encode("co64"), 4);
    out.set(buf.subarray(box.start + box.headerSize, box.start + box.headerSize + 8), 8);
    for (let i = 0; i < count; i++) {
      const offset = view.getUint32(box.start + box.headerSize + 8 + 4 * i);
      w.setBigUint64(16 + 8 * i, BigInt(offset + delta));
    }
    return out;
  }
  if (!CO64_PATH.has(box.type)) return buf.subarray(box.start, box.end);
  const children = [...boxes(buf, box.start + box.headerSize, box.end)].map((c) => withCo64Offsets(buf, c, delta));
  const size = 8 + children.reduce((n, c) => n + c.length, 0);
  const header = new Uint8Array(8);
  new DataView(header.buffer).setUint32(0, size);
  header.set(new TextEncoder().encode(box.type), 4);
  return Buffer.concat([header, ...children]);
}

function mdatHeader(size: number): Uint8Array {
  const out = new Uint8Array(16);
  const w = new DataView(out.buffer);
  w.setUint32(0, 1); // 1: the real size follows the type, in 64 bits
  out.set(new TextEncoder().encode("mdat"), 4);
  w.setBigUint64(8, BigInt(size));
  return out;
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

export interface ProbeStreamInfo {
  index: number;
  codecType: string;
  codecName: string;
  profile: string | undefined;
  width: number | undefined;
  height: number | undefined;
  /** The decoder's reorder depth: 0 without B-frames. */
  hasBFrames: number | undefined;
  /** Least common multiple of frame rates (the timestamp grid) and the mean frame rate, as fractions. */
  rFrameRate: string;
  avgFrameRate: string;
  /** Seconds, after the edit list. */
  startTime: number;
  sampleRate: number | undefined;
  channels: number | undefined;
  /** Display matrix rotation, counter-clockwise degrees in (-180, 180] (av_display_rotation_get); 0 without one. */
  rotation: number;
}

/** `ffprobe -show_streams`: what ffmpeg itself makes of each stream, the oracle for the classifier. */
export async function probeStreams(file: string): Promise<ProbeStreamInfo[]> {
  const { stdout } = await run(FFPROBE, ["-v", "error", "-show_streams", "-of", "json", file]);
  const json = JSON.parse(stdout) as {
    streams: {
      index: number;
      codec_type: string;
      codec_name: string;
      profile?: string;
      width?: number;
      height?: number;
      has_b_frames?: number;
      r_frame_rate: string;
      avg_frame_rate: string;
      start_time?: string;
      sample_rate?: string;
      channels?: number;
      side_data_list?: { side_data_type: string; rotation?: number }[];
    }[];
  };
  return json.streams.map((s) => ({
    index: s.index,
    codecType: s.codec_type,
    codecName: s.codec_name,
    profile: s.profile,
    width: s.width,
    height: s.height,
    hasBFrames: s.has_b_frames,
    rFrameRate: s.r_frame_rate,
    avgFrameRate: s.avg_frame_rate,
    startTime: s.start_time === undefined ? Number.NaN : Number(s.start_time),
    sampleRate: s.sample_rate === undefined ? undefined : Number(s.sample_rate),
    channels: s.channels,
    rotation: s.side_data_list?.find((d) => d.side_data_type === "Display Matrix")?.rotation ?? 0,
  }));
}

export interface TrackEdits {
  /** hdlr handler type: `vide`, `soun`. */
  handler: string;
  /** mdhd timescale, the unit of mediaTime. */
  timescale: number;
  /** elst entries; segmentDuration is in the movie timescale, mediaTime -1 is an empty edit. */
  edits: { segmentDuration: number; mediaTime: number }[];
}

/** Each track's edit list, read straight from the bytes: ffprobe applies edit lists but never shows them. */
export async function trackEdits(file: string): Promise<TrackEdits[]> {
  const fh = await fs.open(file, "r");
  let buf: Uint8Array;
  try {
    // The moov of a plain ffmpeg file: found by walking the top-level headers, read on its own.
    const { size } = await fh.stat();
    let at = 0;
    let moov: Box | undefined;
    const head = new Uint8Array(16);
    while (at + 8 <= size && !moov) {
      await fh.read(head, 0, 16, at);
      const box = boxAt(head, 0, size, at);
      if (box.type === "moov") moov = box;
      at = box.end;
    }
    if (!moov) throw new Error(`${file}: no moov`);
    buf = new Uint8Array(moov.end - moov.start);
    await fh.read(buf, 0, buf.length, moov.start);
  } finally {
    await fh.close();
  }
  const view = new DataView(buf.buffer);
  const child = (parent: Box, type: string) => [...boxes(buf, parent.start + parent.headerSize, parent.end)].find((b) => b.type === type);
  const moov = [...boxes(buf, 0, buf.length)][0]!;
  return [...boxes(buf, moov.headerSize, moov.end)]
    .filter((b) => b.type === "trak")
    .map((trak) => {
      const mdia = child(trak, "mdia")!;
      const hdlr = child(mdia, "hdlr")!;
      const mdhd = child(mdia, "mdhd")!;
      const body = (b: Box) => b.start + b.headerSize;
      const handler = String.fromCharCode(...buf.subarray(body(hdlr) + 8, body(hdlr) + 12));
      const timescale = view.getUint32(body(mdhd) + (buf[body(mdhd)] === 1 ? 20 : 12));
      const elst = (() => {
        const edts = child(trak, "edts");
        return edts && child(edts, "elst");
      })();
      const edits: TrackEdits["edits"] = [];
      if (elst) {
        const v1 = buf[body(elst)] === 1;
        const count = view.getUint32(body(elst) + 4);
        for (let i = 0, at = body(elst) + 8; i < count; i++, at += v1 ? 20 : 12) {
          edits.push(
            v1
              ? { segmentDuration: Number(view.getBigUint64(at)), mediaTime: Number(view.getBigInt64(at + 8)) }
              : { segmentDuration: view.getUint32(at), mediaTime: view.getInt32(at + 4) },
          );
        }
      }
      return { handler, timescale, edits };
    });
}
