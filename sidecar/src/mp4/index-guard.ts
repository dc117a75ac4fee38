// Checks each moov and moof against the bytes it really has before mp4box parses it. mp4box trusts counts: a
// constant-size stsz or a trun without per-sample fields makes one object per claimed sample (a moov of a few bytes
// claiming 2^32 samples hangs the process, then exhausts its memory), and a top-level box claiming more bytes than
// the file has makes it hold every later read while it waits for the rest. The guard follows the top-level boxes of
// exactly what IndexParser hands mp4box, in the same order, so every moov and moof mp4box will parse is seen first.
import { Info } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";

/**
 * Most samples one track may have: about a day of media (60 fps video is 5.2 M a day, Opus 4.3 M). mp4box makes an
 * object of ~250 bytes per sample while indexing, so this also bounds what one file's index can cost (~1 GB).
 */
export const MAX_SAMPLES_PER_TRACK = 5 << 20;
/** Largest moov or moof: a day-long file's moov is ~100 MB; mp4box holds a box whole before it parses it. */
export const MAX_INDEX_BOX_BYTES = 256 << 20;

/** Boxes on the way from a moov or moof down to the tables this guard checks. */
const PATH = new Set(["moov", "trak", "edts", "mdia", "minf", "stbl", "mvex", "moof", "traf"]);
/** Bytes per entry of the tables whose entry count follows version and flags. */
const ENTRY_BYTES: Record<string, number> = { stts: 8, ctts: 8, stss: 4, stco: 4, co64: 8, stsc: 12 };

interface Segment {
  start: number;
  bytes: Uint8Array;
}

interface Track {
  trackId: number;
  /** tfhd's default sample size, when it gives one. */
  defaultSize?: number | undefined;
}

interface Box {
  type: string;
  /** Offsets in the buffer being checked. */
  body: number;
  end: number;
}

export class IndexGuard {
  /** File position of the next top-level box header. */
  private next = 0;
  /** What was fed from `next` on, not yet checked: views on IndexParser's buffers, which mp4box holds too. */
  private segments: Segment[] = [];
  /** trex default sample size per track, for truns that give none. */
  private readonly trexSize = new Map<number, number>();
  /** Samples seen so far per track id, moofs included. */
  private readonly samples = new Map<number, number>();

  constructor(private readonly name: string) {}

  /**
   * Takes the bytes at `start` before they go to mp4box (positions only move forward). Throws a MediaError when the
   * top-level structure is broken or a complete moov or moof claims more than its bytes hold; returns the position of
   * a box that cannot end inside the file, past which nothing more is worth reading. `fileSize` is what the file
   * holds now, `final` whether it ends there.
   */
  see(bytes: Uint8Array, start: number, fileSize: number, final: boolean): number | undefined {
    const end = start + bytes.length;
    if (end <= this.next) return undefined;
    const from = Math.max(start, this.next);
    this.segments.push({ start: from, bytes: bytes.subarray(from - start) });
    for (;;) {
      const have = this.contiguousEnd();
      const header = this.peek(this.next, Math.min(16, have - this.next));
      if (!header || header.length < 8) return undefined;
      const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
      const type = fourcc(header, 4);
      // mp4box stops at a type that is not four printable characters without an error, and would then be fed (and
      // hold) the rest of the file: a renamed MKV or AVI would cost reading all of it.
      if (!/^[\x20-\x7e]{4}$/.test(type)) this.wrong(`no box at ${this.next}`);
      let size = view.getUint32(0);
      let headerSize = 8;
      if (size === 1) {
        if (header.length < 16) return undefined;
        size = Number(view.getBigUint64(8));
        headerSize = 16;
      } else if (size === 0) {
        // "Up to the end of the file", which mp4box reads only for an mdat: the last box either way.
        if (type === "moov") this.wrong("moov without a size");
        return this.stopAt(this.next);
      }
      if (size < headerSize) this.wrong(`top-level box '${type}' at ${this.next} has size ${size}`);
      const boxEnd = this.next + size;
      const index = type === "moov" || type === "moof";
      // mp4box waits for a box whole, holding every read meanwhile: one that cannot end inside the file would make
      // it hold the rest of the file. A file still being written may yet grow to hold it.
      if (final && boxEnd > fileSize && type !== "mdat") {
        if (type === "moov") this.wrong(`moov of ${size} bytes at ${this.next} runs past the end (${fileSize})`);
        return this.stopAt(this.next);
      }
      if (index) {
        if (size > MAX_INDEX_BOX_BYTES) this.wrong(`${type} of ${size} bytes is larger than ${MAX_INDEX_BOX_BYTES}`);
        if (boxEnd > have) return undefined;
        this.check(this.peek(this.next, size)!, { type, body: headerSize, end: size }, fileSize, { trackId: 0 });
      }
      this.next = boxEnd;
      this.segments = this.segments.filter((s) => s.start + s.bytes.length > this.next);
    }
  }

  private stopAt(position: number): number {
    this.next = Infinity;
    this.segments = [];
    return position;
  }

  /** End of the bytes held without a gap from `next` on (IndexParser skips mdat payloads). */
  private contiguousEnd(): number {
    let at = this.next;
    for (const s of this.segments) {
      if (s.start > at) break;
      at = Math.max(at, s.start + s.bytes.length);
    }
    return at;
  }

  /** `length` bytes at file position `at`, copied only when they span segments. */
  private peek(at: number, length: number): Uint8Array | undefined {
    if (length <= 0) return undefined;
    const first = this.segments.find((s) => s.start <= at && at < s.start + s.bytes.length);
    if (!first) return undefined;
    if (at + length <= first.start + first.bytes.length) return first.bytes.subarray(at - first.start, at - first.start + length);
    const out = new Uint8Array(length);
    let done = 0;
    for (const s of this.segments) {
      const pos = at + done;
      if (done === length) break;
      if (s.start + s.bytes.length <= pos || s.start > pos) continue;
      const part = s.bytes.subarray(pos - s.start, Math.min(s.bytes.length, pos - s.start + length - done));
      out.set(part, done);
      done += part.length;
    }
    return done === length ? out : undefined;
  }

  /** `track`: the trak or traf being walked (its id comes first, in tkhd or tfhd). */
  private check(buf: Uint8Array, box: Box, fileSize: number, track: Track): void {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (const child of children(buf, box)) {
      const b = child.body;
      const length = child.end - b;
      // Each table must hold what its header promises: the bytes a count claims must be in its box.
      const need = (bytes: number, count: number, what: string) => {
        if (bytes > length) this.wrong(`${child.type}: ${count} ${what} need ${bytes} bytes, the box has ${length}`);
      };
      if (PATH.has(child.type)) {
        this.check(buf, child, fileSize, child.type === "trak" || child.type === "traf" ? { trackId: 0 } : track);
        continue;
      }
      if (length < 8 && (child.type in ENTRY_BYTES || child.type === "stsz" || child.type === "trun" || child.type === "elst")) {
        this.wrong(`${child.type} of ${length} bytes`);
      }
      switch (child.type) {
        case "tkhd":
          // Version 1 has 64-bit times before the track id.
          if (length >= 24) track.trackId = view.getUint32(b + (buf[b] === 1 ? 20 : 12));
          break;
        case "trex":
          if (length >= 20) this.trexSize.set(view.getUint32(b + 4), view.getUint32(b + 16));
          break;
        case "tfhd": {
          if (length < 8) this.wrong(`tfhd of ${length} bytes`);
          const flags = view.getUint32(b) & 0xffffff;
          track.trackId = view.getUint32(b + 4);
          // Optional fields in order: base data offset (8), description index, duration, size (4 each).
          const at = b + 8 + (flags & 0x01 ? 8 : 0) + (flags & 0x02 ? 4 : 0) + (flags & 0x08 ? 4 : 0);
          track.defaultSize = flags & 0x10 && at + 4 <= child.end ? view.getUint32(at) : undefined;
          break;
        }
        case "stsz": {
          if (length < 12) this.wrong(`stsz of ${length} bytes`);
          const constant = view.getUint32(b + 4);
          const count = view.getUint32(b + 8);
          if (constant === 0) need(12 + 4 * count, count, "sample sizes");
          // One size for all: only the count says how many there are, so they must at least fit in the file.
          else if (constant * count > fileSize) this.wrong(`stsz: ${count} samples of ${constant} bytes in a file of ${fileSize}`);
          this.addSamples(track.trackId, count);
          break;
        }
        case "stz2": {
          if (length < 12) this.wrong(`stz2 of ${length} bytes`);
          const bits = buf[b + 7]!;
          const count = view.getUint32(b + 8);
          need(12 + Math.ceil((count * bits) / 8), count, "sample sizes");
          this.addSamples(track.trackId, count);
          break;
        }
        case "elst": {
          const count = view.getUint32(b + 4);
          need(8 + count * (buf[b] === 1 ? 20 : 12), count, "edits");
          break;
        }
        case "trun": {
          const flags = view.getUint32(b) & 0xffffff;
          const count = view.getUint32(b + 4);
          const fixed = 8 + (flags & 0x01 ? 4 : 0) + (flags & 0x04 ? 4 : 0);
          // Duration, size, flags, composition offset: 4 bytes each when present, per sample.
          const perSample = 4 * [0x100, 0x200, 0x400, 0x800].filter((f) => flags & f).length;
          if (perSample > 0) need(fixed + perSample * count, count, "samples");
          if (!(flags & 0x200)) {
            // Sizes from the defaults: as for a constant-size stsz, the samples must fit in the file.
            const size = Math.max(1, track.defaultSize ?? this.trexSize.get(track.trackId) ?? 0);
            if (size * count > fileSize) this.wrong(`trun: ${count} samples of ${size} bytes in a file of ${fileSize}`);
          }
          this.addSamples(track.trackId, count);
          break;
        }
        default: {
          const bytes = ENTRY_BYTES[child.type];
          if (bytes === undefined) break;
          const count = view.getUint32(b + 4);
          need(8 + bytes * count, count, "entries");
        }
      }
    }
  }

  private addSamples(trackId: number, count: number): void {
    const total = (this.samples.get(trackId) ?? 0) + count;
    if (total > MAX_SAMPLES_PER_TRACK) this.wrong(`track ${trackId}: ${total} samples, more than ${MAX_SAMPLES_PER_TRACK}`);
    this.samples.set(trackId, total);
  }

  private wrong(detail: string): never {
    throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${this.name}: ${detail}`);
  }
}

/**
 * The boxes inside `box`, up to the first that is not a proper box inside it: mp4box stops parsing a container there
 * (and goes on after the container), so what follows is never parsed and needs no check.
 */
function* children(buf: Uint8Array, box: Box): Generator<Box> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = box.body;
  while (at + 8 <= box.end) {
    let size = view.getUint32(at);
    const type = fourcc(buf, at + 4);
    if (!/^[\x20-\x7e]{4}$/.test(type)) return;
    let headerSize = 8;
    if (size === 1) {
      if (at + 16 > box.end) return;
      size = Number(view.getBigUint64(at + 8));
      headerSize = 16;
    } else if (size === 0) {
      // As mp4box reads it: up to the end of the parent.
      size = box.end - at;
    }
    if (size < headerSize || at + size > box.end) return;
    yield { type, body: at + headerSize, end: at + size };
    at += size;
  }
}

function fourcc(buf: Uint8Array, at: number): string {
  return String.fromCharCode(buf[at]!, buf[at + 1]!, buf[at + 2]!, buf[at + 3]!);
}
