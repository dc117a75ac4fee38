// A browser publisher stand-in built on werift: offers sendonly H.264 + Opus the way the Web SDK does (offer taken
// before gathering, no candidates) and, once connected, sends an MP4 file's samples in real time as RTP, looping.
// It answers PLIs by jumping to the next keyframe, as an encoder would send an IDR.
import { RTCRtpCodecParameters, RtpHeader, RtpPacket, type RTCRtpSender } from "werift";
import { testPeer, withoutCandidates } from "./werift-viewer.ts";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { createVodPacketSource, type MediaPacket } from "../../sidecar/src/vod/packet-source.ts";
import path from "node:path";

export interface PublisherStats {
  videoFramesSent: number;
  audioPacketsSent: number;
  plisReceived: number;
  /** Video packets `tamper` dropped: their sequence numbers were used, as if lost on the way. */
  videoPacketsLost: number;
  /** Wall-clock time (ms since epoch) the first and the latest video frame went out; undefined before one did. */
  firstVideoFrameAt?: number;
  lastVideoFrameAt?: number;
}

export interface PublisherOptions {
  codecs?: "h264" | "vp8";
  audio?: boolean;
  /** The one video codec offered, overriding `codecs` (e.g. VP8 with nack/pli as Firefox offers it, or VP9). */
  video?: RTCRtpCodecParameters;
  /** An MP4 whose Opus track is sent as the audio instead of `file`'s own (a VP8 fixture has no sound). */
  audioFile?: string;
  /**
   * Sees every video packet before it is sent: returns it (or a changed copy) to send it, null to lose it (its
   * sequence number is used all the same, so the receiver sees a gap). For bad-input tests.
   */
  tamper?: (p: MediaPacket) => MediaPacket | null;
  /**
   * Sender reports with the real wall clock, as a browser's: werift 0.24's ntpTime() puts the decimal digits of the
   * seconds into the NTP fraction as an integer, so its reports are only right to the second, and a recorder that
   * places audio against video by them is off by up to a second. Off by default (what the older tests ran with).
   */
  exactSenderReports?: boolean;
}

/** Now as a 64-bit NTP timestamp (seconds since 1900, then a binary fraction). */
function ntpNow(): bigint {
  const ms = performance.timeOrigin + performance.now() - Date.UTC(1900, 0, 1);
  const seconds = Math.floor(ms / 1000);
  const fraction = Math.floor(((ms - seconds * 1000) / 1000) * 2 ** 32);
  return (BigInt(seconds) << 32n) | BigInt(fraction);
}

/** `file` must be H.264 (no B-frames) or VP8 (`vp08`), + Opus unless `audioFile` gives the sound. */
export async function createWeriftPublisher(file: string, opts: PublisherOptions = {}) {
  const pc = testPeer(opts.video ?? (opts.codecs === "vp8" ? new RTCRtpCodecParameters({ mimeType: "video/VP8", clockRate: 90000 }) : undefined));
  const videoT = pc.addTransceiver("video", { direction: "sendonly" });
  const audioT = opts.audio === false ? undefined : pc.addTransceiver("audio", { direction: "sendonly" });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const offerSdp = withoutCandidates(pc.localDescription?.sdp ?? offer.sdp);

  const stats: PublisherStats = { videoFramesSent: 0, audioPacketsSent: 0, plisReceived: 0, videoPacketsLost: 0 };
  const access = new LocalDiskAccess(path.dirname(file));
  const f = await access.open(path.basename(file));
  const index = await openMp4(f);
  const af = opts.audioFile ? await new LocalDiskAccess(path.dirname(opts.audioFile)).open(path.basename(opts.audioFile)) : f;
  const audioTrack = af === f ? index.audio : (await openMp4(af)).audio;
  if (opts.audioFile && !audioTrack) throw new Error(`${opts.audioFile} has no audio track`);
  const newSource = () => createVodPacketSource({ video: { file: f, track: index.video! }, ...(audioTrack ? { audio: { file: af, track: audioTrack } } : {}) });
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const send = (sender: RTCRtpSender, seq: { n: number }, p: MediaPacket, tsBase: number) => {
    seq.n = (seq.n + 1) & 0xffff;
    const header = new RtpHeader({ sequenceNumber: seq.n, timestamp: (p.timestamp + tsBase) >>> 0, marker: p.marker });
    void sender.sendRtp(new RtpPacket(header, Buffer.from(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength))).catch(() => {});
    // sendRtp notes the packet's send time and timestamp for its next report synchronously, before its first await.
    const noted = sender as unknown as { ntpTimestamp: bigint; rtpTimestamp: number };
    if (opts.exactSenderReports && noted.rtpTimestamp === header.timestamp) noted.ntpTimestamp = ntpNow();
  };

  async function run(): Promise<void> {
    const vSeq = { n: 1000 };
    const aSeq = { n: 5000 };
    // Random-ish RTP bases near the wrap point, like a browser's.
    let vBase = 0xffff0000;
    let aBase = 0xfffe0000;
    let startMs = performance.now();
    let source = newSource();
    videoT.sender.onPictureLossIndication.subscribe(() => {
      stats.plisReceived++;
      source.skipVideoToNextKeyframe();
    });
    await source.ready();
    const due: MediaPacket[] = [];
    timer = setInterval(() => {
      if (stopped) return;
      due.length = 0;
      source.take(performance.now() - startMs, due);
      for (const p of due) {
        if (p.kind === "video") {
          const out = opts.tamper ? opts.tamper(p) : p;
          if (out === null) {
            vSeq.n = (vSeq.n + 1) & 0xffff;
            stats.videoPacketsLost++;
            continue;
          }
          send(videoT.sender, vSeq, out, vBase);
          if (out.marker) {
            stats.videoFramesSent++;
            stats.lastVideoFrameAt = Date.now();
            stats.firstVideoFrameAt ??= stats.lastVideoFrameAt;
          }
        } else if (audioT) {
          send(audioT.sender, aSeq, p, aBase);
          stats.audioPacketsSent++;
        }
      }
      if (source.ended) {
        // Loop: timestamps continue after the file's duration.
        const durMs = index.durationSec * 1000;
        vBase = (vBase + Math.round(durMs * 90)) >>> 0;
        aBase = (aBase + Math.round(durMs * 48)) >>> 0;
        startMs += durMs;
        void source.close();
        source = newSource();
      }
    }, 5);
  }

  let started = false;
  pc.connectionStateChange.subscribe((s) => {
    if (s === "connected" && !started) {
      started = true;
      void run();
    }
  });

  return {
    pc,
    offerSdp,
    stats,
    async setAnswer(sdp: string) {
      await pc.setRemoteDescription({ type: "answer", sdp });
    },
    /** Stops sending media but keeps the connection (an idle publisher). */
    pause() {
      stopped = true;
    },
    async close() {
      stopped = true;
      clearInterval(timer);
      await pc.close();
      await f.close();
      if (af !== f) await af.close();
    },
  };
}
