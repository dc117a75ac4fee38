// The index of a fragmented MP4 that ffmpeg is still writing (a copy being prepared), followed as it grows so that
// viewers play it while the rest is being made. One per prepare job, shared by all its viewers: the tables grow in
// place and each viewer's packet source picks new samples up on its next take (see Growth in packet-source.ts).
import { Info } from "@edge-vod/shared";
import type { Sample } from "mp4box";
import { MediaError, type RandomAccessFile } from "../files/file-access.ts";
import { IndexParser, putSample, tracksOf, type Trak } from "../mp4/reader.ts";
import type { AudioTrack, SampleTable, VideoTrack } from "../mp4/types.ts";
import type { Growth } from "../vod/packet-source.ts";

/** A sample table that grows by appending (capacity doubles, so appends are amortized O(1)). */
class GrowableTable implements SampleTable {
  count = 0;
  offset = new Float64Array(256);
  size = new Uint32Array(256);
  dts = new Float64Array(256);
  ctsOffset = new Int32Array(256);
  duration = new Uint32Array(256);
  sync = new Uint8Array(256);

  append(s: Sample): void {
    if (this.count === this.offset.length) this.grow();
    putSample(this, this.count, s);
    // Last: a reader sees the sample only once all its fields are set.
    this.count++;
  }

  private grow(): void {
    const n = this.offset.length * 2;
    const more = <T extends Float64Array | Uint32Array | Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.offset = more(this.offset, (k) => new Float64Array(k));
    this.size = more(this.size, (k) => new Uint32Array(k));
    this.dts = more(this.dts, (k) => new Float64Array(k));
    this.ctsOffset = more(this.ctsOffset, (k) => new Int32Array(k));
    this.duration = more(this.duration, (k) => new Uint32Array(k));
    this.sync = more(this.sync, (k) => new Uint8Array(k));
  }
}

interface Followed {
  readonly trak: Trak;
  readonly table: GrowableTable;
  /** mp4box samples of this track already appended (or waiting for their bytes). */
  taken: number;
}

export class GrowingIndex implements Growth {
  complete = false;
  error: MediaError | undefined;
  video: VideoTrack | undefined;
  audio: AudioTrack | undefined;
  private readonly parser: IndexParser;
  private followed: Followed[] = [];
  private readonly waiters: (() => void)[] = [];
  private polling: Promise<void> = Promise.resolve();

  constructor(private readonly file: RandomAccessFile) {
    this.parser = new IndexParser(file);
  }

  /** Takes in what the file holds up to `size` bytes; `final` once the writer is done. Calls are serialized. */
  update(size: number, final: boolean): Promise<void> {
    this.polling = this.polling.then(() => this.step(size, final));
    return this.polling;
  }

  /** Marks the index failed: viewers fail with this error on their next take. */
  fail(err: MediaError): void {
    if (this.complete || this.error) return;
    this.error = err;
    this.wake();
  }

  /**
   * Resolves once every track has its first samples (or the file is complete), so a viewer has something to start
   * with; rejects if the prepare fails first.
   */
  async started(): Promise<void> {
    while (!this.error && !this.complete && !this.hasStart()) await new Promise<void>((r) => this.waiters.push(r));
    if (this.error) throw this.error;
  }

  private hasStart(): boolean {
    return this.followed.length > 0 && this.followed.every((f) => f.table.count > 0);
  }

  private async step(size: number, final: boolean): Promise<void> {
    if (this.complete || this.error) return;
    try {
      await this.parser.feed(size, final);
      const moov = this.parser.moov;
      if (moov && this.followed.length === 0) {
        const found = tracksOf(moov, this.file.name, (trak) => {
          const table = new GrowableTable();
          this.followed.push({ trak, table, taken: 0 });
          return table;
        });
        this.video = found.video;
        this.audio = found.audio;
        if (!found.video && !found.audio) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${this.file.name}: no tracks`);
      }
      for (const f of this.followed) {
        const list = f.trak.samples;
        // A moof is parsed before its mdat is all written: a sample counts once its bytes are on disk.
        while (f.taken < list.length && list[f.taken]!.offset + list[f.taken]!.size <= size) {
          f.table.append(list[f.taken]!);
          f.taken++;
        }
      }
      if (final) {
        if (!moov) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${this.file.name}: no moov box`);
        this.complete = true;
      }
    } catch (err) {
      this.error = err instanceof MediaError ? err : new MediaError(Info.FILE_HAS_WRONG_FORMAT, String(err));
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
