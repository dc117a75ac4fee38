// One recording of a publish: a fragmented MP4 written while the stream runs (a crash loses at most the last
// fragment), then, on any end, named from the template with its end time, remuxed to a fast-start MP4 and
// announced to the operator's hook.
import fs from "node:fs/promises";
import { finalizeRecord } from "../record/finalize.ts";
import { createFmp4Recorder } from "../record/fmp4-recorder.ts";
import { renderRecordName, reserveRecordPath } from "../record/record-name.ts";
import type { RecordHook } from "../record/record-hook.ts";
import type { Recorder, RecorderTracks } from "../record/types.ts";
import { mediaCounters } from "../runtime/media-counters.ts";

export interface RecordingConfig {
  dir: string;
  template: string;
  ffmpegPath: string;
  hook: RecordHook;
  /** How long finalization may take before the fragmented file is kept as the record. */
  finalizeTimeoutMs: number;
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

export class Recording {
  private finishing: Promise<RecordingResult> | undefined;

  private constructor(
    readonly recorder: Recorder,
    private readonly cfg: RecordingConfig,
    private readonly fields: RecordingFields,
    private readonly path: string,
    /** The name while recording: end-time placeholders are still empty in it. */
    private readonly provisionalName: string,
  ) {}

  /** The file's name while it is recorded (end-time placeholders still empty), as recorder/find_all lists it. */
  get fileName(): string {
    return this.provisionalName;
  }

  static async start(cfg: RecordingConfig, fields: RecordingFields, tracks: RecorderTracks): Promise<Recording> {
    const startTimeMs = Date.now();
    const name = renderRecordName(cfg.template, { ...fields, startTimeMs, videoCodec: "H264", audioCodec: tracks.audio ? "opus" : "" });
    const reserved = await reserveRecordPath(cfg.dir, name);
    const recorder = createFmp4Recorder({ path: reserved.path, tracks });
    mediaCounters.recordingsActive++;
    return new Recording(recorder, cfg, fields, reserved.path, reserved.name);
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
      return { recordName: undefined };
    }
    const finalName = renderRecordName(this.cfg.template, {
      ...this.fields,
      startTimeMs: info.startTimeMs,
      endTimeMs: info.endTimeMs,
      durationMs: info.durationMs,
      videoCodec: "H264",
      audioCodec: info.audioFrames > 0 ? "opus" : "",
    });
    let target = { path: this.path, name: this.provisionalName };
    if (finalName !== this.provisionalName) {
      target = await reserveRecordPath(this.cfg.dir, finalName).catch((err: unknown) => {
        console.warn(`record ${this.provisionalName}: cannot take the final name ${finalName}: ${String(err)}`);
        return target;
      });
    }
    const { fastStart } = await finalizeRecord(this.path, target.path, {
      ffmpegPath: this.cfg.ffmpegPath,
      timeoutMs: this.cfg.finalizeTimeoutMs,
    });
    const bytes = await fs.stat(target.path).then((st) => st.size, () => info.bytes);
    this.cfg.hook({
      streamName: this.fields.streamName,
      recordName: target.name,
      mediaSessionId: this.fields.mediaSessionId,
      durationMs: info.durationMs,
      bytes,
      startTimeMs: info.startTimeMs,
      endTimeMs: info.endTimeMs,
    });
    console.log(
      `record ${target.name}: ${info.videoFrames} video + ${info.audioFrames} audio frames, ${(info.durationMs / 1000).toFixed(1)} s, ${bytes} bytes${fastStart ? "" : " (fragmented: remux failed)"}`,
    );
    return { recordName: target.name };
  }
}
