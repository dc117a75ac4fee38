// Records a published H.264 (or VP8) + Opus stream to a fragmented MP4, written as it goes: after a crash (even SIGKILL) the
// file holds every fragment that was complete, and it plays as it is. mediabunny does the muxing.
//
// Timeline (see rtp-clock.ts): the file starts (time 0) at the first video keyframe. The first samples wait until
// every track has an RTCP sender report (at most `syncWaitMs`), so audio and video are placed by the sender's own
// clock; when the reports are late, by arrival time instead, and that choice stays for the whole file (stats.sync).
// Audio from before the first keyframe is dropped: both tracks then start together (within one 20 ms Opus frame),
// which every player gets right; audio starting ahead of video leaves the video's start to edit lists, which MSE
// and several players handle poorly. After the start each track's times come from its RTP timestamps only.
//
// Fragments: mediabunny closes a fragment only at a video keyframe, once it is `fragmentMs` long. Publishers send
// keyframes rarely (Chromium only when asked), so the recorder asks (onKeyframeNeeded, at most every 500 ms) as soon
// as a fragment has run `fragmentMs` without one: a crash loses about one fragment. The open fragment is in memory;
// everything before it is on disk: the file target below writes each flushed piece straight to the file handle
// (mediabunny's own file target would buffer 16 MiB).
//
// Audio that stops (track removed, sender gone quiet) while video goes on is filled with Opus silence: mediabunny
// interleaves the tracks and would otherwise hold every later video sample in memory, unwritten.
import fs from "node:fs/promises";
import path from "node:path";
import {
  EncodedAudioPacketSource,
  EncodedPacket,
  EncodedVideoPacketSource,
  Mp4OutputFormat,
  Output,
  StreamTarget,
  type StreamTargetChunk,
} from "mediabunny";
import type { RtpPacket } from "werift";
import {
  avcCodecString,
  buildAvcDecoderConfig,
  H264Depacketizer,
  parseSps,
  RtpReorderBuffer,
  type AccessUnit,
  type FrameDepacketizer,
  type ReorderOptions,
} from "./h264-depacketizer.ts";
import { Vp8Depacketizer, type Vp8Frame } from "../rtp/vp8-rtp.ts";
import { RtpClock, TrackTimeline, type SyncSource } from "./rtp-clock.ts";
import type { Recorder, RecorderTracks, RecordFileInfo, RecordStats } from "./types.ts";
import { mediaCounters } from "../runtime/media-counters.ts";

const VIDEO_RATE = 90_000;
const AUDIO_RATE = 48_000;
const KEYFRAME_REQUEST_INTERVAL_MS = 500;
/** Audio silent on the wire this long while video goes on is filled with silence frames. */
const AUDIO_STALL_MS = 1000;
/** The fill stops this far behind the video, so audio that resumes is not cut by the filler. */
const AUDIO_FILL_HEADROOM_TICKS = AUDIO_RATE / 10;
/** 20 ms of silence: TOC config 31 (CELT fullband 20 ms), mono, one frame, then the frame. */
const OPUS_SILENCE = Uint8Array.of(0xf8, 0xff, 0xfe);
const OPUS_SILENCE_TICKS = 960;

/** What the recorder needs of a file handle (a node:fs/promises FileHandle is one; tests pass failing ones). */
export interface RecordFileHandle {
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  truncate(len?: number): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface FragmentInfo {
  /** Fragments complete on disk so far. */
  fragments: number;
  /** Bytes on disk (the end of this fragment). */
  bytes: number;
  /** Samples on disk so far, per track. */
  videoSamples: number;
  audioSamples: number;
}

export interface Fmp4RecorderOptions {
  path: string;
  tracks: RecorderTracks;
  /** Target fragment length (ms), and so the most a crash loses. Default 1000. */
  fragmentMs?: number;
  /** Clock in ms (default: epoch ms from the monotonic clock). Arrival times, waits and rate limits use it. */
  now?: () => number;
  /** Longest wait (ms from the first packet) for sender reports before aligning the tracks by arrival. Default 1500. */
  syncWaitMs?: number;
  /** Reorder window of each track. Default 10 packets / 50 ms. */
  reorder?: ReorderOptions;
  /** Opens the file for writing (default: create or truncate, parent folders made). */
  openFile?: (path: string) => Promise<RecordFileHandle>;
  /** Called each time a fragment is completely on disk. */
  onFragment?: (info: FragmentInfo) => void;
}

export interface Fmp4RecordStats extends RecordStats {
  /** Fragments complete on disk. */
  fragments: number;
  /** Video frames not written: damaged by loss, undecodable until the next keyframe, or before the first one. */
  videoFramesDropped: number;
  videoPacketsLost: number;
  audioPacketsLost: number;
  /** Audio packets not written: from before the first video keyframe, or out of order. */
  audioFramesDropped: number;
  /** 20 ms silence frames written where audio stopped arriving. */
  silenceFrames: number;
  keyframeRequests: number;
  /** How the tracks were aligned; undefined until the first sample is placed. */
  sync: SyncSource | undefined;
}

export interface Fmp4RecordFileInfo extends RecordFileInfo, Fmp4RecordStats {
  /** Set when writing failed: the file holds what was written before. */
  error: Error | undefined;
}

export interface Fmp4Recorder extends Recorder {
  readonly stats: Fmp4RecordStats;
  finish(): Promise<Fmp4RecordFileInfo>;
  /**
   * Resolves once every sample pushed so far has reached the muxer and its writes in flight have ended (the open
   * fragment stays in memory until it closes). For tests and orderly hand-overs; recording never needs it.
   */
  whenIdle(): Promise<void>;
}

export function createFmp4Recorder(opts: Fmp4RecorderOptions): Fmp4Recorder {
  return new Fmp4RecorderImpl(opts);
}

/** A whole frame from either codec's depacketizer; `config` (mediabunny's decoder config) is set on keyframes. */
interface VideoUnit {
  readonly data: Uint8Array;
  readonly timestamp: number;
  readonly keyframe: boolean;
  readonly arrivalMs: number;
  readonly config: object | undefined;
}

interface PendingVideo {
  unit: VideoUnit;
  ext: number;
}

interface PendingAudio {
  payload: Uint8Array;
  ext: number;
  arrivalMs: number;
}

interface VideoState {
  readonly depack: FrameDepacketizer;
  readonly clock: RtpClock;
  readonly timeline: TrackTimeline;
  readonly source: EncodedVideoPacketSource;
  pending: PendingVideo[];
  configured: boolean;
  lastTicks: number;
  lastDelta: number;
  lastKeyTicks: number;
  /** The latest frame, waiting for the next one to know its duration. */
  held: { data: Uint8Array; key: boolean; ticks: number; meta: object | undefined } | undefined;
  frames: number;
  /** Frames the recorder itself dropped (the depacketizer counts its own). */
  dropped: number;
}

interface AudioState {
  readonly reorder: RtpReorderBuffer;
  readonly clock: RtpClock;
  readonly timeline: TrackTimeline;
  readonly source: EncodedAudioPacketSource;
  readonly channels: number;
  pending: PendingAudio[];
  configured: boolean;
  lastTicks: number;
  /** End of the last written sample (48 kHz ticks on the file timeline). */
  endTicks: number;
  lastPushMs: number;
  frames: number;
  silence: number;
  dropped: number;
}

interface QueuedPacket {
  video: boolean;
  packet: EncodedPacket;
  meta: object | undefined;
}

class Fmp4RecorderImpl implements Fmp4Recorder {
  onKeyframeNeeded: (() => void) | undefined = undefined;
  onError: ((err: Error) => void) | undefined = undefined;

  private readonly path: string;
  private readonly now: () => number;
  private readonly fragmentTicks: number;
  private readonly syncWaitMs: number;
  private readonly onFragment: ((info: FragmentInfo) => void) | undefined;
  private readonly output: Output;
  private readonly video: VideoState | undefined;
  private readonly audio: AudioState | undefined;
  private readonly outputStarted: Promise<void>;
  private readonly opened: Promise<RecordFileHandle>;

  private accepting = true;
  private error: Error | undefined;
  private failure: Promise<void> | undefined;
  private finished: Promise<Fmp4RecordFileInfo> | undefined;

  private firstPacketMs = Number.NaN;
  private sync: SyncSource | undefined;
  /** Wall clock (ms, by `sync`) of file time 0. */
  private originWallMs = Number.NaN;
  private originClock: RtpClock | undefined;
  private originExt = 0;
  private syncedAtMs = Number.NaN;
  private lastKeyframeRequestMs = Number.NEGATIVE_INFINITY;
  private keyframeRequests = 0;

  private readonly queue: QueuedPacket[] = [];
  private pumpTask: Promise<void> | undefined;

  // File side.
  private handle: RecordFileHandle | undefined;
  private handleClosed: Promise<void> | undefined;
  private writing: Promise<void> | undefined;
  /** End of the last write that completed: the file is whole up to here. */
  private goodEnd = 0;
  private fragments = 0;
  private videoTrackId = 0;
  private audioTrackId = 0;
  private videoOnDisk = 0;
  private audioOnDisk = 0;

  constructor(opts: Fmp4RecorderOptions) {
    this.path = path.resolve(opts.path);
    this.now = opts.now ?? (() => performance.timeOrigin + performance.now());
    const fragmentMs = opts.fragmentMs ?? 1000;
    this.fragmentTicks = (fragmentMs * VIDEO_RATE) / 1000;
    this.syncWaitMs = opts.syncWaitMs ?? 1500;
    this.onFragment = opts.onFragment;
    // Before the target: the stream calls start() from its constructor.
    this.opened = (opts.openFile ?? openForWriting)(this.path);

    const target = new StreamTarget(
      new WritableStream<StreamTargetChunk>({
        start: () => this.opened.then((h) => void (this.handle = h)),
        write: (chunk) => this.write(chunk),
        close: () => this.closeHandle(true),
        abort: () => this.closeHandle(false),
      }),
      // Not chunked: every flush (one per fragment) goes to the file as it is.
      { chunked: false },
    );
    this.output = new Output({
      // A little under fragmentMs: a keyframe arriving right on time must close the fragment, not the one after.
      format: new Mp4OutputFormat({ fastStart: "fragmented", minimumFragmentDuration: (fragmentMs * 0.9) / 1000 }),
      target,
    });

    const reorder = opts.reorder ?? {};
    let trackId = 0;
    if (opts.tracks.video) {
      const vp8 = opts.tracks.videoCodec === "vp8";
      const source = new EncodedVideoPacketSource(vp8 ? "vp8" : "avc");
      // frameRate 90000 makes the track timescale 90 kHz: RTP timestamps go in exactly.
      this.output.addVideoTrack(source, { frameRate: VIDEO_RATE });
      this.videoTrackId = ++trackId;
      const onKeyframeNeeded = () => this.requestKeyframe();
      this.video = {
        depack: vp8
          ? new Vp8Depacketizer({ ...reorder, onFrame: (f) => this.onVideoUnit(vp8Unit(f)), onKeyframeNeeded })
          : new H264Depacketizer({ ...reorder, onAccessUnit: (unit) => this.onVideoUnit(h264Unit(unit)), onKeyframeNeeded }),
        clock: new RtpClock(VIDEO_RATE),
        timeline: new TrackTimeline(VIDEO_RATE),
        source,
        pending: [],
        configured: false,
        lastTicks: -1,
        lastDelta: VIDEO_RATE / 30,
        lastKeyTicks: 0,
        held: undefined,
        frames: 0,
        dropped: 0,
      };
    }
    if (opts.tracks.audio) {
      const source = new EncodedAudioPacketSource("opus");
      this.output.addAudioTrack(source);
      this.audioTrackId = ++trackId;
      this.audio = {
        reorder: new RtpReorderBuffer((p, ts, _m, arrival) => this.onAudioPacket(p, ts, arrival), reorder),
        clock: new RtpClock(AUDIO_RATE),
        timeline: new TrackTimeline(AUDIO_RATE),
        source,
        channels: Math.max(1, Math.min(2, opts.tracks.audio.channels || 2)),
        pending: [],
        configured: false,
        lastTicks: -1,
        endTicks: 0,
        lastPushMs: Number.NaN,
        frames: 0,
        silence: 0,
        dropped: 0,
      };
    }

    // Failures surface through fail(); these catches only keep the promises from being unhandled.
    this.opened.catch((err: unknown) => this.fail(err));
    this.outputStarted = this.output.start().catch((err: unknown) => this.fail(err));
  }

  get stats(): Fmp4RecordStats {
    const v = this.video;
    const a = this.audio;
    const vd = v?.depack.stats;
    const videoEnd = v && v.lastTicks >= 0 ? ((v.lastTicks + v.lastDelta) * 1000) / VIDEO_RATE : 0;
    const audioEnd = a && a.lastTicks >= 0 ? (a.endTicks * 1000) / AUDIO_RATE : 0;
    return {
      videoFrames: v?.frames ?? 0,
      audioFrames: a?.frames ?? 0,
      bytes: this.goodEnd,
      durationMs: Math.max(videoEnd, audioEnd),
      fragments: this.fragments,
      videoFramesDropped: (vd?.dropped ?? 0) + (v?.dropped ?? 0),
      videoPacketsLost: vd?.packets.lost ?? 0,
      audioPacketsLost: a?.reorder.stats.lost ?? 0,
      audioFramesDropped: a?.dropped ?? 0,
      silenceFrames: a?.silence ?? 0,
      keyframeRequests: this.keyframeRequests,
      sync: this.sync,
    };
  }

  pushVideo(rtp: RtpPacket): void {
    const v = this.video;
    if (!v || !this.accepting) return;
    const t = this.now();
    if (Number.isNaN(this.firstPacketMs)) this.firstPacketMs = t;
    v.depack.push(rtp, t);
    if (this.sync === undefined) this.maybeStart(t, false);
  }

  pushAudio(rtp: RtpPacket): void {
    const a = this.audio;
    if (!a || !this.accepting) return;
    const t = this.now();
    if (Number.isNaN(this.firstPacketMs)) this.firstPacketMs = t;
    a.lastPushMs = t;
    a.reorder.push(rtp, t);
    if (this.sync === undefined) this.maybeStart(t, false);
  }

  senderReport(kind: "video" | "audio", ntpTimestamp: bigint, rtpTimestamp: number): void {
    const track = kind === "video" ? this.video : this.audio;
    if (!track || !this.accepting) return;
    track.clock.senderReport(ntpTimestamp, rtpTimestamp);
    if (this.sync === undefined && !Number.isNaN(this.firstPacketMs)) this.maybeStart(this.now(), false);
  }

  finish(): Promise<Fmp4RecordFileInfo> {
    this.finished ??= this.doFinish();
    return this.finished;
  }

  async whenIdle(): Promise<void> {
    for (;;) {
      if (this.pumpTask) {
        await this.pumpTask;
        continue;
      }
      const writing = this.writing;
      await writing?.catch(() => undefined);
      // A write queued behind that one starts within the same turn; a macrotask later it is visible.
      await new Promise((resolve) => setImmediate(resolve));
      if (this.pumpTask === undefined && this.writing === writing) return;
    }
  }

  // ---- media in ----

  private onVideoUnit(unit: VideoUnit): void {
    const v = this.video!;
    const ext = v.clock.unwrap(unit.timestamp);
    v.clock.observeArrival(ext, unit.arrivalMs);
    if (this.sync === undefined) {
      // The depacketizer starts at an IDR, so pending[0] is a keyframe.
      v.pending.push({ unit, ext });
      return;
    }
    this.writeVideo(unit, ext);
  }

  private onAudioPacket(payload: Uint8Array, ts: number, arrivalMs: number): void {
    const a = this.audio!;
    if (payload.length === 0) return;
    const ext = a.clock.unwrap(ts);
    a.clock.observeArrival(ext, arrivalMs);
    if (this.sync === undefined) {
      a.pending.push({ payload, ext, arrivalMs });
      // Before the first keyframe only the last moments of audio can still be used: keep memory bounded.
      const keepTicks = ((this.syncWaitMs + 1000) * AUDIO_RATE) / 1000;
      let drop = 0;
      while (drop < a.pending.length && ext - a.pending[drop]!.ext > keepTicks) drop++;
      if (drop > 0) {
        a.pending.splice(0, drop);
        a.dropped += drop;
      }
      return;
    }
    this.writeAudio(payload, ext, arrivalMs);
  }

  /** Places the first samples once the tracks can be aligned (or `force`, at finish). */
  private maybeStart(t: number, force: boolean): void {
    const v = this.video;
    const a = this.audio;
    if (v ? v.pending.length === 0 : !a || a.pending.length === 0) return;
    const reports = (!v || v.clock.hasSenderReport) && (!a || a.clock.hasSenderReport);
    if (!reports && !force && t - this.firstPacketMs < this.syncWaitMs) return;
    const sync: SyncSource = reports ? "sr" : "arrival";
    this.originClock = v ? v.clock : a!.clock;
    this.originExt = v ? v.pending[0]!.ext : a!.pending[0]!.ext;
    this.originWallMs = this.originClock.wallMs(this.originExt, sync);
    this.sync = sync;
    this.syncedAtMs = t;
    if (v) {
      const pending = v.pending;
      v.pending = [];
      for (const p of pending) this.writeVideo(p.unit, p.ext);
    }
    if (a) {
      const pending = a.pending;
      a.pending = [];
      for (const p of pending) this.writeAudio(p.payload, p.ext, p.arrivalMs);
    }
  }

  private writeVideo(unit: VideoUnit, ext: number): void {
    const v = this.video!;
    if (this.error) return;
    let ticks: number;
    let meta: object | undefined;
    if (!v.configured) {
      const config = unit.keyframe ? unit.config : undefined;
      if (!config) {
        v.dropped++;
        v.depack.requireKeyframe();
        this.requestKeyframe();
        return;
      }
      ticks = Math.max(0, Math.round((v.clock.wallMs(ext, this.sync!) - this.originWallMs) * (VIDEO_RATE / 1000)));
      v.timeline.anchor(ext, ticks, unit.arrivalMs);
      v.configured = true;
      meta = { decoderConfig: config };
    } else {
      ticks = v.timeline.place(ext, unit.arrivalMs);
      if (ticks <= v.lastTicks) {
        // Not after the previous frame (a sender glitch): it cannot be placed, and frames referring to it cannot decode.
        v.dropped++;
        v.depack.requireKeyframe();
        this.requestKeyframe();
        return;
      }
      v.lastDelta = ticks - v.lastTicks;
    }
    v.lastTicks = ticks;
    v.frames++;
    // Each frame goes to the muxer when the next one arrives, with its exact duration: mediabunny keeps the duration
    // given for the last frame before a keyframe, so a guess there would leave a hole after a loss (the gap must
    // stay the previous frame's, until the next frame).
    this.releaseHeldVideo(ticks);
    v.held = { data: unit.data, key: unit.keyframe, ticks, meta };
    if (unit.keyframe) v.lastKeyTicks = ticks;
    else if (ticks - v.lastKeyTicks >= this.fragmentTicks) this.requestKeyframe();
    this.fillAudioGap(ticks);
  }

  /** Hands the held frame to the muxer, lasting until `nextTicks` (or the last frame interval at the end). */
  private releaseHeldVideo(nextTicks: number | undefined): void {
    const v = this.video!;
    const h = v.held;
    if (!h) return;
    v.held = undefined;
    const duration = nextTicks !== undefined ? nextTicks - h.ticks : v.lastDelta;
    this.enqueue(true, new EncodedPacket(h.data, h.key ? "key" : "delta", h.ticks / VIDEO_RATE, duration / VIDEO_RATE), h.meta);
  }

  private writeAudio(payload: Uint8Array, ext: number, arrivalMs: number): void {
    const a = this.audio!;
    if (!a.timeline.anchored) {
      const ticks = Math.round((a.clock.wallMs(ext, this.sync!) - this.originWallMs) * (AUDIO_RATE / 1000));
      // Before the file's start (the first video keyframe), or no way to place it yet.
      if (!(ticks >= 0)) {
        a.dropped++;
        return;
      }
      a.timeline.anchor(ext, ticks, arrivalMs);
    }
    const ticks = a.timeline.place(ext, arrivalMs);
    if (ticks < a.endTicks || ticks <= a.lastTicks) {
      a.dropped++; // out of order, or covered by silence filled in while it was missing
      return;
    }
    const duration = opusPacketTicks(payload) || OPUS_SILENCE_TICKS;
    this.addAudio(payload, ticks, duration);
    a.frames++;
  }

  private addAudio(payload: Uint8Array, ticks: number, duration: number): void {
    const a = this.audio!;
    let meta: object | undefined;
    if (!a.configured) {
      a.configured = true;
      meta = {
        decoderConfig: { codec: "opus", numberOfChannels: a.channels, sampleRate: AUDIO_RATE, description: opusHead(a.channels) },
      };
    }
    a.lastTicks = ticks;
    a.endTicks = ticks + duration;
    this.enqueue(false, new EncodedPacket(payload, "key", ticks / AUDIO_RATE, duration / AUDIO_RATE), meta);
  }

  /** Silence up to (a little before) video time `videoTicks` when audio has stopped arriving. */
  private fillAudioGap(videoTicks: number): void {
    const a = this.audio;
    if (!a) return;
    const t = this.now();
    const quietSince = Number.isNaN(a.lastPushMs) ? this.syncedAtMs : a.lastPushMs;
    if (t - quietSince < AUDIO_STALL_MS) return;
    const until = Math.floor((videoTicks * AUDIO_RATE) / VIDEO_RATE) - AUDIO_FILL_HEADROOM_TICKS;
    while (a.endTicks + OPUS_SILENCE_TICKS <= until) {
      this.addAudio(OPUS_SILENCE, a.endTicks, OPUS_SILENCE_TICKS);
      a.silence++;
    }
  }

  private requestKeyframe(): void {
    if (!this.accepting) return;
    const t = this.now();
    if (t - this.lastKeyframeRequestMs < KEYFRAME_REQUEST_INTERVAL_MS) return;
    this.lastKeyframeRequestMs = t;
    this.keyframeRequests++;
    try {
      this.onKeyframeNeeded?.();
    } catch {
      // the owner's problem; recording goes on
    }
  }

  // ---- muxer ----

  private enqueue(video: boolean, packet: EncodedPacket, meta: object | undefined): void {
    if (this.error) return;
    this.queue.push({ video, packet, meta });
    this.pumpTask ??= this.pump();
  }

  /** Feeds mediabunny one packet at a time, in order (its add() must be awaited). */
  private async pump(): Promise<void> {
    try {
      await this.outputStarted;
      for (;;) {
        const next = this.queue.shift();
        if (!next || this.error) break;
        if (next.video) await this.video!.source.add(next.packet, next.meta as never);
        else await this.audio!.source.add(next.packet, next.meta as never);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      // Runs in the same turn as the loop's last check: a packet queued after this starts a new pump.
      this.pumpTask = undefined;
    }
  }

  private async doFinish(): Promise<Fmp4RecordFileInfo> {
    if (this.accepting) {
      this.video?.depack.flush();
      this.audio?.reorder.flush();
      if (this.sync === undefined) this.maybeStart(this.now(), true);
      if (this.video && !this.error) this.releaseHeldVideo(undefined);
      this.accepting = false;
    }
    while (this.pumpTask) await this.pumpTask;
    if (!this.error) {
      try {
        await this.outputStarted;
        if (!this.error) await this.output.finalize();
      } catch (err) {
        this.fail(err);
      }
    }
    if (this.failure) await this.failure;
    await this.closeHandle(!this.error);
    const stats = this.stats;
    const startTimeMs = this.startWallMs();
    return {
      ...stats,
      path: this.path,
      startTimeMs,
      endTimeMs: startTimeMs + stats.durationMs,
      error: this.error,
    };
  }

  /** Wall clock of file time 0: by sender report when the origin track has one (even if it came too late to align). */
  private startWallMs(): number {
    const clock = this.originClock;
    if (!clock || this.sync === undefined) return Number.isNaN(this.firstPacketMs) ? this.now() : this.firstPacketMs;
    return clock.hasSenderReport ? clock.wallMs(this.originExt, "sr") : this.originWallMs;
  }

  private fail(err: unknown): void {
    if (this.error) return;
    this.error = err instanceof Error ? err : new Error(String(err));
    this.accepting = false;
    this.queue.length = 0;
    try {
      this.onError?.(this.error);
    } catch {
      // ignore
    }
    this.failure = (async () => {
      // Let a write in flight end, then cut off whatever a failed write left half done.
      await this.writing?.catch(() => undefined);
      await this.output.cancel().catch(() => undefined);
      const h = this.handle;
      if (h && !this.handleClosed) await h.truncate(this.goodEnd).catch(() => undefined);
      await this.closeHandle(false);
    })();
  }

  // ---- file ----

  private async write(chunk: StreamTargetChunk): Promise<void> {
    if (this.error) throw this.error;
    const h = this.handle;
    if (!h) throw new Error("record file not open");
    const task = (async () => {
      const { data, position } = chunk;
      for (let done = 0; done < data.byteLength; ) {
        const { bytesWritten } = await h.write(data, done, data.byteLength - done, position + done);
        if (!(bytesWritten > 0)) throw new Error(`${this.path}: write made no progress`);
        done += bytesWritten;
        mediaCounters.recordBytes += bytesWritten;
      }
      this.goodEnd = Math.max(this.goodEnd, position + data.byteLength);
      this.countFragments(data);
    })();
    this.writing = task;
    try {
      await task;
    } catch (err) {
      this.fail(err);
      throw err;
    }
  }

  /** Counts the moof boxes (and their samples) in a piece just written. Pieces start and end on box boundaries. */
  private countFragments(data: Uint8Array): void {
    let found = false;
    forEachBox(data, 0, data.length, (type, start, end) => {
      if (type !== "moof") return;
      found = true;
      this.fragments++;
      forEachBox(data, start + 8, end, (t, s, e) => {
        if (t !== "traf") return;
        let trackId = 0;
        let samples = 0;
        forEachBox(data, s + 8, e, (bt, bs) => {
          if (bt === "tfhd") trackId = readU32(data, bs + 12);
          else if (bt === "trun") samples += readU32(data, bs + 12);
        });
        if (trackId === this.videoTrackId) this.videoOnDisk += samples;
        else if (trackId === this.audioTrackId) this.audioOnDisk += samples;
      });
    });
    if (found) {
      try {
        this.onFragment?.({
          fragments: this.fragments,
          bytes: this.goodEnd,
          videoSamples: this.videoOnDisk,
          audioSamples: this.audioOnDisk,
        });
      } catch {
        // ignore
      }
    }
  }

  private closeHandle(sync: boolean): Promise<void> {
    if (this.handleClosed) return this.handleClosed;
    const h = this.handle;
    this.handleClosed = (async () => {
      if (!h) {
        // Never opened (or still opening): close it once it is.
        const late = await this.opened.catch(() => undefined);
        await late?.close().catch(() => undefined);
        return;
      }
      if (sync) await h.sync().catch(() => undefined);
      await h.close().catch(() => undefined);
    })();
    return this.handleClosed;
  }
}

async function openForWriting(file: string): Promise<RecordFileHandle> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  return fs.open(file, "w");
}

function h264Unit(unit: AccessUnit): VideoUnit {
  const { data, timestamp, keyframe, arrivalMs } = unit;
  return { data, timestamp, keyframe, arrivalMs, config: keyframe ? decoderConfig(unit) : undefined };
}

function vp8Unit(f: Vp8Frame): VideoUnit {
  const config = f.keyframe && f.width && f.height ? { codec: "vp8", codedWidth: f.width, codedHeight: f.height } : undefined;
  return { data: f.data, timestamp: f.timestamp, keyframe: f.keyframe, arrivalMs: f.arrivalMs, config };
}

/** mediabunny decoder config for the first keyframe: codec string, picture size and avcC from its SPS/PPS. */
function decoderConfig(unit: AccessUnit): object | undefined {
  const { sps, pps } = unit;
  if (!sps || !pps) return undefined;
  const info = parseSps(sps);
  if (!info) return undefined;
  return {
    codec: avcCodecString(sps),
    codedWidth: info.width,
    codedHeight: info.height,
    description: buildAvcDecoderConfig(sps, [pps]),
  };
}

/**
 * OpusHead (RFC 7845 5.1) for the dOps box. Pre-skip 0: an RTP stream has no encoder delay to trim (a receiver plays
 * from the first packet), and mediabunny would otherwise write 3840 (80 ms), cutting the start and moving audio early.
 */
function opusHead(channels: number): Uint8Array {
  const head = new Uint8Array(19);
  head.set([0x4f, 0x70, 0x75, 0x73, 0x48, 0x65, 0x61, 0x64]); // "OpusHead"
  const view = new DataView(head.buffer);
  head[8] = 1; // version
  head[9] = channels;
  view.setUint16(10, 0, true); // pre-skip
  view.setUint32(12, AUDIO_RATE, true); // input sample rate (informational)
  view.setInt16(16, 0, true); // output gain
  head[18] = 0; // channel mapping family 0: mono or stereo
  return head;
}

/** Duration of an Opus packet in 48 kHz ticks from its TOC byte (RFC 6716 3.1); 0 when malformed. */
export function opusPacketTicks(packet: Uint8Array): number {
  if (packet.length === 0) return 0;
  const toc = packet[0]!;
  const config = toc >> 3;
  let frame: number;
  if (config < 12) frame = [480, 960, 1920, 2880][config & 3]!;
  else if (config < 16) frame = config & 1 ? 960 : 480;
  else frame = [120, 240, 480, 960][config & 3]!;
  const code = toc & 3;
  let frames = 1;
  if (code === 1 || code === 2) frames = 2;
  else if (code === 3) {
    if (packet.length < 2) return 0;
    frames = packet[1]! & 0x3f;
  }
  const ticks = frame * frames;
  return ticks > 0 && ticks <= 5760 ? ticks : 0;
}

function forEachBox(data: Uint8Array, from: number, to: number, fn: (type: string, start: number, end: number) => void): void {
  for (let o = from; o + 8 <= to; ) {
    let size = readU32(data, o);
    let header = 8;
    if (size === 1) {
      if (o + 16 > to) return;
      size = readU32(data, o + 8) * 2 ** 32 + readU32(data, o + 12);
      header = 16;
    } else if (size === 0) {
      size = to - o;
    }
    if (size < header || o + size > to) return;
    fn(String.fromCharCode(data[o + 4]!, data[o + 5]!, data[o + 6]!, data[o + 7]!), o, o + size);
    o += size;
  }
}

function readU32(data: Uint8Array, at: number): number {
  return ((data[at]! << 24) | (data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!) >>> 0;
}
