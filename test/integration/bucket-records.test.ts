// Recordings follow the stream: two sidecars with their own disks and one real S3 server (Swift). A recording made
// through one host plays as vod:// through the other and downloads byte for byte as the object; a sidecar SIGKILLed
// mid-publish finishes and uploads the recording when it starts again; a bucket that is down while a publish records
// delays the upload, loses nothing and uploads nothing twice.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { S3Store } from "../../sidecar/src/store/s3-store.ts";
import { makeFixture } from "../helpers/fixtures.ts";
import { playToEnd } from "../helpers/full-play.ts";
import { SdkClient } from "../helpers/sdk-client.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import { startSwift, type SwiftServer } from "../helpers/swift.ts";
import { createWeriftPublisher } from "../helpers/werift-publisher.ts";
import { createWeriftViewer, playOnSidecar } from "../helpers/werift-viewer.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const secret = randomBytes(24).toString("hex");
const REST_KEY = randomBytes(16).toString("hex");
const BUCKET = "records-bucket";
const PREFIX = "vod/";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let swift: SwiftServer;
let store: S3Store;
let edge: WranglerDev;
let tmp: string;
let source: string;
const dirs: Record<string, string> = {};
const sidecars: Record<string, SidecarProcess> = {};
/** Record hook posts, as the operator's backend got them. */
const hooks: { recordName: string; key?: string; bytes: number; delivery: string }[] = [];
let hookServer: http.Server;
let hookUrl: string;

function sidecarEnv(id: string): Record<string, string> {
  return { ...swift.env(BUCKET, PREFIX), EDGE_URL: edge.url, SIDECAR_ID: id, HEARTBEAT_MS: "300", RECORD_HOOK_URL: hookUrl, RTP_ACTIVITY_TIMEOUT_MS: "3000" };
}

async function startHost(id: string): Promise<SidecarProcess> {
  sidecars[id] = await startSidecar({ secret, mediaDir: dirs[id]!, env: sidecarEnv(id) });
  return sidecars[id];
}

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-bucket-records-"));
  source = await makeFixture(tmp, "source.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=4"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4"],
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0"],
    ...["-c:a", "libopus", "-b:a", "64k", "-ac", "2"],
  ]);
  hookServer = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d)).on("end", () => {
      hooks.push({ ...(JSON.parse(body) as { recordName: string; key?: string; bytes: number }), delivery: String(req.headers["x-edge-vod-delivery"]) });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => hookServer.listen(0, "127.0.0.1", r));
  hookUrl = `http://127.0.0.1:${(hookServer.address() as { port: number }).port}/record`;
  swift = await startSwift();
  await swift.createBucket(BUCKET);
  store = new S3Store(swift.storeConfig(BUCKET));
  edge = await startWrangler({ sidecarUrl: "", secret, logLevel: "warn", vars: { SIDECAR_DEAD_AFTER_MS: "2000", KEEPALIVE_INTERVAL_MS: "1000", REST_API_KEY: REST_KEY } });
  for (const id of ["a", "b"]) {
    dirs[id] = await fs.mkdtemp(path.join(tmp, `disk-${id}-`));
    await startHost(id);
  }
  await sleep(1500);
});

after(async () => {
  await edge?.stop();
  await Promise.all(Object.values(sidecars).map((s) => s.stop()));
  await swift?.stop();
  await new Promise((r) => hookServer?.close(r));
  await fs.rm(tmp, { recursive: true, force: true });
});

async function publishers(s: SidecarProcess): Promise<number> {
  return ((await (await signedFetch(secret, `${s.url}/v1/health`)).json()) as { publishers: number }).publishers;
}

/** Publishes with record: true through the edge; resolves once PUBLISHING, with the host it went to. */
async function startRecording(name: string) {
  const client = await SdkClient.connect(edge.wsUrl);
  const pub = await createWeriftPublisher(source);
  const id = client.publishStream({ name, sdp: pub.offerSdp, record: true });
  const answer = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id, { timeoutMs: 20_000 });
  await pub.setAnswer(String(answer.data[1]));
  await client.waitForStatus(id, "PUBLISHING", { timeoutMs: 20_000 });
  let host: string | undefined;
  for (const [hid, s] of Object.entries(sidecars)) if ((await publishers(s)) > 0) host = hid;
  assert.ok(host, "one of the hosts publishes");
  return { client, pub, id, host, publishedAt: Date.now() };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function objectBytes(name: string): Promise<Buffer> {
  const head = await store.head(PREFIX + name);
  assert.ok(head, `${name} is in the bucket`);
  return Buffer.from((await store.read(PREFIX + name, { start: 0 })).bytes);
}

async function frameCount(bytes: Buffer): Promise<{ frames: number; durationSec: number }> {
  const file = path.join(tmp, `probe-${randomUUID()}.mp4`);
  await fs.writeFile(file, bytes);
  const f = await new LocalDiskAccess(tmp).open(path.basename(file));
  const index = await openMp4(f);
  await f.close();
  return { frames: index.video!.samples.count, durationSec: index.durationSec };
}

test("a recording made through one host plays through the other at once, lands in the bucket, and downloads byte for byte", async () => {
  const rec = await startRecording(`cross ${randomUUID().slice(0, 8)}`);
  await sleep(4000);
  rec.client.unPublishStream(rec.id);
  const done = await rec.client.waitForStatus(rec.id, "UNPUBLISHED", { timeoutMs: 30_000 });
  await rec.pub.close();
  await rec.client.close();
  const recordName = done.recordName!;
  assert.equal(recordName, `stream-${rec.id}-.mp4`);

  // At once: wherever it is (still on the recording host's disk, or already in the bucket).
  const now = await playToEnd(edge.wsUrl, `vod://${recordName}`);
  assert.equal(now.last.status, "STOPPED", JSON.stringify(now.last));

  const hook = await waitFor("the record hook", async () => hooks.find((h) => h.recordName === recordName));
  assert.equal(hook.key, PREFIX + recordName, "the hook names the object, once it is there");
  const bytes = await objectBytes(recordName);
  assert.equal(hook.bytes, bytes.length);
  await waitFor("the local copy to go", async () => ((await fs.stat(path.join(dirs[rec.host]!, recordName)).catch(() => undefined)) ? undefined : true));
  const { frames, durationSec } = await frameCount(bytes);

  // Through the other host, which never had it on disk: every frame of the object.
  const other = sidecars[rec.host === "a" ? "b" : "a"]!;
  const viewer = await createWeriftViewer();
  await playOnSidecar(other, viewer.pc, `vod://${recordName}`);
  await waitFor("every frame on the other host", async () => (viewer.received.videoFrameTimestamps.length >= frames ? true : undefined), (durationSec + 15) * 1000);
  assert.equal(viewer.received.videoFrameTimestamps.length, frames);
  await viewer.close();

  // The download, from wherever the edge finds it: the object's bytes, whole and by range.
  const res = await fetch(`${edge.url}/client/records/${encodeURIComponent(recordName)}`);
  assert.equal(res.status, 200);
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes), "the download is the object");
  const part = await fetch(`${edge.url}/client/records/${encodeURIComponent(recordName)}`, { headers: { range: "bytes=1000-1999" } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get("content-range"), `bytes 1000-1999/${bytes.length}`);
  assert.ok(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(1000, 2000)));

  // The REST API sees it in the bucket, once, though every host lists the bucket.
  const list = await fetch(`${edge.url}/rest-api/records/find_all`, {
    method: "POST",
    headers: { authorization: `Bearer ${REST_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ name: recordName }),
  });
  assert.equal(list.status, 200);
  const entries = (await list.json()) as { name: string; stored?: string; size: number }[];
  assert.deepEqual(
    entries.map((e) => [e.name, e.stored, e.size]),
    [[recordName, "bucket", bytes.length]],
  );

  // Deleted through the REST API: gone from the bucket, and from the listing.
  const api = (method: string, body: unknown) =>
    fetch(`${edge.url}/rest-api/${method}`, { method: "POST", headers: { authorization: `Bearer ${REST_KEY}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  assert.equal((await api("records/delete", { name: recordName })).status, 200);
  assert.equal(await store.head(PREFIX + recordName), undefined, "the object is deleted");
  assert.deepEqual(await (await api("records/find_all", { name: recordName })).json(), []);
  assert.equal((await api("records/delete", { name: recordName })).status, 404);
});

test("SIGKILL of the recording host mid-publish: after its restart the recording is finalized, uploaded and plays, losing at most 1 s", async () => {
  const rec = await startRecording(`killed ${randomUUID().slice(0, 8)}`);
  await sleep(5000);
  const host = sidecars[rec.host]!;
  await host.kill("SIGKILL");
  const publishedSec = (Date.now() - rec.publishedAt) / 1000;
  await rec.pub.close();
  // The session hears that its media server is gone.
  const failed = await rec.client.waitForStatus(rec.id, "FAILED", { timeoutMs: 20_000 });
  assert.equal(failed.info, "Media server lost");
  await rec.client.close();
  const recordName = `stream-${rec.id}-.mp4`;
  assert.equal(await store.head(PREFIX + recordName), undefined, "nothing is in the bucket before the restart");

  await host.stop();
  await startHost(rec.host);
  const hook = await waitFor("the recovered recording's hook", async () => hooks.find((h) => h.recordName === recordName));
  assert.equal(hook.key, PREFIX + recordName);
  const { durationSec } = await frameCount(await objectBytes(recordName));
  assert.ok(durationSec >= publishedSec - 1.5, `recovered ${durationSec.toFixed(2)} s of ${publishedSec.toFixed(2)} s published`);
  assert.ok(durationSec <= publishedSec + 0.5, `recovered ${durationSec.toFixed(2)} s of ${publishedSec.toFixed(2)} s published`);
  await sleep(1000);
  const back = await playToEnd(edge.wsUrl, `vod://${recordName}`);
  assert.equal(back.last.status, "STOPPED", JSON.stringify(back.last));
});

test("the bucket down while a publish records: the file stays on disk and plays, the upload retries and lands once it is back, once", async () => {
  await swift.stopProxy();
  let recordName: string;
  let host: string;
  let localBytes: Buffer;
  try {
    const rec = await startRecording(`outage ${randomUUID().slice(0, 8)}`);
    host = rec.host;
    await sleep(3000);
    rec.client.unPublishStream(rec.id);
    const done = await rec.client.waitForStatus(rec.id, "UNPUBLISHED", { timeoutMs: 30_000 });
    await rec.pub.close();
    await rec.client.close();
    recordName = done.recordName!;
    // Give the upload a few failed attempts.
    await sleep(3000);
    localBytes = await fs.readFile(path.join(dirs[host]!, recordName));
    assert.ok(localBytes.length > 10_000, "the recording is on the host's disk");
    assert.equal(hooks.filter((h) => h.recordName === recordName).length, 0, "no hook before the upload");
    // Playable meanwhile: the edge places its viewer on the host that holds it.
    const now = await playToEnd(edge.wsUrl, `vod://${recordName}`);
    assert.equal(now.last.status, "STOPPED", JSON.stringify(now.last));
  } finally {
    await swift.startProxy();
  }
  await waitFor("the upload after the outage", async () => hooks.find((h) => h.recordName === recordName));
  const bytes = await objectBytes(recordName);
  assert.ok(bytes.equals(localBytes), "the object is the file that waited on disk");
  const head = await store.head(PREFIX + recordName);
  assert.equal(head?.etag, createHash("md5").update(localBytes).digest("hex"));
  await waitFor("the local copy to go", async () => ((await fs.stat(path.join(dirs[host]!, recordName)).catch(() => undefined)) ? undefined : true));
  await sleep(2000);
  assert.equal(hooks.filter((h) => h.recordName === recordName).length, 1, "one hook, one upload");
  assert.match(sidecars[host]!.output(), new RegExp(`uploads: ${recordName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(attempt 1\\)`), "the failed attempt is logged");
});
