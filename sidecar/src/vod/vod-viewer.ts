// One personal playback: a werift peer connection fed from a PacketSource, paced by the shared scheduler.
import type { RTCPeerConnection } from "werift";
import { StreamStatus } from "@edge-vod/shared";
import { PLI_GRACE_MS, PeerViewer, type ViewerEvents } from "../streams/peer-viewer.ts";
import type { RtpOut } from "../streams/rtp-out.ts";
import type { MediaPacket, PacketSource } from "./packet-source.ts";
import type { Paced, Scheduler } from "./scheduler.ts";

export type { ViewerEvents } from "../streams/peer-viewer.ts";

export class VodViewer extends PeerViewer implements Paced {
  private startMs = 0;
  private sending = false;
  private readonly due: MediaPacket[] = [];
  private lastKeyframeSentMs = -Infinity;

  constructor(
    pc: RTCPeerConnection,
    private readonly source: PacketSource,
    private readonly video: RtpOut | undefined,
    private readonly audio: RtpOut | undefined,
    private readonly scheduler: Scheduler,
    events: ViewerEvents,
    iceTimeoutMs: number,
  ) {
    super(pc, events, iceTimeoutMs);
    source.onError = (err) => this.end(StreamStatus.FAILED, err.info);
    video?.sender.onPictureLossIndication.subscribe(() => this.onPli());
  }

  protected onConnected(): void {
    void this.startSending();
  }

  private async startSending(): Promise<void> {
    // The first window is usually buffered long before DTLS completes; waiting here only matters for cold reads.
    await this.source.ready();
    if (this.state !== "playing") return;
    this.events.playing();
    this.startMs = performance.now();
    this.sending = true;
    this.scheduler.add(this);
  }

  pump(nowMs: number): void {
    if (this.state !== "playing" || !this.sending) return;
    const due = this.due;
    due.length = 0;
    this.source.take(nowMs - this.startMs, due);
    for (let i = 0; i < due.length; i++) this.send(due[i]!, nowMs);
    if (this.source.ended) {
      this.scheduler.remove(this);
      this.sending = false;
      this.stopAfterDrain();
    }
  }

  private send(p: MediaPacket, nowMs: number): void {
    const track = p.kind === "video" ? this.video : this.audio;
    if (!track) return;
    if (p.keyframeStart) this.lastKeyframeSentMs = nowMs;
    track.send(p.timestamp, p.marker, p.payload);
  }

  private onPli(): void {
    if (this.state !== "playing") return;
    if (performance.now() - this.lastKeyframeSentMs < PLI_GRACE_MS) return;
    this.source.skipVideoToNextKeyframe();
  }

  protected releaseFeed(): Promise<void> {
    this.scheduler.remove(this);
    return this.source.close();
  }
}
