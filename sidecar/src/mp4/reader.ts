// Reads an MP4's index (moov, and moofs for fragmented files) with mp4box without ever holding sample data: chunks
// are fed where mp4box asks for them, so a moov at the end of a 2 GB file costs two reads, and mdat payloads are
// skipped. The result is copied into typed arrays and mp4box's per-sample objects are dropped.
import { Info } from "@edge-vod/shared";
import { AudioSampleEntry, createFile, MP4BoxBuffer, VisualSampleEntry, type ISOFile, type Sample } from "mp4box";
import { MediaError, type RandomAccessFile } from "../files/file-access.ts";
import type { AudioTrack, AvcConfig, Mp4Index, SampleTable, VideoTrack } from "./types.ts";

type Trak = ISOFile["moov"]["traks"][number];

/** Read size while looking for the moov (and for a fragmented file's first moof). */
const CHUNK = 1 << 20;
/** Read size after jumping over a fragment's mdat: the moof that follows is a few KB (mp4box asks for more if not). */
const FRAGMENT_CHUNK = 16 << 10;

export async function openMp4(file: RandomAccessFile): Promise<Mp4Index> {
  const iso = await parseIndex(file);
  const moov = iso.moov as ISOFile["moov"] | undefined;
  if (!moov) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: no moov box`);
  const fragmented = moov.mvex !== undefined;
  let video: VideoTrack | undefined;
  let audio: AudioTrack | undefined;
  try {
    for (const trak of moov.traks) {
      const entry = trak.mdia.minf.stbl.stsd.entries[0];
      if (!video && entry instanceof VisualSampleEntry) video = videoTrack(trak, entry, file, fragmented);
      else if (!audio && entry instanceof AudioSampleEntry) audio = audioTrack(trak, entry, file, fragmented);
    }
  } catch (err) {
    throw err instanceof MediaError ? err : new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: ${text(err)}`);
  }
  return { video, audio, durationSec: Math.max(durationOf(video), durationOf(audio)), fragmented };
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

async function parseIndex(file: RandomAccessFile): Promise<ISOFile> {
  // false = discard mdat payloads as they stream past: only box structure is kept.
  const iso = createFile(false);
  let parseError: string | undefined;
  iso.onError = (module, message) => {
    parseError ??= `${module}: ${message}`;
  };
  let pos = 0;
  let length = CHUNK;
  while (pos < file.size) {
    const want = Math.min(length, file.size - pos);
    const buf = new MP4BoxBuffer(want);
    buf.fileStart = pos;
    let n: number;
    try {
      n = await file.read(new Uint8Array(buf), 0, want, pos);
    } catch (err) {
      throw err instanceof MediaError ? err : new MediaError(Info.FAILED_TO_READ_FILE, `${file.name}: ${text(err)}`);
    }
    if (n !== want) throw new MediaError(Info.FAILED_TO_READ_FILE, `${file.name}: file shrank while reading`);
    let next: number | undefined;
    try {
      next = iso.appendBuffer(buf, pos + n >= file.size);
    } catch (err) {
      parseError ??= text(err);
    }
    if (parseError) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: ${parseError}`);
    const moov = iso.moov as ISOFile["moov"] | undefined;
    // A plain MP4 is fully described by its moov; a fragmented one needs every moof, up to the end of the file.
    if (moov && !moov.mvex) break;
    length = CHUNK;
    if (moov) {
      // Past the moov, mp4box asks for mdat payload (only to discard it, and sometimes for a position it already
      // had): jump to the end of an mdat still open and read just enough for the next moof.
      const mdat = iso.mdats.at(-1);
      const mdatEnd = mdat?.start !== undefined ? mdat.start + mdat.size : 0;
      if (mdat && mdat.size > 0 && mdatEnd > pos + n) {
        next = mdatEnd;
        length = FRAGMENT_CHUNK;
      }
    }
    // Always move forward, so a confused parser cannot make this loop forever.
    pos = next !== undefined && next > pos ? next : pos + n;
  }
  return iso;
}

function videoTrack(trak: Trak, entry: VisualSampleEntry, file: RandomAccessFile, fragmented: boolean): VideoTrack {
  const samples = sampleTable(trak.samples, file, fragmented);
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
    width: entry.width,
    height: entry.height,
    avc: avcConfig(entry),
    hasBFrames,
    samples,
  };
}

function audioTrack(trak: Trak, entry: AudioSampleEntry, file: RandomAccessFile, fragmented: boolean): AudioTrack {
  return {
    kind: "audio",
    id: trak.tkhd.track_id,
    // mp4box spells Opus `Opus` (the box name); RFC 6381 and SDP want lower case.
    codec: entry.getCodec().toLowerCase(),
    timescale: trak.mdia.mdhd.timescale,
    sampleRate: entry.getSampleRate(),
    channels: entry.getChannelCount(),
    samples: sampleTable(trak.samples, file, fragmented),
  };
}

function avcConfig(entry: VisualSampleEntry): AvcConfig | undefined {
  const c = entry.avcC;
  if (!c) return undefined;
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
  const t = {
    count,
    offset: new Float64Array(count),
    size: new Uint32Array(count),
    dts: new Float64Array(count),
    ctsOffset: new Int32Array(count),
    duration: new Uint32Array(count),
    sync: new Uint8Array(count),
  };
  for (let i = 0; i < count; i++) {
    const s = list[i]!;
    if (end(s) > file.size) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: sample ${i} past the end`);
    t.offset[i] = s.offset;
    t.size[i] = s.size;
    t.dts[i] = s.dts;
    t.ctsOffset[i] = s.cts - s.dts;
    t.duration[i] = s.duration;
    t.sync[i] = s.is_sync ? 1 : 0;
  }
  return t;
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
