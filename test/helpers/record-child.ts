// Child process for the recorder's SIGKILL test: records an MP4 fixture sent as RTP in real time, printing a line
// each time a fragment is completely on disk, until the parent kills it.
// Usage: node --import tsx test/helpers/record-child.ts <fixture.mp4> <out.mp4> <fragmentMs>
import { setTimeout as sleep } from "node:timers/promises";
import { createFmp4Recorder } from "../../sidecar/src/record/fmp4-recorder.ts";
import { loadMedia, toRtp } from "./record-media.ts";

const [fixture, out, fragmentMs] = process.argv.slice(2);
if (!fixture || !out || !fragmentMs) throw new Error("usage: record-child.ts <fixture.mp4> <out.mp4> <fragmentMs>");

const media = await loadMedia(fixture);
const rtp = toRtp(media, { wallMs0: Date.now() });
const rec = createFmp4Recorder({
  path: out,
  tracks: { video: true, audio: { channels: 2 } },
  fragmentMs: Number(fragmentMs),
  onFragment: (f) => process.stdout.write(`fragment ${JSON.stringify(f)}\n`),
});
rec.onError = (err) => {
  process.stderr.write(`record-child: ${err.message}\n`);
  process.exit(1);
};
rec.senderReport("video", rtp.videoSr.ntp, rtp.videoSr.rtp);
rec.senderReport("audio", rtp.audioSr.ntp, rtp.audioSr.rtp);
const t0 = performance.now();
for (const e of rtp.events) {
  const wait = t0 + e.mediaMs - performance.now();
  if (wait > 1) await sleep(wait);
  if (e.kind === "video") rec.pushVideo(e.packet);
  else rec.pushAudio(e.packet);
}
await rec.finish();
process.stdout.write("done\n");
