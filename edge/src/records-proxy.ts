// `GET|HEAD /client/records/<name>`: recordings for browsers, where WCS's recording demo links to them. The name is
// checked here first, then the request goes to a sidecar (`/v1/records/<name>`, signed) and its answer is
// streamed back as it comes, ranges and revalidation included, as a download (Content-Disposition: attachment).
//
// Which sidecar: the one that holds the recording while its upload is pending, else any healthy one (with a bucket,
// each serves what is in it); one that has no such recording passes the request on to the next, so a recording on
// one host's disk only is found too.
import type { Context } from "hono";
import { SIDECAR_PATHS, checkRecordName, signRequest, type ErrorBody } from "@edge-vod/shared";
import type { Env } from "./config.ts";
import { sidecarBaseUrl } from "./sidecar-client.ts";
import { holderOf, registryView } from "./registry-view.ts";

/** Until the sidecar's response headers arrive; the body then streams for as long as the download takes. */
const HEADERS_TIMEOUT_MS = 10_000;
/** Request headers the sidecar acts on. */
const FORWARDED_REQUEST_HEADERS = ["range", "if-range", "if-none-match", "if-modified-since"];
/** Response headers of a file (or of a 304/416) passed back to the browser. */
const FORWARDED_RESPONSE_HEADERS = [
  "content-type",
  "content-length",
  "content-range",
  "accept-ranges",
  "etag",
  "last-modified",
  "cache-control",
  "retry-after",
];
/** Sidecar statuses the browser gets as they are; anything else means the sidecar or its configuration is broken. */
const PASSED_STATUSES = new Set([200, 206, 304, 400, 403, 404, 416, 503]);
/** Sidecars asked before a download is 404: enough for a fleet, bounded for a name nobody has. */
const MAX_TRIES = 8;

const fail = (c: Context, status: 400 | 502, message: string) => c.json({ error: message } satisfies ErrorBody, status);

/** The route handler; mount as `app.get(`${RECORDS_PUBLIC_PATH}/:name`, recordsProxy)` (hono routes HEAD to it too). */
export async function recordsProxy(c: Context<{ Bindings: Env }>): Promise<Response> {
  // hono hands the parameter over percent-decoded, so `..%2Fx.mp4` arrives here as `../x.mp4`.
  const name = c.req.param("name") ?? "";
  // The sidecar checks again, against the disk; this keeps malformed names from costing a sidecar request.
  const problem = checkRecordName(name);
  if (problem) return fail(c, 400, `Bad record name: ${problem}`);

  const secret = c.env.SIDECAR_SECRET;
  const bases = await candidates(c.env, name);
  if (bases.length === 0 || !secret) {
    console.error("records: no sidecar registered, SIDECAR_URL or SIDECAR_SECRET is not configured");
    return fail(c, 502, "Media server unavailable");
  }

  const method = c.req.method === "HEAD" ? "HEAD" : "GET";
  let upstream: Response | undefined;
  for (const base of bases.slice(0, MAX_TRIES)) {
    const got = await ask(c, base, name, method, secret);
    if (!got) continue;
    await upstream?.body?.cancel();
    upstream = got;
    if (got.status !== 404) break;
  }
  if (!upstream) return fail(c, 502, "Media server unavailable");
  if (!PASSED_STATUSES.has(upstream.status)) {
    const detail = await upstream.text().catch(() => "");
    console.warn(`records: sidecar answered ${upstream.status} for ${name}: ${detail.slice(0, 200)}`);
    return fail(c, 502, "Media server unavailable");
  }

  const out = new Headers();
  for (const h of FORWARDED_RESPONSE_HEADERS) {
    const v = upstream.headers.get(h);
    if (v !== null) out.set(h, v);
  }
  out.set("x-content-type-options", "nosniff");
  if (upstream.status === 200 || upstream.status === 206) out.set("content-disposition", attachment(name));
  const body = method === "HEAD" || upstream.status === 304 ? null : upstream.body;
  if (body === null) await upstream.body?.cancel();
  return new Response(body, { status: upstream.status, headers: out });
}

/** The sidecars to ask, in order: the holder of a pending upload, the healthy registered ones, SIDECAR_URL's. */
async function candidates(env: Env, name: string): Promise<string[]> {
  const out: string[] = [];
  const add = (url: string | undefined) => {
    const base = sidecarBaseUrl(url);
    if (base && !out.includes(base)) out.push(base);
  };
  try {
    const view = await registryView(env);
    add(holderOf(view, name)?.url);
    for (const s of view.snapshot.sidecars) if (s.healthy) add(s.url);
  } catch (err) {
    console.warn(`records: sidecar registry unavailable: ${String(err)}`);
  }
  add(env.SIDECAR_URL);
  return out;
}

/** One sidecar's answer; undefined when it could not be reached. */
async function ask(c: Context<{ Bindings: Env }>, base: string, name: string, method: "GET" | "HEAD", secret: string): Promise<Response | undefined> {
  const url = `${base}${SIDECAR_PATHS.records}/${encodeURIComponent(name)}`;
  // The signature covers method, path and time, not the forwarded headers: a Range is the browser's to choose.
  const headers = new Headers(await signRequest(secret, { method, url }));
  for (const h of FORWARDED_REQUEST_HEADERS) {
    const v = c.req.header(h);
    if (v !== undefined) headers.set(h, v);
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error("timed out")), HEADERS_TIMEOUT_MS);
  try {
    return await fetch(url, { method, headers, signal: abort.signal, redirect: "manual" });
  } catch (err) {
    console.warn(`records: sidecar ${base} unreachable for ${name}: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** RFC 6266 with an RFC 8187 `filename*` for the exact name, and an ASCII `filename` for old clients. */
export function attachment(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  const encoded = encodeURIComponent(name).replace(/['()*!]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
