// How this project signs the JSON it POSTs to an operator's backend (the sidecar's record hook, the edge's REST
// hooks): the body is signed, the secret itself is never sent. Every signed request carries
//   X-Edge-Vod-Timestamp: <ms since epoch when this attempt was sent>
//   X-Edge-Vod-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
// so a receiver that knows the secret can check where the call came from and how old it is. WebCrypto only, so the
// same code runs in the Worker and in Node.

export const HOOK_HEADERS = {
  timestamp: "x-edge-vod-timestamp",
  signature: "x-edge-vod-signature",
  /** The same on every retry of one event, for de-duplication (only hooks that retry send it). */
  delivery: "x-edge-vod-delivery",
} as const;

type Key = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
/** importKey per call would cost more than the HMAC itself; a process has one or two secrets (every HMAC of the
 * project goes through here: hooks, the control channel, auth tokens). */
const keys = new Map<string, Promise<Key>>();

/** HMAC-SHA256 of `message` with `secret`, raw bytes. */
export async function hmacSha256(secret: string, message: string | Uint8Array): Promise<Uint8Array> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, key);
  }
  const data = typeof message === "string" ? new TextEncoder().encode(message) : new Uint8Array(message);
  return new Uint8Array(await crypto.subtle.sign("HMAC", await key, data));
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (let i = 0; i < b.length; i++) s += b[i]!.toString(16).padStart(2, "0");
  return s;
}

/** The value of X-Edge-Vod-Signature; a receiver compares it (in constant time) with the header. */
export async function signHookBody(secret: string, timestamp: string, body: string): Promise<string> {
  return `sha256=${toHex(await hmacSha256(secret, `${timestamp}.${body}`))}`;
}

/** Headers of one signed POST of `body` (no signature header without a secret). */
export async function hookHeaders(secret: string | undefined, body: string, now = Date.now()): Promise<Record<string, string>> {
  const timestamp = String(Math.floor(now));
  const headers: Record<string, string> = { "content-type": "application/json", [HOOK_HEADERS.timestamp]: timestamp };
  if (secret) headers[HOOK_HEADERS.signature] = await signHookBody(secret, timestamp, body);
  return headers;
}
