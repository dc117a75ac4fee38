// The shared packet source of one `vod-live://` broadcast on this sidecar: one reader, one packetization (and the
// file's one Opus transcode) for every viewer; per viewer only the header rewrite, SRTP and the send remain.
//
// The broadcast's position is wall-clock time since its start, which the edge holds. Every sidecar serving the
// same broadcast computes the same position from it and sends the same RTP timestamps for the same frame, so
// viewers on different sidecars are in sync without any media passing between sidecars.
//
// Viewers are spread over time in slots: slot j gets every packet j × stepMs after it was due. A keyframe's ~40
// packets would otherwise go to every viewer at once; a keyframe is a third of a 1 Mbps GOP's packets, so at a few
// hundred viewers the send loop saturates for a while after each one and frames leave tens of ms late. A viewer
// joins the first slot with room (perSlot viewers), so a small audience shares slot 0 and is in step, and a large one
// spreads its keyframes over up to `slots` ticks (best about one GOP), keeping the send load flat. A viewer's own
// timing is unchanged (a constant offset), and viewers stay within the spread of each other. The offsets are in
// time, not in ticks: counted in ticks, a late or coalesced timer under load stretched every slot's offset (slot 150
// of 200 wandered by 160 ms).
//
// A joiner that catches up (see broadcast-viewer.ts) sends its own burst of the frames since the last keyframe. That
// work runs after every slot has had this tick's batch, so it never delays nor reorders what the other viewers get.
// The burst's packets are the broadcast's own: the source keeps the video packets it took since the last keyframe
// (and the GOP before, for a slot still behind that keyframe), so a joiner reads and packetizes nothing. A file
// reader of its own was ~0.5 MB of garbage and a GOP's packetization per join, the bulk of a join's cost under churn.
import { broadcastPositionMs, type BroadcastSeek } from "@edge-vod/shared";
import type { KeyframeSide, MediaPacket, PacketSource, SeekableSource } from "./packet-source.ts";
import type { Paced, Scheduler } from "./scheduler.ts";
import { mediaCounters } from "../runtime/media-counters.ts";

export interface BroadcastSink {
  /**
   * The packets due in this tick, in send order; shared by every sink, so read only and not kept. Their timestamps
   * are media time: a sink sends them `shift90` / `shift48` ticks earlier (0 until the broadcast is sought).
   */
  deliver(packets: readonly MediaPacket[]): void;
  /** The broadcast moved (an operator's seek): what comes next is of another moment of the file. */
  moved?(): void;
  /** The file ended (no loop): `info` undefined; reading failed: the info to fail with. */
  sourceEnded(info: string | undefined): void;
}

/** A sink with work of its own each tick for a while (a joiner catching up). */
export interface CatchingUp extends BroadcastSink {
  /** Sends what is due at the broadcast position `positionMs` (this sink's slot's); returns true once it is done. */
  catchUp(positionMs: number): boolean;
}

export interface Spread {
  /** Slots at most; 1 sends to all at once. */
  slots: number;
  /** Viewers a slot takes before the next slot is used (when every slot is full, the emptiest takes more). */
  perSlot: number;
  /** Time between one slot's sending and the next's, ms (the scheduler's tick). */
  stepMs: number;
}

/** What a joiner catches up from: a reader of the file, or the broadcast's own last GOP (see replayFrom). */
export type CatchUpSource = Pick<SeekableSource, "take" | "ended" | "ready" | "close" | "onError" | "videoStartMs">;

/**
 * A GOP's packets are kept up to this many (~10 MB of full packets; 70 s of 1 Mbps video): a longer GOP, or a stream
 * without keyframes, is not kept, and its joiners read the file as before.
 */
export const MAX_GOP_PACKETS = 8192;

/** The video packets the shared source took from one keyframe on. */
interface Gop {
  readonly packets: MediaPacket[];
  /** The GOP after this one, once its keyframe was taken. */
  next: Gop | undefined;
  /** Grew past MAX_GOP_PACKETS: no longer appended to, nor offered to joiners. */
  capped: boolean;
}

export class LiveSource implements Paced {
  /** Sinks by slot: slot j gets each batch once the broadcast's position is j × stepMs past the batch's. */
  private readonly slots: BroadcastSink[][];
  private readonly slotOf = new Map<BroadcastSink, number>();
  /** Sinks with catch-up work, served after the tick's batches. */
  private catching: CatchingUp[] = [];
  private spare: CatchingUp[] = [];
  /** Per slot, the tick number of the next batch it gets. */
  private readonly cursor: Float64Array;
  /** The batches of the last ring.length ticks; tick t's batch and position are at t % ring.length. */
  private readonly ring: MediaPacket[][];
  private readonly ringPosition: Float64Array;
  private readonly stepMs: number;
  private tickNo = 0;
  private readonly perSlot: number;
  /** The tick whose batch held the file's last packets; the broadcast ends once every slot has had it. */
  private lastTick: number | undefined;
  /** performance.now() at the broadcast's start (may be in the future while the edge's start lead runs). */
  private readonly startPerf: number;
  private over = false;
  /** Why it ended: undefined for the end of the file, else the info a late viewer fails with too. */
  private endInfo: string | undefined;

  /**
   * Media position minus output position (both ms): 0 until an operator's seek. RTP timestamps follow the output
   * clock (wall time since the start) on every sidecar alike, so a seek never sends them back.
   */
  private shiftMs = 0;
  /** The shift in 90 kHz and 48 kHz ticks, subtracted from the media timestamps of the packets. */
  shift90 = 0;
  shift48 = 0;
  private lastSeek: BroadcastSeek | undefined;
  /** The GOP being taken now and the one before it (for joiners in slots still behind its keyframe). */
  private gop: Gop | undefined;
  private prevGop: Gop | undefined;

  constructor(
    private readonly source: PacketSource & {
      readonly videoStartMs?: number | undefined;
      seek?(positionMs: number, side: KeyframeSide): void;
    },
    private readonly startedAtEpochMs: number,
    private readonly scheduler: Scheduler,
    spread: Spread = { slots: 1, perSlot: 1, stepMs: 0 },
    seek?: BroadcastSeek,
  ) {
    const slots = Math.max(1, Math.floor(spread.slots));
    this.perSlot = Math.max(1, Math.floor(spread.perSlot));
    this.stepMs = slots > 1 ? Math.max(0, spread.stepMs) : 0;
    this.slots = Array.from({ length: slots }, () => []);
    this.cursor = new Float64Array(slots);
    // Twice the ticks the spread lasts: a tick comes no sooner than its interval, so the last slot's batches are
    // still here; pump() hands a batch to any slot still short of it before it is overwritten all the same.
    this.ring = Array.from({ length: slots * 2 + 2 }, () => []);
    this.ringPosition = new Float64Array(this.ring.length);
    // Paced by the monotonic clock, anchored once to the wall clock that the edge and other sidecars share.
    this.startPerf = performance.now() - (Date.now() - startedAtEpochMs);
    source.onError = (err) => this.finish(err.info);
    if (seek) this.setShift(seek);
    // Runs from now on, viewers or not: the position must follow the wall clock, not the first viewer's arrival.
    scheduler.add(this);
  }

  add(sink: BroadcastSink): void {
    if (this.over) {
      const info = this.endInfo;
      queueMicrotask(() => sink.sourceEnded(info));
      return;
    }
    // The first slot with room; else the emptiest (the first of them).
    let best = 0;
    for (let j = 0; j < this.slots.length; j++) {
      const n = this.slots[j]!.length;
      if (n < this.perSlot) {
        best = j;
        break;
      }
      if (n < this.slots[best]!.length) best = j;
    }
    this.slots[best]!.push(sink);
    this.slotOf.set(sink, best);
  }

  /** `sink`, added already, also catches up from the next tick on until it says it is done. */
  addCatchUp(sink: CatchingUp): void {
    if (!this.over && this.slotOf.has(sink) && !this.catching.includes(sink)) this.catching.push(sink);
  }

  /** The broadcast's media position that `sink` (added) is sent at now: its slot's. */
  positionOf(sink: BroadcastSink): number {
    return performance.now() - this.startPerf - (this.slotOf.get(sink) ?? 0) * this.stepMs + this.shiftMs;
  }

  /** The seek the broadcast's clock goes on from (undefined: none yet). */
  get seekState(): BroadcastSeek | undefined {
    return this.lastSeek;
  }

  /**
   * The operator moved the broadcast: the shared source goes to the new position (its next keyframe), batches not
   * sent yet are dropped, and every viewer is told (it catches up to the new position). An older or the same seek
   * than the last one is ignored: it is only ever the edge's latest that counts. Returns whether it moved.
   */
  seekTo(seek: BroadcastSeek): boolean {
    if (this.over || !this.source.seek) return false;
    if (this.lastSeek && (seek.at < this.lastSeek.at || (seek.at === this.lastSeek.at && seek.positionMs === this.lastSeek.positionMs))) return false;
    this.setShift(seek);
    this.source.seek(Math.max(0, broadcastPositionMs({ startedAt: this.startedAtEpochMs, seek }, Date.now())), "after");
    this.lastTick = undefined;
    // The kept GOPs are of the old moment.
    this.gop = this.prevGop = undefined;
    for (let j = 0; j < this.cursor.length; j++) this.cursor[j] = this.tickNo;
    for (const slot of this.slots) for (const sink of slot) sink.moved?.();
    return true;
  }

  private setShift(seek: BroadcastSeek): void {
    this.lastSeek = seek;
    // media(t) = seek.positionMs + (t - seek.at); output(t) = t - startedAt.
    this.shiftMs = seek.positionMs - (seek.at - this.startedAtEpochMs);
    this.shift90 = Math.round(this.shiftMs * 90);
    this.shift48 = Math.round(this.shiftMs * 48);
  }

  /** Due time of the first video packet the shared source sends; undefined until known. */
  get videoStartMs(): number | undefined {
    return this.source.videoStartMs;
  }

  remove(sink: BroadcastSink): void {
    this.slotOf.delete(sink);
    const c = this.catching.indexOf(sink as CatchingUp);
    if (c >= 0) this.catching.splice(c, 1);
    for (const slot of this.slots) {
      const i = slot.indexOf(sink);
      if (i >= 0) {
        slot.splice(i, 1);
        return;
      }
    }
  }

  /** Sinks in all slots. */
  get sinkCount(): number {
    let n = 0;
    for (const slot of this.slots) n += slot.length;
    return n;
  }

  pump(nowMs: number): void {
    if (this.over) return;
    const position = nowMs - this.startPerf;
    if (position < 0) return;
    const R = this.ring.length;
    const t = this.tickNo++;
    // A slot that has not had the batch about to be overwritten gets it now (a late slot, never in steady state).
    if (t >= R) for (let j = 0; j < this.slots.length; j++) if (this.cursor[j] === t - R) this.deliverNext(j);
    const batch = this.ring[t % R]!;
    batch.length = 0;
    this.ringPosition[t % R] = position;
    if (this.lastTick === undefined) {
      if (this.source.take(position + this.shiftMs, batch) > 0) this.keepGop(batch);
      if (this.source.ended) this.lastTick = t;
    }
    let done = this.lastTick !== undefined;
    for (let j = 0; j < this.slots.length; j++) {
      // (+1 µs: positions are differences of clock readings; rounding must not hold a batch back a whole tick.)
      const due = position - j * this.stepMs + 0.001;
      while (this.cursor[j]! <= t && this.ringPosition[this.cursor[j]! % R]! <= due) this.deliverNext(j);
      if (done && this.cursor[j]! <= this.lastTick!) done = false;
    }
    if (this.catching.length > 0) this.catchUps(position);
    if (done) this.finish(undefined);
  }

  /**
   * A joiner's catch-up from the broadcast's own packets: the kept GOP whose keyframe is the last at or before
   * `positionMs` (media time, as positionOf), going on into the GOPs after it as the broadcast takes them. Undefined
   * when no kept GOP starts there (just after the start or a seek, or a GOP too long to keep): read the file then.
   */
  replayFrom(positionMs: number): CatchUpSource | undefined {
    for (const g of [this.gop, this.prevGop]) {
      if (g && !g.capped && g.packets[0]!.dueMs <= positionMs) {
        mediaCounters.liveCatchUpsFromBroadcast++;
        return new GopReplay(g);
      }
    }
    return undefined;
  }

  private keepGop(batch: readonly MediaPacket[]): void {
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      if (p.kind !== "video") continue;
      if (p.keyframeStart) {
        const g: Gop = { packets: [p], next: undefined, capped: false };
        if (this.gop) this.gop.next = g;
        this.prevGop = this.gop;
        this.gop = g;
        continue;
      }
      const g = this.gop;
      if (!g || g.capped) continue;
      if (g.packets.length >= MAX_GOP_PACKETS) g.capped = true;
      else g.packets.push(p);
    }
  }

  private catchUps(position: number): void {
    // Swapped, not edited in place: a catch-up may end its viewer, which removes it from the list.
    const list = this.catching;
    this.catching = this.spare;
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      let finished = true;
      try {
        finished = c.catchUp(position - (this.slotOf.get(c) ?? 0) * this.stepMs + this.shiftMs);
      } catch (err) {
        // One joiner's bug must not stop the broadcast for the others.
        console.error("live source: catch-up failed", err);
      }
      if (!finished && this.slotOf.has(c)) this.catching.push(c);
    }
    list.length = 0;
    this.spare = list;
  }

  /** Hands slot j its next batch, viewer by viewer (a viewer's state stays hot while it sends the whole batch). */
  private deliverNext(j: number): void {
    const b = this.ring[this.cursor[j]! % this.ring.length]!;
    this.cursor[j]!++;
    if (b.length === 0) return;
    const sinks = this.slots[j]!;
    for (let i = 0; i < sinks.length; i++) sinks[i]!.deliver(b);
  }

  private finish(info: string | undefined): void {
    if (this.over) return;
    this.over = true;
    this.endInfo = info;
    this.scheduler.remove(this);
    const sinks = this.slots.flatMap((slot) => slot.splice(0));
    this.catching = [];
    this.slotOf.clear();
    for (const sink of sinks) {
      try {
        sink.sourceEnded(info);
      } catch (err) {
        console.error("live source: sink threw on end", err);
      }
    }
  }

  get ended(): boolean {
    return this.over;
  }

  async close(): Promise<void> {
    this.over = true;
    for (const slot of this.slots) slot.length = 0;
    for (const batch of this.ring) batch.length = 0;
    this.gop = this.prevGop = undefined;
    this.scheduler.remove(this);
    await this.source.close();
  }
}

/** Reads the kept GOPs from one keyframe on: the packets are the broadcast's, shared and read only. */
class GopReplay implements CatchUpSource {
  readonly videoStartMs: number;
  onError: CatchUpSource["onError"] = undefined;
  private gop: Gop | undefined;
  private at = 0;

  constructor(gop: Gop) {
    this.gop = gop;
    this.videoStartMs = gop.packets[0]!.dueMs;
  }

  take(untilMs: number, out: MediaPacket[]): number {
    let n = 0;
    for (let g = this.gop; g; g = this.gop) {
      const packets = g.packets;
      while (this.at < packets.length) {
        const p = packets[this.at]!;
        if (p.dueMs > untilMs) return n;
        out.push(p);
        this.at++;
        n++;
      }
      // A capped GOP lacks its last packets: the next one cannot follow it (ended says so).
      if (!g.next || g.capped) return n;
      this.gop = g.next;
      this.at = 0;
    }
    return n;
  }

  /** Only a capped GOP, read to its end, ends a replay; else the broadcast's packets go on. */
  get ended(): boolean {
    const g = this.gop;
    return !g || (g.capped && this.at >= g.packets.length);
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.gop = undefined;
    return Promise.resolve();
  }
}
