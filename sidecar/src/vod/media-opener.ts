// Opens what a `vod://` or `vod-live://` playback needs: the file, its index and classification (made once per file
// version and cached), and the tracks to send: from the file itself when the browser can play them, else from the
// file's prepared copy (see prepare/prepare-cache.ts), which may still be growing while the first viewer watches.
import { Info } from "@edge-vod/shared";
import { MediaError, type FileAccess, type RandomAccessFile } from "../files/file-access.ts";
import { ObjectFile } from "../files/object-access.ts";
import { classify, clockwiseTurn, onlyRotated, prepareFor, type Classification } from "../mp4/classify.ts";
import { openMp4 } from "../mp4/reader.ts";
import type { AudioTrack, Mp4Index, Rotation, VideoTrack } from "../mp4/types.ts";
import type { PrepareCache, PrepareKind } from "../prepare/prepare-cache.ts";
import type { GrowingCopy } from "../prepare/fleet.ts";
import type { TrackInput } from "./packet-source.ts";

export interface Tracks {
  video?: TrackInput<VideoTrack>;
  audio?: TrackInput<AudioTrack>;
}

export interface OpenedMedia {
  /**
   * What will be sent, known before the tracks are (a copy being prepared is H.264 constrained baseline + Opus by
   * construction): enough to answer the offer. profileIdc picks the browser's closest H.264 payload type.
   */
  have: { video: boolean; audio: boolean; profileIdc: number | undefined; clockwise?: Rotation };
  /**
   * The tracks: at once for a file sent as it is or a finished copy; for a copy being prepared once its first
   * fragment is on disk. Rejects (with a MediaError) if that prepare fails first.
   */
  tracks: Promise<Tracks>;
  /** The source file's duration (a prepared copy's is not known until it is finished). */
  durationSec: number;
  close(): Promise<void>;
}

/** Names remembered as warm. */
const WARM_KEPT = 100;

interface Indexed {
  index: Mp4Index;
  classification: Classification;
}

/** Bounded map of parsed indexes keyed by file identity (size, mtime, inode): a changed file is parsed anew. */
class IndexCache {
  private readonly map = new Map<string, Promise<Indexed>>();
  constructor(private readonly max: number) {}

  get(file: RandomAccessFile): Promise<Indexed> {
    const key = file.identity;
    let hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
      return hit;
    }
    hit = openMp4(file).then((index) => ({ index, classification: classify(index) }));
    this.map.set(key, hit);
    hit.catch(() => this.map.delete(key));
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
    return hit;
  }
}

export class MediaOpener {
  private readonly indexes = new IndexCache(64);
  /** Bucket files opened lately, oldest first: their blocks (and prepared copy) are likely still here. */
  private readonly recent = new Map<string, true>();

  constructor(
    private readonly media: FileAccess,
    private readonly cache: FileAccess,
    private readonly prepare: PrepareCache,
  ) {}

  /**
   * `orientation`: the viewer's browser takes the video orientation extension, so a rotated H.264 file that needs
   * nothing else is sent as it is with `have.clockwise` (vod-live broadcasts, shared by all browsers, do not ask).
   */
  async open(name: string, opts: { orientation?: boolean } = {}): Promise<OpenedMedia> {
    const file = await this.media.open(name);
    const files: RandomAccessFile[] = [file];
    const close = async () => {
      await Promise.allSettled(files.map((f) => f.close()));
    };
    try {
      const { index, classification: c } = await this.indexes.get(file);
      if (c.plan.audio === "none" && c.audio) console.warn(`vod: ${name}: ${c.reasons.join(", ")}; playing without sound`);
      let have: OpenedMedia["have"];
      let tracks: Promise<Tracks>;
      const byOrientation = opts.orientation === true && onlyRotated(c);
      const plan: Classification["plan"] = byOrientation ? { ...c.plan, video: "as-is" } : c.plan;
      const prep = prepareFor(plan);
      if (prep?.kind === "video") {
        // Picture and sound come from one prepared copy, so they share its timeline.
        const copy = await this.prepared(name, file, "video", prep.withAudio, files);
        have = copy.have;
        tracks = copy.tracks.then((t) => {
          if (!t.video) throw new MediaError(Info.PREPARE_FAILED, `${name}: the prepared copy has no video`);
          return t;
        });
      } else {
        const own: Tracks = {};
        if (index.video && plan.video === "as-is") own.video = { file, track: index.video };
        if (index.audio && plan.audio === "as-is") own.audio = { file, track: index.audio };
        have = haveOf(own);
        if (byOrientation && own.video) have.clockwise = clockwiseTurn(own.video.track.rotation);
        tracks = Promise.resolve(own);
        if (prep?.kind === "audio") {
          // Picture without sound beats no playback at all; an audio-only file has nothing else to play.
          const soundless = (err: unknown): Tracks => {
            if (!own.video) throw err;
            console.warn(`vod: ${name}: audio transcode failed, playing video only: ${String(err)}`);
            return own;
          };
          try {
            const copy = await this.prepared(name, file, "audio", true, files);
            have.audio = copy.have.audio;
            tracks = copy.tracks.then((t) => (t.audio ? { ...own, audio: t.audio } : own), soundless);
          } catch (err) {
            soundless(err);
          }
        }
      }
      if (!have.video && !have.audio) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, "no playable track");
      // Nobody may be waiting on it yet: a rejection is handled by whoever awaits it, never unhandled.
      tracks.catch(() => undefined);
      // Only bucket files (their blocks, their prepared copy): what is cheaper here than on another host reading the
      // same bucket. Local files stay out, so hosts without a bucket are placed by load alone, as they always were.
      if (file instanceof ObjectFile) {
        this.recent.delete(name);
        this.recent.set(name, true);
        if (this.recent.size > WARM_KEPT) this.recent.delete(this.recent.keys().next().value!);
      }
      return { have, tracks, durationSec: index.durationSec, close };
    } catch (err) {
      await close();
      throw err;
    }
  }

  /** Names this host served lately, most recent first (the edge prefers this host for their new viewers). */
  warmNames(max: number): string[] {
    return [...this.recent.keys()].reverse().slice(0, max);
  }

  /** The file's prepared copy: finished and cached, or still being written (its tracks then grow). */
  private async prepared(
    name: string,
    file: RandomAccessFile,
    kind: PrepareKind,
    withAudio: boolean,
    files: RandomAccessFile[],
  ): Promise<{ have: OpenedMedia["have"]; tracks: Promise<Tracks> }> {
    if (!file.toolSource) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${name}: needs preparing, and no tool can read it`);
    const source = await file.toolSource();
    const prepared = await this.prepare.get({ source, identity: file.identity, kind, withAudio });
    if (!prepared.done) {
      // What the recipe makes (see PrepareJob.args): constrained baseline H.264 (profile_idc 66) and Opus.
      const have = { video: kind === "video", audio: withAudio, profileIdc: kind === "video" ? 66 : undefined };
      return { have, tracks: this.growing(prepared.job, files) };
    }
    // The fleet's copy in the bucket, or this host's own in CACHE_DIR.
    const copy = prepared.file ?? (await this.cache.open(prepared.name));
    files.push(copy);
    const { index } = await this.indexes.get(copy);
    const tracks: Tracks = {
      ...(index.video ? { video: { file: copy, track: index.video } } : {}),
      ...(index.audio ? { audio: { file: copy, track: index.audio } } : {}),
    };
    return { have: haveOf(tracks), tracks: Promise.resolve(tracks) };
  }

  private growing(job: GrowingCopy, files: RandomAccessFile[]): Promise<Tracks> {
    // Acquired before any await: the job's output stays open for this viewer even if the job ends meanwhile.
    const copy = job.acquire();
    files.push(copy);
    const index = job.index;
    return index.started().then(() => ({
      ...(index.video ? { video: { file: copy, track: index.video, growth: index } } : {}),
      ...(index.audio ? { audio: { file: copy, track: index.audio, growth: index } } : {}),
    }));
  }
}

function haveOf(tracks: Tracks): OpenedMedia["have"] {
  return { video: !!tracks.video, audio: !!tracks.audio, profileIdc: tracks.video?.track.avc?.profileIdc };
}
