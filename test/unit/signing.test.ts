// Signed control requests (shared/src/signing.ts) and the sidecar's replay cache (sidecar/src/api/replay-cache.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { NONCE_HEADER, SIGNATURE_WINDOW_MS, SignatureFailure, TIMESTAMP_HEADER, signRequest, verifyRequest } from "@edge-vod/shared";
import { ReplayCache } from "../../sidecar/src/api/replay-cache.ts";

const SECRET = "signing-test-secret-0123456789";
const URL_ = "http://sidecar.example:8790/v1/play?x=1";
const BODY = JSON.stringify({ sessionRef: "s", name: "vod://ä.mp4" });
const NOW = 1_700_000_000_000;

async function signed(over: { method?: string; url?: string; body?: string | Uint8Array; secret?: string } = {}) {
  const headers = new Headers(
    await signRequest(over.secret ?? SECRET, { method: over.method ?? "POST", url: over.url ?? URL_, body: over.body ?? BODY }, NOW),
  );
  return headers;
}

test("the headers follow the documented format, and the HMAC is over the documented string", async () => {
  const h = await signed();
  const ts = h.get(TIMESTAMP_HEADER)!;
  const nonce = h.get(NONCE_HEADER)!;
  assert.equal(ts, String(NOW));
  assert.match(nonce, /^[0-9a-f]{32}$/, "128 random bits as hex");
  const bodyHash = createHash("sha256").update(BODY, "utf8").digest("hex");
  const expected = createHmac("sha256", SECRET).update(`POST\n/v1/play?x=1\n${ts}\n${nonce}\n${bodyHash}`).digest("hex");
  assert.equal(h.get("authorization"), `EdgeVod-HMAC-SHA256 ${expected}`);
  assert.notEqual((await signed()).get(NONCE_HEADER), nonce, "a new nonce every time");
});

test("round trip: what is signed verifies, from a string or the same bytes, host not included", async () => {
  const headers = await signed();
  const ok = await verifyRequest(SECRET, { method: "POST", url: URL_, headers, body: BODY }, NOW + 1000);
  assert.deepEqual(ok, { ok: true, nonce: headers.get(NONCE_HEADER), timestamp: NOW });
  const bytes = new TextEncoder().encode(BODY);
  assert.equal((await verifyRequest(SECRET, { method: "POST", url: "/v1/play?x=1", headers, body: bytes }, NOW)).ok, true);
  // A GET has no body: the empty string's hash.
  const get = await signed({ method: "GET", url: "http://h/v1/health", body: "" });
  assert.equal((await verifyRequest(SECRET, { method: "GET", url: "http://other/v1/health", headers: get, body: undefined }, NOW)).ok, true);
});

test("a changed body, path, query, method or secret is a bad signature", async () => {
  const headers = await signed();
  const cases: Array<[string, Parameters<typeof verifyRequest>[1], string]> = [
    ["body", { method: "POST", url: URL_, headers, body: BODY.replace("s", "t") }, SECRET],
    ["path", { method: "POST", url: "http://sidecar.example:8790/v1/publish?x=1", headers, body: BODY }, SECRET],
    ["query", { method: "POST", url: "http://sidecar.example:8790/v1/play?x=2", headers, body: BODY }, SECRET],
    ["method", { method: "PUT", url: URL_, headers, body: BODY }, SECRET],
    ["secret", { method: "POST", url: URL_, headers, body: BODY }, `${SECRET}x`],
  ];
  for (const [what, req, secret] of cases) {
    assert.deepEqual(await verifyRequest(secret, req, NOW), { ok: false, reason: SignatureFailure.BAD_SIGNATURE }, what);
  }
  const forged = new Headers(headers);
  forged.set(TIMESTAMP_HEADER, String(NOW + 1));
  assert.deepEqual(await verifyRequest(SECRET, { method: "POST", url: URL_, headers: forged, body: BODY }, NOW), {
    ok: false,
    reason: SignatureFailure.BAD_SIGNATURE,
  });
});

test("outside the 30 s window either way is stale; at the edge of it is not", async () => {
  const headers = await signed();
  const at = (now: number) => verifyRequest(SECRET, { method: "POST", url: URL_, headers, body: BODY }, now);
  assert.equal((await at(NOW + SIGNATURE_WINDOW_MS)).ok, true);
  assert.equal((await at(NOW - SIGNATURE_WINDOW_MS)).ok, true);
  assert.deepEqual(await at(NOW + SIGNATURE_WINDOW_MS + 1), { ok: false, reason: SignatureFailure.STALE });
  assert.deepEqual(await at(NOW - SIGNATURE_WINDOW_MS - 1), { ok: false, reason: SignatureFailure.STALE });
});

test("no signature, a bearer, or malformed signing headers are unsigned", async () => {
  const good = await signed();
  const variants: Array<Record<string, string | null>> = [
    { authorization: null, [TIMESTAMP_HEADER]: null, [NONCE_HEADER]: null },
    { authorization: `Bearer ${SECRET}` },
    { [TIMESTAMP_HEADER]: null },
    { [NONCE_HEADER]: null },
    { [NONCE_HEADER]: "abcd" },
    { [TIMESTAMP_HEADER]: "soon" },
    { authorization: "EdgeVod-HMAC-SHA256 xyz" },
  ];
  for (const v of variants) {
    const headers = new Headers(good);
    for (const [k, val] of Object.entries(v)) {
      if (val === null) headers.delete(k);
      else headers.set(k, val);
    }
    assert.deepEqual(await verifyRequest(SECRET, { method: "POST", url: URL_, headers, body: BODY }, NOW), { ok: false, reason: SignatureFailure.UNSIGNED }, JSON.stringify(v));
  }
  assert.deepEqual(await verifyRequest("", { method: "POST", url: URL_, headers: good, body: BODY }, NOW), {
    ok: false,
    reason: SignatureFailure.BAD_SIGNATURE,
  });
});

test("the sidecar's replay cache: a nonce is fresh once, replayed after, forgotten past the window, bounded", () => {
  const cache = new ReplayCache(3, SIGNATURE_WINDOW_MS);
  assert.equal(cache.check("a", NOW), "fresh");
  assert.equal(cache.check("a", NOW + 1000), "replayed");
  assert.equal(cache.check("b", NOW + 1000), "fresh");
  assert.equal(cache.check("c", NOW + 2000), "fresh");
  assert.equal(cache.check("d", NOW + 2000), "full", "past its bound it refuses rather than grows");
  assert.equal(cache.size, 3);
  // Still remembered at the far end of any request's window (timestamp up to now + window, accepted until + window).
  assert.equal(cache.check("a", NOW + 2 * SIGNATURE_WINDOW_MS - 1), "replayed");
  // Then forgotten: by then a request with that nonce is stale anyway.
  assert.equal(cache.check("d", NOW + 2 * SIGNATURE_WINDOW_MS + 1), "fresh");
  assert.equal(cache.size, 3, "a pruned, d added; b and c are within their time");
  // Once b and c have expired too, there is room again.
  assert.equal(cache.check("a", NOW + 2 * SIGNATURE_WINDOW_MS + 2000), "fresh");
  assert.equal(cache.size, 2);
});

test("a signed request verified twice: the cache catches the second", async () => {
  const cache = new ReplayCache();
  const headers = await signed();
  for (const expected of ["fresh", "replayed"]) {
    const v = await verifyRequest(SECRET, { method: "POST", url: URL_, headers, body: BODY }, NOW);
    assert.ok(v.ok);
    assert.equal(cache.check(v.nonce, NOW), expected);
  }
});
