// One personal playback: a werift peer connection fed from a PacketSource, paced by the shared scheduler.
import { RtpHeader, RtpPacket, type RTCPeerConnection, type RTCRtpSender } from "werift";
import { Info, StreamStatus } from "@edge-vod/shared";
import type { MediaPacket, PacketSource } from "./packet-source.ts";
import type { Paced, Scheduler } from "./scheduler.ts";

export interface ViewerEvents {
  playing(): void;
  ended(status: typeof StreamStatus.STOPPED | typeof StreamStatus.FAILED, info?: string): void;
}

interface Track {
  sender: RTCRtpSender;
  payloadType: number;
  seq: number;
}

/** A PLI soon after a keyframe went out is about that keyframe still in flight; skipping would cost a whole GOP. */
const PLI_GRACE_MS = 250;
/** Time after the last packet before the peer connection is closed, so the tail reaches the browser. */
const DRAIN_MS = 300;

export class VodViewer implements Paced {
  private startMs = 0;
  private state: "negotiating" | "playing" | "closed" = "negotiating";
  private readonly due: MediaPacket[] = [];
  private lastKeyframeSentMs = -Infinity;
  private iceTimer: NodeJS.Timeout | undefined;
  private disposed: Promise<void> | undefined;

  constructor(
    private readonly pc: RTCPeerConnection,
    private readonly source: PacketSource,
    private readonly video: Track | undefined,
    private readonly audio: Track | undefined,
    private readonly scheduler: Scheduler,
    private readonly events: ViewerEvents,
    iceTimeoutMs: number,
  ) {
    this.iceTimer = setTimeout(() => this.fail(Info.FAILED_BY_ICE_TIMEOUT), iceTimeoutMs);
    pc.connectionStateChange.subscribe((s) => {
      if (s === "connected") this.start();
      else if (s === "failed") this.fail(Info.FAILED_BY_ICE_ERROR);
    });
    source.onError = (err) => this.fail(err.info);
    video?.sender.onPictureLossIndication.subscribe(() => this.onPli());
  }

  static track(sender: RTCRtpSender | undefined, payloadType: number | undefined): Track | undefined {
    if (!sender || payloadType === undefined) return undefined;
    return { sender, payloadType, seq: Math.floor(Math.random() * 0x10000) };
  }

  private async start(): Promise<void> {
    if (this.state !== "negotiating") return;
    clearTimeout(this.iceTimer);
    this.state = "playing";
    // The first window is usually buffered long before DTLS completes; waiting here only matters for cold reads.
    await this.source.ready();
    if (this.state !== "playing") return;
    this.events.playing();
    this.startMs = performance.now();
    this.scheduler.add(this);
  }

  pump(nowMs: number): void {
    if (this.state !== "playing") return;
    const due = this.due;
    due.length = 0;
    this.source.take(nowMs - this.startMs, due);
    for (let i = 0; i < due.length; i++) this.send(due[i]!, nowMs);
    if (this.source.ended) {
      this.scheduler.remove(this);
      this.state = "closed";
      setTimeout(() => {
        if (this.disposed) return;
        this.events.ended(StreamStatus.STOPPED);
        void this.dispose();
      }, DRAIN_MS);
    }
  }

  private send(p: MediaPacket, nowMs: number): void {
    const track = p.kind === "video" ? this.video : this.audio;
    if (!track) return;
    if (p.keyframeStart) this.lastKeyframeSentMs = nowMs;
    track.seq = (track.seq + 1) & 0xffff;
    const header = new RtpHeader({ payloadType: track.payloadType, sequenceNumber: track.seq, timestamp: p.timestamp >>> 0, marker: p.marker });
    const payload = Buffer.from(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength);
    void track.sender.sendRtp(new RtpPacket(header, payload)).catch(() => {});
  }

  private onPli(): void {
    if (this.state !== "playing") return;
    if (performance.now() - this.lastKeyframeSentMs < PLI_GRACE_MS) return;
    this.source.skipVideoToNextKeyframe();
  }

  private fail(info: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.events.ended(StreamStatus.FAILED, info);
    void this.dispose();
  }

  /** Ends the playback without any event (the edge already told the client). */
  async close(): Promise<void> {
    this.state = "closed";
    await this.dispose();
  }

  private dispose(): Promise<void> {
    this.disposed ??= (async () => {
      clearTimeout(this.iceTimer);
      this.scheduler.remove(this);
      await Promise.allSettled([this.source.close(), this.pc.close()]);
    })();
    return this.disposed;
  }
}
