// The operator's REST API through the real edge (wrangler dev) and sidecar, with werift clients speaking the Web
// SDK's frames: what /rest-api/stream, /vod, /recorder and /records do to real streams and files, and what bad calls get.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Info } from "@edge-vod/shared";
import { FFPROBE, makeFixture } from "../helpers/fixtures.ts";
import { SdkClient } from "../helpers/sdk-client.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { joinViewer } from "../helpers/vod-live-viewer.ts";
import { createWeriftPublisher } from "../helpers/werift-publisher.ts";
import { createWeriftViewer } from "../helpers/werift-viewer.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const API_KEY = randomBytes(18).toString("base64url");

let tmp: string;
let source: string;
let recordDir: string;
let sidecar: SidecarProcess;
let edge: WranglerDev;

/** A REST call with the API key; the JSON body (or undefined when there is none) and the status. */
async function rest(method: string, body?: unknown, key: string | null = API_KEY): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(`${edge.url}/rest-api/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key !== null ? { authorization: `Bearer ${key}` } : {}) },
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`/rest-api/${method} answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, json, headers: res.headers };
}

/** A werift publisher through the edge, PUBLISHING. */
async function publish(client: SdkClient, name: string, opts: { record?: boolean } = {}) {
  const pub = await createWeriftPublisher(source);
  const id = client.publishStream({ name, sdp: pub.offerSdp, record: opts.record ?? false });
  const answer = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id, { timeoutMs: 20_000 });
  await pub.setAnswer(String(answer.data[1]));
  await client.waitForStatus(id, "PUBLISHING", { timeoutMs: 20_000 });
  return { id, pub };
}

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-rest-"));
  recordDir = await fs.mkdtemp(path.join(tmp, "records-"));
  source = await makeFixture(tmp, "source.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=30"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=30"],
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0"],
    ...["-c:a", "libopus", "-b:a", "64k", "-ac", "2"],
  ]);
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret, env: { RECORD_DIR: recordDir } });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret, vars: { REST_API_KEY: API_KEY } });
});

after(async () => {
  await edge?.stop();
  await sidecar?.stop();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe("authentication and bad calls", () => {
  test("no key, a wrong key: 401 JSON; unknown methods 404; bad JSON and wrong types 400", async () => {
    assert.equal((await rest("stream/find_all", {}, null)).status, 401);
    const wrong = await rest("stream/find_all", {}, "not-the-key");
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error, "Unauthorized");
    assert.equal((await rest("stream/explode", {})).status, 404);
    assert.equal((await rest("stream/find", "{not json")).status, 400);
    const typed = await rest("stream/find", { published: "yes" });
    assert.equal(typed.status, 400);
    assert.match(typed.json.error, /published/);
    assert.equal((await rest("vod/startup", { uri: 42, localStreamName: "x" })).status, 400);
  });

  test("an edge without REST_API_KEY refuses every call", async () => {
    const bare = await startWrangler({ sidecarUrl: sidecar.url, secret: "x".repeat(32) });
    try {
      const res = await fetch(`${bare.url}/rest-api/stream/find_all`, { method: "POST", headers: { authorization: "Bearer anything" } });
      assert.equal(res.status, 401);
      assert.match(((await res.json()) as { error: string }).error, /REST_API_KEY/);
    } finally {
      await bare.stop();
    }
  });
});

describe("streams", () => {
  test("find_all and find list what plays and publishes, with filters; terminate ends the chosen ones with 'Stopped by rest /terminate'", async () => {
    const name = `rest-${randomUUID().slice(0, 8)}`;
    const pubClient = await SdkClient.connect(edge.wsUrl);
    const a = await joinViewer(edge.wsUrl, "vod://sample.mp4");
    const b = await joinViewer(edge.wsUrl, "vod://sample.mp4");
    const { id: pubId, pub } = await publish(pubClient, name);
    const live = await joinViewer(edge.wsUrl, name);
    try {
      const all = await rest("stream/find_all");
      assert.equal(all.status, 200);
      const mine = (all.json as any[]).filter((s) => [a.id, b.id, pubId, live.id].includes(s.mediaSessionId));
      assert.equal(mine.length, 4, `all four streams listed: ${JSON.stringify(all.json)}`);
      const publisher = mine.find((s) => s.mediaSessionId === pubId);
      assert.deepEqual(
        { name: publisher.name, published: publisher.published, status: publisher.status, viewers: publisher.viewers, sidecar: publisher.sidecar },
        { name, published: true, status: "PUBLISHING", viewers: 1, sidecar: "static" },
      );
      assert.ok(publisher.startTime > Date.now() - 120_000 && publisher.startTime <= Date.now(), "startTime is ms since epoch");
      assert.equal(mine.find((s) => s.mediaSessionId === a.id).status, "PLAYING");

      const published = await rest("stream/find", { published: true, name });
      assert.deepEqual((published.json as any[]).map((s) => s.mediaSessionId), [pubId]);
      const players = await rest("stream/find", { name: "vod://sample.mp4", published: false });
      assert.deepEqual(new Set((players.json as any[]).map((s) => s.mediaSessionId)), new Set([a.id, b.id]));
      const none = await rest("stream/find", { name: "no-such-stream" });
      assert.equal(none.status, 404);

      // One personal playback ends; the other plays on.
      const t1 = await rest("stream/terminate", { mediaSessionId: a.id });
      assert.equal(t1.status, 200);
      assert.equal(t1.json.terminated, 1);
      const ended = await a.client.waitForStatus(a.id, ["STOPPED", "FAILED"], { timeoutMs: 10_000 });
      assert.deepEqual([ended.status, ended.info], ["STOPPED", Info.STOPPED_BY_REST_TERMINATE]);
      const before = b.received.videoFrameTimestamps.length;
      await sleep(500);
      assert.ok(b.received.videoFrameTimestamps.length > before, "the other viewer still receives frames");
      assert.equal(b.client.statusEvents(b.id).at(-1)?.status, "PLAYING");

      // The publisher: UNPUBLISHED for it, and its viewer hears the same reason.
      const t2 = await rest("stream/terminate", { name, published: true });
      assert.equal(t2.json.terminated, 1);
      const unpublished = await pubClient.waitForStatus(pubId, ["UNPUBLISHED", "FAILED"], { timeoutMs: 10_000 });
      assert.deepEqual([unpublished.status, unpublished.info], ["UNPUBLISHED", Info.STOPPED_BY_REST_TERMINATE]);
      const liveEnd = await live.client.waitForStatus(live.id, ["STOPPED", "FAILED"], { timeoutMs: 10_000 });
      assert.deepEqual([liveEnd.status, liveEnd.info], ["STOPPED", Info.STOPPED_BY_REST_TERMINATE]);

      // The name is free again: the terminated publish let go of it.
      const { id: again } = await publish(pubClient, name);
      assert.ok(again);
      assert.equal((await rest("stream/terminate", { mediaSessionIds: ["nope-1", "nope-2"] })).status, 404);
    } finally {
      await Promise.allSettled([a.close(), b.close(), live.close(), pub.close(), pubClient.close()]);
    }
  });
});

describe("recording on demand and finished recordings", () => {
  test("recorder/startup records a running publish, recorder/terminate finishes a valid file; records/find_all lists it and records/delete removes it", async () => {
    const name = `ondemand-${randomUUID().slice(0, 8)}`;
    const client = await SdkClient.connect(edge.wsUrl);
    const { id, pub } = await publish(client, name);
    try {
      assert.equal((await rest("recorder/find_all")).status, 404, "nothing records yet");
      const started = await rest("recorder/startup", { mediaSessionId: id, config: { fileTemplate: "{streamName}-by-rest" } });
      assert.equal(started.status, 200, JSON.stringify(started.json));
      assert.equal(started.json.fileName, `${name}-by-rest.mp4`);
      const listed = await rest("recorder/find_all");
      assert.deepEqual((listed.json as any[]).map((r) => [r.mediaSessionId, r.fileName]), [[id, `${name}-by-rest.mp4`]]);
      assert.ok(
        !((await rest("records/find_all")).json as any[]).some((r) => r.name === started.json.fileName),
        "a file being recorded is not among the finished ones",
      );
      await sleep(3000);
      const stopped = await rest("recorder/terminate", { mediaSessionId: id });
      assert.equal(stopped.status, 200);
      const recordName = stopped.json.recordName as string;
      assert.equal(recordName, `${name}-by-rest.mp4`);
      assert.equal((await rest("recorder/terminate", { mediaSessionId: id })).status, 404, "no recording runs any more");

      const file = path.join(recordDir, recordName);
      const { stdout } = await run(FFPROBE, ["-v", "error", "-show_entries", "format=duration:stream=codec_name", "-of", "json", file]);
      const probe = JSON.parse(stdout) as { format: { duration: string }; streams: { codec_name: string }[] };
      assert.deepEqual(probe.streams.map((s) => s.codec_name).sort(), ["h264", "opus"]);
      assert.ok(Number(probe.format.duration) > 1.5, `about 3 s recorded (${probe.format.duration} s)`);
      // The publish itself goes on.
      assert.equal(client.statusEvents(id).at(-1)?.status, "PUBLISHING");

      const records = await rest("records/find_all", { name: recordName });
      assert.equal(records.status, 200);
      const [entry] = records.json as any[];
      assert.equal(entry.size, (await fs.stat(file)).size);
      assert.ok(Math.abs(entry.durationMs - Number(probe.format.duration) * 1000) < 100, `duration ${entry.durationMs} ms from the movie header`);
      assert.equal(entry.url, `/client/records/${encodeURIComponent(recordName)}`);

      assert.equal((await rest("records/delete", { name: "../etc/passwd.mp4" })).status, 403);
      assert.equal((await rest("records/delete", { name: "notes.txt" })).status, 400);
      const deleted = await rest("records/delete", { name: recordName });
      assert.equal(deleted.status, 200);
      await assert.rejects(fs.stat(file), "the file is gone from disk");
      assert.equal((await rest("records/delete", { name: recordName })).status, 404);
      assert.equal((await rest("recorder/startup", { mediaSessionId: "no-such-stream" })).status, 404);
    } finally {
      await Promise.allSettled([pub.close(), client.close()]);
    }
  });
});

describe("VOD broadcasts started by REST", () => {
  test("vod/startup makes a broadcast players join by its localStreamName at its running position; find, 409, terminate", async () => {
    const local = `channel-${randomUUID().slice(0, 8)}`;
    const started = await rest("vod/startup", { uri: "vod-live://sample.mp4", localStreamName: local, loop: true });
    assert.equal(started.status, 200, JSON.stringify(started.json));
    assert.equal(started.json.localStreamName, local);
    assert.equal(started.json.uri, "vod-live://sample.mp4");
    assert.equal(started.json.status, "PROCESSED_LOCAL");
    assert.ok(Math.abs(started.json.durationMs - 10_000) < 100, `sample.mp4 lasts 10 s (${started.json.durationMs} ms)`);

    assert.equal((await rest("vod/startup", { uri: "vod-live://sample.mp4", localStreamName: local })).status, 409, "the name is taken");
    const missing = await rest("vod/startup", { uri: "vod-live://nothing-here.mp4", localStreamName: `x-${local}` });
    assert.deepEqual([missing.status, missing.json.error], [404, Info.FILE_NOT_FOUND]);
    assert.equal((await rest("vod/startup", { uri: "vod://sample.mp4", localStreamName: `y-${local}` })).status, 400, "startup makes vod-live only");
    assert.equal((await rest("vod/startup", { uri: "vod-live://../etc/passwd", localStreamName: `z-${local}` })).status, 400);

    // No viewer yet, but its clock runs: a player 2.5 s later joins 2.5 s in (from the keyframe before or after).
    await sleep(2500);
    const viewer = await joinViewer(edge.wsUrl, local);
    const pubClient = await SdkClient.connect(edge.wsUrl);
    const rival = await createWeriftViewer();
    try {
      await sleep(500);
      const firstMs = viewer.received.videoFrameTimestamps[0]! / 90;
      assert.ok(firstMs >= 1000, `the player joins the running broadcast, not its start (first frame at ${firstMs.toFixed(0)} ms)`);

      const found = await rest("vod/find", { localStreamName: local });
      assert.equal(found.status, 200);
      assert.deepEqual((found.json as any[]).map((v) => [v.localStreamName, v.viewers, v.loop]), [[local, 1, true]]);
      assert.ok(((await rest("vod/find_all")).json as any[]).some((v) => v.localStreamName === local));
      const asStream = await rest("stream/find", { name: local });
      assert.deepEqual((asStream.json as any[]).map((s) => s.mediaSessionId), [viewer.id]);

      // Nobody may publish under the name while the broadcast holds it.
      const rid = pubClient.publishStream({ name: local, sdp: rival.offerSdp });
      const refused = await pubClient.waitForStatus(rid, "FAILED", { timeoutMs: 10_000 });
      assert.equal(refused.info, Info.STREAM_NAME_ALREADY_IN_USE);

      const terminated = await rest("vod/terminate", { localStreamName: local });
      assert.equal(terminated.status, 200);
      const ended = await viewer.client.waitForStatus(viewer.id, ["STOPPED", "FAILED"], { timeoutMs: 10_000 });
      assert.deepEqual([ended.status, ended.info], ["STOPPED", Info.STOPPED_BY_REST_TERMINATE]);
      assert.equal((await rest("vod/find", { localStreamName: local })).status, 404);
      assert.equal((await rest("vod/terminate", { localStreamName: local })).status, 404);

      // The name is a plain name again: nothing plays under it.
      const late = await createWeriftViewer();
      try {
        const lid = viewer.client.playStream({ name: local, sdp: late.offerSdp });
        const failed = await viewer.client.waitForStatus(lid, "FAILED", { timeoutMs: 10_000 });
        assert.equal(failed.info, Info.STREAM_NOT_FOUND);
      } finally {
        await late.close();
      }
    } finally {
      await Promise.allSettled([viewer.close(), rival.close(), pubClient.close()]);
    }
  });
});
