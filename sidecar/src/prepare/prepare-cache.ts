// WebRTC-ready copies of files that cannot be sent as they are (B-frames, HEVC, rotated pictures, AAC/MP3/AC-3
// audio), made once per file version by ffmpeg and kept on disk: one prepare per file whatever the number of
// viewers, and a restart keeps every copy.
//
// The first viewer does not wait for the whole copy: ffmpeg writes a fragmented MP4 (a fragment every 0.2 s) that a
// GrowingIndex follows, so playback starts as soon as the first fragment is on disk while preparation runs ahead of
// real time. Only a finished copy is published under its final name (write, then rename); a failed or killed
// prepare fails its viewers and leaves nothing behind. The folder is bounded: least recently used copies go first.
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { Info } from "@edge-vod/shared";
import { MediaError, type RandomAccessFile } from "../files/file-access.ts";
import { fileIdentity, LocalFile } from "../files/local-disk.ts";
import { FfmpegError, findFfmpeg, runFfmpeg } from "../tools/ffmpeg.ts";
import { GrowingIndex } from "./growing-index.ts";

/** video: re-encode the picture (and audio to Opus, or drop it); audio: the audio alone to Opus. */
export type PrepareKind = "video" | "audio";

export interface PrepareRequest {
  /** Local path of the source (confined to its folder by the caller). */
  sourcePath: string;
  /** The source version's identity (size, mtime, inode): part of the key, and re-checked when the prepare ends. */
  identity: string;
  kind: PrepareKind;
  /** For `video`: whether the file has audio ffmpeg can decode (else the copy has none). */
  withAudio: boolean;
}

/** A finished copy (a cache-relative file name), or one still being written that can be played as it grows. */
export type Prepared = { done: true; name: string } | { done: false; job: PrepareJob };

export interface PrepareCacheOptions {
  dir: string;
  ffmpegPath?: string;
  /** ffmpeg is killed after this long (a stuck transcode must not hold its slot forever). */
  timeoutMs?: number;
  /** Bytes the folder may hold; least recently used copies are deleted past it. */
  maxBytes?: number;
  /** Called whenever a prepare starts (tests and metrics count them). */
  onPrepare?: (req: PrepareRequest) => void;
  /**
   * ffmpeg prepares running at once; more wait their turn (first come, first served): a burst of new files must
   * not take every core from the media path.
   */
  maxRunning?: number;
}

export interface PrepareStats {
  hits: number;
  prepares: number;
  failures: number;
  /** Prepares not finished, waiting ones included. */
  running: number;
  /** Prepares waiting for a free slot (see maxRunning). */
  waiting: number;
}

const DEFAULT_TIMEOUT_MS = 6 * 60 * 60_000;
const DEFAULT_MAX_BYTES = 20 * 1024 ** 3;
const DEFAULT_MAX_RUNNING = 2;
/** How often a running prepare's output is looked at for new fragments. */
const POLL_MS = 50;
/** A failed prepare is not retried for this long: every viewer of a broken file would otherwise start ffmpeg again. */
const FAILURE_MEMORY_MS = 60_000;
/** Bumped when the ffmpeg recipe changes, so that copies made by an older one are not served. */
const RECIPE_VERSION = "1";

export class PrepareCache {
  readonly dir: string;
  private readonly ffmpeg: string;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly onPrepare: ((req: PrepareRequest) => void) | undefined;
  private readonly running = new Map<string, PrepareJob>();
  private readonly failed = new Map<string, { at: number; error: MediaError }>();
  private readonly swept: Promise<void>;
  readonly stats: PrepareStats = { hits: 0, prepares: 0, failures: 0, running: 0, waiting: 0 };
  private readonly slots: Slots;
  private readonly shutdown = new AbortController();

  constructor(opts: PrepareCacheOptions) {
    this.dir = path.resolve(opts.dir);
    this.ffmpeg = findFfmpeg(opts.ffmpegPath);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.onPrepare = opts.onPrepare;
    this.slots = new Slots(opts.maxRunning ?? DEFAULT_MAX_RUNNING, this.stats);
    this.swept = this.sweepLeftovers();
  }

  async get(req: PrepareRequest): Promise<Prepared> {
    await this.swept;
    const key = keyOf(req);
    const job = this.running.get(key);
    if (job) return { done: false, job };
    const name = `${key}.mp4`;
    const final = path.join(this.dir, name);
    if (await isFile(final)) {
      this.stats.hits++;
      // The mtime is the LRU clock.
      const now = new Date();
      await fs.utimes(final, now, now).catch(() => undefined);
      return { done: true, name };
    }
    const failure = this.failed.get(key);
    if (failure && Date.now() - failure.at < FAILURE_MEMORY_MS) throw failure.error;
    this.failed.delete(key);
    // Checked again after the awaits above: two viewers arriving together must share one job.
    const again = this.running.get(key);
    if (again) return { done: false, job: again };
    if (this.shutdown.signal.aborted) throw new MediaError(Info.PREPARE_FAILED, "shutting down");
    const started = new PrepareJob(req, this.dir, key, this.ffmpeg, this.timeoutMs, this.shutdown.signal, this.slots);
    this.running.set(key, started);
    this.stats.prepares++;
    this.stats.running++;
    this.onPrepare?.(req);
    void started.finished.then((result) => {
      this.running.delete(key);
      this.stats.running--;
      if (result instanceof MediaError) {
        this.stats.failures++;
        this.failed.set(key, { at: Date.now(), error: result });
      } else void this.evict();
    });
    await started.begin();
    return { done: false, job: started };
  }

  /** Stops every running prepare (their viewers fail) and waits until they have cleaned up. */
  async close(): Promise<void> {
    this.shutdown.abort();
    await Promise.all([...this.running.values()].map((job) => job.finished));
  }

  /** Deletes least recently used copies until the folder fits `maxBytes`. */
  private async evict(): Promise<void> {
    const entries = await fs.readdir(this.dir).catch(() => [] as string[]);
    const files: { p: string; size: number; used: number }[] = [];
    for (const e of entries) {
      if (!/^[0-9a-f]{64}\.mp4$/.test(e)) continue;
      const p = path.join(this.dir, e);
      const st = await fs.stat(p).catch(() => undefined);
      if (st?.isFile()) files.push({ p, size: st.size, used: st.mtimeMs });
    }
    let total = files.reduce((n, f) => n + f.size, 0);
    files.sort((a, b) => a.used - b.used);
    for (const f of files) {
      if (total <= this.maxBytes) break;
      // A viewer still reading it keeps its open descriptor; new viewers prepare it again.
      await fs.rm(f.p, { force: true });
      total -= f.size;
    }
  }

  /** Partial outputs of a sidecar that died mid-prepare: never complete, never served. */
  private async sweepLeftovers(): Promise<void> {
    const entries = await fs.readdir(this.dir).catch(() => [] as string[]);
    await Promise.all(
      entries.filter((e) => e.endsWith(".part") || e.endsWith(".tmp")).map((e) => fs.rm(path.join(this.dir, e), { force: true })),
    );
  }
}

/** One ffmpeg run and the growing output its viewers follow. */
export class PrepareJob {
  readonly index: GrowingIndex;
  /** Resolves with the final file's name, or with the error that ended the job (never rejects). */
  readonly finished: Promise<string | MediaError>;
  private resolveFinished!: (v: string | MediaError) => void;
  private readonly partPath: string;
  private handle: fs.FileHandle | undefined;
  private file: LocalFile | undefined;
  /** Viewers holding the output open; the descriptor closes once the job is over and the last one lets go. */
  private users = 0;
  private over = false;

  constructor(
    private readonly req: PrepareRequest,
    private readonly dir: string,
    private readonly key: string,
    private readonly ffmpeg: string,
    private readonly timeoutMs: number,
    private readonly signal: AbortSignal,
    private readonly slots: Slots,
  ) {
    this.partPath = path.join(dir, `.${key}.${randomUUID()}.part`);
    this.finished = new Promise((r) => (this.resolveFinished = r));
    this.index = new GrowingIndex(this.lazyFile());
  }

  /** Creates the output and starts ffmpeg; the growing index then follows it. */
  async begin(): Promise<void> {
    try {
      await fs.mkdir(this.dir, { recursive: true });
      // Created (and opened) before ffmpeg starts: ffmpeg truncates the same inode, so this descriptor follows it
      // through the rename at the end and stays valid after.
      this.handle = await fs.open(this.partPath, "w+");
      this.file = new LocalFile(`prepared ${this.key}`, this.handle, await this.handle.stat());
    } catch (err) {
      this.end(new MediaError(Info.PREPARE_FAILED, `cannot create ${this.partPath}: ${errText(err)}`));
      return;
    }
    void this.run();
  }

  /** A reader on the output for one viewer; close() releases it. */
  acquire(): RandomAccessFile {
    const file = this.file;
    if (!file || !this.handle) throw this.index.error ?? new MediaError(Info.PREPARE_FAILED, "prepare is over");
    this.users++;
    let released = false;
    return {
      name: file.name,
      get size() {
        return file.size;
      },
      identity: file.identity,
      read: (t, o, l, p) => file.read(t, o, l, p),
      close: async () => {
        if (released) return;
        released = true;
        this.users--;
        await this.maybeClose();
      },
    };
  }

  private lazyFile(): RandomAccessFile {
    // The index is made before the output exists; it reads through whatever file begin() opened.
    return {
      name: `prepared ${this.key}`,
      get size() {
        return 0;
      },
      identity: this.key,
      read: (t, o, l, p) => {
        if (!this.file) throw new MediaError(Info.PREPARE_FAILED, "no output");
        return this.file.read(t, o, l, p);
      },
      close: async () => undefined,
    };
  }

  private async run(): Promise<void> {
    await this.slots.acquire();
    const timer = setInterval(() => void this.poll(false), POLL_MS);
    let error: MediaError | undefined;
    try {
      if (this.signal.aborted) throw new Error("shutting down");
      await runFfmpeg(this.ffmpeg, this.args(), this.timeoutMs, { nice: 10, signal: this.signal });
    } catch (err) {
      // ffmpeg's words for a codec it has no decoder for (only decodable audio is ever mapped: this is the video).
      const undecodable = err instanceof FfmpegError && /Decoder \(codec [^)]*\) not found|no decoder found/i.test(err.stderr);
      error = new MediaError(undecodable ? Info.UNSUPPORTED_VIDEO_CODEC : Info.PREPARE_FAILED, errText(err));
    } finally {
      clearInterval(timer);
      this.slots.release();
    }
    if (!error) {
      await this.poll(true);
      if (this.index.error) error = this.index.error;
    }
    if (error) {
      await fs.rm(this.partPath, { force: true });
      this.end(error);
      return;
    }
    // The viewers already watching play on to the end either way; only the cache must not keep a copy of a source
    // that changed under ffmpeg.
    const now = await identityOf(this.req.sourcePath);
    if (now !== this.req.identity) {
      await fs.rm(this.partPath, { force: true });
      this.end(new MediaError(Info.PREPARE_FAILED, "source changed while being prepared"));
      return;
    }
    const name = `${this.key}.mp4`;
    try {
      await this.publish(path.join(this.dir, name));
    } catch (err) {
      await fs.rm(this.partPath, { force: true });
      this.end(new MediaError(Info.PREPARE_FAILED, `cannot keep the prepared copy: ${errText(err)}`));
      return;
    }
    this.end(name);
  }

  /**
   * The fragmented output is remuxed into a plain fast-start MP4 (its index is then one read instead of a walk over
   * every fragment) under a temporary name, then renamed: the final name only ever holds a complete file.
   */
  private async publish(final: string): Promise<void> {
    const tmp = path.join(this.dir, `.${this.key}.${randomUUID()}.tmp`);
    try {
      await runFfmpeg(
        this.ffmpeg,
        // -copyts: an audio-only copy that starts late (audio after video in the source) keeps its start.
        [...QUIET, "-copyts", "-i", this.partPath, "-map", "0", "-c", "copy", "-movflags", "+faststart", "-f", "mp4", tmp],
        this.timeoutMs,
      );
      await fs.rename(tmp, final);
      await fs.rm(this.partPath, { force: true });
    } catch {
      // The fragmented file is itself a valid MP4: keep it rather than prepare again.
      await fs.rm(tmp, { force: true });
      await fs.rename(this.partPath, final);
    }
  }

  private async poll(final: boolean): Promise<void> {
    const h = this.handle;
    if (!h || this.over) return;
    const st = await h.stat().catch(() => undefined);
    if (st) await this.index.update(st.size, final);
  }

  /** A failure reaches the viewers following the copy, unless it is already complete (they play it to the end). */
  private end(result: string | MediaError): void {
    if (result instanceof MediaError) this.index.fail(result);
    this.over = true;
    this.resolveFinished(result);
    void this.maybeClose();
  }

  private async maybeClose(): Promise<void> {
    if (!this.over || this.users > 0 || !this.handle) return;
    const h = this.handle;
    this.handle = undefined;
    await h.close().catch(() => undefined);
  }

  private args(): string[] {
    const { sourcePath, kind, withAudio } = this.req;
    const audio = ["-c:a", "libopus", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-frame_duration", "20"];
    const video = [
      // Constrained baseline: every WebRTC H.264 decoder takes it (Firefox's OpenH264, hardware decoders).
      ...["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p"],
      ...["-crf", "21", "-maxrate", "5M", "-bufsize", "10M"],
      // A keyframe at least every 2 s: a viewer's PLI and a vod-live join wait at most that long for a picture.
      ...["-force_key_frames", "expr:gte(t,n_forced*2)"],
      // Phones record variable frame rate: each frame keeps its own time.
      ...["-fps_mode", "passthrough"],
      // ffmpeg turns rotated video upright itself (autorotate); then at most 1080 on the short side, even sizes.
      ...["-vf", "scale=w='if(lte(iw,ih),2*trunc(min(iw,1080)/2),-2)':h='if(lte(iw,ih),-2,2*trunc(min(ih,1080)/2))'"],
    ];
    const maps =
      kind === "audio"
        ? ["-map", "0:a:0", "-vn", ...audio]
        : ["-map", "0:v:0", ...video, ...(withAudio ? ["-map", "0:a:0", ...audio] : ["-an"])];
    return [
      ...QUIET,
      "-i",
      sourcePath,
      ...maps,
      ...["-sn", "-dn", "-map_metadata", "-1"],
      // Fragments of 0.2 s (and at every keyframe): a viewer starts once the first is on disk. delay_moov, not
      // empty_moov: the moov then waits for the first fragment and carries the edit lists that keep each track's
      // start (audio after video); empty_moov shifts every track to 0.
      ...["-movflags", "frag_keyframe+delay_moov+default_base_moof", "-frag_duration", "200000"],
      ...["-f", "mp4", this.partPath],
    ];
  }
}

const QUIET = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"];

/** Counts running prepares against a limit; a waiting one is handed the slot its predecessor frees. */
class Slots {
  private used = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly max: number,
    private readonly stats: PrepareStats,
  ) {}

  async acquire(): Promise<void> {
    if (this.used < this.max) {
      this.used++;
      return;
    }
    this.stats.waiting++;
    await new Promise<void>((resolve) => this.queue.push(resolve));
    this.stats.waiting--;
  }

  release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.used--;
  }
}

function keyOf(req: PrepareRequest): string {
  // The path is part of the key because identity (size, mtime, inode) is only unique within one file system.
  return createHash("sha256")
    .update([RECIPE_VERSION, req.kind, req.withAudio ? "a" : "-", req.identity, path.resolve(req.sourcePath)].join("\0"))
    .digest("hex");
}

async function identityOf(p: string): Promise<string | undefined> {
  const st = await fs.stat(p).catch(() => undefined);
  return st ? fileIdentity(st) : undefined;
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
