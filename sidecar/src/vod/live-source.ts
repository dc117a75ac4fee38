// The shared packet source of one `vod-live://` broadcast on this sidecar: one reader, one packetization (and the
// file's one Opus transcode) for every viewer; per viewer only the header rewrite, SRTP and the send remain.
//
// The broadcast's position is wall-clock time since its start, which the edge holds. Every sidecar serving the
// same broadcast computes the same position from it and sends the same RTP timestamps for the same frame, so
// viewers on different sidecars are in sync without any media passing between sidecars.
//
// Viewers are spread over `spreadTicks` scheduler ticks: each gets every tick's packets a fixed number of ticks
// (its slot) after they were due. A keyframe's ~40 packets would otherwise go to every viewer in one tick, and at a
// few hundred viewers the last copies leave tens of ms late; spread, each tick sends it to 1/spreadTicks of them.
// A viewer's own timing is unchanged (a constant offset of at most (spreadTicks - 1) ticks), and viewers stay within
// that offset of each other.
import type { MediaPacket, PacketSource } from "./packet-source.ts";
import type { Paced, Scheduler } from "./scheduler.ts";

export interface BroadcastSink {
  /** The packets due in this tick, in send order; shared by every sink, so read only and not kept. */
  deliver(packets: readonly MediaPacket[]): void;
  /** The file ended (no loop): `info` undefined; reading failed: the info to fail with. */
  sourceEnded(info: string | undefined): void;
}

export class LiveSource implements Paced {
  /** Sinks by slot: slot j gets the packets of the tick j ticks back. */
  private readonly slots: BroadcastSink[][];
  /** The last spreadTicks ticks' packets; tick t's batch is at t % spreadTicks. */
  private readonly ring: MediaPacket[][];
  private readonly spread: number;
  private tickNo = 0;
  private nextSlot = 0;
  /** The tick whose batch held the file's last packets; the broadcast ends once every slot has had it. */
  private lastTick: number | undefined;
  /** performance.now() at the broadcast's start (may be in the future while the edge's start lead runs). */
  private readonly startPerf: number;
  private over = false;
  /** Why it ended: undefined for the end of the file, else the info a late viewer fails with too. */
  private endInfo: string | undefined;

  constructor(
    private readonly source: PacketSource,
    startedAtEpochMs: number,
    private readonly scheduler: Scheduler,
    spreadTicks = 1,
  ) {
    this.spread = Math.max(1, Math.floor(spreadTicks));
    this.slots = Array.from({ length: this.spread }, () => []);
    this.ring = Array.from({ length: this.spread }, () => []);
    // Paced by the monotonic clock, anchored once to the wall clock that the edge and other sidecars share.
    this.startPerf = performance.now() - (Date.now() - startedAtEpochMs);
    source.onError = (err) => this.finish(err.info);
    // Runs from now on, viewers or not: the position must follow the wall clock, not the first viewer's arrival.
    scheduler.add(this);
  }

  add(sink: BroadcastSink): void {
    if (this.over) {
      const info = this.endInfo;
      queueMicrotask(() => sink.sourceEnded(info));
      return;
    }
    // Round robin: the slots fill evenly whatever the order viewers come and go in.
    this.slots[this.nextSlot]!.push(sink);
    this.nextSlot = (this.nextSlot + 1) % this.spread;
  }

  remove(sink: BroadcastSink): void {
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
    const t = this.tickNo++;
    const S = this.spread;
    // The batch being replaced is spreadTicks old: the last slot had it in the previous tick.
    const batch = this.ring[t % S]!;
    batch.length = 0;
    if (this.lastTick === undefined) {
      this.source.take(position, batch);
      if (this.source.ended) this.lastTick = t;
    }
    for (let j = 0; j < S; j++) {
      const b = this.ring[(t - j + S * 2) % S]!;
      const sinks = this.slots[j]!;
      // Viewer by viewer, not packet by packet: a viewer's state stays hot while it sends its whole batch.
      if (b.length > 0) for (let i = 0; i < sinks.length; i++) sinks[i]!.deliver(b);
    }
    if (this.lastTick !== undefined && t >= this.lastTick + S - 1) this.finish(undefined);
  }

  private finish(info: string | undefined): void {
    if (this.over) return;
    this.over = true;
    this.endInfo = info;
    this.scheduler.remove(this);
    const sinks = this.slots.flatMap((slot) => slot.splice(0));
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
    this.scheduler.remove(this);
    await this.source.close();
  }
}
