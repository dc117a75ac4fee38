// What object storage costs, against a real S3 server: a one-node OpenStack Swift (test/helpers/swift.ts) that this
// part starts and stops itself, so a run needs no bucket anywhere and no prepared file. Three numbers:
//   1. first frame: bench/ttff.ts (Chromium + the Web SDK, stream.play() -> first decoded frame) with
//      vod://sample.mp4 on the sidecar's disk, then with it only in the bucket (empty media folder); bucket ÷ local.
//   2. bucket reads per viewer-minute: 1, then 20 viewers (werift, straight on the sidecar) of one 60 s file, each on
//      a fresh sidecar so the block cache starts cold. From the sidecar's /metrics and, because those count only
//      what goes through the block cache, from Swift's own access log too (every GET it served for the file).
//   3. upload of a 10-minute recording: the sidecar's UploadQueue with the real S3Store and record hook, from
//      enqueue to the hook's POST arriving (the object is in the bucket and checked by then), in 8 MiB parts and,
//      for comparison, in one PUT. The file is the 60 s one repeated (ffmpeg concat, no re-encode), not a publish.
// Prints numbers; asserts nothing. measureStorage() is exported for bench/run.ts.
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { SIDECAR_PATHS, type StopRequest } from "@edge-vod/shared";
import { createRecordHook, type RecordHookEvent } from "../sidecar/src/record/record-hook.ts";
import { PART_BYTES, UploadQueue } from "../sidecar/src/record/upload-queue.ts";
import { S3Store } from "../sidecar/src/store/s3-store.ts";
import { makeFixture } from "../test/helpers/fixtures.ts";
import { videoPayloadTypes } from "../test/helpers/sdp.ts";
import { startSidecar, type SidecarProcess } from "../test/helpers/sidecar-process.ts";
import { signedFetch } from "../test/helpers/signed-fetch.ts";
import { startSwift, type SwiftServer } from "../test/helpers/swift.ts";
import { interceptIncomingRtp, playOnSidecar, testPeer } from "../test/helpers/werift-viewer.ts";
import { isMain } from "./is-main.ts";
import { measureTtff, sampleMediaDir, type Summary, type TtffResult } from "./ttff.ts";

const MEDIA_BUCKET = "bench-media";
const RECORD_BUCKET = "bench-records";
const PREFIX = "vod/";
const LONG_NAME = "long.mp4";
const LONG_SECONDS = 60;
const RECORD_COPIES = 10;
/** The sidecar's block size when S3_BLOCK_KB is not set, as these sidecars run. */
const BLOCK_BYTES = 1024 * 1024;
/** Viewer connects (ICE + DTLS) to the first video packet; 20 at once on two cores take a few seconds. */
const FIRST_PACKET_TIMEOUT_MS = 30_000;

export interface StorageOptions {
  /** Per first-frame series (one cold + warm runs), as bench/ttff.ts. */
  runs?: number;
  /** The many-viewers step (default 20). */
  viewers?: number;
  /** How long the viewers watch (default 30 s of the 60 s file). */
  windowMs?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface ReadStep {
  viewers: number;
  /** Sum over viewers of the media time they received (video RTP timestamps), minutes. */
  viewerMinutes: number;
  /** The sidecar's edge_vod_storage_* counters over the step. */
  metrics: { readBytes: number; blockMisses: number; blockHits: number };
  /** Swift's access log over the step: GETs of the file and the bytes they sent. */
  swift: { gets: number; bytes: number };
  bytesPerViewerMinute: { metrics: number; swift: number };
  getsPerViewerMinute: { misses: number; swift: number };
}

export interface UploadRun {
  partBytes: number;
  parts: number;
  /** enqueue() itself: the file's MD5s and the journal entry, ms. */
  enqueueMs: number;
  /** enqueue() called -> the record hook's POST (with the key) arrived, ms. */
  wallMs: number;
  mbPerSec: number;
  /** The ETag the bucket shows (`-N`: a multipart object of N parts). */
  etag: string;
  /** Swift's log of the object's requests: how many, the proxy's time for the PUTs (whole or parts) and the complete. */
  swift: { requests: number; putMs: number; completeMs: number };
}

export interface StorageResult {
  firstFrame: {
    local: TtffResult;
    bucket: TtffResult;
    /** bucket ÷ local. */
    ratio: { cold: number; all: Summary; warm: Summary };
    /** What the bucket series asked Swift, by `METHOD key` (query names after `?`): what a play costs in requests. */
    bucketRequests: Record<string, number>;
  };
  reads: {
    file: { seconds: number; bytes: number; blockBytes: number };
    one: ReadStep;
    many: ReadStep;
    /** many ÷ one, per viewer-minute (sharing at its best: 1 ÷ viewers). */
    ratio: { bytesMetrics: number; bytesSwift: number; getsSwift: number };
  };
  upload: { file: { seconds: number; bytes: number }; multipart: UploadRun; singlePut: UploadRun };
}

export async function measureStorage(opts: StorageOptions = {}): Promise<StorageResult> {
  const log = opts.log ?? (() => {});
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-storage-"));
  let swift: SwiftServer | undefined;
  try {
    swift = await startSwift();
    const access = new SwiftAccessLog(swift);
    await swift.createBucket(MEDIA_BUCKET);
    await swift.createBucket(RECORD_BUCKET);
    const store = (bucket: string) =>
      new S3Store(swift!.storeConfig(bucket, { timeoutMs: 30_000 }));

    log("storage: first frame, local file");
    const sampleDir = await sampleMediaDir(() => fs.mkdtemp(path.join(tmp, "sample-")));
    await store(MEDIA_BUCKET).put(`${PREFIX}sample.mp4`, await fs.readFile(path.join(sampleDir, "sample.mp4")));
    const ttff = { runs: opts.runs, signal: opts.signal, log };
    const local = await measureTtff({ ...ttff, mediaDir: sampleDir });
    log("storage: first frame, bucket only");
    access.take();
    const bucket = await measureTtff({ ...ttff, mediaDir: await emptyDir(tmp), sidecarEnv: swift.env(MEDIA_BUCKET, PREFIX) });
    const bucketRequests: Record<string, number> = {};
    for (const r of access.take()) {
      const what = `${r.method} ${r.path.slice(MEDIA_BUCKET.length + 2) || "(bucket)"}${r.query ? `?${[...new URLSearchParams(r.query).keys()].join("&")}` : ""}`;
      bucketRequests[what] = (bucketRequests[what] ?? 0) + 1;
    }

    opts.signal?.throwIfAborted();
    const long = await makeLongFile(tmp);
    const longBytes = (await fs.stat(long)).size;
    await store(MEDIA_BUCKET).put(PREFIX + LONG_NAME, await fs.readFile(long));
    const windowMs = opts.windowMs ?? 30_000;
    const step = (n: number) => {
      log(`storage: ${n} viewer(s) of vod://${LONG_NAME} from the bucket for ${windowMs / 1000} s`);
      return readStep(swift!, access, tmp, n, windowMs);
    };
    const one = await step(1);
    opts.signal?.throwIfAborted();
    const many = await step(opts.viewers ?? 20);

    opts.signal?.throwIfAborted();
    const recording = await makeRecording(tmp, long);
    const recordingBytes = (await fs.stat(recording)).size;
    log("storage: uploading the 10-minute recording in parts");
    const multipart = await uploadOnce(store(RECORD_BUCKET), access, tmp, recording, PART_BYTES);
    log("storage: uploading it in one PUT");
    const singlePut = await uploadOnce(store(RECORD_BUCKET), access, tmp, recording, recordingBytes);

    const over = (a: Summary, b: Summary): Summary => ({ median: a.median / b.median, p90: a.p90 / b.p90 });
    return {
      firstFrame: {
        local,
        bucket,
        ratio: {
          cold: bucket.runs[0]!.firstFrameMs / local.runs[0]!.firstFrameMs,
          all: over(bucket.firstFrame, local.firstFrame),
          warm: over(bucket.warm.firstFrame, local.warm.firstFrame),
        },
        bucketRequests,
      },
      reads: {
        file: { seconds: LONG_SECONDS, bytes: longBytes, blockBytes: BLOCK_BYTES },
        one,
        many,
        ratio: {
          bytesMetrics: many.bytesPerViewerMinute.metrics / one.bytesPerViewerMinute.metrics,
          bytesSwift: many.bytesPerViewerMinute.swift / one.bytesPerViewerMinute.swift,
          getsSwift: many.getsPerViewerMinute.swift / one.getsPerViewerMinute.swift,
        },
      },
      upload: { file: { seconds: LONG_SECONDS * RECORD_COPIES, bytes: recordingBytes }, multipart, singlePut },
    };
  } catch (err) {
    // On the error itself: bench/run.ts passes no log.
    if (swift) throw new Error(`${String(err)}\n--- swift output (tail) ---\n${swift.output().slice(-8000)}`, { cause: err });
    throw err;
  } finally {
    await swift?.stop().catch(() => {});
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
}

const emptyDir = (tmp: string) => fs.mkdtemp(path.join(tmp, "media-"));

/** 60 s of the bench's usual picture and sound (bench-file.ts), as-is for browsers, so no prepare runs. */
function makeLongFile(dir: string): Promise<string> {
  return makeFixture(dir, LONG_NAME, [
    ...["-f", "lavfi", "-i", `testsrc2=size=640x360:rate=30:duration=${LONG_SECONDS}`],
    ...["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${LONG_SECONDS}`],
    // One encoder thread: the same bytes every run (x264's frame threads make its rate control racy).
    ...["-c:v", "libx264", "-threads:v", "1", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-bf", "0"],
    ...["-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-b:v", "1M", "-maxrate", "1M", "-bufsize", "1M"],
    ...["-c:a", "libopus", "-b:a", "64k", "-movflags", "+faststart"],
  ]);
}

/** Ten minutes shaped like a finalized recording (H.264 baseline + Opus, moov first): the 60 s file ten times over. */
async function makeRecording(dir: string, clip: string): Promise<string> {
  const list = path.join(dir, "concat.txt");
  await fs.writeFile(list, `file '${clip}'\n`.repeat(RECORD_COPIES));
  return makeFixture(dir, "recording.mp4", ["-f", "concat", "-safe", "0", "-i", list, "-c", "copy", "-movflags", "+faststart"]);
}

async function storageCounters(sidecar: SidecarProcess): Promise<ReadStep["metrics"]> {
  const text = await (await fetch(`${sidecar.url}/metrics`)).text();
  const value = (name: string) => {
    const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
    if (!m) throw new Error(`no ${name} in the sidecar's /metrics`);
    return Number(m[1]);
  };
  return {
    readBytes: value("edge_vod_storage_read_bytes_total"),
    blockMisses: value("edge_vod_storage_block_misses_total"),
    blockHits: value("edge_vod_storage_block_hits_total"),
  };
}

async function readStep(swift: SwiftServer, access: SwiftAccessLog, tmp: string, viewers: number, windowMs: number): Promise<ReadStep> {
  const secret = randomBytes(24).toString("hex");
  const sidecar = await startSidecar({ secret, mediaDir: await emptyDir(tmp), env: swift.env(MEDIA_BUCKET, PREFIX) });
  const watching: Viewer[] = [];
  try {
    const before = await storageCounters(sidecar);
    access.take();
    // Together, as a crowd arriving at once would: the cache's one-fetch-per-block is what is measured.
    const started = await Promise.allSettled(Array.from({ length: viewers }, () => watch(sidecar, `vod://${LONG_NAME}`)));
    for (const s of started) if (s.status === "fulfilled") watching.push(s.value);
    const refused = started.find((s) => s.status === "rejected");
    if (refused) throw new Error(`a viewer did not start: ${String(refused.reason)}`);
    await Promise.all(watching.map((v) => v.firstVideo));
    await new Promise((r) => setTimeout(r, windowMs));
    await Promise.all(watching.map((v) => v.stop()));
    // A read-ahead still in flight at the stop is still read from the bucket.
    await new Promise((r) => setTimeout(r, 1000));
    const after = await storageCounters(sidecar);
    const served = access.take().filter((r) => r.method === "GET" && r.path === `/${MEDIA_BUCKET}/${PREFIX}${LONG_NAME}`);
    const viewerMinutes = watching.reduce((n, v) => n + v.mediaSeconds(), 0) / 60;
    const metrics = {
      readBytes: after.readBytes - before.readBytes,
      blockMisses: after.blockMisses - before.blockMisses,
      blockHits: after.blockHits - before.blockHits,
    };
    const swiftBytes = served.reduce((n, r) => n + r.bytesSent, 0);
    return {
      viewers,
      viewerMinutes,
      metrics,
      swift: { gets: served.length, bytes: swiftBytes },
      bytesPerViewerMinute: { metrics: metrics.readBytes / viewerMinutes, swift: swiftBytes / viewerMinutes },
      getsPerViewerMinute: { misses: metrics.blockMisses / viewerMinutes, swift: served.length / viewerMinutes },
    };
  } catch (err) {
    throw new Error(`${String(err)}\n--- sidecar ---\n${sidecar.output().slice(-8000)}`);
  } finally {
    await Promise.all(watching.map((v) => v.stop().catch(() => {})));
    await sidecar.stop();
  }
}

interface Viewer {
  firstVideo: Promise<void>;
  /** Media time received so far: the span of the video RTP timestamps. */
  mediaSeconds(): number;
  stop(): Promise<void>;
}

/**
 * One viewer on the sidecar that costs this process little: werift does ICE and DTLS, and its RTP is only looked at
 * (header in the clear) and dropped before werift would decrypt it, so 20 of them leave the sidecar its CPU.
 */
async function watch(sidecar: SidecarProcess, name: string): Promise<Viewer> {
  const pc = testPeer();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  let played: Awaited<ReturnType<typeof playOnSidecar>>;
  try {
    played = await playOnSidecar(sidecar, pc, name);
  } catch (err) {
    await pc.close().catch(() => {});
    throw err;
  }
  const videoPts = videoPayloadTypes(played.answerSdp);
  let first: number | undefined;
  let span = 0;
  let seen = () => {};
  const firstVideo = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no video ${FIRST_PACKET_TIMEOUT_MS} ms after the answer`)), FIRST_PACKET_TIMEOUT_MS);
    seen = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  firstVideo.catch(() => undefined);
  interceptIncomingRtp(pc, (data) => {
    if (videoPts.has(data[1]! & 0x7f)) {
      const ts = data.readUInt32BE(4);
      if (first === undefined) {
        first = ts;
        seen();
      }
      // Modulo 2^32: a random first timestamp may wrap during the window.
      const d = (ts - first) >>> 0;
      if (d < 2 ** 31 && d > span) span = d;
    }
    return true;
  });
  let stopped: Promise<void> | undefined;
  return {
    firstVideo,
    mediaSeconds: () => span / 90_000,
    stop: () =>
      (stopped ??= (async () => {
        const body: StopRequest = { sessionRef: played.sessionRef, mediaSessionId: played.mediaSessionId };
        await signedFetch(sidecar.secret, sidecar.url + SIDECAR_PATHS.stop, { method: "POST", body: JSON.stringify(body) }).catch(() => {});
        await pc.close().catch(() => {});
      })()),
  };
}

interface SwiftRequest {
  method: string;
  /** As the S3 client sent it: `/<bucket>/<key>`, without the query. */
  path: string;
  query: string;
  status: number;
  bytesSent: number;
  /** The proxy's own time for the request, ms. */
  ms: number;
}

/**
 * The S3 requests Swift's proxy logged (its access log line per request, on the server output swift.ts keeps),
 * each once by transaction id. swift.ts keeps only the output's tail, so take() is called at least once per step.
 */
class SwiftAccessLog {
  private readonly seen = new Set<string>();
  constructor(private readonly swift: SwiftServer) {}

  /** The requests logged since the last call. */
  take(): SwiftRequest[] {
    const out: SwiftRequest[] = [];
    // client remote time METHOD path protocol status referer agent token bytes-in bytes-out etag txid headers time ...
    const line = /\] proxy: (\S+) \S+ \S+ ([A-Z]+) (\S+) HTTP\/\S+ (\d{3}) \S+ \S+ \S+ \S+ (\S+) \S+ (tx\S+) \S+ (\S+)/g;
    for (const m of this.swift.output().matchAll(line)) {
      // s3api's own subrequests (account and container checks, SLO segment HEADs) log with client "-" and the
      // transaction id of the S3 request they serve.
      const tx = m[6]!;
      if (m[1] === "-" || this.seen.has(tx)) continue;
      this.seen.add(tx);
      // The log quotes the path with its query, `?` included.
      const [where, query = ""] = decodeURIComponent(m[3]!).split("?");
      const n = (v: string) => (v === "-" ? 0 : Number(v));
      out.push({ method: m[2]!, path: where!, query, status: Number(m[4]), bytesSent: n(m[5]!), ms: n(m[7]!) * 1000 });
    }
    return out;
  }
}

/** One upload of `file` as a finished recording through a fresh UploadQueue, timed to its record hook's POST. */
async function uploadOnce(store: S3Store, access: SwiftAccessLog, tmp: string, file: string, partBytes: number): Promise<UploadRun> {
  const dir = await fs.mkdtemp(path.join(tmp, "records-"));
  const recordName = `stream-${randomUUID()}-bench.mp4`;
  // The queue deletes its file once uploaded; the next run needs the original.
  await fs.copyFile(file, path.join(dir, recordName));
  const size = (await fs.stat(file)).size;
  let arrived: (key: string) => void = () => {};
  const posted = new Promise<string>((r) => (arrived = r));
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      res.end("ok");
      const event = JSON.parse(Buffer.concat(chunks).toString()) as RecordHookEvent;
      if (event.recordName === recordName && event.key) arrived(event.key);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/record-hook`;
  const queue = new UploadQueue({ dir, store, prefix: "records/", hook: createRecordHook(hookUrl, randomBytes(24).toString("hex")), partBytes });
  try {
    await queue.start();
    const now = Date.now();
    const event: RecordHookEvent = {
      streamName: "bench",
      recordName,
      mediaSessionId: randomUUID(),
      durationMs: LONG_SECONDS * RECORD_COPIES * 1000,
      bytes: size,
      startTimeMs: now - LONG_SECONDS * RECORD_COPIES * 1000,
      endTimeMs: now,
    };
    access.take();
    const t0 = performance.now();
    await queue.enqueue(event);
    const enqueueMs = performance.now() - t0;
    const key = await withTimeout(posted, 300_000, `no record hook for ${recordName}: ${queue.stats.lastError ?? "no error"}`);
    const wallMs = performance.now() - t0;
    const head = await store.head(key);
    if (!head || head.size !== size) throw new Error(`${key}: the bucket has ${head ? `${head.size} bytes` : "nothing"}, not ${size}`);
    const requests = access.take().filter((r) => r.path === `/${RECORD_BUCKET}/${key}`);
    const ms = (rs: SwiftRequest[]) => rs.reduce((n, r) => n + r.ms, 0);
    const swift = {
      requests: requests.length,
      putMs: ms(requests.filter((r) => r.method === "PUT")),
      completeMs: ms(requests.filter((r) => r.method === "POST" && /(^|&)uploadId=/.test(r.query))),
    };
    return { partBytes, parts: Math.ceil(size / partBytes), enqueueMs, wallMs, mbPerSec: size / 1e6 / (wallMs / 1000), etag: head.etag, swift };
  } finally {
    await queue.stop();
    await new Promise((r) => server.close(r));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Median of stream.play() -> the sidecar's answer over the warm runs: where a bucket open's requests show. */
function warmAnswer(t: TtffResult): number {
  const s = t.runs.slice(1).map((r) => r.answerMs ?? NaN).sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The part's lines for the console, as bench/run.ts prints them. */
export function storageSummary(r: StorageResult): string[] {
  const ff = r.firstFrame;
  const ms = (s: Summary) => `median ${s.median.toFixed(0)} ms, p90 ${s.p90.toFixed(0)} ms`;
  const x = (v: number) => `${v.toFixed(2)}x`;
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;
  const step = (s: ReadStep) =>
    `  ${String(s.viewers).padStart(2)} viewer(s), ${s.viewerMinutes.toFixed(1)} viewer-min: per viewer-minute ${mb(s.bytesPerViewerMinute.metrics)} ` +
    `(/metrics; ${s.metrics.blockMisses} block misses, ${s.getsPerViewerMinute.misses.toFixed(2)}/viewer-min), ` +
    `Swift served ${mb(s.bytesPerViewerMinute.swift)} in ${s.getsPerViewerMinute.swift.toFixed(2)} GETs/viewer-min (${s.swift.gets} GETs, ${mb(s.swift.bytes)})`;
  const up = (name: string, u: UploadRun) =>
    `  ${name}: ${(u.wallMs / 1000).toFixed(2)} s enqueue -> hook (${u.mbPerSec.toFixed(1)} MB/s, ${u.parts} part${u.parts > 1 ? "s" : ""}, ETag ${u.etag}); ` +
    `enqueue's MD5 ${u.enqueueMs.toFixed(0)} ms; Swift: ${u.swift.requests} requests, PUTs ${u.swift.putMs.toFixed(0)} ms` +
    (u.parts > 1 ? `, complete ${u.swift.completeMs.toFixed(0)} ms` : "");
  return [
    `  first frame, local: cold ${ff.local.runs[0]!.firstFrameMs.toFixed(0)} ms, all ${ms(ff.local.firstFrame)}, warm ${ms(ff.local.warm.firstFrame)}`,
    `  first frame, bucket: cold ${ff.bucket.runs[0]!.firstFrameMs.toFixed(0)} ms, all ${ms(ff.bucket.firstFrame)}, warm ${ms(ff.bucket.warm.firstFrame)}`,
    `  bucket ÷ local: cold ${x(ff.ratio.cold)}, median ${x(ff.ratio.all.median)}, p90 ${x(ff.ratio.all.p90)} (warm median ${x(ff.ratio.warm.median)})`,
    `  play answered (warm median): local ${warmAnswer(ff.local).toFixed(0)} ms, bucket ${warmAnswer(ff.bucket).toFixed(0)} ms`,
    `  Swift requests over the ${ff.bucket.runs.length} bucket plays: ${Object.entries(ff.bucketRequests).map(([k, n]) => `${k} x${n}`).join(", ")}`,
    `  reads of a ${r.reads.file.seconds} s ${mb(r.reads.file.bytes)} file from the bucket (${r.reads.file.blockBytes / 2 ** 20} MiB blocks):`,
    step(r.reads.one),
    step(r.reads.many),
    `  ${r.reads.many.viewers} ÷ 1 per viewer-minute: bytes ${r.reads.ratio.bytesMetrics.toFixed(3)} (/metrics), ${r.reads.ratio.bytesSwift.toFixed(3)} (Swift); GETs ${r.reads.ratio.getsSwift.toFixed(3)} (Swift); ideal ${(1 / r.reads.many.viewers).toFixed(3)}`,
    `  upload of a ${r.upload.file.seconds / 60}-minute recording, ${mb(r.upload.file.bytes)}:`,
    up(`${r.upload.multipart.partBytes / 2 ** 20} MiB parts`, r.upload.multipart),
    up("one PUT", r.upload.singlePut),
  ];
}

if (isMain(import.meta.url)) {
  try {
    const r = await measureStorage({
      viewers: Number(process.env.BENCH_STORAGE_VIEWERS ?? 20),
      windowMs: Number(process.env.BENCH_STORAGE_WINDOW_MS ?? 30_000),
      log: (l) => console.error(l),
    });
    console.log(storageSummary(r).join("\n"));
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  }
  // werift's sockets and timers would keep the process alive a while.
  process.exit();
}
