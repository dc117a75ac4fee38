// One viewer of a shared `vod-live://` broadcast: joins at the broadcast's current position and sends the shared
// packets with its own sequence numbers. A PLI cannot rewind the shared source, so this viewer alone skips to the
// next keyframe.
//
// A joiner sees the current picture at once: its catch-up sends the frames from the keyframe before the join `speed`
// times faster than real time until it has caught up with the broadcast, and the viewer then goes on with the shared
// packets from the next frame. The catch-up's frames are the broadcast's own kept GOP (live-source.ts), or, where
// none is kept (just after a start or a seek, or a GOP too long to keep), a private reader of the video. They are
// timestamped on the broadcast's clock as they are sent (see PlayClock), so they end exactly where the shared ones
// go on, and the shared sound, sent from the join, is in step with them. Without a catch-up (speed 1, or no video)
// the viewer waits for the broadcast's next keyframe, and the sound with it.
import type { RTCPeerConnection } from "werift";
import { StreamStatus } from "@edge-vod/shared";
import { PLI_GRACE_MS, PeerViewer, type ViewerEvents } from "../streams/peer-viewer.ts";
import type { RtpOut } from "../streams/rtp-out.ts";
import type { CatchingUp, CatchUpSource, LiveSource } from "./live-source.ts";
import type { MediaPacket } from "./packet-source.ts";
import { PlayClock } from "./play-clock.ts";
import { mediaCounters } from "../runtime/media-counters.ts";

/** A shared keyframe this close after the join is waited for rather than caught up to. */
const KEYFRAME_NEAR_MS = 50;

export interface CatchUpOptions {
  /** The broadcast's video from the keyframe at or before `positionMs`: its kept GOP, or a private reader. */
  open(positionMs: number): CatchUpSource;
  /** How many times faster than real time the catch-up goes; > 1. */
  speed: number;
}

export class BroadcastViewer extends PeerViewer implements CatchingUp {
  /** Until the first keyframe went out nothing is sent; after a PLI only video waits for the next one. */
  private started = false;
  private awaitKeyframe = true;
  private lastKeyframeSentMs = -Infinity;
  /** The catch-up's reader while it runs; its clock is set once its first window is there. */
  private catching: CatchUpSource | undefined;
  private clockSet = false;
  private readonly clock = new PlayClock();
  private readonly due: MediaPacket[] = [];
  /** Video due up to here went out from the catch-up; the shared packets after it go on. */
  private handedAtMs = -Infinity;

  constructor(
    pc: RTCPeerConnection,
    private readonly live: LiveSource,
    private readonly video: RtpOut | undefined,
    private readonly audio: RtpOut | undefined,
    events: ViewerEvents,
    iceTimeoutMs: number,
    private readonly onRelease: () => void,
    private readonly catchUpWith?: CatchUpOptions,
  ) {
    super(pc, events, iceTimeoutMs);
    // Audio-only files have no keyframes to wait for.
    if (!video) this.started = true;
    video?.sender.onPictureLossIndication.subscribe(() => this.onPli());
  }

  protected onConnected(): void {
    this.events.playing();
    this.live.add(this);
    this.startCatchUp();
  }

  /** The operator moved the broadcast: the picture of the new moment, caught up to as by a joiner. */
  moved(): void {
    if (this.state !== "playing" || !this.video) return;
    this.stopCatchUp();
    this.clockSet = false;
    this.handedAtMs = -Infinity;
    this.awaitKeyframe = true;
    this.startCatchUp();
  }

  private startCatchUp(): void {
    const c = this.catchUpWith;
    if (!this.video || !c || !(c.speed > 1)) return;
    const source = c.open(Math.max(0, this.live.positionOf(this)));
    this.catching = source;
    this.video.burst();
    source.onError = (err) => {
      // The shared packets still come: without a catch-up this viewer waits for the next keyframe, as it used to.
      console.warn(`vod-live: catch-up failed, waiting for the next keyframe: ${err.message}`);
      this.stopCatchUp();
    };
    // Sound from the join: the catch-up's frames are timed on the broadcast's clock, in step with it.
    this.started = true;
    void source.ready().then(() => {
      if (this.catching === source && this.state === "playing") this.live.addCatchUp(this);
    });
  }

  catchUp(positionMs: number): boolean {
    const source = this.catching;
    if (!source || this.state !== "playing") return true;
    if (!this.clockSet) {
      const from = source.videoStartMs;
      const shared = this.live.videoStartMs;
      // The shared packets are enough: a keyframe of theirs went out while the reader started, the join was on a
      // keyframe (or there is none before it), or the shared source's first keyframe is about to come.
      if (
        !this.awaitKeyframe ||
        from === undefined ||
        from >= positionMs ||
        (shared !== undefined && shared >= positionMs && shared - positionMs <= KEYFRAME_NEAR_MS)
      ) {
        this.stopCatchUp();
        return true;
      }
      const speed = this.catchUpWith!.speed;
      // Caught up where the fast media clock meets the broadcast's: from + (t - positionMs) * speed = t.
      const meet = (speed * positionMs - from) / (speed - 1);
      this.clock.catchUp(from, meet, positionMs, speed);
      this.clockSet = true;
    }
    const untilMs = this.clock.mediaAt(positionMs);
    const due = this.due;
    due.length = 0;
    source.take(untilMs, due);
    const out = this.video!;
    for (let i = 0; i < due.length; i++) {
      const p = due[i]!;
      if (p.kind !== "video") continue;
      if (p.keyframeStart) this.lastKeyframeSentMs = performance.now();
      out.send(Math.round(this.clock.outputOf(p.dueMs, p.timestamp / 90 - p.dueMs) * 90) - this.live.shift90, p.marker, p.payload);
      mediaCounters.catchUpPackets++;
      mediaCounters.catchUpBytes += p.payload.byteLength;
    }
    // Handed over once on the broadcast's clock, and only to frames the shared source has: one that started
    // after the join (its first keyframe) still lacks the frames before it.
    const shared = this.live.videoStartMs;
    const caughtUp = untilMs >= positionMs - 0.5 && shared !== undefined && shared <= untilMs;
    if (!caughtUp && !source.ended) return false;
    this.handOver(untilMs);
    return true;
  }

  private handOver(untilMs: number): void {
    this.handedAtMs = untilMs;
    this.awaitKeyframe = false;
    this.started = true;
    this.stopCatchUp();
  }

  private stopCatchUp(): void {
    const source = this.catching;
    this.catching = undefined;
    if (!source) return;
    void source.close();
    this.video?.burstEnded();
    // The last take's packets are the catch-up's own (read for this viewer alone): not kept for the playback.
    this.due.length = 0;
  }

  deliver(packets: readonly MediaPacket[]): void {
    if (this.state !== "playing") return;
    for (let i = 0; i < packets.length; i++) {
      const p = packets[i]!;
      if (p.kind === "video") {
        const out = this.video;
        // While the catch-up runs its reader sends the video; until it does, a shared keyframe may start it.
        if (!out || (this.catching && this.clockSet)) continue;
        // Already sent by the catch-up.
        if (p.dueMs <= this.handedAtMs) continue;
        if (this.awaitKeyframe) {
          if (!p.keyframeStart) continue;
          this.awaitKeyframe = false;
          this.started = true;
        }
        if (p.keyframeStart) this.lastKeyframeSentMs = performance.now();
        out.send(p.timestamp - this.live.shift90, p.marker, p.payload);
      } else if (this.started) {
        this.audio?.send(p.timestamp - this.live.shift48, p.marker, p.payload);
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
    if (this.state !== "playing" || this.awaitKeyframe || this.catching) return;
    if (performance.now() - this.lastKeyframeSentMs < PLI_GRACE_MS) return;
    this.awaitKeyframe = true;
  }

  protected async releaseFeed(): Promise<void> {
    this.stopCatchUp();
    this.live.remove(this);
    this.onRelease();
  }
}
