// One recording of a publish: a fragmented MP4 written while the stream runs (a crash loses at most the last
// fragment), then, on any end, named from the template with its end time, remuxed to a fast-start MP4 and
// announced to the operator's hook, or, with a bucket, queued for upload (the hook is told once it is there).
//
// A journal entry lives from the start of a recording to its hand-over (hook or upload queue), so that a sidecar
// killed while it records, or while it finalizes, finishes the recording when it starts again (recoverRecordings).
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { finalizeRecord } from "../record/finalize.ts";
import { createFmp4Recorder } from "../record/fmp4-recorder.ts";
import { Journal } from "../record/journal.ts";
import { renderRecordName, reserveRecordPath } from "../record/record-name.ts";
import type { RecordHook, RecordHookEvent } from "../record/record-hook.ts";
import type { UploadQueue } from "../record/upload-queue.ts";
import type { Recorder, RecorderTracks } from "../record/types.ts";
import { codecLabel } from "../rtp/video-codec.ts";
import { openMp4 } from "../mp4/reader.ts";
import { LocalDiskAccess } from "../files/local-disk.ts";
import { mediaCounters } from "../runtime/media-counters.ts";

export interface RecordingConfig {
  dir: string;
  template: string;
  ffmpegPath: string;
  hook: RecordHook;
  /** How long finalization may take before the fragmented file is kept as the record. */
  finalizeTimeoutMs: number;
  /** With a bucket: finished recordings go here, and the hook waits for their upload. */
  uploads?: UploadQueue;
  /**
   * Called once a recording waits for its upload, before its name is given to anyone: the edge must know where it
   * is before a viewer asks for it (the heartbeat). Bounded by the caller.
   */
  announce?: () => Promise<void>;
  /** A name the bucket (or a pending upload) already has is taken, as a file on disk is. */
  taken?: (name: string) => Promise<boolean>;
}

export interface RecordingFields {
  streamName: string;
  mediaSessionId: string;
  login: string;
}

export interface RecordingResult {
  /** Bare file name in the records folder; undefined when nothing was recorded (the empty file is removed). */
  recordName: string | undefined;
}

const InProgress = z.object({
  /** The fragmented file being written (its provisional name), in the records folder. */
  file: z.string().min(1),
  template: z.string(),
  fields: z.object({ streamName: z.string(), mediaSessionId: z.string(), login: z.string() }),
  startTimeMs: z.number(),
  audio: z.boolean(),
  /** What the video is; absent in entries written before VP8 was recorded (H.264). */
  videoCodec: z.enum(["h264", "vp8"]).optional(),
  /** Set once finalizing began: the name it goes to. */
  target: z.string().optional(),
  /** The record hook's delivery id (without a bucket): the same if a restart announces it again. */
  delivery: z.string().optional(),
});
type InProgress = z.infer<typeof InProgress>;

export function recordJournal(dir: string): Journal<InProgress> {
  return new Journal<InProgress>(path.join(dir, ".edge-vod", "recording"));
}

export class Recording {
  private finishing: Promise<RecordingResult> | undefined;

  private constructor(
    readonly recorder: Recorder,
    private readonly cfg: RecordingConfig,
    private readonly fields: RecordingFields,
    private readonly path: string,
    /** The name while recording: end-time placeholders are still empty in it. */
    private readonly provisionalName: string,
    private readonly entry: InProgress,
  ) {}

  /** The file's name while it is recorded (end-time placeholders still empty), as recorder/find_all lists it. */
  get fileName(): string {
    return this.provisionalName;
  }

  static async start(cfg: RecordingConfig, fields: RecordingFields, tracks: RecorderTracks): Promise<Recording> {
    const startTimeMs = Date.now();
    const videoCodec = tracks.videoCodec ?? "h264";
    const name = renderRecordName(cfg.template, { ...fields, startTimeMs, videoCodec: codecLabel(videoCodec), audioCodec: tracks.audio ? "opus" : "" });
    const reserved = await reserveRecordPath(cfg.dir, name, cfg.taken);
    const entry: InProgress = {
      file: reserved.name,
      template: cfg.template,
      fields,
      startTimeMs,
      audio: tracks.audio !== undefined,
      videoCodec,
      delivery: randomUUID(),
    };
    try {
      await recordJournal(cfg.dir).put(Journal.idOf(reserved.name), entry);
    } catch (err) {
      await fs.rm(reserved.path, { force: true });
      throw err;
    }
    const recorder = createFmp4Recorder({ path: reserved.path, tracks });
    mediaCounters.recordingsActive++;
    return new Recording(recorder, cfg, fields, reserved.path, reserved.name, entry);
  }

  /** Closes, names, finalizes and announces the file. Idempotent; never throws. */
  finish(): Promise<RecordingResult> {
    if (!this.finishing) mediaCounters.recordingsActive--;
    this.finishing ??= this.doFinish().catch((err: unknown) => {
      console.error(`record ${this.provisionalName}: finishing failed; the fragmented file stays:`, err);
      return { recordName: this.provisionalName };
    });
    return this.finishing;
  }

  private async doFinish(): Promise<RecordingResult> {
    const info = await this.recorder.finish();
    if (info.videoFrames === 0 && info.audioFrames === 0) {
      await fs.rm(this.path, { force: true });
      await recordJournal(this.cfg.dir).remove(Journal.idOf(this.provisionalName));
      return { recordName: undefined };
    }
    const recordName = await handOver(this.cfg, this.entry, {
      startTimeMs: info.startTimeMs,
      endTimeMs: info.endTimeMs,
      durationMs: info.durationMs,
      audio: info.audioFrames > 0,
    });
    console.log(`record ${recordName}: ${info.videoFrames} video + ${info.audioFrames} audio frames, ${(info.durationMs / 1000).toFixed(1)} s`);
    return { recordName };
  }
}

/**
 * The end of every recording, finished in the run that made it or recovered after a crash: the final name, the
 * fast-start remux, then the hook or the upload queue; the journal entry goes last, so a crash anywhere before
 * makes the next start do it again (every step can be redone).
 */
async function handOver(
  cfg: RecordingConfig,
  entry: InProgress,
  times: { startTimeMs: number; endTimeMs: number; durationMs: number; audio: boolean },
): Promise<string> {
  const journal = recordJournal(cfg.dir);
  const id = Journal.idOf(entry.file);
  const source = path.join(cfg.dir, entry.file);
  let target = entry.target;
  // Queued before a crash cut the hand-over short: the upload's own journal carries it on.
  if (target !== undefined && cfg.uploads?.has(target)) {
    await journal.remove(id);
    return target;
  }
  if (target === undefined) {
    const finalName = renderRecordName(entry.template, {
      ...entry.fields,
      startTimeMs: times.startTimeMs,
      endTimeMs: times.endTimeMs,
      durationMs: times.durationMs,
      videoCodec: codecLabel(entry.videoCodec ?? "h264"),
      audioCodec: times.audio ? "opus" : "",
    });
    target = entry.file;
    if (finalName !== entry.file) {
      target = await reserveRecordPath(cfg.dir, finalName, cfg.taken).then(
        (r) => r.name,
        (err: unknown) => {
          console.warn(`record ${entry.file}: cannot take the final name ${finalName}: ${String(err)}`);
          return entry.file;
        },
      );
    }
    await journal.put(id, { ...entry, target });
  }
  const targetPath = path.join(cfg.dir, target);
  // The source gone means an earlier finalize got as far as its rename: the target is complete.
  if (target === entry.file || (await exists(source))) {
    const remux = entry.videoCodec !== "vp8";
    const { fastStart } = await finalizeRecord(source, targetPath, { ffmpegPath: cfg.ffmpegPath, timeoutMs: cfg.finalizeTimeoutMs, remux });
    if (!fastStart && remux) console.warn(`record ${target}: kept fragmented (remux failed)`);
  }
  const bytes = await fs.stat(targetPath).then((st) => st.size);
  const event: RecordHookEvent = {
    streamName: entry.fields.streamName,
    recordName: target,
    mediaSessionId: entry.fields.mediaSessionId,
    durationMs: times.durationMs,
    bytes,
    startTimeMs: times.startTimeMs,
    endTimeMs: times.endTimeMs,
  };
  if (cfg.uploads) await cfg.uploads.enqueue(event);
  else void cfg.hook(event, entry.delivery !== undefined ? { delivery: entry.delivery } : {});
  await journal.remove(id);
  await cfg.announce?.();
  return target;
}

/**
 * Recordings a previous run of this sidecar did not finish (killed while recording or finalizing): each is
 * finalized from what reached the disk (every complete fragment: at most the last second is lost), named, and
 * announced or queued for upload, as if its publish had ended when its last fragment was written.
 */
export async function recoverRecordings(cfg: RecordingConfig): Promise<string[]> {
  const recovered: string[] = [];
  for (const { id, value } of await recordJournal(cfg.dir).list()) {
    const parsed = InProgress.safeParse(value);
    if (!parsed.success) {
      console.error(`record recovery: journal entry ${id} is not one, skipped`);
      continue;
    }
    const entry = parsed.data;
    try {
      const source = path.join(cfg.dir, entry.file);
      const times = await recordedTimes(cfg.dir, entry);
      if (!times) {
        // Nothing usable reached the disk (killed before the first fragment): nothing to keep.
        if (entry.target === undefined) await fs.rm(source, { force: true });
        await recordJournal(cfg.dir).remove(id);
        console.warn(`record recovery: ${entry.file} holds no media; removed`);
        continue;
      }
      const name = await handOver(cfg, entry, times);
      console.log(`record recovery: ${entry.file} finished as ${name} (${(times.durationMs / 1000).toFixed(1)} s)`);
      recovered.push(name);
    } catch (err) {
      console.error(`record recovery: ${entry.file}: ${String(err)}; left for the next start`);
    }
  }
  return recovered;
}

/** Start, end and length of what a cut-off recording holds, from its own index; undefined when it holds nothing. */
async function recordedTimes(
  dir: string,
  entry: InProgress,
): Promise<{ startTimeMs: number; endTimeMs: number; durationMs: number; audio: boolean } | undefined> {
  const name = entry.target !== undefined && !(await exists(path.join(dir, entry.file))) ? entry.target : entry.file;
  let file;
  try {
    file = await new LocalDiskAccess(dir).open(name);
  } catch {
    return undefined;
  }
  try {
    const index = await openMp4(file).catch(() => undefined);
    if (!index || (!index.video?.samples.count && !index.audio?.samples.count)) return undefined;
    const durationMs = Math.round(index.durationSec * 1000);
    return { startTimeMs: entry.startTimeMs, endTimeMs: entry.startTimeMs + durationMs, durationMs, audio: (index.audio?.samples.count ?? 0) > 0 };
  } finally {
    await file.close();
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}
