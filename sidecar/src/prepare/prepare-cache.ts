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
import { MediaError, type RandomAccessFile, type ToolSource } from "../files/file-access.ts";
import { LocalFile } from "../files/local-disk.ts";
import { FfmpegError, findFfmpeg, runFfmpeg } from "../tools/ffmpeg.ts";
import type { Readable } from "node:stream";
import { GrowingIndex } from "./growing-index.ts";
import { muxVp8Copy } from "./vp8-copy.ts";
import type { FleetPrepare, GrowingCopy } from "./fleet.ts";

/**
 * video: re-encode the picture to H.264 (and audio to Opus, or drop it); audio: the audio alone to Opus; vp8: the
 * picture alone to VP8, for browsers without H.264 (their sound is the file's own or its `audio` copy).
 */
export type PrepareKind = "video" | "audio" | "vp8";

export interface PrepareRequest {
  /** Where ffmpeg reads the source: a local path confined to its folder, or a bucket object's presigned URL. */
  source: ToolSource;
  /** The source version's identity (size, mtime, inode; a bucket object's ETag): part of the key, re-checked at the end. */
  identity: string;
  kind: PrepareKind;
  /** For `video`: whether the file has audio ffmpeg can decode (else the copy has none). */
  withAudio: boolean;
  /** For `vp8`: the source's video bitrate, kbit/s; the copy aims a little above it (see vp8Kbps). */
  sourceKbps?: number;
}

/**
 * A finished copy (a cache-relative file name, or with a bucket the copy in it, `file`), or one still being written,
 * here or on the host that holds the fleet's lease for it, that can be played as it grows.
 */
export type Prepared = { done: true; name: string; file?: RandomAccessFile } | { done: false; job: GrowingCopy };

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
  /** With a bucket shared by many sidecars: each file version is prepared once for all of them (fleet.ts). */
  fleet?: FleetPrepare;
}

/** What GET /v1/prepared/<key> serves another host: the bytes of a copy this host prepares (or just prepared). */
export interface ServedCopy {
  reader: RandomAccessFile;
  status: { size: number; done: boolean; failed?: string };
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
/** A copy other hosts followed is served to them until none has read it for this long. */
const SERVE_IDLE_MS = 60_000;

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
  private readonly fleet: FleetPrepare | undefined;
  /** Starts (lookups, leases, jobs) under way, by key. */
  private readonly starting = new Map<string, Promise<Prepared>>();
  /** Other hosts' copies this host's viewers follow, one per key. */
  private readonly following = new Map<string, GrowingCopy>();
  /** Copies this host prepares for the fleet, served to the hosts that follow them. */
  private readonly serving = new Map<string, { job: PrepareJob; reader: RandomAccessFile; lastRead: number }>();
  private readonly servingTimer: NodeJS.Timeout;

  constructor(opts: PrepareCacheOptions) {
    this.dir = path.resolve(opts.dir);
    this.ffmpeg = findFfmpeg(opts.ffmpegPath);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.onPrepare = opts.onPrepare;
    this.slots = new Slots(opts.maxRunning ?? DEFAULT_MAX_RUNNING, this.stats);
    this.fleet = opts.fleet;
    this.swept = this.sweepLeftovers();
    this.servingTimer = setInterval(() => void this.dropIdleServing(), 10_000);
    this.servingTimer.unref();
  }

  async get(req: PrepareRequest): Promise<Prepared> {
    await this.swept;
    const key = keyOf(req);
    const job = this.running.get(key);
    if (job) return { done: false, job };
    const pending = this.starting.get(key);
    if (pending) return pending;
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
    // One start per key at a time: two viewers arriving together share one lookup, one lease and one job.
    const starting = this.starting.get(key) ?? this.start(req, key).finally(() => this.starting.delete(key));
    this.starting.set(key, starting);
    return starting;
  }

  private async start(req: PrepareRequest, key: string): Promise<Prepared> {
    const following = this.following.get(key);
    if (following) return { done: false, job: following };
    if (this.shutdown.signal.aborted) throw new MediaError(Info.PREPARE_FAILED, "shutting down");
    let release: (() => Promise<void>) | undefined;
    // Only a bucket file is the same file on every host: a local file's copy is this host's alone.
    if (this.fleet && req.source.shared) {
      const shared = await this.fromFleet(key);
      if (shared) return shared;
      release = shared === null ? this.fleet.hold(key) : undefined;
    }
    const started = new PrepareJob(req, this.dir, key, this.ffmpeg, this.timeoutMs, this.shutdown.signal, this.slots);
    this.running.set(key, started);
    this.stats.prepares++;
    this.stats.running++;
    this.onPrepare?.(req);
    void started.finished.then(async (result) => {
      this.running.delete(key);
      this.stats.running--;
      try {
        if (result instanceof MediaError) {
          this.stats.failures++;
          this.failed.set(key, { at: Date.now(), error: result });
        } else {
          // In the bucket before the lease goes: a host asking next finds the copy there.
          if (release && this.fleet) await this.fleet.publish(key, path.join(this.dir, result)).catch((err: unknown) => console.warn(`prepare ${key}: the copy did not reach the bucket: ${String(err)}`));
          void this.evict();
        }
      } finally {
        await release?.();
      }
    });
    await started.begin();
    // Held for the hosts that follow it: the output stays open for them after the job ends and its file is gone.
    if (release && !started.index.error) {
      const old = this.serving.get(key);
      this.serving.set(key, { job: started, reader: started.acquire(), lastRead: Date.now() });
      await old?.reader.close();
    }
    return { done: false, job: started };
  }

  /**
   * With a bucket: the fleet's finished copy, or the copy another host is preparing (followed); null when this host
   * got the lease and prepares it; undefined when the edge could not be asked (it prepares it, without a lease).
   */
  private async fromFleet(key: string): Promise<Prepared | null | undefined> {
    const fleet = this.fleet!;
    const inBucket = await fleet.inBucket(key).catch((err: unknown) => {
      console.warn(`prepare ${key}: the bucket's copy could not be looked up: ${String(err)}`);
      return undefined;
    });
    if (inBucket) {
      this.stats.hits++;
      return { done: true, name: `${key}.mp4`, file: inBucket };
    }
    let lease;
    try {
      lease = await fleet.lease(key, "acquire");
    } catch (err) {
      console.warn(`prepare ${key}: no lease from the edge, preparing here: ${String(err)}`);
      return undefined;
    }
    if (lease.granted || !lease.holder) return null;
    // Only start() calls this, once per key at a time, after finding no copy followed yet.
    const copy = fleet.follow(key, lease.holder.url);
    this.following.set(key, copy);
    void copy.finished.then(() => this.following.delete(key));
    return { done: false, job: copy };
  }

  /** A copy this host prepares (or prepared) for the fleet, for another host that follows it. */
  served(key: string): ServedCopy | undefined {
    const s = this.serving.get(key);
    if (!s) return undefined;
    s.lastRead = Date.now();
    const err = s.job.index.error;
    return { reader: s.reader, status: { size: s.job.written, done: s.job.index.complete, ...(err ? { failed: err.message } : {}) } };
  }

  private async dropIdleServing(): Promise<void> {
    const now = Date.now();
    for (const [key, s] of this.serving) {
      if (this.running.has(key) || now - s.lastRead < SERVE_IDLE_MS) continue;
      this.serving.delete(key);
      await s.reader.close();
    }
  }

  /** Stops every running prepare (their viewers fail) and waits until they have cleaned up. */
  async close(): Promise<void> {
    this.shutdown.abort();
    clearInterval(this.servingTimer);
    await Promise.all([...this.running.values()].map((job) => job.finished));
    for (const s of this.serving.values()) await s.reader.close();
    this.serving.clear();
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
export class PrepareJob implements GrowingCopy {
  readonly index: GrowingIndex;
  /** Bytes of output on disk at the last look. */
  written = 0;
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
      // Signed now, not when the viewer came: the wait for a slot must not eat into the URL's validity.
      const input = await this.req.source.input();
      const handle = this.handle!;
      await runFfmpeg(this.ffmpeg, this.args(input), this.timeoutMs, {
        nice: 10,
        signal: this.signal,
        ...(this.req.kind === "vp8" ? { stdout: (out: Readable) => muxVp8Copy(out, handle) } : {}),
      });
    } catch (err) {
      // ffmpeg's words for a codec it has no decoder for (only decodable audio is ever mapped: this is the video).
      const undecodable = err instanceof FfmpegError && /Decoder \(codec [^)]*\) not found|no decoder found/i.test(err.stderr);
      error = new MediaError(undecodable ? Info.UNSUPPORTED_VIDEO_CODEC : Info.PREPARE_FAILED, redact(errText(err)));
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
    const now = await stableIdentity(this.req.source);
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
    if (this.req.kind === "vp8") {
      // ffmpeg cannot write VP8 into MP4 (see vp8-copy.ts): the fragmented copy is kept as it is.
      await fs.rename(this.partPath, final);
      return;
    }
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
    if (!st) return;
    this.written = st.size;
    await this.index.update(st.size, final);
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

  private args(input: string): string[] {
    const { kind, withAudio } = this.req;
    // Same size rule for both codecs: ffmpeg turns rotated video upright itself (autorotate); then at most 1080 on
    // the short side, even sizes.
    const scale = ["-vf", "scale=w='if(lte(iw,ih),2*trunc(min(iw,1080)/2),-2)':h='if(lte(iw,ih),-2,2*trunc(min(ih,1080)/2))'"];
    const audio = ["-c:a", "libopus", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-frame_duration", "20"];
    const video = [
      // Constrained baseline: every WebRTC H.264 decoder takes it (Firefox's OpenH264, hardware decoders).
      ...["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p"],
      ...["-crf", "21", "-maxrate", "5M", "-bufsize", "10M"],
      // A keyframe at least every 2 s: a viewer's PLI and a vod-live join wait at most that long for a picture.
      ...["-force_key_frames", "expr:gte(t,n_forced*2)"],
      // Phones record variable frame rate: each frame keeps its own time.
      ...["-fps_mode", "passthrough"],
      ...scale,
    ];
    // A bucket file is read over HTTP by ranges: a dropped connection is resumed where it broke, and a server that
    // stops answering fails the prepare instead of holding its slot until the time limit.
    const remote: string[] = /^https?:/i.test(input) ? ["-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_delay_max", "5", "-rw_timeout", "20000000"] : [];
    if (kind === "vp8") {
      const kbps = vp8Kbps(this.req.sourceKbps);
      return [
        ...QUIET,
        ...remote,
        // The source's own times, at 90 kHz: the copy's frames sit where the source's do (see vp8-copy.ts).
        "-copyts",
        "-i",
        input,
        ...["-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1"],
        // Real-time libvpx: no look-ahead, so no hidden alt-ref frames (every sample is a shown picture) and the
        // first frames come out at once; error resilient, so a viewer's loss heals without a keyframe more often.
        ...["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-auto-alt-ref", "0", "-error-resilient", "1"],
        ...["-b:v", `${kbps}k`, "-maxrate", `${Math.round(kbps * 1.5)}k`, "-bufsize", `${Math.round(kbps * 1.5)}k`],
        ...["-qmin", "4", "-qmax", "48", "-pix_fmt", "yuv420p"],
        // Keyframes at 0, 0.25, 0.5 and 1 s, then every 2 s: fragments close at keyframes, so the first viewer's
        // first fragment is on disk after a quarter second of media is encoded, and a PLI or vod-live join waits at
        // most 2 s.
        ...["-force_key_frames", "expr:gte(t,if(lt(n_forced,2),n_forced*0.25,if(lt(n_forced,4),(n_forced-1)*0.5,(n_forced-3)*2)))"],
        ...["-fps_mode", "passthrough", "-enc_time_base:v", "1:90000"],
        ...scale,
        ...["-f", "ivf", "pipe:1"],
      ];
    }
    const maps =
      kind === "audio"
        ? ["-map", "0:a:0", "-vn", ...audio]
        : ["-map", "0:v:0", ...video, ...(withAudio ? ["-map", "0:a:0", ...audio] : ["-an"])];
    return [
      ...QUIET,
      ...remote,
      "-i",
      input,
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

/**
 * A VP8 copy's target bitrate: a quarter above the source's (VP8 in real-time mode needs about that to look as good
 * as H.264), within 400 kbit/s and 4 Mbit/s; 2 Mbit/s when the source's is unknown. A fixed 2 Mbit/s doubled what
 * a 1 Mbit/s file cost to send (bench `vp8`).
 */
export function vp8Kbps(sourceKbps: number | undefined): number {
  if (!sourceKbps || !(sourceKbps > 0)) return 2000;
  return Math.round(Math.min(4000, Math.max(400, sourceKbps * 1.25)));
}

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
  // Location and identity together name one version of one file (a local identity is only unique per file system).
  return createHash("sha256")
    .update([RECIPE_VERSION, req.kind, req.withAudio ? "a" : "-", req.identity, req.source.location].join("\0"))
    .digest("hex");
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

/** A presigned URL's query (its signature) out of a message that may be logged or shown. */
function redact(text: string): string {
  return text.replace(/(https?:\/\/[^\s?"']+)\?[^\s"']+/g, "$1?<signed>");
}

/**
 * The source's identity now, asked again on a failure: a bucket that blinks while a long prepare finishes must not
 * make it throw the copy away. Undefined once the source is gone (or cannot be asked).
 */
async function stableIdentity(source: ToolSource): Promise<string | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await source.currentIdentity();
    } catch (err) {
      if (attempt >= 3) {
        console.warn(`prepare: the source's identity could not be checked: ${String(err)}`);
        return undefined;
      }
      await new Promise((r) => setTimeout(r, 1000 * (attempt + 1)));
    }
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
