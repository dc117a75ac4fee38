// The session token format (shared/src/auth-token.ts) and the per-socket frame limiter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Info, mintAuthToken, verifyAuthToken } from "@edge-vod/shared";
import { FrameLimiter } from "../../edge/src/frame-limiter.ts";

const SECRET = "unit-secret";
const NOW = 1_800_000_000_000;

test("a minted token is base64url(payload).base64url(HMAC-SHA256 of that part) and verifies until exp", async () => {
  const token = await mintAuthToken(SECRET, { exp: NOW / 1000 + 10, sub: "alice" });
  const [body, mac] = token.split(".");
  assert.deepEqual(JSON.parse(Buffer.from(body!, "base64url").toString()), { exp: NOW / 1000 + 10, sub: "alice" });
  assert.equal(mac, createHmac("sha256", SECRET).update(body!).digest("base64url"));
  assert.deepEqual(await verifyAuthToken(SECRET, token, NOW), { ok: true, payload: { exp: NOW / 1000 + 10, sub: "alice" } });
  assert.deepEqual(await verifyAuthToken(SECRET, token, NOW + 10_000), { ok: false, info: Info.AUTH_TOKEN_EXPIRED });
});

test("forged, malformed and missing tokens are refused with their info", async () => {
  const good = await mintAuthToken(SECRET, { exp: NOW / 1000 + 10 });
  const sign = (body: string) => `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
  const cases: Array<[unknown, string]> = [
    [undefined, Info.AUTH_TOKEN_MISSING],
    ["", Info.AUTH_TOKEN_MISSING],
    [42, Info.AUTH_TOKEN_INVALID],
    ["garbage", Info.AUTH_TOKEN_INVALID],
    [good + "x", Info.AUTH_TOKEN_INVALID],
    [good.replace(".", ".."), Info.AUTH_TOKEN_INVALID],
    [await mintAuthToken("other", { exp: NOW / 1000 + 10 }), Info.AUTH_TOKEN_INVALID],
    // Correctly signed, but not the payload this format defines.
    [sign(Buffer.from("not json").toString("base64url")), Info.AUTH_TOKEN_INVALID],
    [sign(Buffer.from(JSON.stringify({ exp: "soon" })).toString("base64url")), Info.AUTH_TOKEN_INVALID],
    ["x".repeat(5000), Info.AUTH_TOKEN_INVALID],
  ];
  for (const [token, info] of cases) assert.deepEqual(await verifyAuthToken(SECRET, token, NOW), { ok: false, info }, String(token).slice(0, 40));
  // No secret configured: nothing verifies (an empty key would make tokens forgeable).
  assert.deepEqual(await verifyAuthToken("", good, NOW), { ok: false, info: Info.AUTH_TOKEN_INVALID });
});

test("the frame limiter lets a burst through, then the sustained rate", () => {
  const limiter = new FrameLimiter(10, 20, 0);
  let passed = 0;
  for (let i = 0; i < 100; i++) if (limiter.take(0)) passed++;
  assert.equal(passed, 20);
  assert.equal(limiter.take(50), false);
  assert.equal(limiter.take(100), true);
  assert.equal(limiter.take(100), false);
  // Idle time refills up to the burst, no further.
  passed = 0;
  for (let i = 0; i < 100; i++) if (limiter.take(60_000)) passed++;
  assert.equal(passed, 20);
});
