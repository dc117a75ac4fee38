// `npm run prepare-media [folder]`: prepares every MP4 in the media folder (default MEDIA_DIR or media/) that cannot
// be sent as it is, into the sidecar's cache (CACHE_DIR or cache/), so that no viewer ever waits for a prepare.
// Same classification, same cache and same keys as the sidecar: what this makes, the sidecar finds.
import fs from "node:fs/promises";
import path from "node:path";
import { LocalDiskAccess } from "../sidecar/src/files/local-disk.ts";
import { MediaError } from "../sidecar/src/files/file-access.ts";
import { classify, prepareFor } from "../sidecar/src/mp4/classify.ts";
import { openMp4 } from "../sidecar/src/mp4/reader.ts";
import { PrepareCache } from "../sidecar/src/prepare/prepare-cache.ts";

const folder = path.resolve(process.argv[2] ?? process.env.MEDIA_DIR ?? "media");
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
  const t0 = performance.now();
  let line = `${name}: `;
  try {
    const file = await media.open(name);
    try {
      const index = await openMp4(file);
      const c = classify(index);
      // Prepared for every browser: rotation too, not only for those that lack the orientation extension.
      const prep = prepareFor(c.plan);
      if (!prep) {
        console.log(`${line}plays as it is`);
        continue;
      }
      line += `${c.reasons.join(", ")}: `;
      const p = await cache.get({ source: await file.toolSource(), identity: file.identity, ...prep });
      if (p.done) {
        console.log(`${line}already prepared`);
        continue;
      }
      const progress = setInterval(() => {
        const track = p.job.index.video ?? p.job.index.audio;
        const s = track?.samples;
        const at = s && s.count > 0 ? (s.dts[s.count - 1]! + s.duration[s.count - 1]!) / track.timescale : 0;
        const text = `${line}${bar(index.durationSec > 0 ? at / index.durationSec : 0)}`;
        if (process.stdout.isTTY) process.stdout.write(`\r${text}`);
      }, 250);
      const result = await p.job.finished;
      clearInterval(progress);
      if (process.stdout.isTTY) process.stdout.write("\r");
      if (result instanceof MediaError) throw result;
      const seconds = (performance.now() - t0) / 1000;
      console.log(`${line}prepared in ${seconds.toFixed(1)} s (${(index.durationSec / seconds).toFixed(1)}x real time)`);
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
