// The session token an operator's backend hands to a user, checked at the edge when AUTH_TOKEN_SECRET is set (the
// Web SDK sends it as `authToken` in `connection`, from createSession({authToken})).
//
// Format: base64url(JSON payload) "." base64url(HMAC-SHA256(secret, <the first part as sent>)), no padding.
// Payload: {exp: seconds since epoch, after which the token is refused; sub?: who it was given to}. Extra payload
// fields are kept and ignored. Mint one with `node --import tsx scripts/auth-token.ts --sub alice --ttl 3600`.
import { z } from "zod";
import { hmacSha256 } from "./hook-signature.ts";
import { Info } from "./status.ts";

export const AuthTokenPayload = z.looseObject({
  exp: z.number().int().positive(),
  sub: z.string().max(256).optional(),
});
export type AuthTokenPayload = z.infer<typeof AuthTokenPayload>;

export type AuthTokenCheck = { ok: true; payload: AuthTokenPayload } | { ok: false; info: Info };

const B64URL_RE = /^[A-Za-z0-9_-]+$/;
/** ConnectionData caps authToken at 4096 characters; nothing valid comes near that. */
const MAX_TOKEN_CHARS = 4096;

function toBase64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(text: string): Uint8Array | undefined {
  if (!B64URL_RE.test(text)) return undefined;
  try {
    const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** Constant-time: the time depends on the lengths only, never on where the first difference is. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

export async function mintAuthToken(secret: string, payload: AuthTokenPayload): Promise<string> {
  if (!secret) throw new Error("An auth token needs a secret");
  const body = toBase64url(new TextEncoder().encode(JSON.stringify(AuthTokenPayload.parse(payload))));
  return `${body}.${toBase64url(await hmacSha256(secret, body))}`;
}

/** Never throws. A missing, malformed, forged or expired token gets the info the session is refused with. */
export async function verifyAuthToken(secret: string, token: unknown, nowMs = Date.now()): Promise<AuthTokenCheck> {
  if (token === undefined || token === null || token === "") return { ok: false, info: Info.AUTH_TOKEN_MISSING };
  if (typeof token !== "string" || token.length > MAX_TOKEN_CHARS) return { ok: false, info: Info.AUTH_TOKEN_INVALID };
  const parts = token.split(".");
  const mac = parts.length === 2 ? fromBase64url(parts[1]!) : undefined;
  const body = parts.length === 2 && B64URL_RE.test(parts[0]!) ? parts[0]! : undefined;
  // An empty secret would make every token forgeable.
  if (!secret || !mac || body === undefined) return { ok: false, info: Info.AUTH_TOKEN_INVALID };
  if (!sameBytes(mac, await hmacSha256(secret, body))) return { ok: false, info: Info.AUTH_TOKEN_INVALID };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(fromBase64url(body)));
  } catch {
    return { ok: false, info: Info.AUTH_TOKEN_INVALID };
  }
  const payload = AuthTokenPayload.safeParse(json);
  if (!payload.success) return { ok: false, info: Info.AUTH_TOKEN_INVALID };
  if (payload.data.exp * 1000 <= nowMs) return { ok: false, info: Info.AUTH_TOKEN_EXPIRED };
  return { ok: true, payload: payload.data };
}
