import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Info } from "@edge-vod/shared";
import { OpusCache } from "../../sidecar/src/audio/opus-cache.ts";
import { MediaError } from "../../sidecar/src/files/file-access.ts";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import type { Mp4Index } from "../../sidecar/src/mp4/types.ts";
import { SAMPLE_MP4 } from "../helpers/fixtures.ts";

let tmp: string;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "opus-cache-"));
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function indexOf(file: string): Promise<Mp4Index> {
  const f = await new LocalDiskAccess(path.dirname(file)).open(path.basename(file));
  try {
    return await openMp4(f);
  } finally {
    await f.close();
  }
}

function counting(dir: string, extra: Partial<ConstructorParameters<typeof OpusCache>[0]> = {}) {
  const runs: string[] = [];
  const cache = new OpusCache({ dir, onTranscode: (src) => runs.push(src), ...extra });
  return { cache, runs };
}

test("sample.mp4's AAC becomes an Opus-only MP4 of the same duration", async () => {
  const dir = path.join(tmp, "one");
  const { cache, runs } = counting(dir);
  const out = await cache.get(SAMPLE_MP4, "sample-identity");
  assert.equal(runs.length, 1);
  assert.equal(path.dirname(out), dir);
  assert.match(path.basename(out), /^[0-9a-f]{64}\.opus\.mp4$/);
  const ix = await indexOf(out);
  assert.equal(ix.video, undefined);
  const a = ix.audio;
  assert.ok(a);
  assert.equal(a.codec, "opus");
  assert.equal(a.sampleRate, 48000);
  assert.equal(a.channels, 2);
  assert.equal(a.timescale, 48000);
  // Every Opus packet is a 20 ms frame; the muxer may shorten the last one's duration to end where the audio ends.
  for (let i = 0; i < a.samples.count - 1; i++) assert.equal(a.samples.duration[i], 960, `20 ms frame ${i}`);
  assert.ok(a.samples.duration[a.samples.count - 1]! <= 960);
  const seconds = (a.samples.count * 960) / 48000;
  assert.ok(Math.abs(seconds - 10) <= 0.1, `${a.samples.count} frames = ${seconds} s`);
  assert.ok(Math.abs(ix.durationSec - 10) <= 0.1, `duration ${ix.durationSec}`);
  // ~96 kbps: 10 s is about 120 kB.
  const { size } = await fs.stat(out);
  assert.ok(size > 60_000 && size < 200_000, `${size} bytes`);
  assert.deepEqual(await fs.readdir(dir), [path.basename(out)], "no temp files left");
});

test("concurrent gets share one transcode; later gets, even after a restart, are cache hits", async () => {
  const dir = path.join(tmp, "shared");
  const { cache, runs } = counting(dir);
  const [a, b] = await Promise.all([cache.get(SAMPLE_MP4, "v1"), cache.get(SAMPLE_MP4, "v1")]);
  assert.equal(a, b);
  assert.equal(runs.length, 1);
  const { mtimeMs } = await fs.stat(a);

  assert.equal(await cache.get(SAMPLE_MP4, "v1"), a);
  assert.equal(runs.length, 1);
  const restarted = counting(dir);
  assert.equal(await restarted.cache.get(SAMPLE_MP4, "v1"), a);
  assert.equal(restarted.runs.length, 0);
  assert.equal((await fs.stat(a)).mtimeMs, mtimeMs, "the cached file was not rewritten");

  // A new version of the file (new identity) is transcoded anew, under another name.
  const c = await cache.get(SAMPLE_MP4, "v2");
  assert.notEqual(c, a);
  assert.equal(runs.length, 2);
});

test("a failed transcode rejects, leaves nothing behind and is not cached", async () => {
  const dir = path.join(tmp, "fail");
  const bogus = path.join(tmp, "not-media.mp4");
  await fs.writeFile(bogus, "this is not a media file");
  const { cache, runs } = counting(dir);
  for (let attempt = 1; attempt <= 2; attempt++) {
    await assert.rejects(cache.get(bogus, "x"), (err: unknown) => {
      assert.ok(err instanceof MediaError, String(err));
      assert.equal(err.info, Info.FAILED_TO_READ_FILE);
      return true;
    });
    assert.equal(runs.length, attempt, "each attempt runs ffmpeg again");
  }
  assert.deepEqual(await fs.readdir(dir), []);
});

test("a missing ffmpeg or one over its time limit is a failed read", async () => {
  const missing = new OpusCache({ dir: path.join(tmp, "missing"), ffmpegPath: path.join(tmp, "no-ffmpeg") });
  await assert.rejects(missing.get(SAMPLE_MP4, "x"), (e: unknown) => e instanceof MediaError && e.info === Info.FAILED_TO_READ_FILE);

  const dir = path.join(tmp, "slow");
  const slow = new OpusCache({ dir, timeoutMs: 1 });
  await assert.rejects(slow.get(SAMPLE_MP4, "x"), (e: unknown) => {
    assert.ok(e instanceof MediaError && e.info === Info.FAILED_TO_READ_FILE);
    assert.match(e.message, /time limit/);
    return true;
  });
  assert.deepEqual(await fs.readdir(dir), []);
});
