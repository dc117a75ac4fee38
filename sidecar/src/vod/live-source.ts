// The shared packet source of one `vod-live://` broadcast on this sidecar: one reader, one packetization (and the
// file's one Opus transcode) for every viewer; per viewer only the header rewrite, SRTP and the send remain.
//
// The broadcast's position is wall-clock time since its start, which the edge holds. Every sidecar serving the
// same broadcast computes the same position from it and sends the same RTP timestamps for the same frame, so
// viewers on different sidecars are in sync without any media passing between sidecars.
import type { MediaPacket, PacketSource } from "./packet-source.ts";
import type { Paced, Scheduler } from "./scheduler.ts";

export interface BroadcastSink {
  /** The packets due in this tick, in send order; shared by every sink, so read only and not kept. */
  deliver(packets: readonly MediaPacket[]): void;
  /** The file ended (no loop): `info` undefined; reading failed: the info to fail with. */
  sourceEnded(info: string | undefined): void;
}

export class LiveSource implements Paced {
  private readonly sinks: BroadcastSink[] = [];
  private readonly due: MediaPacket[] = [];
  /** performance.now() at the broadcast's start (may be in the future while the edge's start lead runs). */
  private readonly startPerf: number;
  private over = false;
  /** Why it ended: undefined for the end of the file, else the info a late viewer fails with too. */
  private endInfo: string | undefined;

  constructor(
    private readonly source: PacketSource,
    startedAtEpochMs: number,
    private readonly scheduler: Scheduler,
  ) {
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
    this.sinks.push(sink);
  }

  remove(sink: BroadcastSink): void {
    const i = this.sinks.indexOf(sink);
    if (i >= 0) this.sinks.splice(i, 1);
  }

  pump(nowMs: number): void {
    if (this.over) return;
    const position = nowMs - this.startPerf;
    if (position < 0) return;
    const due = this.due;
    due.length = 0;
    this.source.take(position, due);
    // Viewer by viewer, not packet by packet: a viewer's state stays hot while it sends its whole batch.
    if (due.length > 0) for (let i = 0; i < this.sinks.length; i++) this.sinks[i]!.deliver(due);
    due.length = 0;
    if (this.source.ended) this.finish(undefined);
  }

  private finish(info: string | undefined): void {
    if (this.over) return;
    this.over = true;
    this.endInfo = info;
    this.scheduler.remove(this);
    for (const sink of this.sinks.splice(0)) {
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
    this.sinks.length = 0;
    this.scheduler.remove(this);
    await this.source.close();
  }
}
