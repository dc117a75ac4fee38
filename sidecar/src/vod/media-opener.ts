// Opens what a `vod://` or `vod-live://` playback needs: the file, its index and classification (made once per file
// version and cached), and the tracks to send: from the file itself when the browser can play them, else from the
// file's prepared copy (see prepare/prepare-cache.ts), which may still be growing while the first viewer watches.
import { Info } from "@edge-vod/shared";
import { MediaError, type FileAccess, type RandomAccessFile } from "../files/file-access.ts";
import { ObjectFile } from "../files/object-access.ts";
import { classify, clockwiseTurn, onlyRotated, planFor, prepareFor, videoCodecFor, type Classification } from "../mp4/classify.ts";
import { openMp4 } from "../mp4/reader.ts";
import type { AudioTrack, Mp4Index, VideoTrack } from "../mp4/types.ts";
import type { VideoCodec } from "../rtp/video-codec.ts";
import type { SendHave } from "../webrtc/answer.ts";
import type { PrepareCache, PrepareKind } from "../prepare/prepare-cache.ts";
import type { GrowingCopy } from "../prepare/fleet.ts";
import type { TrackInput } from "./packet-source.ts";

export interface Tracks {
  video?: TrackInput<VideoTrack>;
  audio?: TrackInput<AudioTrack>;
}

export interface OpenedMedia {
  /**
   * What will be sent, known before the tracks are (a copy being prepared is H.264 constrained baseline + Opus, or
   * VP8, by construction): enough to answer the offer. profileIdc picks the browser's closest H.264 payload type.
   */
  have: SendHave;
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
   * `videoCodecs`: what the viewer's offer takes (default H.264): the video goes out in one of them (see
   * videoCodecFor), from the file or from a copy prepared in that codec. When it takes none, `have.video` still says
   * the file has video and the answer refuses the offer (No common codecs); nothing is prepared for it.
   */
  async open(name: string, opts: { orientation?: boolean; videoCodecs?: ReadonlySet<VideoCodec> } = {}): Promise<OpenedMedia> {
    const file = await this.media.open(name);
    const files: RandomAccessFile[] = [file];
    const close = async () => {
      await Promise.allSettled(files.map((f) => f.close()));
    };
    try {
      const { index, classification: c } = await this.indexes.get(file);
      if (c.plan.audio === "none" && c.audio) console.warn(`vod: ${name}: ${c.reasons.join(", ")}; playing without sound`);
      const codec = videoCodecFor(c, opts.videoCodecs ?? H264_ONLY);
      const videoCodec = codec ?? "h264";
      // The file has video, in no codec the viewer takes: nothing is prepared, and the answer refuses the offer.
      const untakeable = codec === undefined && c.video !== undefined;
      let have: OpenedMedia["have"];
      let tracks: Promise<Tracks>;
      const byOrientation = codec === "h264" && opts.orientation === true && onlyRotated(c);
      let plan = planFor(c, videoCodec);
      if (byOrientation) plan = { ...plan, video: "as-is" };
      if (untakeable) plan = { ...plan, video: "none" };
      const prep = prepareFor(plan);
      if (prep?.kind === "video" && videoCodec === "h264") {
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
        have = haveOf(own, videoCodec);
        if (untakeable) have.video = true;
        if (byOrientation && own.video) have.clockwise = clockwiseTurn(own.video.track.rotation);
        tracks = Promise.resolve(own);
        if (plan.video === "prepare") {
          // A VP8 copy is picture only: the sound is the file's own, or its Opus copy, which H.264 viewers share.
          const copy = await this.prepared(name, file, "vp8", false, files);
          have.video = true;
          tracks = copy.tracks.then((t) => {
            if (!t.video) throw new MediaError(Info.PREPARE_FAILED, `${name}: the prepared copy has no video`);
            return { ...own, video: t.video };
          });
        }
        if (plan.audio === "transcode") {
          const withVideo = tracks;
          // Picture without sound beats no playback at all; an audio-only file has nothing else to play.
          const soundless = async (err: unknown): Promise<Tracks> => {
            const t = await withVideo;
            if (!t.video) throw err;
            console.warn(`vod: ${name}: audio transcode failed, playing video only: ${String(err)}`);
            return t;
          };
          try {
            const copy = await this.prepared(name, file, "audio", true, files);
            have.audio = copy.have.audio;
            tracks = Promise.all([withVideo, copy.tracks]).then(([t, a]) => (a.audio ? { ...t, audio: a.audio } : t), soundless);
          } catch (err) {
            if (!own.video && plan.video !== "prepare") throw err;
            tracks = soundless(err);
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

  /**
   * The codec a viewer that takes `offered` gets the video of `name` in (see videoCodecFor): a vod-live broadcast
   * has one packet source per codec, and a viewer joins the one for its codec. The index is cached, so this is cheap.
   */
  async videoCodecOf(name: string, offered: ReadonlySet<VideoCodec>): Promise<VideoCodec | undefined> {
    const file = await this.media.open(name);
    try {
      return videoCodecFor((await this.indexes.get(file)).classification, offered);
    } finally {
      await file.close();
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
    const sourceKbps = kind === "vp8" ? (await this.indexes.get(file)).classification.video?.kbps : undefined;
    const prepared = await this.prepare.get({ source, identity: file.identity, kind, withAudio, ...(sourceKbps ? { sourceKbps } : {}) });
    if (!prepared.done) {
      // What the recipes make (see PrepareJob): constrained baseline H.264 (profile_idc 66) and Opus, VP8 alone, or Opus.
      const have = { video: kind !== "audio", audio: kind !== "vp8" && withAudio, profileIdc: kind === "video" ? 66 : undefined };
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
    return { have: haveOf(tracks, kind === "vp8" ? "vp8" : "h264"), tracks: Promise.resolve(tracks) };
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

function haveOf(tracks: Tracks, videoCodec: VideoCodec): OpenedMedia["have"] {
  return { video: !!tracks.video, audio: !!tracks.audio, videoCodec, profileIdc: tracks.video?.track.avc?.profileIdc };
}

const H264_ONLY: ReadonlySet<VideoCodec> = new Set(["h264"]);
