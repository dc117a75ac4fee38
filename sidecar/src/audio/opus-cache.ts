// AAC cannot travel over WebRTC, so a file's audio is transcoded to Opus once per file version (ffmpeg runs at
// ~130x real time, see the notes) and kept on disk. The cache file is the cache: a restart keeps every transcode.
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { Info } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";
import { findFfmpeg, runFfmpeg } from "../tools/ffmpeg.ts";

export interface OpusCacheOptions {
  dir: string;
  ffmpegPath?: string;
  /** ffmpeg is killed after this long; a stuck or absurdly long input must not hold a transcode slot forever. */
  timeoutMs?: number;
  /** Called whenever ffmpeg is started (tests count transcodes with it). */
  onTranscode?: (sourcePath: string) => void;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

export class OpusCache {
  private readonly dir: string;
  private readonly ffmpeg: string;
  private readonly timeoutMs: number;
  private readonly onTranscode: ((sourcePath: string) => void) | undefined;
  /** Transcodes under way, so that viewers arriving together share one ffmpeg. */
  private readonly running = new Map<string, Promise<string>>();

  constructor(opts: OpusCacheOptions) {
    this.dir = path.resolve(opts.dir);
    this.ffmpeg = findFfmpeg(opts.ffmpegPath);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.onTranscode = opts.onTranscode;
  }

  /** Path of an MP4 holding only the source's first audio track as Opus (48 kHz stereo, 20 ms frames). */
  get(sourcePath: string, identity: string): Promise<string> {
    // The path is part of the key because identity (size, mtime, inode) is only unique within one file system.
    const source = path.resolve(sourcePath);
    const key = createHash("sha256").update(identity).update("\0").update(source).digest("hex");
    let job = this.running.get(key);
    if (!job) {
      job = this.produce(source, key).finally(() => this.running.delete(key));
      this.running.set(key, job);
    }
    return job;
  }

  private async produce(source: string, key: string): Promise<string> {
    const out = path.join(this.dir, `${key}.opus.mp4`);
    if (await isFile(out)) return out;
    await fs.mkdir(this.dir, { recursive: true });
    // Not `.mp4` and renamed only when ffmpeg succeeded: a reader never sees a partial file under the final name.
    const tmp = path.join(this.dir, `.${key}.${randomUUID()}.tmp`);
    try {
      this.onTranscode?.(source);
      await this.transcode(source, tmp);
      await fs.rename(tmp, out);
      return out;
    } catch (err) {
      await fs.rm(tmp, { force: true });
      if (err instanceof MediaError) throw err;
      throw new MediaError(Info.FAILED_TO_READ_FILE, `opus transcode: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private transcode(source: string, target: string): Promise<void> {
    const args = [
      ...["-nostdin", "-hide_banner", "-loglevel", "error", "-y"],
      ...["-i", source, "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1"],
      ...["-c:a", "libopus", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-frame_duration", "20"],
      // faststart: the reader then finds the moov in its first read.
      ...["-movflags", "+faststart", "-f", "mp4", target],
    ];
    return runFfmpeg(this.ffmpeg, args, this.timeoutMs).catch((err: unknown) => {
      throw new MediaError(Info.FAILED_TO_READ_FILE, err instanceof Error ? err.message : String(err));
    });
  }
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}
