// The per-viewer reader of a personal `vod://` playback. Behind the PacketSource interface so that a shared
// vod-live source, seek/pause and object-storage files can plug in without touching the viewer.
import { Info } from "@edge-vod/shared";
import { MediaError, type RandomAccessFile } from "../files/file-access.ts";
import type { AudioTrack, VideoTrack } from "../mp4/types.ts";
import { packetizeH264 } from "../rtp/h264-packetizer.ts";

export interface MediaPacket {
  kind: "video" | "audio";
  /** RTP timestamp from 0 at the start of playback: 90 kHz for video (presentation time), 48 kHz for Opus. */
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
  /** Media time in ms from 0 at which this packet is due: its sample's decode time. */
  dueMs: number;
  /** True on the first packet of a keyframe access unit. */
  keyframeStart: boolean;
}

export interface PacketSource {
  /** Appends to `out` every buffered packet due at or before `untilMs`; synchronous, never waits for I/O. */
  take(untilMs: number, out: MediaPacket[]): number;
  /** True once every packet of the file has been taken. */
  readonly ended: boolean;
  /** Resolves when the first window is buffered. */
  ready(): Promise<void>;
  /** Drops video until the next keyframe (on PLI); audio continues. */
  skipVideoToNextKeyframe(): void;
  onError: ((err: MediaError) => void) | undefined;
  close(): Promise<void>;
}

export interface TrackInput<T> {
  file: RandomAccessFile;
  track: T;
}

interface Cursor {
  kind: "video" | "audio";
  file: RandomAccessFile;
  track: VideoTrack | AudioTrack;
  i: number;
  firstDts: number;
  firstPts: number;
}

const dueOf = (c: Cursor) => ((c.track.samples.dts[c.i]! - c.firstDts) * 1000) / c.track.timescale;

class VodPacketSource implements PacketSource {
  private readonly queue: MediaPacket[] = [];
  private head = 0;
  private takenUntil = 0;
  private filling = false;
  private eof = false;
  private closed = false;
  private skipVideo = false;
  private readonly cursors: Cursor[] = [];
  private readonly firstWindow: Promise<void>;
  onError: ((err: MediaError) => void) | undefined;

  constructor(
    video: TrackInput<VideoTrack> | undefined,
    audio: TrackInput<AudioTrack> | undefined,
    private readonly prefetchMs: number,
    private readonly maxPayload: number,
  ) {
    for (const [kind, input] of [["video", video], ["audio", audio]] as const) {
      if (!input || input.track.samples.count === 0) continue;
      const s = input.track.samples;
      let firstPts = Infinity;
      for (let i = 0; i < Math.min(s.count, 64); i++) firstPts = Math.min(firstPts, s.dts[i]! + s.ctsOffset[i]!);
      this.cursors.push({ kind, file: input.file, track: input.track, i: 0, firstDts: s.dts[0]!, firstPts });
    }
    this.firstWindow = this.fill();
  }

  get ended(): boolean {
    return this.eof && this.head >= this.queue.length;
  }

  ready(): Promise<void> {
    return this.firstWindow;
  }

  take(untilMs: number, out: MediaPacket[]): number {
    let n = 0;
    const q = this.queue;
    while (this.head < q.length && q[this.head]!.dueMs <= untilMs) {
      const p = q[this.head++]!;
      if (p.kind === "video" && this.skipVideo) {
        if (!p.keyframeStart) continue;
        this.skipVideo = false;
      }
      out.push(p);
      n++;
    }
    // Compact now and then instead of shifting per packet.
    if (this.head > 1024) {
      q.splice(0, this.head);
      this.head = 0;
    }
    this.takenUntil = untilMs;
    if (!this.eof) void this.fill();
    return n;
  }

  skipVideoToNextKeyframe(): void {
    this.skipVideo = true;
  }

  private async fill(): Promise<void> {
    if (this.filling || this.closed) return;
    this.filling = true;
    try {
      for (;;) {
        let next: Cursor | undefined;
        for (const c of this.cursors) {
          if (c.i >= c.track.samples.count) continue;
          if (!next || dueOf(c) < dueOf(next)) next = c;
        }
        if (!next) {
          this.eof = true;
          return;
        }
        if (dueOf(next) > this.takenUntil + this.prefetchMs) return;
        await this.readSample(next);
        if (this.closed) return;
      }
    } catch (err) {
      this.eof = true;
      this.queue.length = this.head;
      const e = err instanceof MediaError ? err : new MediaError(Info.FAILED_TO_READ_FILE, String(err));
      this.onError?.(e);
    } finally {
      this.filling = false;
    }
  }

  private async readSample(c: Cursor): Promise<void> {
    const s = c.track.samples;
    const i = c.i++;
    const size = s.size[i]!;
    const buf = new Uint8Array(size);
    const got = await c.file.read(buf, 0, size, s.offset[i]!);
    if (got !== size) throw new MediaError(Info.FAILED_TO_READ_FILE, `short read of sample ${i} of ${c.file.name}`);
    const dueMs = dueOf({ ...c, i });
    if (c.kind === "audio") {
      const timestamp = Math.round(((s.dts[i]! - c.firstDts) * 48000) / c.track.timescale);
      this.queue.push({ kind: "audio", timestamp, marker: false, payload: buf, dueMs, keyframeStart: false });
      return;
    }
    const track = c.track as VideoTrack;
    const avc = track.avc!;
    const timestamp = Math.round(((s.dts[i]! + s.ctsOffset[i]! - c.firstPts) * 90000) / track.timescale);
    const keyframe = s.sync[i] === 1;
    let first = true;
    try {
      packetizeH264(buf, { nalLengthSize: avc.nalLengthSize, sps: avc.sps, pps: avc.pps, keyframe, maxPayload: this.maxPayload }, (payload, marker) => {
        this.queue.push({ kind: "video", timestamp, marker, payload, dueMs, keyframeStart: keyframe && first });
        first = false;
      });
    } catch (err) {
      throw new MediaError(Info.GOT_EXCEPTION_WHILE_STREAMING_FILE, String(err));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue.length = 0;
    this.head = 0;
  }
}

export function createVodPacketSource(opts: {
  video?: TrackInput<VideoTrack>;
  audio?: TrackInput<AudioTrack>;
  prefetchMs?: number;
  maxPayload?: number;
}): PacketSource {
  return new VodPacketSource(opts.video, opts.audio, opts.prefetchMs ?? 1500, opts.maxPayload ?? 1188);
}
