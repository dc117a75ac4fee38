// The real sidecar's control API takes only requests signed with the shared secret, each once, within 30 s; and what
// the sidecar sends the edge (heartbeats, stream events) is signed the same way, the secret never on the wire.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { EDGE_SIDECARS_PATH, SIDECAR_PATHS } from "@edge-vod/shared";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { signedFetch, signedHeaders, startStandInEdge, type VerifiedRequest } from "../helpers/signed-fetch.ts";

const secret = randomBytes(24).toString("hex");
let sidecar: SidecarProcess;

/** Stands in for the edge: every request the sidecar makes, with its verification result. */
const received: VerifiedRequest[] = [];
let edge: Awaited<ReturnType<typeof startStandInEdge>>;
let edgeUrl: string;

before(async () => {
  edge = await startStandInEdge(secret, (r) => received.push(r));
  edgeUrl = edge.url;
  sidecar = await startSidecar({ secret, env: { EDGE_URL: edgeUrl, SIDECAR_ID: "signed", HEARTBEAT_MS: "200" } });
});

after(async () => {
  await sidecar?.stop();
  await edge?.close();
});

const health = () => `${sidecar.url}${SIDECAR_PATHS.health}`;

async function refusal(res: Response): Promise<{ status: number; body: unknown }> {
  return { status: res.status, body: await res.json() };
}

test("unsigned, bearer (even the right secret) or a wrong secret: 401 with the reason", async () => {
  assert.deepEqual(await refusal(await fetch(health())), { status: 401, body: { error: "Unsigned request" } });
  for (const authorization of [`Bearer ${secret}`, "Bearer wrong-secret-wrong-secret", secret]) {
    assert.deepEqual(await refusal(await fetch(health(), { headers: { authorization } })), { status: 401, body: { error: "Unsigned request" } }, authorization);
  }
  assert.deepEqual(await refusal(await signedFetch("wrong-secret-wrong-secret", health())), { status: 401, body: { error: "Bad signature" } });
  // Every route is behind it, records included.
  const records = await fetch(`${sidecar.url}${SIDECAR_PATHS.records}/x.mp4`, { headers: { authorization: `Bearer ${secret}` } });
  assert.deepEqual(await refusal(records), { status: 401, body: { error: "Unsigned request" } });
});

test("a signed request is answered once: the exact same request again is refused as replayed", async () => {
  const headers = await signedHeaders(secret, health());
  const first = await fetch(health(), { headers });
  assert.equal(first.status, 200);
  assert.equal(((await first.json()) as { ok: boolean }).ok, true);
  assert.deepEqual(await refusal(await fetch(health(), { headers })), { status: 401, body: { error: "Replayed request" } });

  const url = sidecar.url + SIDECAR_PATHS.release;
  const body = JSON.stringify({ sessionRef: randomUUID() });
  const post = await signedHeaders(secret, url, { method: "POST", body, headers: { "content-type": "application/json" } });
  const released = await fetch(url, { method: "POST", headers: post, body });
  assert.deepEqual(await released.json(), { ok: true, released: 0 });
  assert.deepEqual(await refusal(await fetch(url, { method: "POST", headers: post, body })), { status: 401, body: { error: "Replayed request" } });
});

test("a signed body changed on the way is a bad signature; an old signature is stale", async () => {
  const url = sidecar.url + SIDECAR_PATHS.release;
  const body = JSON.stringify({ sessionRef: "mine" });
  const headers = await signedHeaders(secret, url, { method: "POST", body, headers: { "content-type": "application/json" } });
  const altered = await fetch(url, { method: "POST", headers, body: JSON.stringify({ sessionRef: "yours" }) });
  assert.deepEqual(await refusal(altered), { status: 401, body: { error: "Bad signature" } });
  const stale = await signedFetch(secret, health(), { signedAt: Date.now() - 31_000 });
  assert.deepEqual(await refusal(stale), { status: 401, body: { error: "Stale request" } });
  const early = await signedFetch(secret, health(), { signedAt: Date.now() + 31_000 });
  assert.deepEqual(await refusal(early), { status: 401, body: { error: "Stale request" } });
});

test("good signed requests pass: health, a record lookup, a play", async () => {
  const res = await signedFetch(secret, health());
  assert.equal(res.status, 200);
  const record = await signedFetch(secret, `${sidecar.url}${SIDECAR_PATHS.records}/${encodeURIComponent("no such ä.mp4")}`);
  assert.deepEqual(await refusal(record), { status: 404, body: { error: "Record not found" } });
  const play = await signedFetch(secret, sidecar.url + SIDECAR_PATHS.play, {
    method: "POST",
    body: JSON.stringify({ sessionRef: "s", eventsUrl: `${edgeUrl}/events`, mediaSessionId: randomUUID(), name: "vod://missing.mp4", sdp: "v=0\r\n" }),
  });
  assert.deepEqual(await play.json(), { ok: false, info: "File not found" });
});

test("the sidecar's heartbeats to the edge are signed and carry no secret", async () => {
  for (let i = 0; i < 100 && !received.some((r) => r.path === EDGE_SIDECARS_PATH); i++) await new Promise((r) => setTimeout(r, 50));
  const beats = received.filter((r) => r.path === EDGE_SIDECARS_PATH);
  assert.ok(beats.length > 0, "a heartbeat arrived");
  for (const b of beats) {
    assert.equal(b.verified.ok, true, JSON.stringify(b.verified));
    assert.match(String(b.headers.authorization), /^EdgeVod-HMAC-SHA256 [0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(b.headers).includes(secret), "the secret is not sent");
  }
  const nonces = new Set(beats.map((b) => b.headers["x-edge-vod-nonce"]));
  assert.equal(nonces.size, beats.length, "every heartbeat has its own nonce");
});
