// `npm run prepare-media [--vp8] [folder]`: prepares every MP4 in the media folder (default MEDIA_DIR or media/) that
// cannot be sent as it is, into the sidecar's cache (CACHE_DIR or cache/), so that no viewer ever waits for a prepare.
// `--vp8` also makes the VP8 copies that browsers without H.264 play. Same classification, same cache and same keys as
// the sidecar: what this makes, the sidecar finds.
import fs from "node:fs/promises";
import path from "node:path";
import { LocalDiskAccess } from "../sidecar/src/files/local-disk.ts";
import { MediaError } from "../sidecar/src/files/file-access.ts";
import { classify, planFor, prepareFor } from "../sidecar/src/mp4/classify.ts";
import { openMp4 } from "../sidecar/src/mp4/reader.ts";
import { PrepareCache, type PrepareKind } from "../sidecar/src/prepare/prepare-cache.ts";

const args = process.argv.slice(2);
const vp8 = args.includes("--vp8");
const folder = path.resolve(args.find((a) => !a.startsWith("--")) ?? process.env.MEDIA_DIR ?? "media");
const cacheDir = path.resolve(process.env.CACHE_DIR || "cache");
const maxMb = Number(process.env.CACHE_MAX_MB || 20480);
const media = new LocalDiskAccess(folder);
const cache = new PrepareCache({
  dir: cacheDir,
  maxBytes: maxMb * 1024 * 1024,
  ...(process.env.FFMPEG_PATH ? { ffmpegPath: process.env.FFMPEG_PATH } : {}),
});

async function mp4sUnder(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
    const name = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory() && !e.name.startsWith(".")) out.push(...(await mp4sUnder(dir, name)));
    else if (e.isFile() && /\.(mp4|m4v|mov)$/i.test(e.name)) out.push(name);
  }
  return out.sort();
}

function bar(fraction: number): string {
  const width = 30;
  const n = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `[${"#".repeat(n)}${".".repeat(width - n)}] ${(fraction * 100).toFixed(0).padStart(3)}%`;
}

const names = await mp4sUnder(folder);
console.log(`${names.length} files in ${folder}; cache ${cacheDir}`);
let failed = 0;
for (const name of names) {
  let line = `${name}: `;
  try {
    const file = await media.open(name);
    try {
      const index = await openMp4(file);
      const c = classify(index);
      // Prepared for every browser: rotation too, not only for those that lack the orientation extension.
      const preps: { kind: PrepareKind; withAudio: boolean; sourceKbps?: number }[] = [];
      const h264 = prepareFor(c.plan);
      if (h264) preps.push(h264);
      if (vp8) {
        if (planFor(c, "vp8").video === "prepare") preps.push({ kind: "vp8", withAudio: false, ...(c.video?.kbps ? { sourceKbps: c.video.kbps } : {}) });
        // A VP8 viewer's sound: the Opus copy, unless the H.264 copy is all this file needs (sound in it).
        if (c.plan.audio === "transcode" && !preps.some((p) => p.kind === "audio")) preps.push({ kind: "audio", withAudio: true });
      }
      if (preps.length === 0) {
        console.log(`${line}plays as it is`);
        continue;
      }
      line += `${c.reasons.join(", ") || "VP8"}: `;
      for (const prep of preps) {
        const t0 = performance.now();
        const what = `${line}${prep.kind === "vp8" ? "VP8 copy" : prep.kind === "audio" ? "Opus copy" : "H.264 copy"} `;
        const p = await cache.get({ source: await file.toolSource(), identity: file.identity, ...prep });
        if (p.done) {
          console.log(`${what}already prepared`);
          continue;
        }
        const progress = setInterval(() => {
          const track = p.job.index.video ?? p.job.index.audio;
          const s = track?.samples;
          const at = s && s.count > 0 ? (s.dts[s.count - 1]! + s.duration[s.count - 1]!) / track.timescale : 0;
          const text = `${what}${bar(index.durationSec > 0 ? at / index.durationSec : 0)}`;
          if (process.stdout.isTTY) process.stdout.write(`\r${text}`);
        }, 250);
        const result = await p.job.finished;
        clearInterval(progress);
        if (process.stdout.isTTY) process.stdout.write("\r");
        if (result instanceof MediaError) throw result;
        const seconds = (performance.now() - t0) / 1000;
        console.log(`${what}prepared in ${seconds.toFixed(1)} s (${(index.durationSec / seconds).toFixed(1)}x real time)`);
      }
    } finally {
      await file.close();
    }
  } catch (err) {
    failed++;
    console.log(`${line}FAILED: ${err instanceof Error ? err.message : String(err)}`);
  }
}
await cache.close();
process.exitCode = failed > 0 ? 1 : 0;
