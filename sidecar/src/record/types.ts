// What the publish path needs from a recording, kept small so the container, the file store (local disk now,
// object storage later) and the finalization can change behind it.
import type { RtpPacket } from "werift";
import type { VideoCodec } from "../rtp/video-codec.ts";

export interface RecorderTracks {
  /** Video, 90 kHz RTP clock. */
  video: boolean;
  /** What the video is (default H.264). */
  videoCodec?: VideoCodec;
  /** Opus, 48 kHz RTP clock; channels as negotiated (Chromium sends stereo-capable Opus, usually mono content). */
  audio: { channels: number } | undefined;
}

export interface RecordStats {
  videoFrames: number;
  audioFrames: number;
  /** Bytes of the file on disk so far. */
  bytes: number;
  /** Media duration written so far (ms). */
  durationMs: number;
}

export interface RecordFileInfo extends RecordStats {
  /** Absolute path of the finished file. */
  path: string;
  /** Wall clock (ms since epoch) of the first sample, from RTCP sender reports when they came, else arrival. */
  startTimeMs: number;
  endTimeMs: number;
}

export interface Recorder {
  /** Every RTP packet of the video track, in arrival order (the recorder reorders and drops duplicates). */
  pushVideo(rtp: RtpPacket): void;
  pushAudio(rtp: RtpPacket): void;
  /** An RTCP sender report of a track: `ntpTimestamp` (64-bit NTP) was `rtpTimestamp` on the sender's clock. */
  senderReport(kind: "video" | "audio", ntpTimestamp: bigint, rtpTimestamp: number): void;
  /** Called when the recorder needs a keyframe (start, loss, fragment bound). The owner sends a PLI. */
  onKeyframeNeeded: (() => void) | undefined;
  /** Writing failed (disk full, I/O error). The file keeps every fragment written before; pushes are ignored after. */
  onError: ((err: Error) => void) | undefined;
  readonly stats: RecordStats;
  /** Flushes the last fragment and closes the file (still fragmented). Idempotent. */
  finish(): Promise<RecordFileInfo>;
}
