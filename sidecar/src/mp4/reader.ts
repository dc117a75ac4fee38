// Reads an MP4's index (moov, and moofs for fragmented files) with mp4box without ever holding sample data: chunks
// are fed where mp4box asks for them, so a moov at the end of a 2 GB file costs two reads, and mdat payloads are
// skipped. The result is copied into typed arrays and mp4box's per-sample objects are dropped.
import { Info } from "@edge-vod/shared";
import { AudioSampleEntry, createFile, MP4BoxBuffer, VisualSampleEntry, type ISOFile, type Sample, type SampleEntry } from "mp4box";
import { MediaError, type RandomAccessFile } from "../files/file-access.ts";
import { IndexGuard } from "./index-guard.ts";
import type { AudioTrack, AvcConfig, Mp4Index, Rotation, SampleTable, VideoTrack } from "./types.ts";

/** Read size while looking for the moov (and for a fragmented file's first moof). */
const CHUNK = 1 << 20;
/** Read size after jumping over a fragment's mdat: the moof that follows is a few KB (mp4box asks for more if not). */
const FRAGMENT_CHUNK = 16 << 10;
/** Largest sample: far above any real frame, far below what a viewer should ever allocate for one. */
export const MAX_SAMPLE_BYTES = 64 << 20;

export async function openMp4(file: RandomAccessFile): Promise<Mp4Index> {
  const parser = new IndexParser(file);
  await parser.feed(file.size, true);
  const moov = parser.moov;
  if (!moov) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: no moov box`);
  const fragmented = moov.mvex !== undefined;
  const { video, audio } = tracksOf(moov, file.name, (trak) => sampleTable(trak.samples, file, fragmented));
  return { video, audio, durationSec: Math.max(durationOf(video), durationOf(audio)), fragmented };
}

export type Moov = ISOFile["moov"];
export type Trak = Moov["traks"][number];

/** The first video and first audio track of a moov, with sample tables made by `tableOf`. */
export function tracksOf(
  moov: Moov,
  name: string,
  tableOf: (trak: Trak) => SampleTable,
): { video: VideoTrack | undefined; audio: AudioTrack | undefined } {
  let video: VideoTrack | undefined;
  let audio: AudioTrack | undefined;
  try {
    const movieTimescale = moov.mvhd.timescale;
    for (const trak of moov.traks) {
      const entry = trak.mdia.minf.stbl.stsd.entries[0];
      // By handler too: a video codec mp4box has no class for is still the file's video (ffmpeg may decode it).
      const isVideo = entry instanceof VisualSampleEntry || (entry !== undefined && trak.mdia.hdlr?.handler === "vide");
      if (!video && entry && isVideo) video = videoTrack(trak, entry, tableOf(trak), movieTimescale);
      else if (!audio && entry instanceof AudioSampleEntry) audio = audioTrack(trak, entry, tableOf(trak), movieTimescale);
    }
  } catch (err) {
    throw err instanceof MediaError ? err : new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${name}: ${text(err)}`);
  }
  return { video, audio };
}

/**
 * Reads the sample's bytes into `target` (no allocation; the result is a view on it) or into a new buffer.
 * `target` must hold at least `table.size[i]` bytes.
 */
export async function readSample(
  file: RandomAccessFile,
  table: SampleTable,
  i: number,
  target?: Uint8Array,
): Promise<Uint8Array> {
  const size = table.size[i];
  const offset = table.offset[i];
  if (size === undefined || offset === undefined) throw new RangeError(`sample ${i} out of range (${table.count})`);
  const buf = target ?? new Uint8Array(size);
  if (buf.length < size) throw new RangeError(`target holds ${buf.length} bytes, sample ${i} has ${size}`);
  const n = await file.read(buf, 0, size, offset);
  if (n !== size) throw new MediaError(Info.FAILED_TO_READ_FILE, `${file.name}: sample ${i} cut short (${n}/${size})`);
  return target ? buf.subarray(0, size) : buf;
}

/**
 * Feeds a file's boxes to mp4box up to a given size; can be fed again as the file grows (a fragmented file still
 * being written), continuing where it stopped.
 */
export class IndexParser {
  // false = discard mdat payloads as they stream past: only box structure is kept.
  readonly iso = createFile(false);
  private parseError: string | undefined;
  private pos = 0;
  private length = CHUNK;
  private readonly guard: IndexGuard;

  constructor(private readonly file: RandomAccessFile) {
    this.guard = new IndexGuard(file.name);
    this.iso.onError = (module, message) => {
      this.parseError ??= `${module}: ${message}`;
    };
  }

  get moov(): Moov | undefined {
    return this.iso.moov as Moov | undefined;
  }

  /** Parses the bytes up to `size`; `final`: the file ends there. */
  async feed(size: number, final: boolean): Promise<void> {
    const { file, iso } = this;
    while (this.pos < size) {
      const pos = this.pos;
      const want = Math.min(this.length, size - pos);
      const buf = new MP4BoxBuffer(want);
      buf.fileStart = pos;
      let n: number;
      try {
        n = await file.read(new Uint8Array(buf), 0, want, pos);
      } catch (err) {
        throw err instanceof MediaError ? err : new MediaError(Info.FAILED_TO_READ_FILE, `${file.name}: ${text(err)}`);
      }
      if (n !== want) throw new MediaError(Info.FAILED_TO_READ_FILE, `${file.name}: file shrank while reading`);
      // Before mp4box sees them: it trusts every count and size it reads (see index-guard.ts).
      const stop = this.guard.see(new Uint8Array(buf), pos, size, final);
      let next: number | undefined;
      try {
        next = iso.appendBuffer(buf, final && (pos + n >= size || stop !== undefined));
      } catch (err) {
        this.parseError ??= text(err);
      }
      if (this.parseError) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: ${this.parseError}`);
      if (stop !== undefined) {
        // A box that cannot end inside the file: nothing after it can be parsed.
        this.pos = size;
        break;
      }
      const moov = this.moov;
      // A plain MP4 is fully described by its moov; a fragmented one needs every moof, up to the end of the file.
      if (moov && !moov.mvex) {
        this.pos = size;
        break;
      }
      this.length = CHUNK;
      if (moov) {
        // Past the moov, mp4box asks for mdat payload (only to discard it, and sometimes for a position it already
        // had): jump to the end of an mdat still open and read just enough for the next moof.
        const mdat = iso.mdats.at(-1);
        const mdatEnd = mdat?.start !== undefined ? mdat.start + mdat.size : 0;
        if (mdat && mdat.size > 0 && mdatEnd > pos + n) {
          next = mdatEnd;
          this.length = FRAGMENT_CHUNK;
        }
      }
      // Always move forward, so a confused parser cannot make this loop forever.
      this.pos = next !== undefined && next > pos ? next : pos + n;
    }
  }
}

function videoTrack(trak: Trak, entry: SampleEntry, samples: SampleTable, movieTimescale: number): VideoTrack {
  const visual = entry instanceof VisualSampleEntry ? entry : undefined;
  let hasBFrames = false;
  for (let i = 1; i < samples.count; i++) {
    if (samples.ctsOffset[i] !== samples.ctsOffset[0]) {
      hasBFrames = true;
      break;
    }
  }
  return {
    kind: "video",
    id: trak.tkhd.track_id,
    codec: entry.getCodec(),
    timescale: trak.mdia.mdhd.timescale,
    // tkhd's size is 16.16 fixed point, and the display size: only a stand-in for an entry mp4box cannot read.
    width: visual?.width ?? trak.tkhd.width >>> 16,
    height: visual?.height ?? trak.tkhd.height >>> 16,
    avc: visual ? avcConfig(visual) : undefined,
    hasBFrames,
    rotation: rotationOf(trak.tkhd.matrix),
    editShiftSec: editShiftOf(trak, movieTimescale),
    samples,
  };
}

function audioTrack(trak: Trak, entry: AudioSampleEntry, samples: SampleTable, movieTimescale: number): AudioTrack {
  return {
    kind: "audio",
    id: trak.tkhd.track_id,
    // mp4box spells Opus `Opus` (the box name); RFC 6381 and SDP want lower case.
    codec: entry.getCodec().toLowerCase(),
    timescale: trak.mdia.mdhd.timescale,
    sampleRate: entry.getSampleRate(),
    channels: aacChannels(entry) ?? entry.getChannelCount(),
    editShiftSec: editShiftOf(trak, movieTimescale),
    samples,
  };
}

/**
 * AAC's real channel count, from the AudioSpecificConfig in its esds: muxers write 2 into the sample entry whatever
 * the stream holds (the MP4 template value), as ffmpeg does for mono and 5.1. Undefined when not AAC or not stated.
 */
function aacChannels(entry: AudioSampleEntry): number | undefined {
  const esd = (entry as { esds?: { esd?: { findDescriptor(tag: number): { findDescriptor(tag: number): { data?: Uint8Array } | undefined } | undefined } } }).esds?.esd;
  // 4: DecoderConfigDescriptor, 5: DecoderSpecificInfo (ISO 14496-1).
  const data = esd?.findDescriptor(4)?.findDescriptor(5)?.data;
  if (!data || data.length < 2) return undefined;
  // audioObjectType (5 bits, 6 more when 31), samplingFrequencyIndex (4 bits, 24 more when 15), channelConfiguration.
  let bit = 5;
  const read = (n: number): number => {
    let v = 0;
    for (let k = 0; k < n; k++, bit++) v = (v << 1) | (((data[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1);
    return v;
  };
  if (data[0]! >> 3 === 31) read(6);
  if (read(4) === 15) read(24);
  const config = read(4);
  // 1-6 are 1-6 channels, 7 is 7.1 (8); 0 means "in the stream's PCE", which the sample entry approximates.
  if (config >= 1 && config <= 6) return config;
  if (config === 7) return 8;
  return undefined;
}

/**
 * Display rotation from the track header's 16.16 matrix, as ffprobe reports it (counter-clockwise degrees): phones
 * store portrait video as landscape pixels plus this matrix. Rounded to the nearest quarter turn; mirroring is ignored.
 */
export function rotationOf(matrix: ArrayLike<number> | undefined): Rotation {
  if (!matrix || matrix.length < 5) return 0;
  const deg = (-Math.atan2(matrix[1]!, matrix[0]!) * 180) / Math.PI;
  const quarter = ((Math.round(deg / 90) % 4) + 4) % 4;
  return (quarter * 90) as Rotation;
}

/**
 * Where the track's media time 0 lands on the presentation timeline, seconds: leading empty edits delay the track
 * (audio starting after video), the first real edit's media_time skips its start (AAC priming, the composition
 * delay of B-frames). mp4box reads edit lists but does not apply them. Later edits (cuts inside the file) are rare
 * outside editing tools and are not applied.
 */
export function editShiftOf(trak: Trak, movieTimescale: number): number {
  const entries = trak.edts?.elst?.entries;
  const trackTimescale = trak.mdia.mdhd.timescale;
  if (!entries || entries.length === 0 || !(movieTimescale > 0) || !(trackTimescale > 0)) return 0;
  let empty = 0;
  for (const e of entries) {
    if (e.media_time === -1) {
      empty += e.segment_duration;
      continue;
    }
    return empty / movieTimescale - e.media_time / trackTimescale;
  }
  return empty / movieTimescale;
}

function avcConfig(entry: VisualSampleEntry): AvcConfig | undefined {
  const c = entry.avcC;
  if (!c) return undefined;
  const corrupt = (why: string) => new MediaError(Info.FILE_HAS_WRONG_FORMAT, `avcC: ${why}`);
  // ISO 14496-15 defines version 1 only; anything else is not a record we can read.
  if (c.configurationVersion !== 1) throw corrupt(`version ${c.configurationVersion}`);
  // A 3-byte NAL length does not exist: every sample would be cut up wrongly.
  if (c.lengthSizeMinusOne === 2) throw corrupt("NAL length size 3");
  // mp4box reads each parameter set by its length without looking at the box's end: one longer than the box has
  // read the bytes after it.
  const used = 7 + [...c.SPS, ...c.PPS].reduce((n, p) => n + 2 + p.data.length, 0);
  const room = c.size - (c.hdr_size ?? 8);
  if (used > room) throw corrupt(`parameter sets need ${used} bytes, the box has ${room}`);
  // avc1 keeps its parameter sets here only (avc3 may send them in band): without both nothing can be decoded.
  if (entry.type === "avc1" && (c.SPS.length === 0 || c.PPS.length === 0)) throw corrupt(`${c.SPS.length} SPS, ${c.PPS.length} PPS`);
  const wrongType = (list: typeof c.SPS, type: number) => list.some((p) => p.data.length === 0 || (p.data[0]! & 0x1f) !== type);
  if (wrongType(c.SPS, 7) || wrongType(c.PPS, 8)) throw corrupt("a parameter set of the wrong NAL type");
  // Copies: mp4box's NAL views point into its 1 MiB read buffers, which would otherwise stay alive with the index.
  return {
    nalLengthSize: c.lengthSizeMinusOne + 1,
    sps: c.SPS.map((n) => n.data.slice()),
    pps: c.PPS.map((n) => n.data.slice()),
    profileIdc: c.AVCProfileIndication,
    profileCompat: c.profile_compatibility,
    levelIdc: c.AVCLevelIndication,
  };
}

function sampleTable(list: readonly Sample[], file: RandomAccessFile, fragmented: boolean): SampleTable {
  let count = list.length;
  // A fragmented file still being written (or cut off) may end in a fragment whose data is not all there: drop
  // those samples. A plain MP4 whose samples lie past its end is broken, not growing.
  while (count > 0 && end(list[count - 1]!) > file.size) {
    if (!fragmented) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: truncated (samples past the end)`);
    count--;
  }
  const t = newSampleTable(count);
  for (let i = 0; i < count; i++) {
    const s = list[i]!;
    if (end(s) > file.size) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: sample ${i} past the end`);
    // A table shorter than stsz (stco, stts, ctts) leaves mp4box adding undefined: a NaN offset passes the check
    // above and makes an impossible read; a NaN time is never due, so the playback would never end.
    if (!(s.offset >= 0) || !Number.isFinite(s.dts) || !Number.isFinite(s.cts) || !(s.duration >= 0)) {
      throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: sample ${i} has no place or time in the tables`);
    }
    // Each viewer reads a sample whole into memory: a size no real frame has (an 8K intra frame is a few MB) would
    // let one file make every viewer allocate that much.
    if (s.size > MAX_SAMPLE_BYTES) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: sample ${i} of ${s.size} bytes`);
    putSample(t, i, s);
  }
  return t;
}

/** A table of `count` samples, every row zero (putSample fills them). */
export function newSampleTable(count: number): SampleTable {
  return {
    count,
    offset: new Float64Array(count),
    size: new Uint32Array(count),
    dts: new Float64Array(count),
    ctsOffset: new Int32Array(count),
    duration: new Uint32Array(count),
    sync: new Uint8Array(count),
  };
}

/** Copies mp4box's sample `s` into row `i` of the table's arrays (which must have room for it). */
export function putSample(t: SampleTable, i: number, s: Sample): void {
  t.offset[i] = s.offset;
  t.size[i] = s.size;
  t.dts[i] = s.dts;
  t.ctsOffset[i] = s.cts - s.dts;
  t.duration[i] = s.duration;
  t.sync[i] = s.is_sync ? 1 : 0;
}

function end(s: Sample): number {
  return s.offset + s.size;
}

function durationOf(track: VideoTrack | AudioTrack | undefined): number {
  const s = track?.samples;
  if (!track || !s || s.count === 0) return 0;
  const last = s.count - 1;
  return (s.dts[last]! + s.duration[last]!) / track.timescale;
}

function text(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
