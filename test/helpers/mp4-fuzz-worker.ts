// Worker thread of the MP4 fuzz test: makes each mutant and puts it through what the sidecar does when a viewer
// opens a file (index, classification, packet source reading and packetizing the first seconds). It runs apart from
// the test so that the test can stop it if a mutant hangs it (a synchronous loop never lets a timer fire) or it runs
// out of its heap limit, and still name the mutant.
import { parentPort, workerData } from "node:worker_threads";
import { setImmediate as tick } from "node:timers/promises";
import v8 from "node:v8";
import vm from "node:vm";
import { Info } from "@edge-vod/shared";
import { MediaError, type RandomAccessFile } from "../../sidecar/src/files/file-access.ts";
import { classify } from "../../sidecar/src/mp4/classify.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { createVodPacketSource, type MediaPacket } from "../../sidecar/src/vod/packet-source.ts";
import { Mutator, mutantSeed, namedMutants, type Mutant } from "./mp4-mutate.ts";

export interface FuzzJob {
  seeds: { name: string; bytes: Uint8Array }[];
  runSeed: number;
  /** Random mutants after the named ones. */
  random: number;
  /** First job to run (after a worker was stopped on a hang, the next one starts past it). */
  from: number;
}

export type FuzzMessage =
  | { t: "plan"; total: number }
  | { t: "begin"; i: number; desc: string }
  | { t: "end"; i: number; outcome: string; crash?: string; heapUsed: number }
  | { t: "done"; heapBefore: number; heapAfter: number; rssBefore: number; rssAfter: number };

/** Infos the opener and the packet source may answer a bad file with: each is a clear FAILED. */
export const ALLOWED_INFOS: readonly string[] = [Info.FILE_HAS_WRONG_FORMAT, Info.FAILED_TO_READ_FILE, Info.GOT_EXCEPTION_WHILE_STREAMING_FILE];

/**
 * A real collection before each heap reading, so the numbers are what is still held, not garbage. tsx's loader rules
 * out --expose-gc on the command line; the flag set at run time gives a gc() to contexts made afterwards.
 */
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

/** Media time taken from the packet source per mutant, ms. */
const PLAY_MS = 4000;

/** A file in memory that checks its callers' arguments as strictly as a file handle would, and throws plainly if not. */
class MemoryFile implements RandomAccessFile {
  readonly size: number;
  readonly identity: string;
  constructor(
    readonly name: string,
    private readonly bytes: Uint8Array,
  ) {
    this.size = bytes.length;
    this.identity = `mem-${name}`;
  }

  /** Set when a caller asked for an impossible read: a bug in the caller, whatever error it turns that into. */
  misuse: string | undefined;

  async read(target: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    for (const [k, v] of Object.entries({ offset, length, position })) {
      if (!Number.isSafeInteger(v) || v < 0) this.misused(`read with ${k} ${v}`);
    }
    if (offset + length > target.length) this.misused(`read of ${length} bytes at ${offset} into ${target.length}`);
    const n = Math.max(0, Math.min(length, this.size - position));
    target.set(this.bytes.subarray(position, position + n), offset);
    return n;
  }

  async close(): Promise<void> {}

  private misused(what: string): never {
    this.misuse ??= what;
    throw new RangeError(what);
  }
}

/**
 * A MediaError with an allowed info is a clean failure, unless it only wraps an error from our own code: the
 * packet source reports anything it catches as "Failed to read file: <Error>: ...".
 */
function crashOf(err: unknown): string | undefined {
  if (!(err instanceof MediaError)) return err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err);
  if (!ALLOWED_INFOS.includes(err.info)) return `MediaError with unexpected info: ${err.message}`;
  const detail = err.message.slice(err.info.length + 2);
  if (/^(TypeError|RangeError|ReferenceError|SyntaxError|Error)\b/.test(detail)) return `wrapped ${detail}`;
  return undefined;
}

async function openAndPlay(m: Mutant, name: string): Promise<{ outcome: string; crash?: string }> {
  const file = new MemoryFile(name, m.bytes);
  let outcome = "ok";
  try {
    const index = await openMp4(file);
    const c = classify(index);
    const video = index.video?.avc ? { file, track: index.video } : undefined;
    const audio = index.audio ? { file, track: index.audio } : undefined;
    if (!video && !audio) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `no playable track (${c.reasons.join(", ")})`);
    const source = createVodPacketSource({ ...(video ? { video } : {}), ...(audio ? { audio } : {}) });
    let failure: MediaError | undefined;
    source.onError = (err) => (failure ??= err);
    await source.ready();
    const out: MediaPacket[] = [];
    for (let ms = 250; ms <= PLAY_MS && !source.ended && !failure; ms += 250) {
      source.take(ms, out);
      // Reads from memory resolve at once: a turn of the event loop finishes a refill.
      await tick();
    }
    // Then the rest at once: every playback must end (a sample with no time would keep it open forever).
    let sent = out.length;
    for (let k = 0; k < 10_000 && !source.ended && !failure; k++) {
      sent += source.take(Infinity, []);
      await tick();
    }
    const ended = source.ended;
    await source.close();
    if (failure) throw failure;
    if (!ended) return { outcome: "crash", crash: `the packet source never ends (${sent} packets taken)` };
    outcome = `ok, ${out.length} packets`;
  } catch (err) {
    if (file.misuse) return { outcome: "crash", crash: `impossible read: ${file.misuse}: ${String(err)}` };
    const crash = crashOf(err);
    if (crash) return { outcome: "crash", crash };
    outcome = (err as MediaError).info;
  }
  return { outcome };
}

async function main(job: FuzzJob): Promise<void> {
  const port = parentPort!;
  const post = (m: FuzzMessage) => port.postMessage(m);
  let current = -1;
  const stray: string[] = [];
  process.on("unhandledRejection", (reason) => stray.push(`unhandled rejection: ${String(reason)}`));
  process.on("uncaughtException", (err) => stray.push(`uncaught exception: ${String(err)}`));

  const named: { seed: string; m: Mutant }[] = [];
  for (const s of job.seeds) for (const m of namedMutants(s.bytes)) named.push({ seed: s.name, m });
  const total = named.length + job.random;
  post({ t: "plan", total });
  gc();
  const before = process.memoryUsage();
  for (let i = job.from; i < total; i++) {
    current = i;
    let seedName: string;
    let m: Mutant;
    if (i < named.length) {
      seedName = named[i]!.seed;
      m = named[i]!.m;
    } else {
      const k = i - named.length;
      const s = job.seeds[k % job.seeds.length]!;
      seedName = s.name;
      m = new Mutator(mutantSeed(job.runSeed, k)).mutate(s.bytes);
    }
    const desc = `#${i} ${seedName}: ${m.desc}`;
    post({ t: "begin", i, desc });
    const r = await openAndPlay(m, seedName);
    // Give stray rejections of this mutant a turn to surface before the next one starts.
    await tick();
    const crash = [r.crash, ...stray.splice(0)].filter(Boolean).join("\n") || undefined;
    post({ t: "end", i: current, outcome: r.outcome, ...(crash ? { crash } : {}), heapUsed: process.memoryUsage().heapUsed });
  }
  gc();
  const after = process.memoryUsage();
  post({ t: "done", heapBefore: before.heapUsed, heapAfter: after.heapUsed, rssBefore: before.rss, rssAfter: after.rss });
}

void main(workerData as FuzzJob);
