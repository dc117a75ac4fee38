// A viewer of a published stream (the plain name a browser publishes under): the publisher's RTP is forwarded as
// it arrives, video from the next keyframe on, with the viewer's own sequence numbers (gaps kept, so the browser
// sees loss and asks for a keyframe, which goes on to the publisher).
import type { RTCPeerConnection, RtpPacket } from "werift";
import { Info, StreamStatus } from "@edge-vod/shared";
import type { LiveSink, Publisher } from "../publish/publisher.ts";
import { isKeyframeStart, type VideoCodec } from "../rtp/video-codec.ts";
import { PeerViewer, type ViewerEvents } from "../streams/peer-viewer.ts";
import { RtpOut } from "../streams/rtp-out.ts";
import type { SendAnswer } from "../webrtc/answer.ts";

interface Out {
  rtp: RtpOut;
  /** Our sequence number = the publisher's + offset (mod 2^16); set at the first forwarded packet. */
  seqOffset: number;
  started: boolean;
}

export class LiveViewer extends PeerViewer implements LiveSink {
  private readonly video: Out | undefined;
  private readonly audio: Out | undefined;
  private readonly codec: VideoCodec;

  constructor(
    pc: RTCPeerConnection,
    private readonly publisher: Publisher,
    answer: SendAnswer,
    events: ViewerEvents,
    iceTimeoutMs: number,
  ) {
    super(pc, events, iceTimeoutMs);
    const out = (t: SendAnswer["audio"]): Out | undefined =>
      t ? { rtp: new RtpOut(t.sender, t.payloadType), seqOffset: 0, started: false } : undefined;
    this.video = out(answer.video);
    this.codec = answer.video?.codec ?? "h264";
    this.audio = out(answer.audio);
    this.video?.rtp.sender.onPictureLossIndication.subscribe(() => publisher.requestKeyframe());
  }

  protected onConnected(): void {
    this.events.playing();
    this.publisher.addSink(this);
  }

  forward(kind: "video" | "audio", rtp: RtpPacket): void {
    const out = kind === "video" ? this.video : this.audio;
    if (!out || this.state !== "playing") return;
    if (!out.started) {
      // Frames before the first keyframe cannot be decoded; audio waits too, so both start together.
      if (kind === "audio" && this.video && !this.video.started) return;
      if (kind === "video" && !isKeyframeStart(this.codec, rtp.payload)) return;
      out.started = true;
      out.seqOffset = (Math.floor(Math.random() * 0x10000) - rtp.header.sequenceNumber) & 0xffff;
    }
    out.rtp.sendAs((rtp.header.sequenceNumber + out.seqOffset) & 0xffff, rtp.header.timestamp, rtp.header.marker, rtp.payload);
  }

  publisherEnded(info: string = Info.STOPPED_BY_PUBLISHER_STOP): void {
    this.end(StreamStatus.STOPPED, info);
  }

  protected async releaseFeed(): Promise<void> {
    this.publisher.removeSink(this);
  }
}
