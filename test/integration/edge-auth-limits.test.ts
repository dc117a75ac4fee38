// The edge under `wrangler dev` as an operator runs it: REST hooks to a backend (connect, publishStream, playStream
// decide; stopStream and StreamStatusEvent report), session tokens (AUTH_TOKEN_SECRET), and the per-socket limits
// (frame size, frame rate, streams per session). The sidecar is a fake that accepts every stream.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { HOOK_HEADERS, Info, SIDECAR_PATHS, mintAuthToken, signHookBody, signRequest } from "@edge-vod/shared";
import { SdkClient } from "../helpers/sdk-client.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const SIDECAR_SECRET = randomBytes(24).toString("hex");
const HOOK_SECRET = randomBytes(24).toString("hex");
const TOKEN_SECRET = randomBytes(24).toString("hex");
const HOOK_TIMEOUT_MS = 1000;
const OFFER = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n";
const ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=edge-vod-fake\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function listen(app: Hono): Promise<{ url: string; server: ServerType }> {
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) =>
      resolve({ url: `http://127.0.0.1:${info.port}`, server }),
    );
  });
}

async function close(server: ServerType | undefined): Promise<void> {
  if (!server) return;
  (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

interface Call {
  path: string;
  body: Record<string, unknown>;
  raw: string;
  headers: Record<string, string>;
}

/** Accepts every stream; records the calls so a test can see what was released. */
class FakeSidecar {
  readonly calls: Call[] = [];
  url = "";
  private server?: ServerType;

  async start(): Promise<void> {
    const app = new Hono();
    app.get(SIDECAR_PATHS.health, (c) => c.json({ ok: true, viewers: 0, publishers: 0 }));
    app.post("*", async (c) => {
      const raw = await c.req.text();
      const body = JSON.parse(raw) as Record<string, unknown>;
      this.calls.push({ path: c.req.path, body, raw, headers: {} });
      switch (c.req.path) {
        case SIDECAR_PATHS.play:
        case SIDECAR_PATHS.publish:
          return c.json({ ok: true, sdp: ANSWER });
        case SIDECAR_PATHS.stop:
          return c.json({ ok: true, found: true });
        case SIDECAR_PATHS.release:
          return c.json({ ok: true, released: 0 });
        default:
          return c.json({ error: "Not found" }, 404);
      }
    });
    ({ url: this.url, server: this.server } = await listen(app));
  }

  stop = () => close(this.server);

  async waitFor(path: string, pred: (b: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Call> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.calls.find((c) => c.path === path && pred(c.body));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${path} call matched; calls: ${JSON.stringify(this.calls.map((c) => c.path))}`);
      await sleep(50);
    }
  }

  /** The sidecar's report of a stream's status, signed as the real one signs it. */
  async postEvent(mediaSessionId: string, status: string): Promise<void> {
    const play = this.calls.find((c) => (c.path === SIDECAR_PATHS.play || c.path === SIDECAR_PATHS.publish) && c.body.mediaSessionId === mediaSessionId);
    assert.ok(play, `no play/publish call for ${mediaSessionId}`);
    const url = String(play.body.eventsUrl);
    const body = JSON.stringify({ sessionRef: play.body.sessionRef, mediaSessionId, status });
    const headers = { "content-type": "application/json", ...(await signRequest(SIDECAR_SECRET, { method: "POST", url, body })) };
    const res = await fetch(url, { method: "POST", headers, body });
    assert.equal(res.status, 200, await res.text());
  }
}

/**
 * The operator's backend: records every hook. `connect` with custom {deny: true} and play of vod://denied.mp4 get
 * 403, custom {hang: true} and vod://hang.mp4 are never answered; everything else gets 200 with the body echoed.
 */
class Backend {
  readonly calls: Call[] = [];
  url = "";
  private server?: ServerType;
  private readonly hung: Array<() => void> = [];

  async start(): Promise<void> {
    const app = new Hono();
    app.post("/apps/test/:method", async (c) => {
      const raw = await c.req.text();
      const body = JSON.parse(raw) as Record<string, unknown>;
      this.calls.push({ path: c.req.param("method"), body, raw, headers: Object.fromEntries(c.req.raw.headers) });
      // createSession's or createStream's custom, or a sendData payload (OnDataEvent).
      const custom = (body.custom ?? body.payload ?? {}) as { deny?: boolean; hang?: boolean };
      if (custom.hang || body.name === "vod://hang.mp4") {
        await new Promise<void>((resolve) => this.hung.push(resolve));
        return c.json({ error: "too late" }, 500);
      }
      if (custom.deny || body.name === "vod://denied.mp4") return c.json({ error: "Forbidden" }, 403);
      return c.json(body);
    });
    ({ url: this.url, server: this.server } = await listen(app));
  }

  async stop(): Promise<void> {
    for (const release of this.hung) release();
    await close(this.server);
  }

  of(method: string, pred: (b: Record<string, unknown>) => boolean = () => true): Call[] {
    return this.calls.filter((c) => c.path === method && pred(c.body));
  }

  async waitFor(method: string, pred: (b: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Call> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.of(method, pred)[0];
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${method} hook matched; hooks: ${JSON.stringify(this.calls.map((c) => [c.path, c.body.status]))}`);
      await sleep(50);
    }
  }
}

const sidecar = new FakeSidecar();
const backend = new Backend();
/** REST hooks and limits. */
let hooked: WranglerDev;
/** AUTH_TOKEN_SECRET. */
let guarded: WranglerDev;
const clients: SdkClient[] = [];

async function open(url: string): Promise<SdkClient> {
  const c = await SdkClient.open(url);
  clients.push(c);
  return c;
}

async function connect(url: string, extra: Record<string, unknown> = {}): Promise<SdkClient> {
  const c = await open(url);
  await c.establish(extra);
  return c;
}

const infoOf = (f: { data: unknown[] }) => (f.data[0] as { info?: unknown }).info;

/** What a refused session sees: a `fail` frame with `info`, then the socket closes (with `info` as the reason). */
async function assertRefused(client: SdkClient, info: string): Promise<void> {
  const fail = await client.waitFor((f) => f.message === "fail", { label: "fail" });
  assert.deepEqual(fail.data[0], { info, status: "FAILED" });
  const closed = await client.closed;
  // The frame that is not UTF-8 (what makes the SDK say FAILED) makes a conforming client fail the connection: 1006,
  // unless the close frame behind it was read first.
  assert.ok(closed.code === 1006 || (closed.code === 1008 && closed.reason === info), JSON.stringify(closed));
  assert.equal(client.frames.filter((f) => f.message === "getUserData").length, 0);
}

before(async () => {
  await sidecar.start();
  await backend.start();
  hooked = await startWrangler({
    sidecarUrl: sidecar.url,
    secret: SIDECAR_SECRET,
    vars: {
      REST_HOOK_URL: `${backend.url}/apps/test/`,
      REST_HOOK_SECRET: HOOK_SECRET,
      REST_HOOK_TIMEOUT_MS: String(HOOK_TIMEOUT_MS),
      MAX_STREAMS_PER_SESSION: "2",
      MAX_FRAMES_PER_SECOND: "50",
      MAX_FRAMES_BURST: "100",
    },
  });
  guarded = await startWrangler({ sidecarUrl: sidecar.url, secret: SIDECAR_SECRET, vars: { AUTH_TOKEN_SECRET: TOKEN_SECRET } });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  await hooked?.stop();
  await guarded?.stop();
  await backend.stop();
  await sidecar.stop();
});

describe("REST hooks", () => {
  test("connect: the SDK's fields, signed; 200 lets the session in", async () => {
    const client = await connect(hooked.wsUrl, { authToken: "from-my-backend", custom: { user: "alice" } });
    const user = client.frames.find((f) => f.message === "getUserData")!.data[0] as Record<string, unknown>;
    assert.equal(user.status, "ESTABLISHED");
    const call = await backend.waitFor("connect", (b) => b.sessionId === user.sessionId);
    assert.equal(call.body.appKey, "defaultApp");
    assert.equal(call.body.authToken, "from-my-backend");
    assert.deepEqual(call.body.custom, { user: "alice" });
    assert.equal(call.body.clientVersion, "2.0");
    assert.equal(call.body.status, "PENDING");
    assert.equal(call.body.nodeId, `127.0.0.1:${hooked.port}`);
    const ts = call.headers[HOOK_HEADERS.timestamp]!;
    assert.match(ts, /^\d{13}$/);
    assert.equal(call.headers[HOOK_HEADERS.signature], await signHookBody(HOOK_SECRET, ts, call.raw));
    assert.match(call.headers["content-type"] ?? "", /^application\/json/);
  });

  test("connect answered 403: the session is refused with 'Restricted access'", async () => {
    const client = await open(hooked.wsUrl);
    client.sendConnection({ custom: { deny: true } });
    await assertRefused(client, Info.RESTRICTED_ACCESS);
  });

  test("connect never answered: refused after REST_HOOK_TIMEOUT_MS with 'Authorization backend unavailable'", async () => {
    const client = await open(hooked.wsUrl);
    client.sendConnection({ custom: { hang: true } });
    await assertRefused(client, Info.AUTH_BACKEND_UNAVAILABLE);
  });

  test("sendData: a payload that is not ours goes to OnDataEvent, whose answer decides; edgeVod ones never do", async () => {
    const client = await connect(hooked.wsUrl);
    const user = client.frames.find((f) => f.message === "getUserData")!.data[0] as Record<string, unknown>;
    const ok = await client.sendData({ hello: 1 });
    assert.deepEqual(ok, { operationId: ok.operationId, status: "ACCEPTED" });
    const call = await backend.waitFor("OnDataEvent", (b) => b.operationId === ok.operationId);
    assert.deepEqual(call.body, { nodeId: `127.0.0.1:${hooked.port}`, appKey: "defaultApp", sessionId: user.sessionId, operationId: ok.operationId, payload: { hello: 1 } });
    assert.equal(call.headers[HOOK_HEADERS.signature], await signHookBody(HOOK_SECRET, call.headers[HOOK_HEADERS.timestamp]!, call.raw));
    const denied = await client.sendData({ deny: true });
    assert.deepEqual({ status: denied.status, info: denied.info }, { status: "FAILED", info: Info.RESTRICTED_ACCESS });
    const hung = await client.sendData({ hang: true });
    assert.deepEqual({ status: hung.status, info: hung.info }, { status: "FAILED", info: Info.AUTH_BACKEND_UNAVAILABLE });
    const ours = await client.sendData({ edgeVod: { op: "state", mediaSessionId: "no-such-stream" } });
    assert.deepEqual({ status: ours.status, info: ours.info }, { status: "FAILED", info: Info.STREAM_NOT_FOUND });
    assert.equal(backend.calls.some((c) => c.body.operationId === ours.operationId), false);
  });

  test("playStream answered 403: FAILED 'Restricted access', the sidecar never asked", async () => {
    const client = await connect(hooked.wsUrl);
    const id = client.playStream({ name: "vod://denied.mp4", sdp: OFFER });
    const ev = await client.waitForStatus(id, "FAILED");
    assert.equal(ev.info, Info.RESTRICTED_ACCESS);
    const call = await backend.waitFor("playStream", (b) => b.mediaSessionId === id);
    assert.equal(call.body.name, "vod://denied.mp4");
    assert.equal(call.body.published, false);
    assert.equal(call.body.status, "PENDING");
    assert.equal(sidecar.calls.some((c) => c.body.mediaSessionId === id), false);
    await backend.waitFor("StreamStatusEvent", (b) => b.mediaSessionId === id && b.status === "FAILED" && b.info === Info.RESTRICTED_ACCESS);
  });

  test("playStream never answered: FAILED 'Authorization backend unavailable'", async () => {
    const client = await connect(hooked.wsUrl);
    const id = client.playStream({ name: "vod://hang.mp4", sdp: OFFER });
    const ev = await client.waitForStatus(id, "FAILED");
    assert.equal(ev.info, Info.AUTH_BACKEND_UNAVAILABLE);
    assert.equal(sidecar.calls.some((c) => c.body.mediaSessionId === id), false);
  });

  test("playStream answered 200 plays; StreamStatusEvent for PENDING, PLAYING, STOPPED and a stopStream hook", async () => {
    const client = await connect(hooked.wsUrl);
    const user = client.frames.find((f) => f.message === "getUserData")!.data[0] as Record<string, unknown>;
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    await sidecar.postEvent(id, "PLAYING");
    await client.waitForStatus(id, "PLAYING");
    client.stopStream(id);
    await client.waitForStatus(id, "STOPPED");
    const statuses = ["PENDING", "PLAYING", "STOPPED"];
    for (const status of statuses) await backend.waitFor("StreamStatusEvent", (b) => b.mediaSessionId === id && b.status === status);
    const events = backend.of("StreamStatusEvent", (b) => b.mediaSessionId === id);
    assert.deepEqual(new Set(events.map((e) => e.body.status)), new Set(statuses));
    const stopped = events.find((e) => e.body.status === "STOPPED")!.body;
    assert.deepEqual(
      { ...stopped },
      { nodeId: `127.0.0.1:${hooked.port}`, appKey: "defaultApp", sessionId: user.sessionId, mediaSessionId: id, name: "vod://ok.mp4", published: false, status: "STOPPED", info: Info.STOPPED_BY_USER, record: false, mediaProvider: "WebRTC" },
    );
    const stop = await backend.waitFor("stopStream", (b) => b.mediaSessionId === id);
    assert.equal(stop.body.status, "PLAYING");
  });

  test("publishStream is authorized too; unPublishStream reported", async () => {
    const client = await connect(hooked.wsUrl);
    const name = `pub-${randomUUID().slice(0, 8)}`;
    const id = client.publishStream({ name, sdp: OFFER, record: true });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    const call = await backend.waitFor("publishStream", (b) => b.mediaSessionId === id);
    assert.equal(call.body.published, true);
    assert.equal(call.body.record, true);
    assert.equal(call.body.hasVideo, true);
    client.unPublishStream(id);
    await client.waitForStatus(id, "UNPUBLISHED");
    await backend.waitFor("unPublishStream", (b) => b.mediaSessionId === id);
  });
});

describe("auth tokens", () => {
  test("a valid token gets ESTABLISHED; authToken in getUserData stays the session id", async () => {
    const token = await mintAuthToken(TOKEN_SECRET, { exp: Math.floor(Date.now() / 1000) + 60, sub: "alice" });
    const client = await connect(guarded.wsUrl, { authToken: token });
    const user = client.frames.find((f) => f.message === "getUserData")!.data[0] as Record<string, unknown>;
    assert.equal(user.status, "ESTABLISHED");
    assert.equal(user.authToken, user.sessionId);
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
  });

  const now = () => Math.floor(Date.now() / 1000);
  const cases: Array<[string, () => Promise<unknown> | unknown, string]> = [
    ["expired", () => mintAuthToken(TOKEN_SECRET, { exp: now() - 1, sub: "alice" }), Info.AUTH_TOKEN_EXPIRED],
    ["signed with another secret", () => mintAuthToken("not-the-secret", { exp: now() + 60 }), Info.AUTH_TOKEN_INVALID],
    ["missing", () => undefined, Info.AUTH_TOKEN_MISSING],
    ["garbage", () => "garbage.!!!", Info.AUTH_TOKEN_INVALID],
    ["not a string", () => 42, Info.AUTH_TOKEN_INVALID],
    [
      "a payload changed after signing",
      async () => {
        const [, mac] = (await mintAuthToken(TOKEN_SECRET, { exp: now() + 60, sub: "alice" })).split(".");
        return `${Buffer.from(JSON.stringify({ exp: now() + 60, sub: "admin" })).toString("base64url")}.${mac}`;
      },
      Info.AUTH_TOKEN_INVALID,
    ],
  ];
  for (const [what, token, info] of cases) {
    test(`${what}: fail '${info}', then closed`, async () => {
      const client = await open(guarded.wsUrl);
      const value = await token();
      client.sendConnection(value === undefined ? {} : { authToken: value });
      await assertRefused(client, info);
    });
  }

  test("stream frames before a valid connection fail with 'Session not ready'", async () => {
    const client = await open(guarded.wsUrl);
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    assert.equal((await client.waitForStatus(id, "FAILED")).info, Info.SESSION_NOT_READY);
  });
});

describe("limits", () => {
  test("1000 frames in a burst: closed 1008 'Too many frames', its streams released; another session unaffected", async () => {
    const good = await connect(hooked.wsUrl);
    const bad = await connect(hooked.wsUrl);
    const id = bad.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await bad.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    const sessionRef = sidecar.calls.find((c) => c.body.mediaSessionId === id)!.body.sessionRef;
    for (let i = 0; i < 1000; i++) bad.send("ping", null);
    assert.deepEqual(await bad.closed, { code: 1008, reason: Info.TOO_MANY_FRAMES });
    await sidecar.waitFor(SIDECAR_PATHS.release, (b) => b.sessionRef === sessionRef);
    const from = good.frames.length;
    good.send("ping", null);
    await good.waitFor((f) => f.message === "pong", { from });
    assert.equal(good.readyState, WebSocket.OPEN);
  });

  test("a 1 MB frame gets a `fail` 'Frame too large'; the session goes on", async () => {
    const client = await connect(hooked.wsUrl);
    let from = client.frames.length;
    client.sendRaw(JSON.stringify({ message: "connection", data: [{ pad: "x".repeat(1024 * 1024) }] }));
    const fail = await client.waitFor((f) => f.message === "fail", { from });
    assert.equal(infoOf(fail), Info.FRAME_TOO_LARGE);
    from = client.frames.length;
    client.send("ping", null);
    await client.waitFor((f) => f.message === "pong", { from });
  });

  test("a frame over the runtime's own 32 MiB: closed 1009 with a reason by workerd; another session unaffected", async () => {
    const good = await connect(hooked.wsUrl);
    const client = await connect(hooked.wsUrl);
    client.sendRaw("x".repeat(33 * 1024 * 1024));
    const closed = await client.closed;
    assert.equal(closed.code, 1009);
    assert.match(closed.reason, /too large/);
    const from = good.frames.length;
    good.send("ping", null);
    await good.waitFor((f) => f.message === "pong", { from });
  });

  test("MAX_STREAMS_PER_SESSION=2: the third stream fails with 'Too many streams in session'", async () => {
    const client = await connect(hooked.wsUrl);
    for (let i = 0; i < 2; i++) {
      const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
      await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    }
    const third = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    assert.equal((await client.waitForStatus(third, "FAILED")).info, Info.TOO_MANY_STREAMS);
  });
});
