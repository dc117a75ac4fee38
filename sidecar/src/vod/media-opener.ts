// Opens what a `vod://` or `vod-live://` playback needs: the file, its index and classification (made once per file
// version and cached), and the tracks to send: from the file itself when the browser can play them, else from the
// file's prepared copy (see prepare/prepare-cache.ts), which may still be growing while the first viewer watches.
import { Info } from "@edge-vod/shared";
import { MediaError, type FileAccess, type RandomAccessFile } from "../files/file-access.ts";
import { classify, prepareFor, type Classification } from "../mp4/classify.ts";
import { openMp4 } from "../mp4/reader.ts";
import type { AudioTrack, Mp4Index, VideoTrack } from "../mp4/types.ts";
import type { PrepareCache, PrepareKind, PrepareJob } from "../prepare/prepare-cache.ts";
import type { TrackInput } from "./packet-source.ts";

export interface OpenedMedia {
  video?: TrackInput<VideoTrack>;
  audio?: TrackInput<AudioTrack>;
  /** profile_idc of the H.264 stream, to pick the browser's closest payload type. */
  profileIdc?: number;
  /** The source file's duration (a prepared copy's may not be known until it is finished). */
  durationSec: number;
  close(): Promise<void>;
}

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

  constructor(
    private readonly media: FileAccess,
    private readonly cache: FileAccess,
    private readonly prepare: PrepareCache,
  ) {}

  async open(name: string): Promise<OpenedMedia> {
    const file = await this.media.open(name);
    const opened: RandomAccessFile[] = [file];
    const close = async () => {
      await Promise.allSettled(opened.map((f) => f.close()));
    };
    try {
      const { index, classification: c } = await this.indexes.get(file);
      const result: OpenedMedia = { close, durationSec: index.durationSec };
      if (c.plan.video === "none" && c.video) {
        throw new MediaError(Info.UNSUPPORTED_VIDEO_CODEC, `${name}: video codec ${c.video.codec}`);
      }
      if (c.plan.audio === "none" && c.audio) console.warn(`vod: ${name}: ${c.reasons.join(", ")}; playing without sound`);
      const prep = prepareFor(c);
      if (prep?.kind === "video") {
        // Picture and sound come from one prepared copy, so they share its timeline.
        const prepared = await this.prepared(name, file, "video", prep.withAudio, opened);
        if (!prepared.video) throw new MediaError(Info.PREPARE_FAILED, `${name}: the prepared copy has no video`);
        result.video = prepared.video;
        if (prepared.audio) result.audio = prepared.audio;
      } else {
        if (index.video && c.plan.video === "as-is") result.video = { file, track: index.video };
        if (index.audio && c.plan.audio === "as-is") result.audio = { file, track: index.audio };
        if (prep?.kind === "audio") {
          try {
            const prepared = await this.prepared(name, file, "audio", true, opened);
            if (prepared.audio) result.audio = prepared.audio;
          } catch (err) {
            // Picture without sound beats no playback at all; an audio-only file has nothing else to play.
            if (!result.video) throw err;
            console.warn(`vod: ${name}: audio transcode failed, playing video only: ${String(err)}`);
          }
        }
      }
      if (result.video?.track.avc) result.profileIdc = result.video.track.avc.profileIdc;
      if (!result.video && !result.audio) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, "no playable track");
      return result;
    } catch (err) {
      await close();
      throw err;
    }
  }

  /** The tracks of the file's prepared copy: finished and cached, or still being written (then they grow). */
  private async prepared(
    name: string,
    file: RandomAccessFile,
    kind: PrepareKind,
    withAudio: boolean,
    opened: RandomAccessFile[],
  ): Promise<{ video?: TrackInput<VideoTrack>; audio?: TrackInput<AudioTrack> }> {
    const sourcePath = await this.media.localPath?.(name);
    if (!sourcePath) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${name}: needs preparing, which only local files can`);
    const prepared = await this.prepare.get({ sourcePath, identity: file.identity, kind, withAudio });
    if (!prepared.done) return this.growing(prepared.job, opened);
    const copy = await this.cache.open(prepared.name);
    opened.push(copy);
    const { index } = await this.indexes.get(copy);
    return {
      ...(index.video ? { video: { file: copy, track: index.video } } : {}),
      ...(index.audio ? { audio: { file: copy, track: index.audio } } : {}),
    };
  }

  private async growing(job: PrepareJob, opened: RandomAccessFile[]) {
    // Acquired before any await: the job's output stays open for this viewer even if the job ends meanwhile.
    const copy = job.acquire();
    opened.push(copy);
    const index = job.index;
    await index.started();
    return {
      ...(index.video ? { video: { file: copy, track: index.video, growth: index } } : {}),
      ...(index.audio ? { audio: { file: copy, track: index.audio, growth: index } } : {}),
    };
  }
}
