// The edge under `wrangler dev` against a fake sidecar: the Web SDK's signalling frames, the sidecar control calls
// they cause, the sidecar's events coming back, keep-alive, and the static Player.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { EDGE_EVENTS_PATH, Info, SIDECAR_PATHS, verifyRequest, type StreamEvent } from "@edge-vod/shared";
import { SdkClient, statusEventOf } from "../helpers/sdk-client.ts";
import { freePort } from "../helpers/ports.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";
import { signedFetch, signedHeaders } from "../helpers/signed-fetch.ts";
import { SDK_BUNDLE_SOURCE } from "../../scripts/prepare-assets.ts";

const SECRET = randomBytes(24).toString("hex");
const OFFER = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n";
const ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=edge-vod-fake\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n";

interface Call {
  path: string;
  body: Record<string, unknown>;
}

/** Stands in for the media sidecar: records every call signed by the edge, answers /v1/play by stream name. */
class FakeSidecar {
  readonly calls: Call[] = [];
  unauthorized = 0;
  url = "";
  private server?: ServerType;

  async start(): Promise<void> {
    const app = new Hono();
    app.use("*", async (c, next) => {
      // The edge's signature covers the body bytes: a request it altered or signed wrongly never reaches the routes.
      const body = c.req.method === "POST" ? await c.req.arrayBuffer() : undefined;
      const signed = await verifyRequest(SECRET, { method: c.req.method, url: c.req.url, headers: c.req.raw.headers, body });
      if (!signed.ok) {
        this.unauthorized++;
        return c.json({ error: signed.reason }, 401);
      }
      await next();
    });
    app.post("*", async (c) => {
      const body = (await c.req.json()) as Record<string, unknown>;
      this.calls.push({ path: c.req.path, body });
      switch (c.req.path) {
        case SIDECAR_PATHS.play:
          switch (body.name) {
            case "vod://nothing.mp4":
              return c.json({ ok: false, info: Info.FILE_NOT_FOUND });
            case "vod://http500.mp4":
              return c.json({ error: "boom" }, 500);
            case "vod://notjson.mp4":
              return c.text("<html>surprise</html>");
            case "vod://wrongshape.mp4":
              return c.json({ ok: "yes" });
            default:
              return c.json({ ok: true, sdp: ANSWER });
          }
        case SIDECAR_PATHS.publish:
          return body.name === "refused" ? c.json({ ok: false, info: Info.NO_COMMON_CODECS }) : c.json({ ok: true, sdp: ANSWER });
        case SIDECAR_PATHS.stop: {
          const pub = this.callsTo(SIDECAR_PATHS.publish, (b) => b.mediaSessionId === body.mediaSessionId)[0];
          return c.json(pub?.body.record ? { ok: true, found: true, recordName: `rec-${String(body.mediaSessionId)}.mp4` } : { ok: true, found: true });
        }
        case SIDECAR_PATHS.release:
          return c.json({ ok: true, released: 0 });
        default:
          return c.json({ error: "Not found" }, 404);
      }
    });
    await new Promise<void>((resolve) => {
      this.server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
        this.url = `http://127.0.0.1:${info.port}`;
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  callsTo(path: string, pred: (b: Record<string, unknown>) => boolean = () => true): Call[] {
    return this.calls.filter((c) => c.path === path && pred(c.body));
  }

  async waitForCall(path: string, pred: (b: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Call> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.callsTo(path, pred)[0];
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${path} call matched; calls: ${JSON.stringify(this.calls.map((c) => c.path))}`);
      await sleep(50);
    }
  }

  /** The play request of a stream: where its events go, and which session it belongs to. */
  playOf(mediaSessionId: string): { eventsUrl: string; sessionRef: string } {
    const call = this.calls.filter(
      (c) => (c.path === SIDECAR_PATHS.play || c.path === SIDECAR_PATHS.publish) && c.body.mediaSessionId === mediaSessionId,
    )[0];
    assert.ok(call, `no /v1/play for ${mediaSessionId}`);
    return { eventsUrl: String(call.body.eventsUrl), sessionRef: String(call.body.sessionRef) };
  }

  /** What the real sidecar does to report a stream's status. */
  async postEvent(mediaSessionId: string, event: Partial<StreamEvent>): Promise<Response> {
    const { eventsUrl, sessionRef } = this.playOf(mediaSessionId);
    return signedFetch(SECRET, eventsUrl, { method: "POST", body: JSON.stringify({ sessionRef, mediaSessionId, ...event }) });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Asserts that nothing matching arrives within `ms`. */
async function assertNoFrame(client: SdkClient, pred: Parameters<SdkClient["waitFor"]>[0], ms: number, from: number): Promise<void> {
  await sleep(ms);
  const got = client.frames.slice(from).filter(pred);
  assert.deepEqual(got.map((f) => f.raw), [], "unexpected frame");
}

const sidecar = new FakeSidecar();
let edge: WranglerDev;
const clients: SdkClient[] = [];

async function connect(url = edge.wsUrl, opts?: { answerPings?: boolean }): Promise<SdkClient> {
  const c = await SdkClient.connect(url, opts);
  clients.push(c);
  return c;
}

async function open(url = edge.wsUrl): Promise<SdkClient> {
  const c = await SdkClient.open(url);
  clients.push(c);
  return c;
}

before(async () => {
  await sidecar.start();
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret: SECRET });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  await edge?.stop();
  await sidecar.stop();
});

describe("session", () => {
  test("connection on any path is answered with getUserData (ESTABLISHED)", async () => {
    const client = await open(`${edge.wsUrl}some/room/${randomUUID()}`);
    const user = await client.establish();
    assert.equal(user.status, "ESTABLISHED");
    assert.deepEqual(user.mediaProviders, ["WebRTC"]);
    assert.equal(typeof user.authToken, "string");
    assert.ok((user.authToken as string).length >= 16);
    assert.equal(typeof user.sessionId, "string");
    assert.equal(user.appKey, "defaultApp");
    assert.equal(user.clientVersion, "2.0");
    assert.equal(user.msePacketizationVersion, 2);
    assert.equal("webRTCMetricsServerDescription" in user, false);
    const frame = client.frames.find((f) => f.message === "getUserData")!;
    assert.equal(frame.data.length, 1);
  });

  test("the server pings every 5 s with a data array", { timeout: 15_000 }, async () => {
    const client = await connect();
    const ping = await client.waitFor((f) => f.message === "ping", { timeoutMs: 8000, label: "ping" });
    assert.equal(ping.raw, '{"message":"ping","data":[]}');
  });

  test("a client ping gets the pong the SDK itself would send", async () => {
    const client = await connect();
    const from = client.frames.length;
    client.send("ping", null);
    const pong = await client.waitFor((f) => f.message === "pong", { from });
    assert.equal(pong.raw, '{"message":"pong","data":[null]}');
  });

  test("stream frames before `connection` fail with 'Session not ready'", async () => {
    const client = await open();
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    const ev = await client.waitForStatus(id, "FAILED");
    assert.equal(ev.info, Info.SESSION_NOT_READY);
    assert.equal(sidecar.callsTo(SIDECAR_PATHS.play, (b) => b.mediaSessionId === id).length, 0);
  });

  test("closing the socket releases the session at the sidecar", async () => {
    const client = await connect();
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    const { sessionRef } = sidecar.playOf(id);
    await client.close();
    await sidecar.waitForCall(SIDECAR_PATHS.release, (b) => b.sessionRef === sessionRef);
  });
});

describe("playStream", () => {
  test("vod://nothing.mp4 fails with exactly 'File not found'", async () => {
    const client = await connect();
    const id = client.playStream({ name: "vod://nothing.mp4", sdp: OFFER });
    const ev = await client.waitForStatus(id);
    assert.deepEqual(ev, { mediaSessionId: id, name: "vod://nothing.mp4", published: false, status: "FAILED", info: "File not found" });
    const play = sidecar.playOf(id);
    assert.equal(play.eventsUrl, `${edge.url}${EDGE_EVENTS_PATH}`);
    assert.match(play.sessionRef, /^[0-9a-f]{64}$/);
    const body = sidecar.callsTo(SIDECAR_PATHS.play, (b) => b.mediaSessionId === id)[0]!.body;
    assert.equal(body.sdp, OFFER);
    assert.equal(body.name, "vod://nothing.mp4");
  });

  test("vod://ok.mp4: setRemoteSDP, PENDING until the sidecar says PLAYING, stop → STOPPED + /v1/stop", async () => {
    const client = await connect();
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    const sdp = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    assert.deepEqual(sdp.data, [id, ANSWER, true]);
    await sleep(300);
    assert.deepEqual(client.statusEvents(id), [], "no status before the sidecar reports one");

    const res = await sidecar.postEvent(id, { status: "PLAYING" });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true, delivered: true });
    const playing = await client.waitForStatus(id, "PLAYING");
    assert.deepEqual(playing, { mediaSessionId: id, name: "vod://ok.mp4", published: false, status: "PLAYING" });

    client.stopStream(id);
    const stopped = await client.waitForStatus(id, "STOPPED");
    assert.equal(stopped.info, "Stopped by user");
    assert.equal(stopped.name, "vod://ok.mp4");
    const { sessionRef } = sidecar.playOf(id);
    await sidecar.waitForCall(SIDECAR_PATHS.stop, (b) => b.mediaSessionId === id && b.sessionRef === sessionRef);

    // The sidecar's own STOPPED for a stream the user already stopped is dropped, not sent twice.
    const from = client.frames.length;
    const late = await sidecar.postEvent(id, { status: "STOPPED", info: "Stopped by user" });
    assert.deepEqual(await late.json(), { ok: true, delivered: false });
    await assertNoFrame(client, (f) => statusEventOf(f)?.mediaSessionId === id, 300, from);
  });

  test("a terminal event from the sidecar ends the stream; a later stopStream is ignored", async () => {
    const client = await connect();
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    await sidecar.postEvent(id, { status: "PLAYING" });
    await client.waitForStatus(id, "PLAYING");
    await sidecar.postEvent(id, { status: "STOPPED", info: "Requested stream shutdown" });
    const ev = await client.waitForStatus(id, "STOPPED");
    assert.equal(ev.info, "Requested stream shutdown");

    const stopsBefore = sidecar.callsTo(SIDECAR_PATHS.stop, (b) => b.mediaSessionId === id).length;
    const from = client.frames.length;
    client.stopStream(id);
    await assertNoFrame(client, () => true, 400, from);
    assert.equal(sidecar.callsTo(SIDECAR_PATHS.stop, (b) => b.mediaSessionId === id).length, stopsBefore);
  });

  test("a FAILED event carries its info", async () => {
    const client = await connect();
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    await sidecar.postEvent(id, { status: "FAILED", info: Info.FAILED_BY_ICE_TIMEOUT });
    const ev = await client.waitForStatus(id, "FAILED");
    assert.equal(ev.info, "Failed by ICE timeout");
  });

  test("vod://../etc/passwd fails with 'Bad URI' without asking the sidecar", async () => {
    const client = await connect();
    for (const name of ["vod://../etc/passwd", "vod:///etc/passwd", "vod-live://a/../../b.mp4", "vod://"]) {
      const id = client.playStream({ name, sdp: OFFER });
      const ev = await client.waitForStatus(id);
      assert.equal(ev.status, "FAILED", name);
      assert.equal(ev.info, "Bad URI", name);
      assert.equal(sidecar.callsTo(SIDECAR_PATHS.play, (b) => b.mediaSessionId === id).length, 0, name);
    }
  });

  test("a live stream name with no publisher fails with 'Stream not found'", async () => {
    const client = await connect();
    const live = client.playStream({ name: "nobody-publishes-this", sdp: OFFER });
    assert.equal((await client.waitForStatus(live)).info, Info.STREAM_NOT_FOUND);
    assert.equal(sidecar.callsTo(SIDECAR_PATHS.play, (b) => b.mediaSessionId === live).length, 0);
  });

  test("publish with record: setRemoteSDP, PUBLISHING from the sidecar, UNPUBLISHED with the record name", async () => {
    const client = await connect();
    const name = `rec-${randomUUID()}`;
    const id = client.publishStream({ name, sdp: OFFER, record: true });
    const sdp = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    assert.equal(sdp.data[1], ANSWER);
    const call = sidecar.callsTo(SIDECAR_PATHS.publish, (b) => b.mediaSessionId === id)[0];
    assert.ok(call);
    assert.equal(call.body.record, true);
    assert.equal(call.body.name, name);
    await sidecar.postEvent(id, { status: "PUBLISHING" });
    assert.deepEqual(await client.waitForStatus(id, "PUBLISHING"), { mediaSessionId: id, name, published: true, status: "PUBLISHING", record: true });
    client.unPublishStream(id);
    const ev = await client.waitForStatus(id, "UNPUBLISHED");
    assert.deepEqual(ev, {
      mediaSessionId: id,
      name,
      published: true,
      status: "UNPUBLISHED",
      info: Info.STOPPED_BY_USER,
      record: true,
      recordName: `rec-${id}.mp4`,
    });
    assert.equal(sidecar.callsTo(SIDECAR_PATHS.stop, (b) => b.mediaSessionId === id).length, 1);
  });

  test("a name is published once at a time: a second publisher fails, and the name is free after the first stops", async () => {
    const a = await connect();
    const b = await connect();
    const name = `live-${randomUUID()}`;
    const first = a.publishStream({ name, sdp: OFFER });
    await a.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === first);
    const second = b.publishStream({ name, sdp: OFFER });
    const refused = await b.waitForStatus(second);
    assert.equal(refused.status, "FAILED");
    assert.equal(refused.info, Info.STREAM_NAME_ALREADY_IN_USE);
    assert.equal(sidecar.callsTo(SIDECAR_PATHS.publish, (x) => x.mediaSessionId === second).length, 0);

    // A viewer of the published name is sent to the sidecar.
    const viewer = b.playStream({ name, sdp: OFFER });
    await b.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === viewer);

    a.unPublishStream(first);
    const unpublished = await a.waitForStatus(first, "UNPUBLISHED");
    assert.equal(unpublished.recordName, undefined, "no record name without record: true");
    const third = b.publishStream({ name, sdp: OFFER });
    await b.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === third);
  });

  test("a publisher whose socket closes frees its name", async () => {
    const a = await connect();
    const name = `gone-${randomUUID()}`;
    const first = a.publishStream({ name, sdp: OFFER });
    await a.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === first);
    await a.close();
    const b = await connect();
    const again = b.publishStream({ name, sdp: OFFER });
    await b.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === again);
  });

  test("a sidecar-ended publish (FAILED) frees the name; a refused publish too", async () => {
    const a = await connect();
    const name = `failing-${randomUUID()}`;
    const first = a.publishStream({ name, sdp: OFFER, record: true });
    await a.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === first);
    await sidecar.postEvent(first, { status: "FAILED", info: Info.RECORD_WRITE_FAILED, recordName: "partial.mp4" });
    const failed = await a.waitForStatus(first, "FAILED");
    assert.equal(failed.info, Info.RECORD_WRITE_FAILED);
    assert.equal(failed.recordName, "partial.mp4");
    const next = a.publishStream({ name, sdp: OFFER });
    await a.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === next);

    const refused = a.publishStream({ name: "refused", sdp: OFFER });
    assert.equal((await a.waitForStatus(refused)).info, Info.NO_COMMON_CODECS);
    const retry = a.publishStream({ name: "refused", sdp: OFFER });
    assert.equal((await a.waitForStatus(retry)).info, Info.NO_COMMON_CODECS, "not 'already in use': the refusal freed the name");
  });

  test("bad publish names fail with 'Bad URI' before reaching the sidecar", async () => {
    const client = await connect();
    for (const name of ["", "   ", "vod://x.mp4", "vod-live://x.mp4", "a\u0000b", "x".repeat(300)]) {
      const id = client.publishStream({ name, sdp: OFFER, record: true });
      const ev = await client.waitForStatus(id);
      assert.equal(ev.status, "FAILED", JSON.stringify(name));
      assert.equal(ev.info, Info.BAD_URI, JSON.stringify(name));
      assert.equal(sidecar.callsTo(SIDECAR_PATHS.publish, (b) => b.mediaSessionId === id).length, 0);
    }
  });

  test("a mediaSessionId in use is refused; the first stream is unaffected", async () => {
    const client = await connect();
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    client.playStream({ name: "vod://ok.mp4", sdp: OFFER, mediaSessionId: id });
    const ev = await client.waitForStatus(id, "FAILED");
    assert.equal(ev.info, "MediaSessionId is already in use");
    assert.equal(sidecar.callsTo(SIDECAR_PATHS.play, (b) => b.mediaSessionId === id).length, 1);
    const res = await sidecar.postEvent(id, { status: "PLAYING" });
    assert.deepEqual(await res.json(), { ok: true, delivered: true });
  });

  test("more than 16 streams in one session are refused", async () => {
    const client = await connect();
    const ids = Array.from({ length: 16 }, () => client.playStream({ name: "vod://ok.mp4", sdp: OFFER }));
    for (const id of ids) await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    const extra = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    assert.equal((await client.waitForStatus(extra)).info, Info.TOO_MANY_STREAMS);
    // A slot frees once a stream ends.
    client.stopStream(ids[0]!);
    await client.waitForStatus(ids[0]!, "STOPPED");
    const again = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === again);
  });

  test("sidecar errors (HTTP 500, not JSON, wrong shape) fail the stream with 'Media server unavailable'", async () => {
    const client = await connect();
    for (const name of ["vod://http500.mp4", "vod://notjson.mp4", "vod://wrongshape.mp4"]) {
      const id = client.playStream({ name, sdp: OFFER });
      const ev = await client.waitForStatus(id);
      assert.equal(ev.status, "FAILED", name);
      assert.equal(ev.info, "Media server unavailable", name);
    }
  });
});

describe("bad input", () => {
  test("malformed frames get a `fail` frame; a broken playStream also gets FAILED; the session survives", async () => {
    const client = await connect();
    let from = client.frames.length;
    client.sendRaw("{not json");
    let fail = await client.waitFor((f) => f.message === "fail", { from });
    assert.equal(typeof (fail.data[0] as { info: unknown }).info, "string");

    from = client.frames.length;
    client.send("getStreamStatus", {});
    fail = await client.waitFor((f) => f.message === "fail", { from });
    assert.match((fail.data[0] as { info: string }).info, /Unknown message 'getStreamStatus'/);

    from = client.frames.length;
    const id = randomUUID();
    client.send("playStream", { mediaSessionId: id, name: "vod://ok.mp4", published: false, status: "PENDING" });
    await client.waitFor((f) => f.message === "fail", { from });
    const ev = await client.waitForStatus(id, undefined, { from });
    assert.deepEqual(ev, { mediaSessionId: id, name: "vod://ok.mp4", published: false, status: "FAILED", info: "Invalid SDP offer" });

    for (const bad of ['"just a string"', "[1,2]", '{"message":"playStream"}', '{"message":"playStream","data":[42]}', "null"]) {
      from = client.frames.length;
      client.sendRaw(bad);
      await client.waitFor((f) => f.message === "fail", { from, label: `fail for ${bad}` });
    }

    from = client.frames.length;
    client.sendRaw(new Uint8Array([1, 2, 3]));
    fail = await client.waitFor((f) => f.message === "fail", { from });
    assert.match((fail.data[0] as { info: string }).info, /Binary/);

    from = client.frames.length;
    client.sendRaw(JSON.stringify({ message: "connection", data: [{ pad: "x".repeat(300 * 1024) }] }));
    fail = await client.waitFor((f) => f.message === "fail", { from });
    assert.match((fail.data[0] as { info: string }).info, /too large/);

    // Still a working session.
    const ok = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === ok);
    assert.equal(client.readyState, WebSocket.OPEN);
  });

  test("a misbehaving session does not disturb another one", async () => {
    const good = await connect();
    const bad = await connect();
    const flood = (async () => {
      for (let i = 0; i < 200; i++) {
        bad.sendRaw(i % 3 === 0 ? "}{" : i % 3 === 1 ? new Uint8Array(64) : JSON.stringify({ message: "nope", data: [i] }));
        if (i % 20 === 0) await sleep(1);
      }
    })();
    const id = good.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await good.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    await flood;
    await sidecar.postEvent(id, { status: "PLAYING" });
    await good.waitForStatus(id, "PLAYING");
    // The flood only ever produced `fail` frames for the bad session, never anything for the good one.
    await bad.waitFor((f) => f.message === "fail");
    assert.ok(good.frames.every((f) => f.message !== "fail"));
    assert.equal(good.readyState, WebSocket.OPEN);
  });
});

describe("sidecar events endpoint", () => {
  const eventsUrl = () => `${edge.url}${EDGE_EVENTS_PATH}`;
  const text = (body: unknown) => (typeof body === "string" ? body : JSON.stringify(body));
  const post = (body: unknown, auth?: string) =>
    fetch(eventsUrl(), {
      method: "POST",
      headers: { "content-type": "application/json", ...(auth ? { authorization: auth } : {}) },
      body: text(body),
    });
  const signedPost = (body: unknown, secret = SECRET, signedAt?: number) =>
    signedFetch(secret, eventsUrl(), { method: "POST", body: text(body), ...(signedAt !== undefined ? { signedAt } : {}) });
  const event = { sessionRef: "0".repeat(64), mediaSessionId: "m1", status: "PLAYING" };

  test("unsigned (no header, any bearer, even the secret itself): 401 JSON", async () => {
    for (const auth of [undefined, "Bearer wrong-secret", `Basic ${SECRET}`, `Bearer ${SECRET}`]) {
      const res = await post(event, auth);
      assert.equal(res.status, 401, String(auth));
      assert.match(res.headers.get("content-type") ?? "", /application\/json/);
      assert.deepEqual(await res.json(), { error: "Unsigned request" });
    }
  });

  test("signed with another secret, altered after signing, or stale: 401 with the reason", async () => {
    let res = await signedPost(event, "another-secret-another-secret");
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error: "Bad signature" });

    const headers = await signedHeaders(SECRET, eventsUrl(), { method: "POST", body: text(event), headers: { "content-type": "application/json" } });
    res = await fetch(eventsUrl(), { method: "POST", headers, body: text({ ...event, status: "FAILED" }) });
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error: "Bad signature" });

    res = await signedPost(event, SECRET, Date.now() - 31_000);
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error: "Stale request" });
  });

  test("bad bodies and malformed session refs: 400 JSON", async () => {
    for (const body of ["{", { sessionRef: "x" }, { sessionRef: "abc", mediaSessionId: "m", status: "BOGUS" }]) {
      const res = await signedPost(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(typeof ((await res.json()) as { error: unknown }).error, "string");
    }
    const res = await signedPost({ sessionRef: "not-a-durable-object-id", mediaSessionId: "m", status: "PLAYING" });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: "Malformed sessionRef" });
  });

  test("an event for a session that is gone is accepted and dropped", async () => {
    const client = await connect();
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    await client.close();
    const { sessionRef } = sidecar.playOf(id);
    await sidecar.waitForCall(SIDECAR_PATHS.release, (b) => b.sessionRef === sessionRef);
    const res = await sidecar.postEvent(id, { status: "PLAYING" });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true, delivered: false });
  });
});

describe("static Player", () => {
  test("/ redirects to the Player, keeping the query", async () => {
    let res = await fetch(`${edge.url}/`, { redirect: "manual" });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("location"), "/player.html");
    res = await fetch(`${edge.url}/?stream=vod://sample.mp4`, { redirect: "manual" });
    assert.equal(res.headers.get("location"), "/player.html?stream=vod://sample.mp4");
  });

  test("player.html, player.js and the unmodified SDK bundle are served", async () => {
    let res = await fetch(`${edge.url}/player.html`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    const html = await res.text();
    for (const id of ['id="status"', 'id="info"', 'id="display"', 'id="playBtn"', "/vendor/flashphoner.js"]) assert.ok(html.includes(id), id);

    res = await fetch(`${edge.url}/player.js`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /javascript/);
    await res.body?.cancel();

    res = await fetch(`${edge.url}/vendor/flashphoner.js`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /javascript/);
    const served = Buffer.from(await res.arrayBuffer());
    assert.ok(served.equals(await fs.readFile(SDK_BUNDLE_SOURCE)), "bundle differs from @flashphoner/websdk/flashphoner.js");

    res = await fetch(`${edge.url}/no-such-file.txt`);
    assert.equal(res.status, 404);
    await res.body?.cancel();
  });
});

describe("keep-alive and the PENDING watchdog (fast settings)", () => {
  let fast: WranglerDev;
  let pinnedOrigin: string;
  before(async () => {
    const port = await freePort();
    // Also pins where the sidecar posts events, instead of trusting the upgrade's Host header.
    pinnedOrigin = `http://localhost:${port}`;
    fast = await startWrangler({
      sidecarUrl: sidecar.url,
      secret: SECRET,
      port,
      vars: {
        KEEPALIVE_INTERVAL_MS: "200",
        KEEPALIVE_PROBES: "3",
        STREAM_START_TIMEOUT_MS: "1000",
        EDGE_EVENTS_ORIGIN: `${pinnedOrigin}/`,
      },
    });
  });
  after(async () => {
    await fast?.stop();
  });

  test("a client that answers pings stays; one that does not is closed and its streams released", { timeout: 30_000 }, async () => {
    const alive = await connect(fast.wsUrl);
    const dead = await connect(fast.wsUrl, { answerPings: false });
    const id = dead.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await dead.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    const { sessionRef, eventsUrl } = sidecar.playOf(id);
    assert.equal(eventsUrl, `${pinnedOrigin}${EDGE_EVENTS_PATH}`);

    const closed = await Promise.race([dead.closed, sleep(10_000).then(() => null)]);
    assert.ok(closed, "the silent client was not closed");
    assert.equal(closed.code, 1001);
    assert.equal(closed.reason, "Terminated by keep-alive");
    await sidecar.waitForCall(SIDECAR_PATHS.release, (b) => b.sessionRef === sessionRef);

    assert.ok(alive.frames.filter((f) => f.message === "ping").length >= 4);
    assert.equal(alive.readyState, WebSocket.OPEN);
  });

  test("a stream the sidecar never reports on is failed, not left PENDING", { timeout: 30_000 }, async () => {
    const client = await connect(fast.wsUrl);
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id);
    const ev = await client.waitForStatus(id, undefined, { timeoutMs: 5000 });
    assert.equal(ev.status, "FAILED");
    assert.equal(ev.info, "Media server unavailable");
    await sidecar.waitForCall(SIDECAR_PATHS.stop, (b) => b.mediaSessionId === id);
    // A PLAYING stream is left alone by the watchdog.
    const playing = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === playing);
    await sidecar.postEvent(playing, { status: "PLAYING" });
    await client.waitForStatus(playing, "PLAYING");
    await sleep(1800);
    assert.deepEqual(client.statusEvents(playing).map((e) => e.status), ["PLAYING"]);
  });
});

describe("sidecar unreachable or unconfigured", () => {
  let down: WranglerDev;
  let noSecret: WranglerDev;
  before(async () => {
    const closedPort = await freePort();
    [down, noSecret] = await Promise.all([
      startWrangler({ sidecarUrl: `http://127.0.0.1:${closedPort}`, secret: SECRET }),
      startWrangler({ sidecarUrl: sidecar.url }),
    ]);
  });
  after(async () => {
    await Promise.all([down?.stop(), noSecret?.stop()]);
  });

  test("sidecar down: FAILED 'Media server unavailable', the session keeps working", async () => {
    const client = await connect(down.wsUrl);
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    const ev = await client.waitForStatus(id);
    assert.equal(ev.status, "FAILED");
    assert.equal(ev.info, "Media server unavailable");
    const from = client.frames.length;
    client.send("ping", null);
    await client.waitFor((f) => f.message === "pong", { from });
  });

  test("no SIDECAR_SECRET: streams fail cleanly, nothing is sent to the sidecar, events are refused", async () => {
    const callsBefore = sidecar.calls.length;
    const unauthorizedBefore = sidecar.unauthorized;
    const client = await connect(noSecret.wsUrl);
    const id = client.playStream({ name: "vod://ok.mp4", sdp: OFFER });
    const ev = await client.waitForStatus(id);
    assert.equal(ev.info, "Media server unavailable");
    await client.close();
    await sleep(300);
    assert.equal(sidecar.calls.length, callsBefore);
    assert.equal(sidecar.unauthorized, unauthorizedBefore);

    const res = await fetch(`${noSecret.url}${EDGE_EVENTS_PATH}`, {
      method: "POST",
      headers: { authorization: "Bearer " },
      body: JSON.stringify({ sessionRef: "0".repeat(64), mediaSessionId: "m", status: "PLAYING" }),
    });
    assert.equal(res.status, 401);
  });
});
