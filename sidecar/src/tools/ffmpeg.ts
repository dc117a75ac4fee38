// Running ffmpeg: the AAC → Opus transcode and the recording remux both go through here.
import { spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { existsSync } from "node:fs";
import os from "node:os";

/** Enough of ffmpeg's stderr to say why it failed. */
const STDERR_KEEP = 4096;

/** The ffmpeg to run: the configured one, else Debian's (faster than bundled static builds), else whatever PATH has. */
export function findFfmpeg(configured?: string): string {
  if (configured) return configured;
  return existsSync("/usr/bin/ffmpeg") ? "/usr/bin/ffmpeg" : "ffmpeg";
}

export class FfmpegError extends Error {
  constructor(
    message: string,
    /** What ffmpeg printed; empty when it could not start or was killed at the time limit. */
    readonly stderr: string,
  ) {
    super(message);
  }
}

export interface RunOptions {
  /** Scheduling niceness (0-19): long transcodes yield the CPU to the real-time send path. */
  nice?: number;
  /** Kills ffmpeg when aborted (the sidecar shutting down must not leave transcodes running). */
  signal?: AbortSignal;
  /**
   * Reads what ffmpeg writes to its standard output (`pipe:1`); the run ends when both are done. If it rejects,
   * ffmpeg is killed and the run rejects with its error.
   */
  stdout?: (out: Readable) => Promise<void>;
}

/** Runs ffmpeg to completion; rejects with an FfmpegError when it cannot start, fails, or outlives `timeoutMs`. */
export async function runFfmpeg(ffmpeg: string, args: readonly string[], timeoutMs: number, opts: RunOptions = {}): Promise<void> {
  let consumed: Promise<void> | undefined;
  let consumerError: unknown;
  await new Promise<void>((resolve, reject) => {
    const child = spawn(ffmpeg, args, { stdio: ["ignore", opts.stdout ? "pipe" : "ignore", "pipe"], signal: opts.signal, killSignal: "SIGKILL" });
    if (opts.stdout && child.stdout) {
      consumed = opts.stdout(child.stdout).catch((err: unknown) => {
        consumerError ??= err;
        child.kill("SIGKILL");
      });
    }
    if (opts.nice && child.pid !== undefined) {
      try {
        os.setPriority(child.pid, opts.nice);
      } catch {
        // Not allowed or already gone: it runs at normal priority, or not at all (reported below).
      }
    }
    // Our own timer rather than spawn's `timeout`: that one is only cleared on 'exit', so a spawn that fails
    // (ENOENT) would keep the process alive until it fires.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, Math.max(0, timeoutMs));
    let stderr = "";
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      if (stderr.length < STDERR_KEEP) stderr += chunk.slice(0, STDERR_KEEP - stderr.length);
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      if (err.name === "AbortError") return reject(new FfmpegError("ffmpeg stopped: shutting down", ""));
      reject(new FfmpegError(`cannot run ${ffmpeg}: ${err.message}`, ""));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const why = timedOut ? `killed after the ${timeoutMs} ms time limit` : signal ? `killed by ${signal}` : `exit code ${code}`;
      reject(new FfmpegError(`ffmpeg ${why}: ${stderr.trim()}`, timedOut ? "" : stderr));
    });
  }).catch(async (err: unknown) => {
    await consumed;
    // What the reader of the output ran into is why ffmpeg was killed.
    throw consumerError ?? err;
  });
  await consumed;
  if (consumerError) throw consumerError;
}
