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
}

/** `file` must be H.264 (no B-frames) + Opus. */
export async function createWeriftPublisher(file: string, opts: { codecs?: "h264" | "vp8"; audio?: boolean } = {}) {
  const pc = testPeer(opts.codecs === "vp8" ? new RTCRtpCodecParameters({ mimeType: "video/VP8", clockRate: 90000 }) : undefined);
  const videoT = pc.addTransceiver("video", { direction: "sendonly" });
  const audioT = opts.audio === false ? undefined : pc.addTransceiver("audio", { direction: "sendonly" });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const offerSdp = withoutCandidates(pc.localDescription?.sdp ?? offer.sdp);

  const stats: PublisherStats = { videoFramesSent: 0, audioPacketsSent: 0, plisReceived: 0 };
  const access = new LocalDiskAccess(path.dirname(file));
  const f = await access.open(path.basename(file));
  const index = await openMp4(f);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const send = (sender: RTCRtpSender, seq: { n: number }, p: MediaPacket, tsBase: number) => {
    seq.n = (seq.n + 1) & 0xffff;
    const header = new RtpHeader({ sequenceNumber: seq.n, timestamp: (p.timestamp + tsBase) >>> 0, marker: p.marker });
    void sender.sendRtp(new RtpPacket(header, Buffer.from(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength))).catch(() => {});
  };

  async function run(): Promise<void> {
    const vSeq = { n: 1000 };
    const aSeq = { n: 5000 };
    // Random-ish RTP bases near the wrap point, like a browser's.
    let vBase = 0xffff0000;
    let aBase = 0xfffe0000;
    let startMs = performance.now();
    let source = createVodPacketSource({ video: { file: f, track: index.video! }, ...(index.audio ? { audio: { file: f, track: index.audio } } : {}) });
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
          send(videoT.sender, vSeq, p, vBase);
          if (p.marker) stats.videoFramesSent++;
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
        source = createVodPacketSource({ video: { file: f, track: index.video! }, ...(index.audio ? { audio: { file: f, track: index.audio } } : {}) });
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
    },
  };
}
