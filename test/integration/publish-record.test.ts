// Publishing and recording through the real edge (wrangler dev) and sidecar, with werift clients speaking the Web
// SDK's frames: a recorded publish, a live viewer of it, a second publisher refused, the file on disk checked with
// ffprobe and played back as vod://; then the ways a recording can end badly.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import http from "node:http";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Info, SIDECAR_PATHS } from "@edge-vod/shared";
import { FFPROBE, makeFixture } from "../helpers/fixtures.ts";
import { SdkClient } from "../helpers/sdk-client.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";
import { createWeriftPublisher } from "../helpers/werift-publisher.ts";
import { createWeriftViewer } from "../helpers/werift-viewer.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let tmp: string;
let source: string;

interface Probe {
  streams: { codec_name: string; codec_type: string; nb_read_frames?: string }[];
  format: { duration: string };
}

async function probe(file: string): Promise<Probe> {
  const { stdout } = await run(FFPROBE, ["-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", file]);
  return JSON.parse(stdout) as Probe;
}

/** Top-level box types of an MP4 file, in order. */
async function topBoxes(file: string): Promise<string[]> {
  const fh = await fs.open(file);
  try {
    const size = (await fh.stat()).size;
    const out: string[] = [];
    const head = Buffer.alloc(16);
    for (let pos = 0; pos + 8 <= size; ) {
      await fh.read(head, 0, 16, pos);
      let len = head.readUInt32BE(0);
      out.push(head.toString("latin1", 4, 8));
      if (len === 1) len = Number(head.readBigUInt64BE(8));
      if (len < 8) break;
      pos += len;
    }
    return out;
  } finally {
    await fh.close();
  }
}

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-publish-"));
  // What a browser's encoder sends: constrained baseline, a keyframe every second, Opus.
  source = await makeFixture(tmp, "source.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=4"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4"],
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0"],
    ...["-c:a", "libopus", "-b:a", "64k", "-ac", "2"],
  ]);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe("through the edge", () => {
  let sidecar: SidecarProcess;
  let edge: WranglerDev;
  let recordDir: string;

  before(async () => {
    recordDir = await fs.mkdtemp(path.join(tmp, "records-"));
    const secret = randomBytes(24).toString("hex");
    sidecar = await startSidecar({ secret, env: { RECORD_DIR: recordDir, RTP_ACTIVITY_TIMEOUT_MS: "2000" } });
    edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
  });

  after(async () => {
    await edge?.stop();
    await sidecar?.stop();
  });

  test("record: PUBLISHING, a live viewer, a refused second publisher, UNPUBLISHED with the record name, a valid fast-start file that plays as vod://", async () => {
    const name = `rec ${randomUUID().slice(0, 8)} ✓/..`;
    const client = await SdkClient.connect(edge.wsUrl);
    const other = await SdkClient.connect(edge.wsUrl);
    const pub = await createWeriftPublisher(source);
    const viewer = await createWeriftViewer();
    const rival = await createWeriftPublisher(source);
    try {
      const id = client.publishStream({ name, sdp: pub.offerSdp, record: true });
      const answer = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id, { timeoutMs: 20_000 });
      await pub.setAnswer(String(answer.data[1]));
      await client.waitForStatus(id, "PUBLISHING", { timeoutMs: 20_000 });
      const publishedAt = Date.now();

      const vid = other.playStream({ name, sdp: viewer.offerSdp });
      const vAnswer = await other.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === vid, { timeoutMs: 20_000 });
      await viewer.setAnswer(String(vAnswer.data[1]));
      await other.waitForStatus(vid, "PLAYING", { timeoutMs: 20_000 });

      const rid = other.publishStream({ name, sdp: rival.offerSdp, record: true });
      const refused = await other.waitForStatus(rid, "FAILED", { timeoutMs: 20_000 });
      assert.equal(refused.info, Info.STREAM_NAME_ALREADY_IN_USE);

      await sleep(5000);
      assert.ok(viewer.received.videoFrameTimestamps.length >= 30, `live viewer got ${viewer.received.videoFrameTimestamps.length} frames`);
      assert.ok(viewer.received.audioTimestamps.length > 50, `live viewer got ${viewer.received.audioTimestamps.length} audio packets`);

      const framesSent = pub.stats.videoFramesSent;
      client.unPublishStream(id);
      const publishedSec = (Date.now() - publishedAt) / 1000;
      const done = await client.waitForStatus(id, "UNPUBLISHED", { timeoutMs: 30_000 });
      assert.equal(done.info, Info.STOPPED_BY_USER);
      const recordName = done.recordName;
      assert.equal(typeof recordName, "string");
      assert.ok(recordName!.endsWith(".mp4"), recordName);
      assert.ok(!recordName!.includes("/"), recordName);
      assert.equal(recordName, `stream-${id}-.mp4`, "WCS's default template with no login");
      const stopped = await other.waitForStatus(vid, "STOPPED", { timeoutMs: 10_000 });
      assert.equal(stopped.info, Info.STOPPED_BY_PUBLISHER_STOP);

      const file = path.join(recordDir, recordName!);
      const p = await probe(file);
      const v = p.streams.find((s) => s.codec_type === "video");
      const a = p.streams.find((s) => s.codec_type === "audio");
      assert.equal(v?.codec_name, "h264");
      assert.equal(a?.codec_name, "opus");
      const frames = Number(v!.nb_read_frames);
      assert.ok(Math.abs(frames - framesSent) <= Math.max(2, framesSent * 0.02), `recorded ${frames} frames, sent ${framesSent}`);
      const duration = Number(p.format.duration);
      assert.ok(Math.abs(duration - publishedSec) <= 0.5 + 0.3, `duration ${duration} s, published ${publishedSec.toFixed(2)} s`);
      const boxes = await topBoxes(file);
      assert.ok(boxes.indexOf("moov") >= 0 && boxes.indexOf("moov") < boxes.indexOf("mdat"), `fast-start: ${boxes.join(",")}`);
      assert.ok(!boxes.includes("moof"), `not fragmented after a clean stop: ${boxes.join(",")}`);

      // The recording downloads from the edge, byte for byte.
      const res = await fetch(`${edge.url}/client/records/${encodeURIComponent(recordName!)}`);
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), await fs.readFile(file));

      // And plays back as vod://.
      const back = await createWeriftViewer();
      try {
        const bid = client.playStream({ name: `vod://${recordName}`, sdp: back.offerSdp });
        const bAnswer = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === bid, { timeoutMs: 20_000 });
        await back.setAnswer(String(bAnswer.data[1]));
        await client.waitForStatus(bid, "PLAYING", { timeoutMs: 20_000 });
        await client.waitForStatus(bid, "STOPPED", { timeoutMs: 30_000 });
        assert.ok(back.received.videoFrameTimestamps.length >= frames * 0.9, `played back ${back.received.videoFrameTimestamps.length} of ${frames} frames`);
        assert.ok(back.received.audioTimestamps.length > 0, "audio plays back");
      } finally {
        await back.close();
      }
    } finally {
      await Promise.allSettled([pub.close(), viewer.close(), rival.close(), client.close(), other.close()]);
    }
  });

  test("a publisher that stops sending fails with 'Failed by RTP activity'; what it recorded is kept", async () => {
    const client = await SdkClient.connect(edge.wsUrl);
    const pub = await createWeriftPublisher(source);
    try {
      const id = client.publishStream({ name: `idle-${randomUUID()}`, sdp: pub.offerSdp, record: true });
      const answer = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id, { timeoutMs: 20_000 });
      await pub.setAnswer(String(answer.data[1]));
      await client.waitForStatus(id, "PUBLISHING", { timeoutMs: 20_000 });
      await sleep(1500);
      pub.pause();
      const failed = await client.waitForStatus(id, "FAILED", { timeoutMs: 20_000 });
      assert.equal(failed.info, Info.FAILED_BY_RTP_ACTIVITY);
      assert.ok(failed.recordName, "the FAILED event names the record");
      const p = await probe(path.join(recordDir, failed.recordName));
      assert.ok(Number(p.streams.find((s) => s.codec_type === "video")?.nb_read_frames) > 0);
    } finally {
      await Promise.allSettled([pub.close(), client.close()]);
    }
  });

  test("VP9-only and audio-only publishes fail with 'No common codecs'; nothing is left on disk", async () => {
    const before = await fs.readdir(recordDir);
    const client = await SdkClient.connect(edge.wsUrl);
    const vp8 = await createWeriftPublisher(source, { codecs: "vp8" });
    try {
      // VP9 alone: a video codec this server neither records nor forwards.
      const vp9Offer = vp8.offerSdp.replace(/VP8\/90000/g, "VP9/90000");
      const id = client.publishStream({ name: `vp9-${randomUUID()}`, sdp: vp9Offer, record: true });
      assert.equal((await client.waitForStatus(id, "FAILED", { timeoutMs: 20_000 })).info, Info.NO_COMMON_CODECS);
      const audioOnly = vp8.offerSdp.split(/(?=^m=)/m).filter((s) => !s.startsWith("m=video")).join("").replace(/a=group:BUNDLE.*\r\n/, "");
      const id2 = client.publishStream({ name: `audio-${randomUUID()}`, sdp: audioOnly, record: true });
      assert.equal((await client.waitForStatus(id2, "FAILED", { timeoutMs: 20_000 })).info, Info.NO_COMMON_CODECS);
      assert.deepEqual(await fs.readdir(recordDir), before);
    } finally {
      await Promise.allSettled([vp8.close(), client.close()]);
    }
  });
});

/** Publishes straight to a sidecar's control API, as the edge would; events go to `eventsUrl`. */
async function publishDirect(sidecar: SidecarProcess, secret: string, offerSdp: string, eventsUrl: string) {
  const res = await signedFetch(secret, sidecar.url + SIDECAR_PATHS.publish, {
    method: "POST",
    body: JSON.stringify({ sessionRef: "direct", eventsUrl, mediaSessionId: randomUUID(), name: `direct-${randomUUID()}`, sdp: offerSdp, record: true }),
  });
  const answer = (await res.json()) as { ok: boolean; sdp: string; info?: string };
  assert.equal(answer.ok, true, answer.info);
  return answer.sdp;
}

describe("the sidecar alone", () => {
  test("the disk refusing a write fails the publish with 'Failed to write record file'; the file so far stays valid", async () => {
    const events: Record<string, unknown>[] = [];
    const server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        events.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const eventsUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/events`;
    const recordDir = await fs.mkdtemp(path.join(tmp, "full-"));
    const secret = randomBytes(24).toString("hex");
    // A file size limit stands in for a full disk: writes past it fail with EFBIG (Node ignores SIGXFSZ).
    const sidecar = await startSidecar({ secret, env: { RECORD_DIR: recordDir }, shellPrefix: "ulimit -f 200;" });
    const pub = await createWeriftPublisher(source);
    try {
      await pub.setAnswer(await publishDirect(sidecar, secret, pub.offerSdp, eventsUrl));
      let failed: Record<string, unknown> | undefined;
      for (let i = 0; i < 400 && !failed; i++) {
        failed = events.find((e) => e.status === "FAILED");
        await sleep(50);
      }
      assert.ok(failed, `a FAILED event; got ${JSON.stringify(events)}`);
      assert.equal(failed.info, Info.RECORD_WRITE_FAILED);
      assert.equal(typeof failed.recordName, "string");
      const p = await probe(path.join(recordDir, String(failed.recordName)));
      assert.ok(Number(p.streams.find((s) => s.codec_type === "video")?.nb_read_frames) > 0, "the frames before the failure are readable");
      // Nothing else is affected: the sidecar still answers.
      const health = await signedFetch(secret, `${sidecar.url}/v1/health`);
      assert.equal(health.status, 200);
    } finally {
      await pub.close();
      await sidecar.stop();
      server.close();
    }
  });

  test("SIGKILL mid-recording leaves a file ffprobe reads, with the media written before the kill", async () => {
    const recordDir = await fs.mkdtemp(path.join(tmp, "killed-"));
    const secret = randomBytes(24).toString("hex");
    const sidecar = await startSidecar({ secret, env: { RECORD_DIR: recordDir } });
    const pub = await createWeriftPublisher(source);
    try {
      // Nobody listens at the events URL: events are lost, which the sidecar tolerates.
      await pub.setAnswer(await publishDirect(sidecar, secret, pub.offerSdp, "http://127.0.0.1:9/events"));
      // Wait for media to flow for a while: several fragments (≤ 1 s each) are complete by then.
      for (let i = 0; i < 200 && pub.stats.videoFramesSent < 30 * 3.5; i++) await sleep(50);
      const sentBeforeKill = pub.stats.videoFramesSent;
      await sidecar.kill("SIGKILL");
      const files = (await fs.readdir(recordDir)).filter((f) => f.endsWith(".mp4"));
      assert.equal(files.length, 1, `one record file: ${files.join(", ")}`);
      const p = await probe(path.join(recordDir, files[0]!));
      const frames = Number(p.streams.find((s) => s.codec_type === "video")?.nb_read_frames);
      assert.equal(p.streams.find((s) => s.codec_type === "audio")?.codec_name, "opus");
      // Everything but the fragment in progress: at most ~1 s (30 frames) plus a keyframe interval of slack.
      assert.ok(frames >= sentBeforeKill - 60 && frames <= sentBeforeKill, `kept ${frames} of ${sentBeforeKill} frames sent`);
    } finally {
      await pub.close();
      await sidecar.stop();
    }
  });
});
