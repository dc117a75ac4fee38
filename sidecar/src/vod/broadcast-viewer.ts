// One viewer of a shared `vod-live://` broadcast: joins at the broadcast's current position, video from the next
// keyframe (audio waits for it, so both start together), and sends the shared packets with its own sequence numbers.
// A PLI cannot rewind the shared source, so this viewer alone skips to the next keyframe.
import type { RTCPeerConnection } from "werift";
import { StreamStatus } from "@edge-vod/shared";
import { PLI_GRACE_MS, PeerViewer, type ViewerEvents } from "../streams/peer-viewer.ts";
import type { RtpOut } from "../streams/rtp-out.ts";
import type { BroadcastSink, LiveSource } from "./live-source.ts";
import type { MediaPacket } from "./packet-source.ts";

export class BroadcastViewer extends PeerViewer implements BroadcastSink {
  /** Until the first keyframe went out nothing is sent; after a PLI only video waits for the next one. */
  private started = false;
  private awaitKeyframe = true;
  private lastKeyframeSentMs = -Infinity;

  constructor(
    pc: RTCPeerConnection,
    private readonly live: LiveSource,
    private readonly video: RtpOut | undefined,
    private readonly audio: RtpOut | undefined,
    events: ViewerEvents,
    iceTimeoutMs: number,
    private readonly onRelease: () => void,
  ) {
    super(pc, events, iceTimeoutMs);
    // Audio-only files have no keyframes to wait for.
    if (!video) this.started = true;
    video?.sender.onPictureLossIndication.subscribe(() => this.onPli());
  }

  protected onConnected(): void {
    this.events.playing();
    this.live.add(this);
  }

  deliver(packets: readonly MediaPacket[]): void {
    if (this.state !== "playing") return;
    for (let i = 0; i < packets.length; i++) {
      const p = packets[i]!;
      if (p.kind === "video") {
        const out = this.video;
        if (!out) continue;
        if (this.awaitKeyframe) {
          if (!p.keyframeStart) continue;
          this.awaitKeyframe = false;
          this.started = true;
        }
        if (p.keyframeStart) this.lastKeyframeSentMs = performance.now();
        out.send(p.timestamp, p.marker, p.payload);
      } else if (this.started) {
        this.audio?.send(p.timestamp, p.marker, p.payload);
      }
    }
  }

  sourceEnded(info: string | undefined): void {
    if (info !== undefined) {
      this.end(StreamStatus.FAILED, info);
      return;
    }
    this.stopAfterDrain();
  }

  private onPli(): void {
    if (this.state !== "playing" || this.awaitKeyframe) return;
    if (performance.now() - this.lastKeyframeSentMs < PLI_GRACE_MS) return;
    this.awaitKeyframe = true;
  }

  protected async releaseFeed(): Promise<void> {
    this.live.remove(this);
    this.onRelease();
  }
}
