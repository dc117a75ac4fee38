// AAC cannot travel over WebRTC, so a file's audio is transcoded to Opus once per file version (ffmpeg runs at
// ~130x real time, see the notes) and kept on disk. The cache file is the cache: a restart keeps every transcode.
import { spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Info } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";

export interface OpusCacheOptions {
  dir: string;
  ffmpegPath?: string;
  /** ffmpeg is killed after this long; a stuck or absurdly long input must not hold a transcode slot forever. */
  timeoutMs?: number;
  /** Called whenever ffmpeg is started (tests count transcodes with it). */
  onTranscode?: (sourcePath: string) => void;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const STDERR_KEEP = 4096;

/** The ffmpeg to run: the configured one, else Debian's (faster than bundled static builds), else whatever PATH has. */
export function findFfmpeg(configured?: string): string {
  if (configured) return configured;
  return existsSync("/usr/bin/ffmpeg") ? "/usr/bin/ffmpeg" : "ffmpeg";
}

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
    return new Promise((resolve, reject) => {
      const child = spawn(this.ffmpeg, args, { stdio: ["ignore", "ignore", "pipe"] });
      // Our own timer rather than spawn's `timeout`: that one is only cleared on 'exit', so a spawn that fails
      // (ENOENT) would keep the process alive until it fires.
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, this.timeoutMs);
      let stderr = "";
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (chunk: string) => {
        if (stderr.length < STDERR_KEEP) stderr += chunk.slice(0, STDERR_KEEP - stderr.length);
      });
      child.on("error", (err) => {
        clearTimeout(timer);
        reject(new MediaError(Info.FAILED_TO_READ_FILE, `cannot run ${this.ffmpeg}: ${err.message}`));
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        if (code === 0) return resolve();
        const why = timedOut ? `killed after the ${this.timeoutMs} ms time limit` : signal ? `killed by ${signal}` : `exit code ${code}`;
        reject(new MediaError(Info.FAILED_TO_READ_FILE, `ffmpeg ${why}: ${stderr.trim()}`));
      });
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
