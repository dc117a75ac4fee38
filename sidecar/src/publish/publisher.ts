// One browser publishing a stream: a werift peer connection that receives H.264 or VP8 + Opus, feeds the recording (when
// `record: true`) and the viewers of the live name, and asks the browser for keyframes when either needs one.
import { RtcpSrPacket, type RTCPeerConnection, type RtpPacket } from "werift";
import { Info, StreamStatus } from "@edge-vod/shared";
import type { ReceiveAnswer } from "../webrtc/answer.ts";
import type { VideoCodec } from "../rtp/video-codec.ts";
import type { Recording } from "./recording.ts";

/** A viewer of the live stream. Called per packet: no allocation the sink does not need itself. */
export interface LiveSink {
  forward(kind: "video" | "audio", rtp: RtpPacket): void;
  /** The publisher is gone (stopped or failed); the sink ends its viewer, with `info` when an operator ended it. */
  publisherEnded(info?: string): void;
}

export interface PublisherEvents {
  /** ICE + DTLS are up and the first media packet arrived. */
  publishing(): void;
  /** The sidecar ended the publish (ICE, RTP inactivity, disk). The recording is already finished. */
  failed(info: string, recordName: string | undefined): void;
  /** An operator ended the publish (REST terminate). The recording is already finished. */
  unpublished(info: string, recordName: string | undefined): void;
  /** The publish ended, however it ended (once, at the start of the teardown). */
  closed(): void;
}

/** Keyframe requests closer than this are one request: a PLI storm makes the encoder spend its bitrate on IDRs. */
const PLI_MIN_INTERVAL_MS = 300;

export class Publisher {
  private state: "negotiating" | "connected" | "publishing" | "closed" = "negotiating";
  private readonly sinks = new Set<LiveSink>();
  private videoSsrc: number | undefined;
  private lastPliMs = -Infinity;
  private iceTimer: NodeJS.Timeout | undefined;
  /** performance.now() of the last RTP packet, for the inactivity watchdog. */
  lastRtpMs = performance.now();
  private ended: Promise<string | undefined> | undefined;

  constructor(
    readonly name: string,
    private readonly pc: RTCPeerConnection,
    private readonly media: ReceiveAnswer,
    private recording: Recording | undefined,
    private readonly events: PublisherEvents,
    iceTimeoutMs: number,
  ) {
    this.iceTimer = setTimeout(() => void this.fail(Info.FAILED_BY_ICE_TIMEOUT), iceTimeoutMs);
    pc.connectionStateChange.subscribe((s) => {
      if (s === "connected" && this.state === "negotiating") {
        clearTimeout(this.iceTimer);
        this.state = "connected";
        this.lastRtpMs = performance.now();
        this.requestKeyframe();
      } else if (s === "failed" || s === "closed") {
        void this.fail(Info.FAILED_BY_ICE_ERROR);
      }
    });
    if (recording) this.wire(recording);
    const video = media.video;
    if (video) {
      // The receiver's track exists from setRemoteDescription on (werift fires its onTrack events inside that
      // call, before anyone here could subscribe), so it is used directly.
      video.receiver.track.onReceiveRtp.subscribe((rtp) => {
        this.videoSsrc = rtp.header.ssrc;
        this.onRtp("video", rtp);
      });
      video.receiver.onRtcp.subscribe((p) => {
        if (p instanceof RtcpSrPacket) this.recording?.recorder.senderReport("video", p.senderInfo.ntpTimestamp, p.senderInfo.rtpTimestamp);
      });
    }
    const audio = media.audio;
    if (audio) {
      audio.receiver.track.onReceiveRtp.subscribe((rtp) => this.onRtp("audio", rtp));
      audio.receiver.onRtcp.subscribe((p) => {
        if (p instanceof RtcpSrPacket) this.recording?.recorder.senderReport("audio", p.senderInfo.ntpTimestamp, p.senderInfo.rtpTimestamp);
      });
    }
  }

  get live(): boolean {
    return this.state !== "closed";
  }

  /** The video codec the publisher sends: its live viewers get it as it is. */
  get videoCodec(): VideoCodec {
    return this.media.video?.codec ?? "h264";
  }

  /** profile_idc the publisher sends, so viewers get the closest payload type. */
  get profileIdc(): number | undefined {
    return this.media.video?.profileIdc;
  }

  get hasAudio(): boolean {
    return this.media.audio !== undefined;
  }

  get status(): typeof StreamStatus.PENDING | typeof StreamStatus.PUBLISHING {
    return this.state === "publishing" ? StreamStatus.PUBLISHING : StreamStatus.PENDING;
  }

  /** The file being recorded now, if any (named as far as known before the end). */
  get recordFile(): string | undefined {
    return this.recording?.fileName;
  }

  private wire(recording: Recording): void {
    const rec = recording.recorder;
    rec.onKeyframeNeeded = () => this.requestKeyframe();
    rec.onError = (err) => {
      // A recording that is no longer this publish's (stopped on demand, replaced) cannot fail it.
      if (this.recording !== recording) return;
      console.error(`publish ${this.name}: recording failed: ${err.message}`);
      void this.fail(Info.RECORD_WRITE_FAILED);
    };
  }

  /**
   * Records from now on into `recording` (REST recorder/startup); a recording already running is finished first,
   * as WCS does. Returns the finished one's name. The new file starts at the next keyframe, asked for at once.
   */
  async startRecording(recording: Recording): Promise<string | undefined> {
    if (this.state === "closed") {
      await recording.finish();
      throw new Error("the publish is over");
    }
    const previous = this.recording;
    this.recording = recording;
    this.wire(recording);
    this.lastPliMs = -Infinity;
    this.requestKeyframe();
    return previous ? (await previous.finish()).recordName : undefined;
  }

  /** Finishes the recording running now, if any (REST recorder/terminate); the publish goes on. */
  async stopRecording(): Promise<{ found: boolean; recordName?: string }> {
    const recording = this.recording;
    if (!recording || this.state === "closed") return { found: false };
    this.recording = undefined;
    const { recordName } = await recording.finish();
    return recordName !== undefined ? { found: true, recordName } : { found: true };
  }

  private onRtp(kind: "video" | "audio", rtp: RtpPacket): void {
    if (this.state === "closed") return;
    this.lastRtpMs = performance.now();
    if (this.state === "connected") {
      this.state = "publishing";
      this.events.publishing();
    }
    if (this.recording) {
      if (kind === "video") this.recording.recorder.pushVideo(rtp);
      else this.recording.recorder.pushAudio(rtp);
    }
    for (const sink of this.sinks) sink.forward(kind, rtp);
  }

  addSink(sink: LiveSink): void {
    if (this.state === "closed") {
      sink.publisherEnded();
      return;
    }
    this.sinks.add(sink);
    this.requestKeyframe();
  }

  removeSink(sink: LiveSink): void {
    this.sinks.delete(sink);
  }

  /** Sends a PLI to the browser (rate-limited); it answers with an IDR. */
  requestKeyframe(): void {
    const ssrc = this.videoSsrc ?? this.media.video?.receiver.track.ssrc;
    const now = performance.now();
    if (!ssrc || this.state === "closed" || now - this.lastPliMs < PLI_MIN_INTERVAL_MS) return;
    this.lastPliMs = now;
    void this.media.video?.receiver.sendRtcpPLI(ssrc).catch(() => {});
  }

  /** For the inactivity watchdog: fails the publish when no RTP came for `timeoutMs` since connecting. */
  checkActivity(nowMs: number, timeoutMs: number): void {
    if ((this.state === "connected" || this.state === "publishing") && nowMs - this.lastRtpMs > timeoutMs) {
      void this.fail(Info.FAILED_BY_RTP_ACTIVITY);
    }
  }

  private async fail(info: string): Promise<void> {
    if (this.state === "closed") return;
    const recordName = await this.stop();
    this.events.failed(info, recordName);
  }

  /** Ends the publish on an operator's request: its viewers get `info`, the client UNPUBLISHED with it. */
  async terminate(info: string): Promise<void> {
    if (this.state === "closed") return;
    const recordName = await this.stop(info);
    this.events.unpublished(info, recordName);
  }

  async close(): Promise<void> {
    await this.stop();
  }

  /** Ends the publish: viewers stop, the recording is finished. Resolves to the record name. Idempotent. */
  stop(viewerInfo?: string): Promise<string | undefined> {
    this.ended ??= (async () => {
      this.state = "closed";
      this.events.closed();
      clearTimeout(this.iceTimer);
      for (const sink of this.sinks) sink.publisherEnded(viewerInfo);
      this.sinks.clear();
      await this.pc.close().catch(() => {});
      return (await this.recording?.finish())?.recordName;
    })();
    return this.ended;
  }
}
