// Opens what a `vod://` playback needs: the file, its moov index (parsed once per file version and cached), and an
// Opus audio track (the file's own, or AAC transcoded once per file version by the OpusCache).
import { Info } from "@edge-vod/shared";
import { MediaError, type FileAccess, type RandomAccessFile } from "../files/file-access.ts";
import { openMp4 } from "../mp4/reader.ts";
import type { AudioTrack, Mp4Index, VideoTrack } from "../mp4/types.ts";
import type { OpusCache } from "../audio/opus-cache.ts";
import type { TrackInput } from "./packet-source.ts";

export interface OpenedMedia {
  video?: TrackInput<VideoTrack>;
  audio?: TrackInput<AudioTrack>;
  /** profile_idc of the H.264 stream, to pick the browser's closest payload type. */
  profileIdc?: number;
  close(): Promise<void>;
}

/** Bounded map of parsed indexes keyed by file identity (size, mtime, inode): a changed file is parsed anew. */
class IndexCache {
  private readonly map = new Map<string, Promise<Mp4Index>>();
  constructor(private readonly max: number) {}

  get(file: RandomAccessFile): Promise<Mp4Index> {
    const key = file.identity;
    let hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
      return hit;
    }
    hit = openMp4(file);
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
    private readonly opus: OpusCache,
  ) {}

  async open(name: string): Promise<OpenedMedia> {
    const file = await this.media.open(name);
    const opened: RandomAccessFile[] = [file];
    const close = async () => {
      await Promise.allSettled(opened.map((f) => f.close()));
    };
    try {
      const index = await this.indexes.get(file);
      const result: OpenedMedia = { close };
      if (index.video) {
        const v = index.video;
        if (!v.avc) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `video codec ${v.codec} is not H.264`);
        if (v.hasBFrames) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, "H.264 with B-frames is not supported yet");
        result.video = { file, track: v };
        result.profileIdc = v.avc.profileIdc;
      }
      if (index.audio) result.audio = await this.openAudio(name, file, index.audio, opened);
      if (!result.video && !result.audio) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, "no playable track");
      return result;
    } catch (err) {
      await close();
      throw err;
    }
  }

  private async openAudio(name: string, file: RandomAccessFile, track: AudioTrack, opened: RandomAccessFile[]) {
    if (track.codec === "opus") return { file, track };
    if (!track.codec.startsWith("mp4a.")) {
      console.warn(`vod: ${name}: audio codec ${track.codec} is not supported; playing video only`);
      return undefined;
    }
    const local = await this.media.localPath?.(name);
    if (!local) return undefined;
    try {
      const cachedPath = await this.opus.get(local, file.identity);
      const opusFile = await this.cache.open(cachedPath.slice(cachedPath.lastIndexOf("/") + 1));
      opened.push(opusFile);
      const opusIndex = await this.indexes.get(opusFile);
      return opusIndex.audio ? { file: opusFile, track: opusIndex.audio } : undefined;
    } catch (err) {
      // Picture without sound beats no playback at all; the log says why.
      console.warn(`vod: ${name}: audio transcode failed, playing video only: ${String(err)}`);
      return undefined;
    }
  }
}
