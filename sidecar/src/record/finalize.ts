// Turns a finished fragmented recording into a regular fast-start MP4 (moov first: seekable at once everywhere),
// atomically: ffmpeg writes a temp file next to the target, it is fsynced and renamed over `finalPath`. When ffmpeg
// fails or runs too long the fragmented file itself becomes the record: it is valid and plays, only less widely.
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { FfmpegError, runFfmpeg } from "../tools/ffmpeg.ts";
import { syncDir as fsyncDir } from "./journal.ts";

export interface FinalizeOptions {
  /** The ffmpeg binary (see findFfmpeg in ../tools/ffmpeg.ts). */
  ffmpegPath: string;
  /** ffmpeg is killed after this long. Default 5 minutes (a remux runs at ~100x real time). */
  timeoutMs?: number;
  /**
   * False: keep the fragmented file as the record. Debian's ffmpeg 5.1 cannot write VP8 into MP4, so a VP8
   * recording stays as mediabunny wrote it (valid `vp08` MP4 that ffprobe and every player read).
   */
  remux?: boolean;
}

const DEFAULT_TIMEOUT_MS = 5 * 60_000;

export async function finalizeRecord(
  fragmentedPath: string,
  finalPath: string,
  opts: FinalizeOptions,
): Promise<{ fastStart: boolean }> {
  const source = path.resolve(fragmentedPath);
  const target = path.resolve(finalPath);
  const dir = path.dirname(target);
  // Hidden and not .mp4, so nothing that lists records picks up a half-written file.
  const tmp = path.join(dir, `.${path.basename(target)}.${randomUUID()}.tmp`);
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  if (opts.remux === false) {
    if (source !== target) await fs.rename(source, target);
    await fsyncDir(dir);
    return { fastStart: false };
  }
  try {
    try {
      await remux(opts.ffmpegPath, source, tmp, deadline - Date.now(), true);
    } catch (err) {
      // ffmpeg before 4.4 has no setts filter: remux without it (the last Opus packet then gets cut, see below).
      if (!(err instanceof FfmpegError && /setts|bitstream filter/i.test(err.stderr))) throw err;
      await remux(opts.ffmpegPath, source, tmp, deadline - Date.now(), false);
    }
    await fsyncFile(tmp);
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    console.warn(`record ${path.basename(target)}: remux to fast start failed, keeping the fragmented file: ${message(err)}`);
    if (source !== target) await fs.rename(source, target);
    await fsyncDir(dir);
    return { fastStart: false };
  }
  if (source !== target) await fs.rm(source, { force: true });
  await fsyncDir(dir);
  return { fastStart: true };
}

function remux(ffmpeg: string, input: string, output: string, timeoutMs: number, fixLastAudio: boolean): Promise<void> {
  const args = [
    ...["-nostdin", "-hide_banner", "-v", "error", "-y"],
    ...["-i", input, "-map", "0", "-c", "copy", "-map_metadata", "0"],
    // ffmpeg (5.1 at least) reads no durations for Opus packets from a fragmented MP4: the muxer then takes them
    // from the timestamp steps, but the last packet gets 0 and the edit list cuts it. Give packets without a
    // duration 20 ms (what WebRTC sends); only the last one's matters.
    ...(fixLastAudio ? ["-bsf:a", "setts=duration=if(DURATION\\,DURATION\\,960)"] : []),
    // Opus in MP4 was "experimental" in older ffmpeg builds (the bundled 2018 static one among them); harmless on
    // newer ones, where it is a standard mapping.
    ...["-strict", "-2"],
    ...["-movflags", "+faststart", "-f", "mp4", output],
  ];
  return runFfmpeg(ffmpeg, args, timeoutMs);
}

async function fsyncFile(file: string): Promise<void> {
  const h = await fs.open(file, "r+");
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
