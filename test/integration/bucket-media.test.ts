// Files only in the bucket: two sidecars with empty media folders, one real S3 server (Swift), one edge. Each host
// plays a bucket file whole, read by ranges through its block cache; bad names and bad objects get clear infos; an
// object replaced while it plays never mixes versions; wrong credentials say so to the player and in health.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Info } from "@edge-vod/shared";
import { S3Store } from "../../sidecar/src/store/s3-store.ts";
import { SAMPLE_MP4, makeFixture } from "../helpers/fixtures.ts";
import { assertWholeFile, playOnHost, playToEnd } from "../helpers/full-play.ts";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import { startSwift, type SwiftServer } from "../helpers/swift.ts";
import { createWeriftViewer, playOnSidecar } from "../helpers/werift-viewer.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";
import { SdkClient } from "../helpers/sdk-client.ts";
import { joinViewer, mediaZeroAt } from "../helpers/vod-live-viewer.ts";

const secret = randomBytes(24).toString("hex");
const BUCKET = "media-bucket";
const PREFIX = "vod/";
let swift: SwiftServer;
let store: S3Store;
let edge: WranglerDev;
let tmp: string;
const sidecars: SidecarProcess[] = [];
const UNICODE = "sub/ünïcødé clip – 1.mp4";

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-bucket-media-"));
  swift = await startSwift();
  await swift.createBucket(BUCKET);
  store = new S3Store(swift.storeConfig(BUCKET));
  const sample = await fs.readFile(SAMPLE_MP4);
  await store.put(`${PREFIX}sample.mp4`, sample);
  await store.put(`${PREFIX}${UNICODE}`, sample);
  await store.put(`${PREFIX}replaced.mp4`, sample);
  await store.put(`${PREFIX}warm.mp4`, sample);
  await store.put(`${PREFIX}garbage.mp4`, randomBytes(300_000));
  await store.put(`${PREFIX}truncated.mp4`, sample.subarray(0, sample.length - 400_000));
  await store.put(`${PREFIX}empty.mp4`, new Uint8Array(0));
  // A file with its moov at the end, as cameras write them: one more range read, no download.
  const moovAtEnd = await makeFixture(tmp, "moov-at-end.mp4", ["-i", SAMPLE_MP4, "-c", "copy", "-movflags", "-faststart"]);
  await store.put(`${PREFIX}moov-at-end.mp4`, await fs.readFile(moovAtEnd));
  edge = await startWrangler({ sidecarUrl: "", secret, logLevel: "warn", vars: { SIDECAR_DEAD_AFTER_MS: "3000" } });
  for (const id of ["a", "b"]) {
    const mediaDir = await fs.mkdtemp(path.join(tmp, `media-${id}-`));
    sidecars.push(
      await startSidecar({
        secret,
        mediaDir,
        // Small blocks: a 1.2 MB file is many range reads, so replacing it mid-play meets unread blocks.
        env: { ...swift.env(BUCKET, PREFIX), S3_BLOCK_KB: "64", EDGE_URL: edge.url, SIDECAR_ID: id, HEARTBEAT_MS: "300" },
      }),
    );
  }
  // Both registered before the first play.
  await new Promise((r) => setTimeout(r, 1500));
});

after(async () => {
  await edge?.stop();
  await Promise.all(sidecars.map((s) => s.stop()));
  await swift?.stop();
  await fs.rm(tmp, { recursive: true, force: true });
});

async function metric(s: SidecarProcess, name: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const m = new RegExp(`^${name.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

test("a file only in the bucket plays whole through both hosts, read by ranges, with the file's timestamps and Opus", async () => {
  const before = await Promise.all(sidecars.map((s) => metric(s, "edge_vod_storage_read_bytes_total")));
  // Straight on each host: through the edge the second viewer would go where the file is warm (the next test).
  const f = await new LocalDiskAccess(path.dirname(SAMPLE_MP4)).open(path.basename(SAMPLE_MP4));
  const index = await openMp4(f);
  await f.close();
  const plays = await Promise.all(sidecars.map((s) => playOnHost(s, "vod://sample.mp4", index.video!.samples.count, index.durationSec)));
  try {
    for (const received of plays) await assertWholeFile(received, SAMPLE_MP4);
  } catch (err) {
    throw new Error(`${String(err)}\n--- sidecars ---\n${sidecars.map((s) => s.output()).join("\n---\n")}`);
  }
  const after = await Promise.all(sidecars.map((s) => metric(s, "edge_vod_storage_read_bytes_total")));
  const size = (await fs.stat(SAMPLE_MP4)).size;
  sidecars.forEach((s, i) => {
    const read = after[i]! - before[i]!;
    assert.ok(read >= size * 0.9, `host ${i} read ${read} bytes of the ${size}-byte file from the bucket`);
    // Read by ranges and shared within the host: never the file twice over.
    assert.ok(read <= size * 1.2, `host ${i} read ${read} bytes for one play of a ${size}-byte file`);
  });
});

test("a new viewer goes to the host that has the file warm, not to the other idle one", async () => {
  const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
  // b reads it first (straight on b, not through the edge), and says so in its heartbeats.
  const first = await createWeriftViewer();
  await playOnSidecar(b, first.pc, "vod://warm.mp4");
  await new Promise((r) => setTimeout(r, 1500));
  await first.close();
  // Both idle again; a sorts first, so only the warmth can send the next viewer to b.
  await new Promise((r) => setTimeout(r, 1500));
  const plays = async (s: SidecarProcess) => metric(s, 'edge_vod_plays_total{kind="vod"}');
  const before = await Promise.all([plays(a), plays(b)]);
  const { last } = await playToEnd(edge.wsUrl, "vod://warm.mp4");
  assert.equal(last.status, "STOPPED");
  const after = await Promise.all([plays(a), plays(b)]);
  assert.deepEqual([after[0] - before[0], after[1] - before[1]], [0, 1], "played on b, which had it warm");
});

test("a unicode name in a subfolder, and a moov at the end, play from the bucket", async () => {
  for (const name of [`vod://${UNICODE}`, "vod://moov-at-end.mp4"]) {
    const { received, last } = await playToEnd(edge.wsUrl, name);
    assert.equal(last.status, "STOPPED", `${name}: ${JSON.stringify(last)}`);
    await assertWholeFile(received, SAMPLE_MP4);
  }
});

test("vod-live:// of a bucket-only file: two viewers join one broadcast and see the same moment", async () => {
  const a = await joinViewer(edge.wsUrl, "vod-live://sample.mp4");
  const b = await joinViewer(edge.wsUrl, "vod-live://sample.mp4");
  try {
    await new Promise((r) => setTimeout(r, 3000));
    for (const v of [a, b]) {
      assert.ok(v.received.videoFrameTimestamps.length >= 30, `${v.received.videoFrameTimestamps.length} frames`);
      assert.ok(v.received.audioTimestamps.length >= 50, `${v.received.audioTimestamps.length} audio packets`);
    }
    // One broadcast clock (VOD_LIVE_SPREAD_MS spreads viewers of one host by up to a second).
    const spread = Math.abs(mediaZeroAt(a.received) - mediaZeroAt(b.received));
    assert.ok(spread <= 1100, `the viewers are ${spread.toFixed(0)} ms apart`);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("bad names and bad objects: a clear FAILED info each, and the sidecars keep serving", async () => {
  const cases: [string, string][] = [
    ["vod://../sample.mp4", Info.BAD_URI],
    ["vod:///etc/passwd", Info.BAD_URI],
    ["vod://sub/../../x.mp4", Info.BAD_URI],
    [`vod://${"x".repeat(10_000)}.mp4`, Info.BAD_URI],
    ["vod://.edge-vod/prepared/x.mp4", Info.RESTRICTED_ACCESS],
    ["vod://missing.mp4", Info.FILE_NOT_FOUND],
    ["vod://garbage.mp4", Info.FILE_HAS_WRONG_FORMAT],
    ["vod://truncated.mp4", Info.FILE_HAS_WRONG_FORMAT],
    ["vod://empty.mp4", Info.FILE_HAS_WRONG_FORMAT],
  ];
  const client = await SdkClient.connect(edge.wsUrl);
  try {
    for (const [name, info] of cases) {
      const viewer = await createWeriftViewer();
      const id = client.playStream({ name, sdp: viewer.offerSdp });
      const failed = await client.waitForStatus(id, "FAILED", { timeoutMs: 20_000 });
      assert.equal(failed.info, info, name.slice(0, 80));
      await viewer.close();
    }
  } finally {
    await client.close();
  }
  const { last } = await playToEnd(edge.wsUrl, "vod://sample.mp4");
  assert.equal(last.status, "STOPPED");
});

test("an object replaced while it plays: that viewer fails with 'File changed while playing' or plays its own version whole, others play on; a new play gets the new one", async () => {
  // The replacement is a tenth of the old one: a mix of versions could not pass as either.
  const short = await makeFixture(tmp, "short.mp4", ["-i", SAMPLE_MP4, "-t", "1", "-c", "copy"]);
  // Another viewer, of another file, meanwhile: unaffected.
  const bystander = playToEnd(edge.wsUrl, "vod://sample.mp4");
  const { received, last } = await playToEnd(edge.wsUrl, "vod://replaced.mp4", {
    onPlaying: async () => {
      await store.put(`${PREFIX}replaced.mp4`, await fs.readFile(short));
    },
  });
  const other = await bystander;
  assert.equal(other.last.status, "STOPPED");
  await assertWholeFile(other.received, SAMPLE_MP4);
  if (last.status === "FAILED") assert.equal(last.info, Info.FILE_CHANGED);
  else {
    assert.equal(last.status, "STOPPED");
    await assertWholeFile(received, SAMPLE_MP4);
  }
  const next = await playToEnd(edge.wsUrl, "vod://replaced.mp4");
  assert.equal(next.last.status, "STOPPED");
  await assertWholeFile(next.received, short);
});

test("wrong credentials: the player gets 'Media storage refused access', and health says why", async () => {
  const wrong = await startSidecar({ secret, mediaDir: await fs.mkdtemp(path.join(tmp, "media-w-")), env: { ...swift.env(BUCKET, PREFIX), S3_SECRET_ACCESS_KEY: "not-the-secret" } });
  try {
    const health = (await (await signedFetch(secret, `${wrong.url}/v1/health`)).json()) as { storage?: { ok: boolean; error?: string } };
    assert.equal(health.storage?.ok, false);
    assert.match(health.storage?.error ?? "", /HTTP 403 (SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId)/);
    assert.match(wrong.output(), /storage: s3:\/\/media-bucket at http:\/\/127\.0\.0\.1:\d+ refuses access/);
    const viewer = await createWeriftViewer();
    await assert.rejects(playOnSidecar(wrong, viewer.pc, "vod://sample.mp4"), new RegExp(`play refused: ${Info.STORAGE_REFUSED}`));
    await viewer.close();
  } finally {
    await wrong.stop();
  }
});

test("the bucket stopped: a new play gets 'Media storage unavailable', and plays again once it is back", async () => {
  await swift.stopProxy();
  try {
    const viewer = await createWeriftViewer();
    await assert.rejects(playOnSidecar(sidecars[0]!, viewer.pc, "vod://never-read.mp4"), new RegExp(`play refused: ${Info.STORAGE_UNAVAILABLE}`));
    await viewer.close();
  } finally {
    await swift.startProxy();
  }
  const { last } = await playToEnd(edge.wsUrl, "vod://sample.mp4");
  assert.equal(last.status, "STOPPED");
});
