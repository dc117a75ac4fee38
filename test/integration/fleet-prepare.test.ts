// A bucket file that needs preparing (H.264 with B-frames and AAC, as ffmpeg writes by default) is prepared once for
// the whole fleet: two sidecars asked for it at the same moment run one ffmpeg between them (a lease at the edge),
// the other follows the holder's copy as it grows, both viewers get every frame, and the finished copy lands in the
// bucket, where a third sidecar with an empty cache plays it without preparing anything.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { S3Store } from "../../sidecar/src/store/s3-store.ts";
import { makeFixture } from "../helpers/fixtures.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startSwift, type SwiftServer } from "../helpers/swift.ts";
import { playOnHost } from "../helpers/full-play.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const secret = randomBytes(24).toString("hex");
const BUCKET = "fleet-bucket";
const PREFIX = "vod/";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let swift: SwiftServer;
let store: S3Store;
let edge: WranglerDev;
let tmp: string;
let frames: number;
let seconds: number;
const sidecars: SidecarProcess[] = [];

async function host(id: string): Promise<SidecarProcess> {
  const s = await startSidecar({ secret, mediaDir: await fs.mkdtemp(path.join(tmp, `media-${id}-`)), env: { ...swift.env(BUCKET, PREFIX), EDGE_URL: edge.url, SIDECAR_ID: id, HEARTBEAT_MS: "300" } });
  sidecars.push(s);
  return s;
}

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-fleet-"));
  const file = await makeFixture(tmp, "bframes.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=8"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=8"],
    ...["-c:v", "libx264", "-preset", "medium", "-profile:v", "high", "-bf", "3", "-pix_fmt", "yuv420p"],
    ...["-c:a", "aac", "-b:a", "96k"],
  ]);
  const f = await new LocalDiskAccess(tmp).open("bframes.mp4");
  const index = await openMp4(f);
  await f.close();
  assert.ok(index.video!.hasBFrames, "the fixture has B-frames, so it needs preparing");
  frames = index.video!.samples.count;
  seconds = index.durationSec;
  swift = await startSwift();
  await swift.createBucket(BUCKET);
  store = new S3Store(swift.storeConfig(BUCKET));
  await store.put(`${PREFIX}bframes.mp4`, await fs.readFile(file));
  edge = await startWrangler({ sidecarUrl: "", secret, logLevel: "warn" });
  await host("a");
  await host("b");
  await sleep(1000);
});

after(async () => {
  await edge?.stop();
  await Promise.all(sidecars.map((s) => s.stop()));
  await swift?.stop();
  await fs.rm(tmp, { recursive: true, force: true });
});

const playAll = async (s: SidecarProcess): Promise<number> => (await playOnHost(s, "vod://bframes.mp4", frames, seconds)).videoFrameTimestamps.length;

test("two hosts asked at once prepare it once between them, both viewers get every frame, and the copy lands in the bucket", async () => {
  const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
  const got = await Promise.all([playAll(a), playAll(b)]);
  assert.deepEqual(got, [frames, frames], "every frame on both hosts");
  const stats = await Promise.all([a.prepareStats(), b.prepareStats()]);
  assert.equal(stats[0].prepares + stats[1].prepares, 1, `one ffmpeg for the fleet: ${JSON.stringify(stats)}`);
  let copies: string[] = [];
  for (let i = 0; i < 100 && copies.length === 0; i++) {
    copies = (await store.list(`${PREFIX}.edge-vod/prepared/`)).objects.map((o) => o.key);
    if (copies.length === 0) await sleep(200);
  }
  assert.equal(copies.length, 1, "the finished copy is in the bucket");
  assert.match(copies[0]!, /^vod\/\.edge-vod\/prepared\/[0-9a-f]{64}\.mp4$/);
});

test("a third host with an empty cache plays the bucket's copy and prepares nothing", async () => {
  const c = await host("c");
  await sleep(800);
  assert.equal(await playAll(c), frames);
  const stats = await c.prepareStats();
  assert.deepEqual([stats.prepares, stats.hits], [0, 1], JSON.stringify(stats));
});
