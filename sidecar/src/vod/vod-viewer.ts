// One personal playback: a werift peer connection fed from a PacketSource, paced by the shared scheduler, that can
// seek, pause and resume.
//
// The RTP timestamps follow the wall clock (an output clock from the first packet), not the file: a seek or a pause
// moves where in the file the packets come from, never the timestamps back, so the browser's jitter buffer and
// decoder go on as if nothing happened. Until the first op the two clocks are the same, and packets go out exactly
// as they come. The media clock is a piecewise map of the output clock (see PlayClock): after a seek it runs
// `catchUpSpeed` times faster from the keyframe before the position up to the position, then in real time, so the
// frames the picture at the position needs are decoded in a fraction of a second instead of waiting for the next
// keyframe. Each frame's presentation offset is scaled with it, which keeps B-frames in order.
import type { RTCPeerConnection } from "werift";
import { Info, StreamStatus, VOD_STATE_INTERVAL_MS, type VodState } from "@edge-vod/shared";
import { PLI_GRACE_MS, PeerViewer, type ViewerEvents } from "../streams/peer-viewer.ts";
import type { RtpOut } from "../streams/rtp-out.ts";
import type { MediaPacket, SeekableSource } from "./packet-source.ts";
import { PlayClock, seekSide } from "./play-clock.ts";
import { mediaCounters } from "../runtime/media-counters.ts";
import type { Paced, Scheduler } from "./scheduler.ts";

export type { ViewerEvents } from "../streams/peer-viewer.ts";

export interface VodControlOptions {
  /** The file's length, ms: seeks at or past it are refused. */
  durationMs: number;
  /** Where the playback starts, ms (createStream's custom.edgeVod.startMs). */
  startMs: number;
  /** How much faster than real time the frames before a seek's position go out; <= 1: from the next keyframe. */
  catchUpSpeed: number;
  /** A pause longer than this ends the stream (STOPPED). */
  pauseTimeoutMs: number;
  /** Report the state about once a second while playing, not only on changes. */
  reportState: boolean;
  /** Receives every state report. */
  onState(state: VodState): void;
}

/** Output time left between the last frame sent before a seek and the first after it. */
const SEEK_GAP_MS = 20;

export class VodViewer extends PeerViewer implements Paced {
  /** performance.now() at output time 0. */
  private originMs = 0;
  private sending = false;
  private readonly due: MediaPacket[] = [];
  private lastKeyframeSentMs = -Infinity;
  private readonly clock = new PlayClock();
  /** The media position not passed while paused (Infinity: playing). */
  private holdMs = Infinity;
  private paused = false;
  /** Bumped by every seek: a seek whose window came after a later one was asked is dropped. */
  private seekNo = 0;
  private seeking = false;
  /** Where the last seek (or the start) goes: reported while catching up to it. */
  private targetMs: number;
  /** Highest output time (ms) given to any packet sent: a seek's frames come after it. */
  private lastOutMs = -Infinity;
  private lastStateMs = 0;
  private pauseTimer: NodeJS.Timeout | undefined;
  /** The browser asked for a keyframe while paused (Chromium does after 3 s without frames): resume re-seeks. */
  private pliWhilePaused = false;
  /** Frames before a seek's position are going out faster than real time (the video's NACK history is deep). */
  private bursting = false;

  constructor(
    pc: RTCPeerConnection,
    private readonly source: SeekableSource,
    private readonly video: RtpOut | undefined,
    private readonly audio: RtpOut | undefined,
    private readonly scheduler: Scheduler,
    events: ViewerEvents,
    iceTimeoutMs: number,
    private readonly control: VodControlOptions,
  ) {
    super(pc, events, iceTimeoutMs);
    this.targetMs = control.startMs;
    source.onError = (err) => this.end(StreamStatus.FAILED, err.info);
    video?.sender.onPictureLossIndication.subscribe(() => this.onPli());
  }

  protected onConnected(): void {
    void this.startSending();
  }

  private async startSending(): Promise<void> {
    // The first window is usually buffered long before DTLS completes; waiting here only matters for cold reads.
    // A seek asked meanwhile has a window of its own to wait for.
    let seekNo: number;
    do {
      seekNo = this.seekNo;
      await this.source.ready();
    } while (seekNo !== this.seekNo && this.state === "playing");
    if (this.state !== "playing") return;
    this.events.playing();
    this.originMs = performance.now();
    this.startAt(this.targetMs, 0);
    this.scheduler.add(this);
    // Only a page that asked for the state hears it; other players cost no event.
    if (this.control.reportState) this.report();
  }

  /** Starts the media clock at `positionMs` (catching up from the source's keyframe before it) at output `outMs`. */
  private startAt(positionMs: number, outMs: number): void {
    const from = Math.min(this.source.videoStartMs ?? positionMs, positionMs);
    // A playback started at 0 and not moved yet sends the file's own timestamps, as it always did.
    if (positionMs === 0 && outMs === 0) this.clock.identity();
    else this.clock.catchUp(from, positionMs, outMs, this.catchUps() ? this.control.catchUpSpeed : 1);
    if (this.catchUps() && from < positionMs) {
      this.bursting = true;
      this.video?.burst();
    }
    if (this.paused) this.holdMs = positionMs;
    this.sending = true;
  }

  pump(nowMs: number): void {
    if (this.state !== "playing") return;
    if (this.sending) {
      let untilMs = this.clock.mediaAt(nowMs - this.originMs);
      if (untilMs > this.holdMs) untilMs = this.holdMs;
      const due = this.due;
      due.length = 0;
      this.source.take(untilMs, due);
      for (let i = 0; i < due.length; i++) this.send(due[i]!, nowMs);
      if (this.source.ended) {
        this.scheduler.remove(this);
        this.sending = false;
        this.stopAfterDrain();
        return;
      }
    }
    if (this.control.reportState && !this.paused && nowMs - this.lastStateMs >= VOD_STATE_INTERVAL_MS) this.report();
  }

  private send(p: MediaPacket, nowMs: number): void {
    const track = p.kind === "video" ? this.video : this.audio;
    if (!track) return;
    if (p.keyframeStart) this.lastKeyframeSentMs = nowMs;
    const clock = this.clock;
    const rate = p.kind === "video" ? 90 : 48;
    let timestamp = p.timestamp;
    let outMs: number;
    if (clock.isIdentity) {
      outMs = timestamp / rate;
    } else {
      outMs = clock.outputOf(p.dueMs, timestamp / rate - p.dueMs);
      timestamp = Math.round(outMs * rate);
      if (clock.squeezes(p.dueMs)) {
        mediaCounters.catchUpPackets++;
        mediaCounters.catchUpBytes += p.payload.byteLength;
      } else if (this.bursting && p.kind === "video") {
        this.bursting = false;
        this.video?.burstEnded();
      }
    }
    if (outMs > this.lastOutMs) this.lastOutMs = outMs;
    track.send(timestamp, p.marker, p.payload);
  }

  private onPli(): void {
    if (this.state !== "playing" || this.seeking) return;
    // Skipping ahead while paused would resume at the next keyframe; resume sends the picture again instead.
    if (this.paused) {
      this.pliWhilePaused = true;
      return;
    }
    if (performance.now() - this.lastKeyframeSentMs < PLI_GRACE_MS) return;
    this.source.skipVideoToNextKeyframe();
  }

  // ---- control (the edge's sendData ops)

  /** The state the page is told: where the picture is, or is going. */
  vodState(): VodState {
    let positionMs: number;
    if (this.paused && Number.isFinite(this.holdMs)) positionMs = this.holdMs;
    else if (!this.sending) positionMs = this.targetMs;
    else positionMs = Math.max(this.targetMs, this.clock.mediaAt(performance.now() - this.originMs));
    if (positionMs > this.control.durationMs) positionMs = this.control.durationMs;
    return { state: this.paused ? "paused" : "playing", positionMs: Math.max(0, Math.round(positionMs)), durationMs: this.control.durationMs };
  }

  /** Goes on from `positionMs` (exact picture, same timestamps' clock); undefined, or the info it is refused with. */
  seek(positionMs: number): string | undefined {
    if (positionMs >= this.control.durationMs) return Info.POSITION_PAST_END;
    const seekNo = ++this.seekNo;
    this.targetMs = positionMs;
    this.source.seek(positionMs, seekSide(this.control.catchUpSpeed));
    if (this.state !== "playing" || this.originMs === 0) return undefined;
    // Nothing of the old position goes out meanwhile; its last picture stays on screen until the new one.
    this.sending = false;
    this.seeking = true;
    if (this.paused) this.holdMs = positionMs;
    void this.source.ready().then(() => {
      if (seekNo !== this.seekNo || this.state !== "playing") return;
      this.seeking = false;
      const nowOut = performance.now() - this.originMs;
      this.startAt(positionMs, Math.max(nowOut, this.lastOutMs + SEEK_GAP_MS));
      this.report();
    });
    return undefined;
  }

  private catchUps(): boolean {
    return this.control.catchUpSpeed > 1;
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    if (!this.seeking) this.holdMs = this.sending ? this.clock.mediaAt(performance.now() - this.originMs) : this.targetMs;
    this.pauseTimer = setTimeout(() => this.end(StreamStatus.STOPPED, Info.STOPPED_BY_PAUSE_TIMEOUT), this.control.pauseTimeoutMs);
    this.pauseTimer.unref?.();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    clearTimeout(this.pauseTimer);
    const held = this.holdMs;
    this.holdMs = Infinity;
    if (this.pliWhilePaused && !this.seeking && Number.isFinite(held) && this.catchUps()) {
      // The browser dropped its decoder state: from the keyframe before the held picture, as a seek there.
      this.pliWhilePaused = false;
      this.seek(held);
      return;
    }
    // Without catch-ups, the next keyframe, as for any PLI.
    if (this.pliWhilePaused) this.source.skipVideoToNextKeyframe();
    this.pliWhilePaused = false;
    if (!this.sending || !Number.isFinite(held)) return;
    this.targetMs = held;
    // From the held position in real time, from now: the pause shows as a gap in the timestamps, as a live
    // source's would.
    const nowOut = performance.now() - this.originMs;
    this.clock.resumeAt(held, Math.max(nowOut, this.clock.outputOf(held, 0)));
  }

  /** From now on, the state is reported about once a second while playing, not only on changes. */
  reportStates(): void {
    this.control.reportState = true;
  }

  /** Reports the state now (a change), and restarts the once-a-second reports from here. */
  report(): void {
    this.lastStateMs = performance.now();
    this.control.onState(this.vodState());
  }

  protected releaseFeed(): Promise<void> {
    clearTimeout(this.pauseTimer);
    this.scheduler.remove(this);
    return this.source.close();
  }
}
