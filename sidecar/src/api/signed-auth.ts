// The control API's gate: every request must be signed by the edge with the shared secret (shared/src/signing.ts)
// and seen once. Refusals are 401 `{error: reason}`; a full replay cache is 503 rather than unbounded memory.
import type { Context, MiddlewareHandler } from "hono";
import { SignatureFailure, verifyRequest, type ErrorBody } from "@edge-vod/shared";
import type { ReplayCache } from "./replay-cache.ts";

/** The 503 when the replay cache is full; then every signed request is refused until nonces expire. */
export const REPLAY_CACHE_FULL = "Too many requests in the signature window";
export const BODY_TOO_LARGE = "Request body too large";

export interface SignedAuthOptions {
  replay: ReplayCache;
  /** A larger declared or actual body is refused (413) before it is hashed. */
  maxBodyBytes: number;
  /** Told about every refusal (the metrics count them). */
  onRefused?: (reason: string) => void;
}

export function signedAuth(secret: string, opts: SignedAuthOptions): MiddlewareHandler {
  return async (c: Context, next) => {
    const refuse = (reason: string, status: 401 | 413 | 503) => {
      opts.onRefused?.(reason);
      return c.json({ error: reason } satisfies ErrorBody, status);
    };
    const method = c.req.method;
    let body: ArrayBuffer | undefined;
    if (method !== "GET" && method !== "HEAD") {
      if (Number(c.req.header("content-length") ?? "0") > opts.maxBodyBytes) return refuse(BODY_TOO_LARGE, 413);
      // hono keeps the bytes: the route reads the same body again as text.
      body = await c.req.arrayBuffer();
      if (body.byteLength > opts.maxBodyBytes) return refuse(BODY_TOO_LARGE, 413);
    }
    const result = await verifyRequest(secret, { method, url: c.req.url, headers: c.req.raw.headers, body });
    if (!result.ok) return refuse(result.reason, 401);
    const seen = opts.replay.check(result.nonce);
    if (seen === "replayed") return refuse(SignatureFailure.REPLAYED, 401);
    if (seen === "full") return refuse(REPLAY_CACHE_FULL, 503);
    await next();
  };
}
