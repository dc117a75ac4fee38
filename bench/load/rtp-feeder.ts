// Feeds Janus's RTP mountpoint with exactly the packets our sidecar sends for the same file (our reader and H.264
// packetizer, same payload sizes, SPS/PPS before each keyframe), paced on a 2 ms timer by each packet's due time.
// ffmpeg's `-re` paces in 10 ms steps and bursts at loop points, which put ~12 ms of its own jitter into every
// Janus measurement; a feeder as precise as our scheduler makes the two servers' lateness comparable. It runs as a
// process of its own (runFeederProcess): in the load tool's process, that process's pauses (werift, GC; up to 158 ms
// seen) were Janus's lateness.
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import path from "node:path";
import readline from "node:readline";
import { isMain } from "../is-main.ts";
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

type FeederArgs = [file: string, ports: { video: number; audio: number }, pts: { video: number; audio: number }];

/** Runs the feeder in a child process (pinned to `cpu` if given); resolves once it sends. */
export async function runFeederProcess(cpu: number | undefined, ...args: FeederArgs): Promise<{ stop(): Promise<void> }> {
  const argv = [process.execPath, "--import", "tsx", new URL(import.meta.url).pathname, JSON.stringify(args)];
  const cmd = cpu === undefined ? argv : ["taskset", "-c", String(cpu), ...argv];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  const lines = readline.createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    lines.once("line", (l) => (l === "feeding" ? resolve() : reject(new Error(`RTP feeder: ${l}`))));
    child.once("exit", (code) => reject(new Error(`RTP feeder exited (${code})`)));
  });
  return {
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await gone;
    },
  };
}

if (isMain(import.meta.url)) {
  const feeder = await startRtpFeeder(...(JSON.parse(process.argv[2]!) as FeederArgs));
  console.log("feeding");
  process.once("SIGTERM", () => void feeder.stop().then(() => process.exit(0)));
}
