// Signed requests on the control channel between the edge and a sidecar (both directions). The shared secret never
// travels: each request carries an HMAC-SHA256 over what it does (method, path with query, body) and when (a
// millisecond timestamp, a random nonce), so a captured request cannot be altered, and cannot be replayed after the
// window; within the window the receiver refuses a nonce it has already seen (the sidecar keeps them, see
// sidecar/src/api/replay-cache.ts). WebCrypto only, so the same code runs in the Worker and in Node.
//
// String to sign: METHOD "\n" path-with-query "\n" timestamp "\n" nonce "\n" hex(SHA-256(body bytes)).
// Headers: X-Edge-Vod-Timestamp (ms since epoch), X-Edge-Vod-Nonce (hex, >= 128 random bits),
// Authorization: EdgeVod-HMAC-SHA256 <hex HMAC>.
import { hmacSha256, toHex as hex } from "./hook-signature.ts";
import { safeEqual } from "./sidecar-api.ts";

export const SIGNATURE_SCHEME = "EdgeVod-HMAC-SHA256";
export const TIMESTAMP_HEADER = "x-edge-vod-timestamp";
export const NONCE_HEADER = "x-edge-vod-nonce";
/** A signed request older or newer than this (clock skew included) is refused as stale. */
export const SIGNATURE_WINDOW_MS = 30_000;

/** Why a request was refused; the 401 body's `error`. */
export const SignatureFailure = {
  UNSIGNED: "Unsigned request",
  BAD_SIGNATURE: "Bad signature",
  STALE: "Stale request",
  REPLAYED: "Replayed request",
} as const;
export type SignatureFailure = (typeof SignatureFailure)[keyof typeof SignatureFailure];

/** 16 random bytes: 128 bits, as hex. */
const NONCE_BYTES = 16;
const NONCE_RE = /^[0-9a-f]{32,128}$/;
const TIMESTAMP_RE = /^[0-9]{1,16}$/;
const AUTH_RE = new RegExp(`^${SIGNATURE_SCHEME} ([0-9a-f]{64})$`);

type Body = string | Uint8Array | ArrayBuffer | null | undefined;

export interface SignableRequest {
  method: string;
  /** A full URL or an absolute path; only the path and the query are signed (a proxy may change the host). */
  url: string | URL;
  body?: Body;
}

export interface VerifiableRequest extends SignableRequest {
  headers: { get(name: string): string | null };
}

export type VerifyResult = { ok: true; nonce: string; timestamp: number } | { ok: false; reason: SignatureFailure };


function bodyBytes(body: Body): Uint8Array<ArrayBuffer> {
  if (body === null || body === undefined) return new Uint8Array(0);
  // TextEncoder always makes a fresh ArrayBuffer; the DOM and Node typings disagree on saying so.
  if (typeof body === "string") return new TextEncoder().encode(body) as Uint8Array<ArrayBuffer>;
  // A copy: WebCrypto wants a plain ArrayBuffer view, and a Node Buffer may sit in a shared pool.
  return new Uint8Array(body instanceof ArrayBuffer ? body.slice(0) : body);
}

function pathWithQuery(url: string | URL): string {
  const u = new URL(url, "http://signing.invalid");
  return u.pathname + u.search;
}

async function signature(secret: string, method: string, url: string | URL, timestamp: string, nonce: string, body: Body): Promise<string> {
  const bodyHash = hex(await crypto.subtle.digest("SHA-256", bodyBytes(body)));
  const text = `${method.toUpperCase()}\n${pathWithQuery(url)}\n${timestamp}\n${nonce}\n${bodyHash}`;
  return hex(await hmacSha256(secret, text));
}

/** The headers that sign `req`; add them to the request as sent (same method, path, query and body bytes). */
export async function signRequest(secret: string, req: SignableRequest, now = Date.now()): Promise<Record<string, string>> {
  const nonce = hex(crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
  const timestamp = String(Math.floor(now));
  const sig = await signature(secret, req.method, req.url, timestamp, nonce, req.body);
  return { authorization: `${SIGNATURE_SCHEME} ${sig}`, [TIMESTAMP_HEADER]: timestamp, [NONCE_HEADER]: nonce };
}

/**
 * Checks the signature and the time window. Whether the nonce was seen before is the caller's to check (a
 * stateless receiver cannot); it is returned for that.
 */
export async function verifyRequest(secret: string, req: VerifiableRequest, now = Date.now()): Promise<VerifyResult> {
  const auth = AUTH_RE.exec(req.headers.get("authorization") ?? "");
  const timestamp = req.headers.get(TIMESTAMP_HEADER) ?? "";
  const nonce = req.headers.get(NONCE_HEADER) ?? "";
  if (!auth || !TIMESTAMP_RE.test(timestamp) || !NONCE_RE.test(nonce)) return { ok: false, reason: SignatureFailure.UNSIGNED };
  // No secret configured here: nothing can be signed with it (an empty HMAC key would be guessable).
  if (!secret) return { ok: false, reason: SignatureFailure.BAD_SIGNATURE };
  const expected = await signature(secret, req.method, req.url, timestamp, nonce, req.body);
  if (!safeEqual(auth[1]!, expected)) return { ok: false, reason: SignatureFailure.BAD_SIGNATURE };
  // After the signature: a stale answer is only given to a request that was genuinely signed with the secret.
  const ts = Number(timestamp);
  if (Math.abs(now - ts) > SIGNATURE_WINDOW_MS) return { ok: false, reason: SignatureFailure.STALE };
  return { ok: true, nonce, timestamp: ts };
}
