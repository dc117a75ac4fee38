// WHEP playback and WHIP ingest on the real edge (wrangler dev) and sidecar, with werift peers as the players and
// encoders: what a WHEP player, a WHIP encoder and OBS Studio see (statuses, headers, the answer, the media), how a
// resource ends (DELETE, end of file, the REST API), the Web SDK and WHEP side by side on one published name, and
// every refusal the specs list, each on an edge configured to give it.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { Info, mintAuthToken } from "@edge-vod/shared";
import { SAMPLE_MP4, makeFixture, probePackets, probeStreams } from "../helpers/fixtures.ts";
import { assertWholeFile, playToEnd } from "../helpers/full-play.ts";
import { startObs } from "../helpers/obs-whip.ts";
import { SdkClient } from "../helpers/sdk-client.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { joinViewer } from "../helpers/vod-live-viewer.ts";
import { createWeriftPublisher } from "../helpers/werift-publisher.ts";
import { createWeriftViewer, type Received } from "../helpers/werift-viewer.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const API_KEY = randomBytes(18).toString("base64url");
const TOKEN_SECRET = randomBytes(24).toString("hex");
/** sample.mp4: 10 s at 30 fps. */
const SAMPLE_FRAMES = 300;
const SDP = "application/sdp";
const SDPFRAG = "application/trickle-ice-sdpfrag";
const ICE_SERVERS = [
  { urls: "stun:stun.example.net:3478" },
  { urls: ["turn:turn.example.net:3478?transport=udp"], username: "whep-user", credential: 'se"cret' },
];

let tmp: string;
/** What a WHIP encoder sends: constrained baseline, a keyframe a second, no B-frames, Opus. */
let source: string;
let recordDir: string;
let sidecar: SidecarProcess;
/** MAX_VIEWERS=1. */
let fullSidecar: SidecarProcess;
/** REST_API_KEY: the operator sees and ends WHEP/WHIP streams. */
let edge: WranglerDev;
/** AUTH_TOKEN_SECRET and ICE_SERVERS (and REST_API_KEY, to see when a publish is live). */
let guarded: WranglerDev;
/** REST_HOOK_URL. */
let hooked: WranglerDev;
/** In front of the sidecar with MAX_VIEWERS=1. */
let crowded: WranglerDev;
let backend: Backend;

/** Closed after each test, whatever happened in it. */
const cleanups: Array<() => Promise<unknown>> = [];

interface Reply {
  status: number;
  headers: Headers;
  body: string;
}

async function reply(res: Response): Promise<Reply> {
  return { status: res.status, headers: res.headers, body: await res.text() };
}

function post(url: string, body: BodyInit, headers: Record<string, string> = { "content-type": SDP }): Promise<Reply> {
  const init: RequestInit & { duplex?: "half" } = { method: "POST", headers, body };
  if (body instanceof ReadableStream) init.duplex = "half";
  return fetch(url, init).then(reply);
}

function patch(location: string, frag: string, headers: Record<string, string> = {}): Promise<Reply> {
  return fetch(location, { method: "PATCH", headers: { "content-type": SDPFRAG, ...headers }, body: frag }).then(reply);
}

function del(location: string, headers: Record<string, string> = {}): Promise<Reply> {
  return fetch(location, { method: "DELETE", headers }).then(reply);
}

const END_OF_CANDIDATES = "a=end-of-candidates\r\n";

async function until(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Resolves once `received` got more video frames than it has now (it is still being sent to). */
async function moreFrames(received: Received, who: string): Promise<void> {
  const n = received.videoFrameTimestamps.length;
  await until(`${who} to receive more frames (has ${n})`, () => received.videoFrameTimestamps.length > n + 3, 10_000);
}

/** A WHEP player: a werift recvonly offer POSTed to `url`, the answer applied when it is a 201. */
async function whep(url: string, headers: Record<string, string> = {}) {
  const viewer = await createWeriftViewer();
  cleanups.push(() => viewer.close());
  const res = await post(url, viewer.offerSdp, { "content-type": SDP, ...headers });
  if (res.status === 201) await viewer.setAnswer(res.body);
  return { viewer, received: viewer.received, res, location: res.headers.get("location") ?? "" };
}

/** A WHIP encoder: a werift sendonly offer POSTed to `url`, sending `source` once the answer is applied. */
async function whip(url: string, headers: Record<string, string> = {}) {
  // Sender reports right to the millisecond, as an encoder's: werift's own are right to the second, which placed the
  // recording's audio up to half a second late (its playback then had less audio than the file's length).
  const pub = await createWeriftPublisher(source, { exactSenderReports: true });
  cleanups.push(() => pub.close());
  const res = await post(url, pub.offerSdp, { "content-type": SDP, ...headers });
  if (res.status === 201) await pub.setAnswer(res.body);
  return { pub, res, location: res.headers.get("location") ?? "" };
}

/** A refusal as the specs and this edge promise it: the status, JSON `{error}`, readable cross-origin. */
function assertProblem(r: Reply, status: number, error: string | RegExp): void {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.body.slice(0, 300)}`);
  assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
  const body = JSON.parse(r.body) as { error?: unknown };
  assert.equal(typeof body.error, "string", r.body);
  if (typeof error === "string") assert.equal(body.error, error);
  else assert.match(body.error as string, error);
  assert.equal(r.headers.get("access-control-allow-origin"), "*", "a player page on another origin can read the refusal");
}

/** Once the server ended a resource by itself, its URL is gone: PATCH and DELETE get 404. */
async function assertEnds(location: string): Promise<void> {
  // PATCH only looks, so asking does not end the resource itself.
  await until("the resource to end", async () => (await patch(location, END_OF_CANDIDATES)).status === 404);
  assertProblem(await del(location), 404, "No such resource");
}

const csv = (v: string | null) => (v ?? "").split(",").map((s) => s.trim().toLowerCase());

/** A REST API call with the key; the JSON body (undefined when there is none) and the status. */
async function rest(on: WranglerDev, method: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${on.url}/rest-api/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function publishing(on: WranglerDev, name: string): Promise<void> {
  await until(`${name} to be PUBLISHING`, async () => (await rest(on, "stream/find", { name, published: true })).json?.[0]?.status === "PUBLISHING");
}

/** The candidates werift gathered for `sdp`'s peer, as a trickle fragment (RFC 8840) with the offer's credentials. */
function trickleFragment(offer: string, gathered: string): { frag: string; candidates: number } {
  const ufrag = /^a=ice-ufrag:(\S+)/m.exec(offer)![1]!;
  const pwd = /^a=ice-pwd:(\S+)/m.exec(offer)![1]!;
  const firstSection = gathered.split(/(?=^m=)/m)[1]!;
  const mLine = firstSection.split("\r\n")[0]!;
  const mid = /^a=mid:(\S+)/m.exec(firstSection)![1]!;
  const candidates = firstSection.split("\r\n").filter((l) => l.startsWith("a=candidate:"));
  const lines = [`a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`, "a=group:BUNDLE 0 1", `${mLine.split(" ").slice(0, 3).join(" ")} 0`, `a=mid:${mid}`, ...candidates];
  return { frag: lines.join("\r\n") + "\r\n", candidates: candidates.length };
}

/** The same offer with H.264 swapped for VP9: a player or encoder without a codec this server has. */
function vp9Instead(offer: string): string {
  const pt = /^a=rtpmap:(\d+) H264\/90000/m.exec(offer)![1]!;
  return offer.replace(`a=rtpmap:${pt} H264/90000`, `a=rtpmap:${pt} VP9/90000`).replace(new RegExp(`^a=fmtp:${pt} .*\\r\\n`, "m"), "");
}

/** The operator's backend for the REST hooks: refuses playing vod://denied.mp4 and publishing names `denied-…`. */
class Backend {
  readonly calls: { method: string; body: Record<string, unknown> }[] = [];
  url = "";
  private readonly server = http.createServer((req, res) => {
    let raw = "";
    req.on("data", (d) => (raw += d));
    req.on("end", () => {
      const method = (req.url ?? "").split("/").pop() ?? "";
      const body = JSON.parse(raw) as Record<string, unknown>;
      this.calls.push({ method, body });
      const refused = (method === "playStream" && body.name === "vod://denied.mp4") || (method === "publishStream" && String(body.name).startsWith("denied-"));
      res.writeHead(refused ? 403 : 200, { "content-type": "application/json" }).end(refused ? '{"error":"Forbidden"}' : raw);
    });
  });

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-whip-"));
  recordDir = await fs.mkdtemp(path.join(tmp, "records-"));
  const secret = randomBytes(24).toString("hex");
  backend = new Backend();
  [source, sidecar, fullSidecar] = await Promise.all([
    makeFixture(tmp, "source.mp4", [
      ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=10"],
      ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10"],
      ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0"],
      ...["-c:a", "libopus", "-b:a", "64k", "-ac", "2"],
    ]),
    startSidecar({ secret, env: { RECORD_DIR: recordDir } }),
    startSidecar({ secret, env: { MAX_VIEWERS: "1" } }),
    backend.start(),
  ]).then(([f, s, full]) => [f, s, full] as const);
  [edge, guarded, hooked, crowded] = await Promise.all([
    startWrangler({ sidecarUrl: sidecar.url, secret, vars: { REST_API_KEY: API_KEY } }),
    startWrangler({ sidecarUrl: sidecar.url, secret, vars: { AUTH_TOKEN_SECRET: TOKEN_SECRET, ICE_SERVERS: JSON.stringify(ICE_SERVERS), REST_API_KEY: API_KEY } }),
    startWrangler({ sidecarUrl: sidecar.url, secret, vars: { REST_HOOK_URL: `${backend.url}/hooks/` } }),
    startWrangler({ sidecarUrl: fullSidecar.url, secret }),
  ]);
});

afterEach(async () => {
  await Promise.allSettled(cleanups.splice(0).map((c) => c()));
});

after(async () => {
  await Promise.allSettled([edge?.stop(), guarded?.stop(), hooked?.stop(), crowded?.stop()]);
  await Promise.allSettled([sidecar?.stop(), fullSidecar?.stop(), backend?.stop()]);
  await fs.rm(tmp, { recursive: true, force: true });
});

describe("WHEP playback", () => {
  test("vod:// without trickle: 201, an absolute unguessable Location, the whole answer; every frame of the file; the resource ends with the file", async () => {
    const a = await whep(`${edge.url}/whep/vod/sample.mp4`);
    assert.equal(a.res.status, 201, a.res.body);
    assert.match(a.res.headers.get("content-type") ?? "", /^application\/sdp/);
    const url = new URL(a.location);
    assert.equal(url.origin, edge.url, "Location is absolute, on the edge");
    assert.match(url.pathname, /^\/wish\/[0-9a-f]{64}\/[0-9a-f]{32}$/, "Location carries a 128-bit secret");
    assert.match(a.res.body, /^v=0\r\n/);
    assert.match(a.res.body, /^a=candidate:.* typ host/m, "the server's candidates are in the answer: it never trickles");
    assert.ok(csv(a.res.headers.get("access-control-expose-headers")).includes("location"), "a page on another origin can read Location");
    assert.equal(a.res.headers.get("access-control-allow-origin"), "*");
    assert.ok(csv(a.res.headers.get("accept-patch")).includes(SDPFRAG));

    const b = await whep(`${edge.url}/whep/vod/sample.mp4`);
    assert.equal(b.res.status, 201, b.res.body);
    const [, , idA, secretA] = url.pathname.split("/");
    const [, , idB, secretB] = new URL(b.location).pathname.split("/");
    assert.notEqual(idA, idB);
    assert.notEqual(secretA, secretB);
    assert.equal((await del(b.location)).status, 200, "the second player leaves");

    await until("every frame of sample.mp4", () => a.received.videoFrameTimestamps.length >= SAMPLE_FRAMES, 40_000).catch(() => {});
    // The server ends the playback after the last packet; the resource goes with it.
    await assertEnds(a.location);
    await assertWholeFile(a.received, SAMPLE_MP4);
  });

  test("vod:// trickled: PATCHes with the offer's credentials and the client's candidates, with and without If-Match, get 204; every frame arrives", async () => {
    const viewer = await createWeriftViewer();
    cleanups.push(() => viewer.close());
    const res = await post(`${edge.url}/whep/vod/sample.mp4`, viewer.offerSdp);
    assert.equal(res.status, 201, res.body);
    const location = res.headers.get("location")!;
    const { frag, candidates } = trickleFragment(viewer.offerSdp, viewer.pc.localDescription!.sdp);
    assert.ok(candidates > 0, "werift gathered candidates to trickle");
    // As a client trickles: candidates as it finds them, an If-Match when it kept an ETag ("*": it has none), then the end.
    const first = await patch(location, frag, { "if-match": "*" });
    assert.equal(first.status, 204, first.body);
    assert.equal(first.body, "");
    const second = await patch(location, frag);
    assert.equal(second.status, 204, second.body);
    const last = await patch(location, `a=ice-ufrag:${/^a=ice-ufrag:(\S+)/m.exec(viewer.offerSdp)![1]}\r\n${END_OF_CANDIDATES}`);
    assert.equal(last.status, 204, last.body);
    await viewer.setAnswer(res.body);

    await until("every frame of sample.mp4", () => viewer.received.videoFrameTimestamps.length >= SAMPLE_FRAMES, 40_000).catch(() => {});
    await assertEnds(location);
    await assertWholeFile(viewer.received, SAMPLE_MP4);
  });

  test("vod-live:// with two players: both get frames; DELETE ends one (200), the other plays on; then DELETE and PATCH on it are 404", async () => {
    const a = await whep(`${edge.url}/whep/vod-live/sample.mp4`);
    const b = await whep(`${edge.url}/whep/vod-live/sample.mp4`);
    assert.equal(a.res.status, 201, a.res.body);
    assert.equal(b.res.status, 201, b.res.body);
    await until("both players to get frames", () => a.received.videoFrameTimestamps.length > 15 && b.received.videoFrameTimestamps.length > 15);
    assert.ok(a.received.audioTimestamps.length > 0 && b.received.audioTimestamps.length > 0, "both get audio");

    const gone = await del(a.location);
    assert.equal(gone.status, 200, gone.body);
    await moreFrames(b.received, "the other player");
    assertProblem(await del(a.location), 404, "No such resource");
    assertProblem(await patch(a.location, END_OF_CANDIDATES), 404, "No such resource");
    assert.equal((await patch(b.location, END_OF_CANDIDATES)).status, 204, "the other resource is still there");
    assert.equal((await del(b.location)).status, 200);
  });
});

describe("WHIP ingest", () => {
  test("a recorded WHIP publish: Web SDK and WHEP players watch it live, the REST API lists and terminates them, DELETE finishes a valid recording that plays whole as vod://", async () => {
    // A name that has to be percent-encoded in the URL.
    const name = `whip rec ${randomUUID().slice(0, 8)} ✓`;
    const recordsBefore = new Set(((await rest(edge, "records/find_all")).json as { name: string }[]).map((r) => r.name));
    const enc = await whip(`${edge.url}/whip/${encodeURIComponent(name)}?record=true`);
    assert.equal(enc.res.status, 201, enc.res.body);
    assert.match(enc.res.body, /^a=candidate:/m);
    assert.match(new URL(enc.location).pathname, /^\/wish\/[0-9a-f]{64}\/[0-9a-f]{32}$/);
    await publishing(edge, name);
    const publishedAt = Date.now();

    const sdk = await joinViewer(edge.wsUrl, name);
    cleanups.push(() => sdk.close());
    const player = await whep(`${edge.url}/whep/live/${encodeURIComponent(name)}`);
    assert.equal(player.res.status, 201, player.res.body);
    await until("both players to get live frames", () => sdk.received.videoFrameTimestamps.length > 15 && player.received.videoFrameTimestamps.length > 15);
    assert.ok(sdk.received.audioTimestamps.length > 0 && player.received.audioTimestamps.length > 0, "both get audio");

    // A Web SDK publisher cannot take the name from the WHIP encoder.
    const rival = await createWeriftPublisher(source);
    cleanups.push(() => rival.close());
    const rid = sdk.client.publishStream({ name, sdp: rival.offerSdp });
    assert.equal((await sdk.client.waitForStatus(rid, "FAILED", { timeoutMs: 20_000 })).info, Info.STREAM_NAME_ALREADY_IN_USE);

    const listed = ((await rest(edge, "stream/find_all")).json as any[]).filter((s) => s.name === name);
    const publisher = listed.filter((s) => s.published);
    assert.equal(publisher.length, 1, JSON.stringify(listed));
    assert.deepEqual(
      { status: publisher[0].status, record: publisher[0].record, viewers: publisher[0].viewers },
      { status: "PUBLISHING", record: true, viewers: 2 },
    );
    const players = listed.filter((s) => !s.published).map((s) => s.mediaSessionId as string);
    assert.equal(players.length, 2, `the Web SDK player and the WHEP player: ${JSON.stringify(listed)}`);
    assert.ok(players.includes(sdk.id));
    const whepId = players.find((id) => id !== sdk.id)!;

    const terminated = await rest(edge, "stream/terminate", { mediaSessionId: whepId });
    assert.deepEqual([terminated.status, terminated.json.terminated], [200, 1]);
    await assertEnds(player.location);
    await moreFrames(sdk.received, "the Web SDK player");

    // About 4 s of media in the recording.
    await sleep(Math.max(0, 4000 - (Date.now() - publishedAt)));
    // The encoder goes quiet first, so that what it sent is all there is to record.
    enc.pub.pause();
    await sleep(300);
    const sent = enc.pub.stats.videoFramesSent;
    const stopped = await del(enc.location);
    assert.equal(stopped.status, 200, stopped.body);
    const sdkEnd = await sdk.client.waitForStatus(sdk.id, ["STOPPED", "FAILED"], { timeoutMs: 10_000 });
    assert.deepEqual([sdkEnd.status, sdkEnd.info], ["STOPPED", Info.STOPPED_BY_PUBLISHER_STOP]);
    assertProblem(await del(enc.location), 404, "No such resource");

    // The 200 came once the recording was final: it is listed and valid right away.
    const recordsAfter = ((await rest(edge, "records/find_all")).json as { name: string }[]).map((r) => r.name).filter((n) => !recordsBefore.has(n));
    assert.equal(recordsAfter.length, 1, `one new recording: ${recordsAfter.join(", ")}`);
    const recordName = recordsAfter[0]!;
    const file = path.join(recordDir, recordName);
    assert.deepEqual((await probeStreams(file)).map((s) => s.codecName).sort(), ["h264", "opus"]);
    const recorded = (await probePackets(file)).packets.filter((p) => p.codecType === "video").length;
    assert.ok(Math.abs(recorded - sent) <= Math.max(3, sent * 0.03), `recorded ${recorded} frames of ${sent} sent`);

    // The name is free: nothing plays under it any more, and another encoder may take it.
    assertProblem((await whep(`${edge.url}/whep/live/${encodeURIComponent(name)}`)).res, 404, Info.STREAM_NOT_FOUND);

    const { received, last } = await playToEnd(edge.wsUrl, `vod://${recordName}`);
    assert.equal(last.status, "STOPPED", JSON.stringify(last));
    await assertWholeFile(received, file);
  });

  test("an OBS Studio client (its offer, Bearer on POST and DELETE, no PATCH): exactly 201 with a body and Location; a player sees it; DELETE 200", async () => {
    const token = await mintAuthToken(TOKEN_SECRET, { exp: Math.floor(Date.now() / 1000) + 600, sub: "obs" });
    const name = `obs-${randomUUID().slice(0, 8)}`;
    const obs = await startObs(`${guarded.url}/whip/${name}`, source, token);
    cleanups.push(() => obs.close());
    // What OBS offers, so that a change to the imitation that made it easier to take does not go unnoticed.
    const [session, audio, video] = obs.offer.split(/(?=^m=)/m);
    assert.match(session!, /^a=group:BUNDLE 0 1$/m);
    for (const a of ["ice-ufrag", "ice-pwd", "fingerprint", "setup"]) {
      assert.match(session!, new RegExp(`^a=${a}:`, "m"), `${a} at session level`);
      assert.doesNotMatch(audio! + video!, new RegExp(`^a=${a}:`, "m"), `${a} only at session level`);
    }
    assert.match(audio!, /^m=audio 9 UDP\/TLS\/RTP\/SAVPF 111\r\n/);
    assert.match(video!, /^m=video 9 UDP\/TLS\/RTP\/SAVPF 96\r\n/);
    assert.deepEqual(video!.match(/^a=rtpmap:.*$/gm), ["a=rtpmap:96 H264/90000"]);
    assert.match(video!, /^a=fmtp:96 .*profile-level-id=42e01f/m);
    assert.doesNotMatch(obs.offer, /^a=(candidate|end-of-candidates)/m);
    assert.equal(obs.offer.match(/^a=sendonly$/gm)?.length, 2);

    assert.equal(obs.status, 201, obs.body);
    assert.ok(obs.started, "OBS goes on: a body and a Location");
    // OBS sends its media as it offered it: audio first (mid 0) with Opus 111, video (mid 1) with H.264 96.
    const sections = obs.body.split(/(?=^m=)/m).slice(1);
    assert.deepEqual(
      sections.map((s) => [s.split(" ")[0], s.split("\r\n")[0]!.split(" ").slice(3).join(" "), /^a=mid:(\S+)/m.exec(s)?.[1], /^a=(recvonly|sendonly|sendrecv|inactive)$/m.exec(s)?.[1]]),
      [
        ["m=audio", "111", "0", "recvonly"],
        ["m=video", "96", "1", "recvonly"],
      ],
    );
    assert.match(obs.body, /^a=candidate:/m, "OBS sends no candidates; the server's must be in the answer");
    await publishing(guarded, name);

    const player = await whep(`${guarded.url}/whep/live/${name}`, { authorization: `Bearer ${token}` });
    assert.equal(player.res.status, 201, player.res.body);
    await until("the player to get OBS's frames", () => player.received.videoFrameTimestamps.length > 15 && player.received.audioTimestamps.length > 0);

    assert.equal(await obs.stop(), 200);
    await assertEnds(player.location);
  });
});

describe("refusals", () => {
  test("OPTIONS: 204 with the CORS headers a cross-origin player needs, on the endpoints and on a resource", async () => {
    for (const p of ["/whep/vod/sample.mp4", "/whep/vod-live/sample.mp4", "/whep/live/anything", "/whip/anything", `/wish/${"a".repeat(64)}/${"b".repeat(32)}`]) {
      const res = await fetch(`${edge.url}${p}`, { method: "OPTIONS", headers: { origin: "https://player.example", "access-control-request-method": "POST" } });
      assert.equal(res.status, 204, p);
      assert.equal(res.headers.get("access-control-allow-origin"), "*", p);
      assert.deepEqual(csv(res.headers.get("access-control-allow-methods")).sort(), ["delete", "options", "patch", "post"], p);
      assert.deepEqual(csv(res.headers.get("access-control-allow-headers")).sort(), ["authorization", "content-type", "if-match"], p);
      const exposed = csv(res.headers.get("access-control-expose-headers"));
      for (const h of ["location", "etag", "link"]) assert.ok(exposed.includes(h), `${p} exposes ${h}`);
    }
  });

  test("415 for an offer that is not application/sdp (Accept names it), and for a PATCH that is not a trickle fragment", async () => {
    const viewer = await createWeriftViewer();
    cleanups.push(() => viewer.close());
    for (const headers of [{ "content-type": "text/plain" }, { "content-type": "application/json" }, {} as Record<string, string>]) {
      const r = await post(`${edge.url}/whep/vod/sample.mp4`, viewer.offerSdp, headers);
      assertProblem(r, 415, /application\/sdp/);
      assert.equal(r.headers.get("accept"), SDP);
    }
    assertProblem(await post(`${edge.url}/whip/x415`, viewer.offerSdp, { "content-type": "text/plain" }), 415, /application\/sdp/);
    const a = await whep(`${edge.url}/whep/vod-live/sample.mp4`);
    assert.equal(a.res.status, 201);
    const r = await patch(a.location, END_OF_CANDIDATES, { "content-type": SDP });
    assertProblem(r, 415, /trickle-ice-sdpfrag/);
    assert.equal(r.headers.get("accept-patch"), SDPFRAG);
    assert.equal((await del(a.location)).status, 200);
  });

  test("400 for what is not an SDP offer, or not a name", async () => {
    const viewer = await createWeriftViewer();
    cleanups.push(() => viewer.close());
    for (const body of ["garbage", "", "v=0\r\n", "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"]) {
      assertProblem(await post(`${edge.url}/whep/vod/sample.mp4`, body), 400, Info.SDP_INVALID);
      assertProblem(await post(`${edge.url}/whip/x400`, body), 400, Info.SDP_INVALID);
    }
    for (const p of ["/whep/vod/", "/whep/vod/..%2F..%2Fetc%2Fpasswd", "/whep/vod/%zz.mp4", "/whep/vod-live/..%2Fsecret.mp4", "/whip/"]) {
      assertProblem(await post(`${edge.url}${p}`, viewer.offerSdp), 400, Info.BAD_URI);
    }
  });

  test("404 for a file that is not there and a name nobody publishes", async () => {
    assertProblem((await whep(`${edge.url}/whep/vod/no-such-file.mp4`)).res, 404, Info.FILE_NOT_FOUND);
    assertProblem((await whep(`${edge.url}/whep/vod-live/no-such-file.mp4`)).res, 404, Info.FILE_NOT_FOUND);
    assertProblem((await whep(`${edge.url}/whep/live/nobody-${randomUUID()}`)).res, 404, Info.STREAM_NOT_FOUND);
  });

  test("409 for a WHIP publish of a name that is being published; free again once its resource is deleted", async () => {
    const name = `taken-${randomUUID().slice(0, 8)}`;
    const first = await whip(`${edge.url}/whip/${name}`);
    assert.equal(first.res.status, 201, first.res.body);
    const second = await whip(`${edge.url}/whip/${name}`);
    assertProblem(second.res, 409, Info.STREAM_NAME_ALREADY_IN_USE);
    assert.equal(second.location, "");
    assert.equal((await del(first.location)).status, 200);
    const third = await whip(`${edge.url}/whip/${name}`);
    assert.equal(third.res.status, 201, third.res.body);
    assert.equal((await del(third.location)).status, 200);
  });

  test("406 for codecs this server cannot take or send (VP9 only), the body saying what to offer", async () => {
    const enc = await createWeriftPublisher(source, { codecs: "vp8" });
    cleanups.push(() => enc.close());
    const r = await post(`${edge.url}/whip/vp9-${randomUUID().slice(0, 8)}`, enc.offerSdp.replace(/VP8\/90000/g, "VP9/90000"));
    assertProblem(r, 406, /H\.264/);
    assert.match(JSON.parse(r.body).error, /VP8/);
    assert.match(JSON.parse(r.body).error, /Opus/);
    const viewer = await createWeriftViewer();
    cleanups.push(() => viewer.close());
    assertProblem(await post(`${edge.url}/whep/vod/sample.mp4`, vp9Instead(viewer.offerSdp)), 406, /H\.264/);
  });

  test("503 with Retry-After when the sidecar has MAX_VIEWERS players; the place is taken again once one leaves", async () => {
    const a = await whep(`${crowded.url}/whep/vod/sample.mp4`);
    assert.equal(a.res.status, 201, a.res.body);
    const b = await whep(`${crowded.url}/whep/vod-live/sample.mp4`);
    assertProblem(b.res, 503, Info.SERVER_OVERLOADED);
    assert.match(b.res.headers.get("retry-after") ?? "", /^\d+$/);
    await moreFrames(a.received, "the player that got the place");
    assert.equal((await del(a.location)).status, 200);
    // The DELETE's 200 came after the sidecar let the player go.
    const c = await whep(`${crowded.url}/whep/vod/sample.mp4`);
    assert.equal(c.res.status, 201, c.res.body);
    assert.equal((await del(c.location)).status, 200);
  });

  test("401 with WWW-Authenticate: Bearer for a missing, forged, expired or other-secret token; a valid one plays", async () => {
    const now = Math.floor(Date.now() / 1000);
    const valid = await mintAuthToken(TOKEN_SECRET, { exp: now + 60, sub: "alice" });
    const [, mac] = valid.split(".");
    const cases: Array<[string, Record<string, string>, string, boolean]> = [
      ["no Authorization", {}, Info.AUTH_TOKEN_MISSING, false],
      ["Basic, not Bearer", { authorization: "Basic YWxpY2U6cHc=" }, Info.AUTH_TOKEN_MISSING, false],
      ["garbage", { authorization: "Bearer garbage.!!!" }, Info.AUTH_TOKEN_INVALID, true],
      ["another secret", { authorization: `Bearer ${await mintAuthToken("not-the-secret", { exp: now + 60 })}` }, Info.AUTH_TOKEN_INVALID, true],
      ["payload changed", { authorization: `Bearer ${Buffer.from(JSON.stringify({ exp: now + 60, sub: "admin" })).toString("base64url")}.${mac}` }, Info.AUTH_TOKEN_INVALID, true],
      ["expired", { authorization: `Bearer ${await mintAuthToken(TOKEN_SECRET, { exp: now - 1 })}` }, Info.AUTH_TOKEN_EXPIRED, true],
    ];
    for (const [what, headers, info, invalid] of cases) {
      for (const p of ["/whep/vod/sample.mp4", `/whip/auth-${randomUUID().slice(0, 8)}`]) {
        const viewer = await createWeriftViewer();
        cleanups.push(() => viewer.close());
        const r = await post(`${guarded.url}${p}`, viewer.offerSdp, { "content-type": SDP, ...headers });
        assertProblem(r, 401, info);
        const challenge = r.headers.get("www-authenticate") ?? "";
        assert.match(challenge, /^Bearer\b/, `${what}: ${challenge}`);
        assert.equal(/error="invalid_token"/.test(challenge), invalid, `${what}: ${challenge}`);
      }
    }
    const ok = await whep(`${guarded.url}/whep/vod/sample.mp4`, { authorization: `Bearer ${valid}` });
    assert.equal(ok.res.status, 201, ok.res.body);
    const links = (ok.res.headers.get("link") ?? "").split(/,\s*(?=<)/);
    assert.deepEqual(links, [
      '<stun:stun.example.net:3478>; rel="ice-server"',
      '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="whep-user"; credential="se\\"cret"; credential-type="password"',
    ]);
    await moreFrames(ok.received, "the player with a valid token");
    assert.equal((await del(ok.location)).status, 200);
  });

  test("403 when the REST hook refuses playStream or publishStream; the hooks hear WHEP and WHIP as their own apps", async () => {
    assertProblem((await whep(`${hooked.url}/whep/vod/denied.mp4`)).res, 403, Info.RESTRICTED_ACCESS);
    const name = `denied-${randomUUID().slice(0, 8)}`;
    assertProblem((await whip(`${hooked.url}/whip/${name}`)).res, 403, Info.RESTRICTED_ACCESS);
    const play = backend.calls.find((c) => c.method === "playStream" && c.body.name === "vod://denied.mp4");
    assert.deepEqual([play?.body.appKey, play?.body.published, play?.body.status], ["whep", false, "PENDING"]);
    const pub = backend.calls.find((c) => c.method === "publishStream" && c.body.name === name);
    assert.deepEqual([pub?.body.appKey, pub?.body.published], ["whip", true]);
    assert.ok(backend.calls.some((c) => c.method === "connect" && c.body.appKey === "whep" && c.body.sessionId === play?.body.sessionId), "connect was asked first");
    // What the backend lets through plays.
    const ok = await whep(`${hooked.url}/whep/vod/sample.mp4`);
    assert.equal(ok.res.status, 201, ok.res.body);
    await moreFrames(ok.received, "the allowed player");
    assert.equal((await del(ok.location)).status, 200);
  });

  test("resources: 404 for PATCH and DELETE of unknown or deleted ones, 422 for an ICE restart, 204 for a trickle with or without If-Match", async () => {
    const a = await whep(`${edge.url}/whep/vod-live/sample.mp4`);
    assert.equal(a.res.status, 201, a.res.body);
    const ufrag = /^a=ice-ufrag:(\S+)/m.exec(a.viewer.offerSdp)![1]!;
    const pwd = /^a=ice-pwd:(\S+)/m.exec(a.viewer.offerSdp)![1]!;
    const restart = await patch(a.location, `a=ice-ufrag:x${ufrag}\r\na=ice-pwd:${pwd}0123\r\n`, { "if-match": "*" });
    assertProblem(restart, 422, /ICE restart/);
    for (const headers of [{}, { "if-match": "*" }] as Record<string, string>[]) {
      const r = await patch(a.location, `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\n${END_OF_CANDIDATES}`, headers);
      assert.equal(r.status, 204, `${JSON.stringify(headers)}: ${r.body}`);
    }
    assert.equal((await patch(a.location, END_OF_CANDIDATES)).status, 204, "no credentials at all: a trickle");
    await moreFrames(a.received, "the player after the refused restart");

    const unknown = `${edge.url}/wish/${randomBytes(32).toString("hex")}/${randomBytes(16).toString("hex")}`;
    assertProblem(await patch(unknown, END_OF_CANDIDATES), 404, "No such resource");
    assertProblem(await del(unknown), 404, "No such resource");
    assert.equal((await del(a.location)).status, 200);
    assertProblem(await del(a.location), 404, "No such resource");
    assertProblem(await patch(a.location, END_OF_CANDIDATES), 404, "No such resource");
  });
});

describe("bad input", () => {
  test("huge and garbage bodies, made-up resource URLs, a double DELETE and someone else's id with a wrong secret: clear 4xx; a playing player never notices", async () => {
    const owner = await whep(`${edge.url}/whep/vod/sample.mp4`);
    assert.equal(owner.res.status, 201, owner.res.body);
    await until("the owner to play", () => owner.received.videoFrameTimestamps.length > 5);

    const huge = `v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=x:${"y".repeat(1024 * 1024)}\r\n`;
    assertProblem(await post(`${edge.url}/whep/vod/sample.mp4`, huge), 413, /too large/);
    assertProblem(await post(`${edge.url}/whip/huge`, huge), 413, /too large/);
    // Without a Content-Length (chunked), as a streaming client sends it: still refused by its size.
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(huge));
        c.close();
      },
    });
    assertProblem(await post(`${edge.url}/whep/vod/sample.mp4`, chunked), 413, /too large/);
    assertProblem(await patch(owner.location, `a=${"z".repeat(1024 * 1024)}\r\n`), 413, /too large/);
    await moreFrames(owner.received, "the owner after the huge bodies");

    assertProblem(await post(`${edge.url}/whep/vod/sample.mp4`, randomBytes(4096)), 400, Info.SDP_INVALID);
    assertProblem(await post(`${edge.url}/whip/garbage`, `v=0\r\n${randomBytes(2048).toString("latin1")}`), 400, Info.SDP_INVALID);
    await moreFrames(owner.received, "the owner after the garbage offers");

    const [, , id, secret] = new URL(owner.location).pathname.split("/");
    const wrongSecret = `${edge.url}/wish/${id}/${randomBytes(16).toString("hex")}`;
    assertProblem(await del(wrongSecret), 404, "No such resource");
    assertProblem(await patch(wrongSecret, END_OF_CANDIDATES), 404, "No such resource");
    // One character off: the comparison is of the whole secret.
    const nearly = `${edge.url}/wish/${id}/${secret!.slice(0, -1)}${secret!.endsWith("0") ? "1" : "0"}`;
    assertProblem(await del(nearly), 404, "No such resource");
    for (const made of [`/wish/${id}/${secret!.toUpperCase()}`, `/wish/${"0".repeat(64)}/${secret}`, "/wish/not-hex/not-hex", `/wish/${id!.slice(0, 63)}/${secret}`]) {
      assertProblem(await del(`${edge.url}${made}`), 404, "No such resource");
      assertProblem(await patch(`${edge.url}${made}`, END_OF_CANDIDATES), 404, "No such resource");
    }
    await moreFrames(owner.received, "the owner after the guessed URLs");
    assert.equal((await patch(owner.location, END_OF_CANDIDATES)).status, 204, "the owner's resource is untouched");

    const other = await whep(`${edge.url}/whep/vod-live/sample.mp4`);
    assert.equal(other.res.status, 201, other.res.body);
    const [first, second] = await Promise.all([del(other.location), del(other.location)]);
    assert.deepEqual([first.status, second.status].sort(), [200, 404], "two DELETEs at once end it once");
    assertProblem(await del(other.location), 404, "No such resource");
    await moreFrames(owner.received, "the owner after another player's double DELETE");
    assert.equal((await del(owner.location)).status, 200);
  });

  // A resource URL with a segment too few or too many names no resource (not a method the URL lacks).
  test("PATCH and DELETE of resource URLs of the wrong shape are 404, not 405", async () => {
    for (const made of ["/wish/abc", `/wish/${"a".repeat(64)}`, `/wish/${"a".repeat(64)}/${"b".repeat(32)}/extra`, "/wish/"]) {
      assertProblem(await del(`${edge.url}${made}`), 404, "No such resource");
      assertProblem(await patch(`${edge.url}${made}`, END_OF_CANDIDATES), 404, "No such resource");
    }
  });

  // A malformed offer is a bad offer, not one without a codec we take: the form is checked before the codecs.
  test("an offer whose media lines are garbage is 400 'Invalid SDP offer', not 406", async () => {
    for (const body of ["v=0\r\nm=audio gibberish\r\n", "v=0\r\nm=video 9 X\r\n"]) {
      assertProblem(await post(`${edge.url}/whep/vod/sample.mp4`, body), 400, Info.SDP_INVALID);
      assertProblem(await post(`${edge.url}/whip/garbage-${randomUUID().slice(0, 8)}`, body), 400, Info.SDP_INVALID);
    }
  });

  // An answer with nothing flowing would hold a name (WHIP) or a viewer place (WHEP) for nothing: refused.
  test("an offer in the wrong direction (a player's to WHIP, an encoder's to WHEP) is refused with a 4xx and holds nothing", async () => {
    const name = `wrong-way-${randomUUID().slice(0, 8)}`;
    const player = await whep(`${edge.url}/whip/${name}`);
    assert.ok(player.res.status >= 400 && player.res.status < 500, `a recvonly offer to WHIP: ${player.res.status} ${player.res.body.slice(0, 200)}`);
    assert.equal(player.location, "");
    const enc = await whip(`${edge.url}/whip/${name}`);
    assert.equal(enc.res.status, 201, `the name is free for the real encoder: ${enc.res.body.slice(0, 200)}`);
    assert.equal((await del(enc.location)).status, 200);
    const wrong = await whip(`${edge.url}/whep/vod/sample.mp4`);
    assert.ok(wrong.res.status >= 400 && wrong.res.status < 500, `a sendonly offer to WHEP: ${wrong.res.status} ${wrong.res.body.slice(0, 200)}`);
    assert.equal(wrong.location, "");
  });
});
