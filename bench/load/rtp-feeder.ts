// Feeds Janus's RTP mountpoint with exactly the packets our sidecar sends for the same file (our reader and H.264
// packetizer, same payload sizes, SPS/PPS before each keyframe), paced on a 2 ms timer by each packet's due time.
// ffmpeg's `-re` paces in 10 ms steps and bursts at loop points, which put ~12 ms of its own jitter into every
// Janus measurement; a feeder as precise as our scheduler makes the two servers' lateness comparable.
import dgram from "node:dgram";
import path from "node:path";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { writeRtpHeader } from "../../sidecar/src/rtp/rtp-header.ts";
import { createVodPacketSource, type MediaPacket } from "../../sidecar/src/vod/packet-source.ts";

export async function startRtpFeeder(file: string, ports: { video: number; audio: number }, pts: { video: number; audio: number }) {
  const access = new LocalDiskAccess(path.dirname(file));
  const f = await access.open(path.basename(file));
  const index = await openMp4(f);
  const source = createVodPacketSource({
    video: index.video && { file: f, track: index.video },
    audio: index.audio && { file: f, track: index.audio },
    loop: true,
  });
  await source.ready();
  const sockets = { video: dgram.createSocket("udp4"), audio: dgram.createSocket("udp4") };
  // Until Janus's mountpoint listens, the kernel answers with port-unreachable: nothing to do but keep sending.
  for (const s of Object.values(sockets)) s.on("error", () => {});
  await Promise.all([
    new Promise<void>((r) => sockets.video.connect(ports.video, "127.0.0.1", () => r())),
    new Promise<void>((r) => sockets.audio.connect(ports.audio, "127.0.0.1", () => r())),
  ]);
  const seq = { video: 0, audio: 0 };
  const ssrc = { video: 0x1234_5678, audio: 0x2345_6789 };
  const due: MediaPacket[] = [];
  const start = performance.now();
  const timer = setInterval(() => {
    due.length = 0;
    source.take(performance.now() - start, due);
    for (const p of due) {
      const buf = Buffer.allocUnsafe(12 + p.payload.byteLength);
      writeRtpHeader(buf, pts[p.kind], p.marker, (seq[p.kind] = (seq[p.kind] + 1) & 0xffff), p.timestamp >>> 0, ssrc[p.kind]);
      buf.set(p.payload, 12);
      sockets[p.kind].send(buf);
    }
  }, 2);
  return {
    async stop() {
      clearInterval(timer);
      await source.close();
      await f.close();
      sockets.video.close();
      sockets.audio.close();
    },
  };
}
