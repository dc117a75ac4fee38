// The per-viewer reader of a personal `vod://` playback. Behind the PacketSource interface so that a shared
// vod-live source, seek/pause and object-storage files can plug in without touching the viewer.
//
// Reading runs ahead of sending in batches: tracks are refilled to `prefetchMs` ahead of the last take once less than
// half of that is left, and a refill reads the samples it wants as a few byte spans, bridging small gaps (ffmpeg
// interleaves audio and video sample by sample; tracks in the same file are read together). So a viewer costs a
// read or two per file per second instead of one per sample, and `take` (driven by the one scheduler timer) never
// waits for I/O. Each track keeps its own queue and `take` merges them by due time; a packet is released only once
// the other track can no longer produce an earlier one, so a slow read holds the other track back rather than
// sending out of order.
//
// The same reader feeds a shared `vod-live://` broadcast (see live-source.ts): it can start at a position (video from
// the first keyframe at or after it) and loop, each pass continuing the media clock by the file's period, so
// timestamps keep increasing and the browser's decoder never sees a jump.
import { Info } from "@edge-vod/shared";
import Denque from "denque";
import { MediaError, type RandomAccessFile } from "../files/file-access.ts";
import type { AudioTrack, SampleTable, VideoTrack } from "../mp4/types.ts";
import { LateError } from "./late-error.ts";
import { DEFAULT_MAX_PAYLOAD, H264Packetizer, type PayloadSink } from "../rtp/h264-packetizer.ts";
import type { VideoPacketizer } from "../rtp/video-codec.ts";
import { Vp8Packetizer } from "../rtp/vp8-rtp.ts";
import type { PacketStore } from "./packet-store.ts";

export interface MediaPacket {
  kind: "video" | "audio";
  /** RTP timestamp from 0 at the start of playback: 90 kHz for video (presentation time), 48 kHz for Opus. */
  timestamp: number;
  marker: boolean;
  /** Read-only: views on a shared read buffer, kept alive by the packet. */
  payload: Uint8Array;
  /** Media time in ms (from 0) at which this packet is due to be sent: decode time of its sample. */
  dueMs: number;
  /** True on the first packet of a keyframe access unit. */
  keyframeStart: boolean;
}

export interface PacketSource {
  /** Moves into `out` (appending) every buffered packet with dueMs <= untilMs, in send order; returns how many. Synchronous: never waits for I/O. */
  take(untilMs: number, out: MediaPacket[]): number;
  /** True once every packet of the file has been taken (and at once after a failure or close). */
  readonly ended: boolean;
  /** Resolves when the first window is buffered, or reading stopped (failure, close); never rejects. */
  ready(): Promise<void>;
  /** Video: drop video packets until the next keyframe access unit (used on PLI). Audio continues. */
  skipVideoToNextKeyframe(): void;
  /**
   * Called once if reading fails mid-playback (the player then fails the stream with err.info). A failure before a
   * handler is set is delivered, on a microtask, when one is.
   */
  onError: ((err: MediaError) => void) | undefined;
  /** Stops reading and drops the buffer; resolves once no read is in flight. Does not close the files. */
  close(): Promise<void>;
}

/** Where video starts for a start position or a seek: the keyframe at or before it (shown by catching up), or after. */
export type KeyframeSide = "before" | "after";

/** A source that can move: a personal `vod://` playback, or a vod-live joiner's catch-up. */
export interface SeekableSource extends PacketSource {
  /**
   * Drops what is buffered and goes on from `positionMs`: audio from there, video from the keyframe on `side` of it.
   * ready() then resolves once the new position's first window is buffered.
   */
  seek(positionMs: number, side: KeyframeSide): void;
  /** Due time of the first video packet after the last start position or seek; undefined until it is known. */
  readonly videoStartMs: number | undefined;
  /** Length of one pass over the file, seconds: 0 while a track is still being written. */
  readonly periodSec: number;
}

export interface TrackInput<T> {
  file: RandomAccessFile;
  track: T;
  /** Set while the track's file is still being written (a copy being prepared): its sample table grows in place. */
  growth?: Growth;
}

/** The state of a file still being written; the source polls it on every take (no callbacks on the media path). */
export interface Growth {
  /** True once the table holds every sample: only then may the track end (or loop). */
  readonly complete: boolean;
  /** Set if writing failed: the playback fails with it. */
  readonly error: MediaError | undefined;
}

export interface VodPacketSourceOptions {
  video?: TrackInput<VideoTrack>;
  audio?: TrackInput<AudioTrack>;
  /** Media read ahead of the last take, ms. */
  prefetchMs?: number;
  /** Largest RTP payload for video, bytes. */
  maxPayload?: number;
  /** Media time to start at, ms (default 0): video from a keyframe next to it (`startSide`), audio from it. */
  startMs?: number;
  /** Which keyframe video starts from at startMs (default "after": no frame before the position goes out). */
  startSide?: KeyframeSide;
  /** Start over at the end of the file instead of ending; media time keeps running across passes. */
  loop?: boolean;
  /** Packetized samples shared with the other playbacks of the file (see packet-store.ts). */
  store?: PacketStore;
}

export const DEFAULT_PREFETCH_MS = 1500;
/** A track is refilled once less than this share of the window is left: fewer, larger reads. */
const REFILL_AT = 0.5;
/** Sample bytes one track takes into one refill round (a larger single sample is still read whole). */
const MAX_BATCH_BYTES = 1 << 20;
/** Bytes of other data a read may bridge: one read beats two up to about here; beyond, only as much as it carries. */
const BRIDGE_BYTES = 16 << 10;

interface Lane {
  readonly kind: "video" | "audio";
  readonly file: RandomAccessFile;
  readonly samples: SampleTable;
  readonly timescale: number;
  /** Where the track's media time 0 sits on the file's presentation timeline, seconds (its edit list). */
  readonly shiftSec: number;
  /**
   * The playback's time 0 in this track's ticks: the earliest presentation time of any track, so that tracks keep
   * the offsets the file gives them (audio starting after video) and share one clock. Set once all lanes exist.
   */
  zero: number;
  readonly packetizer: VideoPacketizer | undefined;
  readonly growth: Growth | undefined;
  /** A start position not reached yet because the track's samples there are still being written. */
  seekMs: number | undefined;
  /** The pending start position's video starts at the keyframe before it, not after. */
  seekBack: boolean;
  /** Next sample not yet in `queue`. */
  next: number;
  /** Pass over the file that `next` belongs to (looping); its media times are offset by pass x period. */
  pass: number;
  /** pass x period in ms, in 90 kHz and in 48 kHz ticks: what the pass adds to due times and RTP timestamps. */
  passMs: number;
  pass90k: number;
  pass48k: number;
  /**
   * Packets read and not taken yet. A ring that keeps its slots: an array refilled every second and cut from the front
   * reallocated its backing store each time, and those lived long enough to reach the old generation of every viewer.
   */
  readonly queue: Denque<MediaPacket>;
}

/** Tracks read from the same file, refilled together so that interleaved samples come in one read. */
interface FileGroup {
  readonly file: RandomAccessFile;
  readonly lanes: Lane[];
  busy: boolean;
  /** The running (or last) fill; never rejects. */
  filling: Promise<void>;
}

/** A sample of a refill round found in the packet store. */
interface Stored {
  readonly lane: Lane;
  readonly packets: readonly MediaPacket[];
}

/** One wanted sample of a refill round; `data` is set once its span is read. */
interface Want {
  readonly lane: Lane;
  readonly index: number;
  readonly offset: number;
  readonly size: number;
  data: Uint8Array;
}

const EMPTY = new Uint8Array(0);

const dueOf = (lane: Lane, i: number): number => lane.passMs + ((lane.samples.dts[i]! - lane.zero) * 1000) / lane.timescale;

/** Due time of the end of the lane's last sample known so far. */
function knownEndMs(lane: Lane): number {
  const s = lane.samples;
  if (s.count === 0) return -Infinity;
  const last = s.count - 1;
  return lane.passMs + ((s.dts[last]! + s.duration[last]! - lane.zero) * 1000) / lane.timescale;
}

/**
 * Due time of the earliest packet this lane has not queued yet; Infinity when all are queued. A track still being
 * written may yet produce anything after its last known sample.
 */
function horizonOf(lane: Lane): number {
  // Catching up from the keyframe before a position: anything up to it may still come first.
  if (lane.seekMs !== undefined) return lane.seekBack ? -Infinity : lane.seekMs;
  if (lane.next < lane.samples.count) return dueOf(lane, lane.next);
  return lane.growth && !lane.growth.complete ? knownEndMs(lane) : Infinity;
}

/** Whether the lane has unread samples due by `untilMs` (explicit count check: `take(Infinity)` is allowed). */
const needsRead = (lane: Lane, untilMs: number): boolean => lane.next < lane.samples.count && dueOf(lane, lane.next) <= untilMs;

function groupNeedsRead(group: FileGroup, untilMs: number): boolean {
  for (const lane of group.lanes) if (needsRead(lane, untilMs)) return true;
  return false;
}

class VodPacketSource implements SeekableSource {
  private readonly video: Lane | undefined;
  private readonly audio: Lane | undefined;
  private readonly lanes: Lane[] = [];
  private readonly groups: FileGroup[] = [];
  private readonly prefetchMs: number;
  private readonly loop: boolean;
  /** Length of one pass over the file, seconds: the longest track's end (0 until every track is complete). */
  private period = 0;
  private firstWindow: Promise<void>;
  /** Bumped by every seek: a read round started before it is dropped when it completes. */
  private generation = 0;
  private videoStart: number | undefined;
  private takenUntil = 0;
  private stopped = false;
  private skipVideo = false;
  private readonly failure = new LateError("vod packet source");
  private readonly store: PacketStore | undefined;

  // State of the video sample being packetized, read by `emitVideo` (one closure per source, not per sample).
  private curTimestamp = 0;
  private curDueMs = 0;
  private curKeyframe = false;
  /** The packets of the sample just read, before they are queued (and stored). */
  private readonly sample: MediaPacket[] = [];
  private readonly emitVideo: PayloadSink = (payload, marker) => {
    this.sample.push({
      kind: "video",
      timestamp: this.curTimestamp,
      marker,
      payload,
      dueMs: this.curDueMs,
      keyframeStart: this.curKeyframe,
    });
    this.curKeyframe = false;
  };

  constructor(opts: VodPacketSourceOptions) {
    this.prefetchMs = opts.prefetchMs ?? DEFAULT_PREFETCH_MS;
    this.store = opts.store;
    if (!(this.prefetchMs >= 0)) throw new RangeError(`prefetchMs must be >= 0, not ${this.prefetchMs}`);
    const v = opts.video;
    if (v && (v.track.samples.count > 0 || v.growth)) {
      this.video = makeLane("video", v, videoPacketizer(v.track, opts.maxPayload ?? DEFAULT_MAX_PAYLOAD));
      this.lanes.push(this.video);
    }
    const a = opts.audio;
    if (a && (a.track.samples.count > 0 || a.growth)) {
      this.audio = makeLane("audio", a, undefined);
      this.lanes.push(this.audio);
    }
    setZero(this.lanes);
    this.loop = opts.loop === true;
    const startMs = opts.startMs ?? 0;
    if (!(startMs >= 0)) throw new RangeError(`startMs must be >= 0, not ${startMs}`);
    if (startMs > 0) this.moveTo(startMs, opts.startSide ?? "after");
    else if (this.video && this.video.samples.count > 0) this.videoStart = dueOf(this.video, 0);
    // The first window is read ahead of the start position, not of 0.
    this.takenUntil = startMs;
    for (const lane of this.lanes) {
      const group = this.groups.find((g) => g.file === lane.file);
      if (group) group.lanes.push(lane);
      else this.groups.push({ file: lane.file, lanes: [lane], busy: false, filling: Promise.resolve() });
    }
    for (const group of this.groups) this.startFill(group);
    this.firstWindow = Promise.all(this.groups.map((g) => g.filling)).then(() => undefined);
  }

  /** Length of one pass over the file, seconds: the longest track's end; 0 while a track is still being written. */
  get periodSec(): number {
    if (this.period === 0 && this.lanes.every((l) => !l.growth || l.growth.complete)) {
      this.period = Math.max(0, ...this.lanes.map(periodOf));
    }
    return this.period;
  }

  private moveTo(positionMs: number, side: KeyframeSide): void {
    this.videoStart = undefined;
    for (const lane of this.lanes) {
      lane.seekMs = positionMs;
      lane.seekBack = side === "before" && lane.packetizer !== undefined;
      this.advanceSeek(lane);
    }
  }

  get videoStartMs(): number | undefined {
    return this.videoStart;
  }

  seek(positionMs: number, side: KeyframeSide): void {
    if (this.stopped) return;
    if (!(positionMs >= 0)) throw new RangeError(`positionMs must be >= 0, not ${positionMs}`);
    this.generation++;
    this.skipVideo = false;
    for (const lane of this.lanes) {
      lane.queue.clear();
      lane.next = 0;
      this.setPass(lane, 0);
    }
    this.moveTo(positionMs, side);
    this.takenUntil = positionMs;
    // A group still reading carries on from the new position once its stale round is dropped.
    for (const group of this.groups) if (!group.busy) this.startFill(group);
    this.firstWindow = Promise.all(this.groups.map((g) => g.filling)).then(() => undefined);
  }

  /**
   * Moves the lane's next sample to the first one due at or after its `seekMs` (for video a keyframe: the one at or
   * before it when `seekBack`, else the first after). Samples not written yet are waited for: the seek stays pending
   * and is advanced again as the table grows.
   */
  private advanceSeek(lane: Lane): void {
    let ms = lane.seekMs;
    if (ms === undefined) return;
    const s = lane.samples;
    const complete = !lane.growth || lane.growth.complete;
    const periodMs = this.periodSec * 1000;
    const looping = this.loop && complete && periodMs > 0;
    if (looping && lane.pass === 0 && lane.next === 0) this.setPass(lane, Math.floor(ms / periodMs));
    if (lane.seekBack) {
      let j = lane.next;
      while (j < s.count && dueOf(lane, j) <= ms) j++;
      // The frame shown at `ms` may be the last one written so far: wait for the one after it.
      if (j === s.count && !complete) return;
      let k = j - 1;
      while (k >= lane.next && s.sync[k] !== 1) k--;
      if (k >= lane.next) {
        lane.next = k;
        lane.seekMs = undefined;
        lane.seekBack = false;
        this.videoStart = dueOf(lane, k);
        return;
      }
      // No keyframe before it in this pass: the first one after it.
      lane.seekBack = false;
    }
    for (;;) {
      let i = lane.next;
      while (i < s.count && (dueOf(lane, i) < ms || (lane.packetizer !== undefined && s.sync[i] !== 1))) i++;
      lane.next = i;
      if (i < s.count) break;
      if (!complete) return;
      // The rest of this pass has no keyframe: the next pass starts with one.
      if (!looping) break;
      this.setPass(lane, lane.pass + 1);
      lane.next = 0;
      ms = lane.passMs;
    }
    lane.seekMs = undefined;
    if (lane.packetizer !== undefined && lane.next < s.count) this.videoStart = dueOf(lane, lane.next);
  }

  private setPass(lane: Lane, pass: number): void {
    const periodSec = this.periodSec;
    lane.pass = pass;
    lane.passMs = pass * periodSec * 1000;
    lane.pass90k = Math.round(pass * periodSec * 90000);
    lane.pass48k = Math.round(pass * periodSec * 48000);
  }

  get ended(): boolean {
    if (this.stopped) return true;
    for (const lane of this.lanes) {
      if (lane.next < lane.samples.count || !lane.queue.isEmpty()) return false;
      if (lane.growth && !lane.growth.complete) return false;
    }
    return true;
  }

  get onError(): ((err: MediaError) => void) | undefined {
    return this.failure.handler;
  }

  set onError(handler: ((err: MediaError) => void) | undefined) {
    this.failure.handler = handler;
  }

  ready(): Promise<void> {
    return this.firstWindow;
  }

  take(untilMs: number, out: MediaPacket[]): number {
    if (this.stopped) return 0;
    for (const lane of this.lanes) {
      if (!lane.growth) continue;
      if (lane.growth.error) {
        this.fail(lane.growth.error);
        return 0;
      }
      if (lane.seekMs !== undefined) this.advanceSeek(lane);
    }
    if (untilMs > this.takenUntil) this.takenUntil = untilMs;
    const v = this.video;
    const a = this.audio;
    let n = 0;
    for (;;) {
      if (v && this.skipVideo) {
        const q = v.queue;
        while (!q.isEmpty() && !q.peekFront()!.keyframeStart) q.shift();
        if (!q.isEmpty()) this.skipVideo = false;
      }
      const vp = v?.queue.peekFront();
      const ap = a?.queue.peekFront();
      let lane: Lane;
      let p: MediaPacket;
      let other: Lane | undefined;
      // Ties go to audio: it is small and its timing is the more audible.
      if (ap && (!vp || ap.dueMs <= vp.dueMs)) {
        lane = a!;
        p = ap;
        other = v;
      } else if (vp) {
        lane = v!;
        p = vp;
        other = a;
      } else {
        break;
      }
      if (p.dueMs > untilMs) break;
      if (other && other.queue.isEmpty()) {
        // The other track has nothing buffered: wait if it may still produce a packet that goes first.
        const h = horizonOf(other);
        if (other === a ? h <= p.dueMs : h < p.dueMs) break;
      }
      lane.queue.shift();
      out.push(p);
      n++;
    }
    const refillBelow = this.takenUntil + this.prefetchMs * REFILL_AT;
    for (const group of this.groups) {
      if (!group.busy && groupNeedsRead(group, refillBelow)) this.startFill(group);
    }
    return n;
  }

  skipVideoToNextKeyframe(): void {
    if (this.video) this.skipVideo = true;
  }

  async close(): Promise<void> {
    this.stop();
    await Promise.all(this.groups.map((g) => g.filling));
  }

  private startFill(group: FileGroup): void {
    // `busy` is set before the call: an async function runs synchronously up to its first await, and its
    // `finally` could otherwise clear the flag before it was set.
    group.busy = true;
    group.filling = this.fill(group);
  }

  private async fill(group: FileGroup): Promise<void> {
    try {
      // Each round reads up to the full window; another follows only if the reads fell below the refill mark
      // meanwhile (slow storage), not for the sliver of media that became due while the last read was in flight.
      let untilMs = this.takenUntil + this.prefetchMs;
      let generation = this.generation;
      while (!this.stopped && groupNeedsRead(group, untilMs)) {
        // No progress would mean a loop that never yields to I/O; the condition above rules it out, this guards it.
        if (!(await this.readRound(group))) break;
        // After a seek, the window of the new position, whole.
        if (generation !== this.generation) {
          generation = this.generation;
          untilMs = this.takenUntil + this.prefetchMs;
          continue;
        }
        untilMs = this.takenUntil + this.prefetchMs * REFILL_AT;
      }
    } catch (err) {
      this.fail(err);
    } finally {
      group.busy = false;
    }
  }

  /**
   * Reads every track of the group up to the window (or the byte cap), then queues the samples in track order;
   * returns whether it read anything.
   */
  private async readRound(group: FileGroup): Promise<boolean> {
    const limitMs = this.takenUntil + this.prefetchMs;
    // Every sample of the round in track and sample order: from the store, or to be read (`wants`).
    const round: (Want | Stored)[] = [];
    const wants: Want[] = [];
    const ends: number[] = [];
    let queued = false;
    for (const lane of group.lanes) {
      const s = lane.samples;
      const store = this.storeFor(lane);
      let i = lane.next;
      let bytes = 0;
      // Until the lane's first sample to read, what the store has goes to the queue at once (no object per sample).
      let missed = false;
      while (i < s.count && dueOf(lane, i) <= limitMs && (i === lane.next || bytes + s.size[i]! <= MAX_BATCH_BYTES)) {
        const packets = store?.get(s, i, lane.zero);
        if (packets && !missed) {
          for (let k = 0; k < packets.length; k++) lane.queue.push(packets[k]!);
          queued = true;
        } else if (packets) {
          round.push({ lane, packets });
        } else {
          missed = true;
          const w: Want = { lane, index: i, offset: s.offset[i]!, size: s.size[i]!, data: EMPTY };
          wants.push(w);
          round.push(w);
        }
        bytes += s.size[i]!;
        i++;
      }
      ends.push(i);
    }
    if (round.length === 0 && !queued) return false;
    const generation = this.generation;
    if (wants.length > 0) await this.readSpans(group.file, wants);
    if (this.stopped) return false;
    // A seek came while reading: the lanes were reset; the caller's loop reads from where they are now.
    if (generation !== this.generation) return true;
    for (const r of round) {
      if ("packets" in r) {
        for (const p of r.packets) r.lane.queue.push(p);
        continue;
      }
      const lane = r.lane;
      const store = this.storeFor(lane);
      // A stored sample owns its bytes: a view would keep the whole read span alive for as long as it is stored.
      const data = store ? r.data.slice() : r.data;
      const sample = this.sample;
      sample.length = 0;
      if (lane.packetizer) this.packetizeVideo(lane, lane.packetizer, r.index, data);
      // An empty Opus payload is not a valid packet; dropping it leaves only a gap the decoder conceals.
      else if (r.size > 0) this.packetizeAudio(lane, r.index, data);
      if (sample.length === 0) continue;
      let bytes = 0;
      for (const p of sample) {
        lane.queue.push(p);
        bytes += p.payload.byteLength;
      }
      if (store) store.put(lane.samples, r.index, lane.zero, sample.slice(), bytes);
    }
    group.lanes.forEach((lane, k) => {
      lane.next = ends[k]!;
      if (this.loop && lane.next === lane.samples.count && (!lane.growth || lane.growth.complete) && this.periodSec > 0) {
        lane.next = 0;
        this.setPass(lane, lane.pass + 1);
      }
    });
    return true;
  }

  /** The packet store, for a lane on the file's first pass (later passes carry other timestamps). */
  private storeFor(lane: Lane): PacketStore | undefined {
    return lane.pass === 0 ? this.store : undefined;
  }

  /** Fills each want's `data` with as few reads as the layout allows, all in flight together. */
  private async readSpans(file: RandomAccessFile, wants: readonly Want[]): Promise<void> {
    const byOffset = wants.filter((w) => w.size > 0).sort((a, b) => a.offset - b.offset);
    const reads: Promise<void>[] = [];
    for (let k = 0; k < byOffset.length; ) {
      const first = byOffset[k]!;
      let end = first.offset + first.size;
      let useful = first.size;
      let waste = 0;
      let j = k + 1;
      for (; j < byOffset.length; j++) {
        const w = byOffset[j]!;
        const gap = w.offset - end;
        // Overlapping samples (gap < 0) would be a broken table; a separate read keeps the slicing simple.
        if (gap < 0 || waste + gap > Math.max(BRIDGE_BYTES, useful + w.size)) break;
        if (w.offset + w.size - first.offset > 2 * MAX_BATCH_BYTES) break;
        end = w.offset + w.size;
        useful += w.size;
        waste += gap;
      }
      reads.push(this.readSpan(file, byOffset.slice(k, j), first.offset, end - first.offset));
      k = j;
    }
    // allSettled: a failed read must not end the round while another still writes, or close() could close the
    // file under it.
    const results = await Promise.allSettled(reads);
    for (const r of results) if (r.status === "rejected") throw r.reason;
  }

  private async readSpan(file: RandomAccessFile, wants: readonly Want[], position: number, length: number): Promise<void> {
    const buf = new Uint8Array(length);
    let got: number;
    try {
      got = await file.read(buf, 0, length, position);
    } catch (err) {
      // The file's own words when it has them (a bucket file replaced or unreachable mid-play).
      if (err instanceof MediaError) throw err;
      throw new MediaError(Info.FAILED_TO_READ_FILE, `${file.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (got !== length) {
      throw new MediaError(Info.FAILED_TO_READ_FILE, `${file.name}: cut short (${got} of ${length} bytes at ${position})`);
    }
    // Views, not copies: the span stays alive while any of its packets does (bridged bytes included, bounded above).
    for (const w of wants) w.data = buf.subarray(w.offset - position, w.offset - position + w.size);
  }

  /** Packetizes video sample `i` into `this.sample`. */
  private packetizeVideo(lane: Lane, packetizer: VideoPacketizer, i: number, data: Uint8Array): void {
    const s = lane.samples;
    const keyframe = s.sync[i] === 1;
    this.curTimestamp = lane.pass90k + Math.round(((s.dts[i]! + s.ctsOffset[i]! - lane.zero) * 90000) / lane.timescale);
    this.curDueMs = dueOf(lane, i);
    this.curKeyframe = keyframe;
    try {
      // Frames numbered across passes (VP8's picture ID): the same sample on the first pass always gets the same
      // packets, which the packet store relies on.
      packetizer.packetize(data, this.emitVideo, keyframe, lane.pass * s.count + i);
    } catch (err) {
      // A broken sample in the file: nothing sensible to show after it until the next keyframe, so stop loudly.
      throw new MediaError(
        Info.GOT_EXCEPTION_WHILE_STREAMING_FILE,
        `${lane.file.name}: video sample ${i}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  /** Audio sample `i` as its one packet, into `this.sample`. */
  private packetizeAudio(lane: Lane, i: number, data: Uint8Array): void {
    const dts = lane.samples.dts[i]!;
    this.sample.push({
      kind: "audio",
      timestamp: lane.pass48k + Math.round(((dts - lane.zero) * 48000) / lane.timescale),
      marker: false,
      payload: data,
      dueMs: dueOf(lane, i),
      keyframeStart: false,
    });
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stop();
    this.failure.report(err);
  }

  private stop(): void {
    this.stopped = true;
    for (const lane of this.lanes) lane.queue.clear();
  }
}

/** The packetizer for a track's codec: H.264 (avcC) or VP8; anything else cannot be sent as it is. */
function videoPacketizer(track: VideoTrack, maxPayload: number): VideoPacketizer {
  if (track.codec.startsWith("vp08")) return new Vp8Packetizer({ maxPayload });
  const avc = track.avc;
  if (!avc) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `video codec ${track.codec} is not H.264 or VP8`);
  return new H264Packetizer({ nalLengthSize: avc.nalLengthSize, sps: avc.sps, pps: avc.pps, maxPayload });
}

function makeLane(
  kind: "video" | "audio",
  input: TrackInput<VideoTrack | AudioTrack>,
  packetizer: VideoPacketizer | undefined,
): Lane {
  const { file, track } = input;
  const timescale = track.timescale;
  if (!(timescale > 0)) throw new MediaError(Info.FILE_HAS_WRONG_FORMAT, `${file.name}: ${kind} timescale ${timescale}`);
  return {
    kind,
    file,
    samples: track.samples,
    timescale,
    shiftSec: Number.isFinite(track.editShiftSec) ? track.editShiftSec : 0,
    zero: 0,
    packetizer,
    growth: input.growth,
    seekMs: undefined,
    seekBack: false,
    next: 0,
    pass: 0,
    passMs: 0,
    pass90k: 0,
    pass48k: 0,
    queue: new Denque<MediaPacket>(),
  };
}

/**
 * Sets every lane's `zero` to the earliest presentation time of any of them, or 0 (in the file's timeline, edit
 * lists applied). The first samples decide it; for video the lowest presentation time among the first few dozen, since
 * with reordered frames the first in decode order is not the first shown. A track still being written with no
 * sample yet counts from its edit shift.
 */
function setZero(lanes: readonly Lane[]): void {
  let origin = Infinity;
  for (const lane of lanes) origin = Math.min(origin, firstPresentationSec(lane));
  // Media before 0 on the file's timeline is there to be skipped (AAC priming, Opus pre-skip), not to push the
  // other tracks later; it goes out at once with timestamps just below 0.
  if (!Number.isFinite(origin) || origin < 0) origin = 0;
  for (const lane of lanes) lane.zero = (origin - lane.shiftSec) * lane.timescale;
}

/** Frames a decoder may hold back for reordering: the lowest presentation time lies within these. */
const REORDER_SCAN = 64;

function firstPresentationSec(lane: Lane): number {
  const s = lane.samples;
  if (s.count === 0) return lane.shiftSec;
  let first = Infinity;
  if (lane.kind === "video") {
    for (let i = 0; i < s.count && i < REORDER_SCAN; i++) first = Math.min(first, s.dts[i]! + s.ctsOffset[i]!);
  } else {
    first = s.dts[0]!;
  }
  return first / lane.timescale + lane.shiftSec;
}

/** Where the lane's last sample ends, seconds from the playback's time 0: a pass lasts the longest of these. */
function periodOf(lane: Lane): number {
  const s = lane.samples;
  if (s.count === 0) return 0;
  const last = s.count - 1;
  return (s.dts[last]! + s.duration[last]! - lane.zero) / lane.timescale;
}

export function createVodPacketSource(opts: VodPacketSourceOptions): SeekableSource {
  return new VodPacketSource(opts);
}
