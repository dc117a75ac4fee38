// WHEP playback (draft-ietf-wish-whep) and WHIP ingest (RFC 9725) beside the Web SDK: a POST of an SDP offer makes
// a resource, answered 201 with the whole answer (every server candidate: the server never trickles) and its URL in
// Location; DELETE ends it. Each resource is a SessionObject without a socket (session-object.ts, "WHEP / WHIP
// resources"): the same admission, hooks, placement and sidecar calls as a Web SDK stream, so the REST API lists and
// terminates it, limits and metrics count it, and a WHIP publish is played live by Web SDK and WHEP viewers alike.
//
//   POST /whep/vod/<file>        vod://<file>
//   POST /whep/vod-live/<file>   vod-live://<file>
//   POST /whep/live/<name>       a published name
//   POST /whip/<name>[?record=true]  publishes <name> (and records it)
//   PATCH | DELETE /wish/<object id>/<secret>   the resource (the secret makes the URL unguessable)
//
// No ICE restart (PATCH with other ICE credentials is 422) and so no ETag; a trickle PATCH is 204 and changes nothing (the
// sidecar learns the client's address from its checks, peer-reflexive, as OBS's candidate-less offers need).
import { Hono, type Context } from "hono";
import { FRAME_LIMITS, Info, checkFileName, checkPublishName, type ErrorBody } from "@edge-vod/shared";
import { iceServers, type Env } from "./config.ts";
import type { ResourceRequest } from "./session-object.ts";

export const WISH_RESOURCE_BASE = "/wish";

type Ctx = Context<{ Bindings: Env }>;

/** Every answer may be read by a player page on another origin: Location above all (RFC 9725 §4.8). */
const CORS: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "OPTIONS, POST, PATCH, DELETE",
  "access-control-allow-headers": "Authorization, Content-Type, If-Match",
  "access-control-expose-headers": "Location, ETag, Link, Accept-Patch",
};

/** The HTTP status a refusal's info stands for, per the specs' error list. */
function statusOf(info: string): number {
  switch (info) {
    case Info.BAD_URI:
    case Info.SDP_INVALID:
      return 400;
    case Info.AUTH_TOKEN_MISSING:
    case Info.AUTH_TOKEN_INVALID:
    case Info.AUTH_TOKEN_EXPIRED:
      return 401;
    case Info.RESTRICTED_ACCESS:
    case Info.STORAGE_REFUSED:
      return 403;
    case Info.FILE_NOT_FOUND:
    case Info.STREAM_NOT_FOUND:
      return 404;
    case Info.NO_COMMON_CODECS:
    case Info.STREAM_CODEC_NOT_SUPPORTED:
      return 406;
    case Info.STREAM_NAME_ALREADY_IN_USE:
      return 409;
    case Info.FILE_HAS_WRONG_FORMAT:
    case Info.UNSUPPORTED_VIDEO_CODEC:
    case Info.PREPARE_FAILED:
      return 422;
    case Info.SERVER_OVERLOADED:
    case Info.MEDIA_SERVER_UNAVAILABLE:
    case Info.STORAGE_UNAVAILABLE:
    case Info.AUTH_BACKEND_UNAVAILABLE:
      return 503;
    default:
      return 502;
  }
}

/** What a client that got `info` should know beyond the words. */
const EXPLAIN: Record<string, string> = {
  [Info.NO_COMMON_CODECS]: "No common codecs: offer H.264 (packetization-mode 1) or VP8 video, and/or Opus audio",
};

function problem(c: Ctx, info: string): Response {
  const status = statusOf(info);
  const headers: Record<string, string> = { ...CORS, "content-type": "application/json" };
  if (status === 401) headers["www-authenticate"] = info === Info.AUTH_TOKEN_MISSING ? 'Bearer realm="edge-vod"' : 'Bearer realm="edge-vod", error="invalid_token"';
  if (status === 503) headers["retry-after"] = "5";
  return new Response(JSON.stringify({ error: EXPLAIN[info] ?? info } satisfies ErrorBody), { status, headers });
}

const bad = (status: number, error: string, extra: Record<string, string> = {}) =>
  new Response(JSON.stringify({ error } satisfies ErrorBody), { status, headers: { ...CORS, "content-type": "application/json", ...extra } });

/** `Link` values for ICE_SERVERS (RFC 9725 §4.6). */
function links(env: Env): string[] {
  const q = (v: string) => `"${v.replace(/["\\]/g, "\\$&")}"`;
  return iceServers(env).flatMap((s) =>
    s.urls.map((u) => {
      let link = `<${u}>; rel="ice-server"`;
      if (s.username !== undefined && s.credential !== undefined) link += `; username=${q(s.username)}; credential=${q(s.credential)}; credential-type="password"`;
      return link;
    }),
  );
}

/** The name after `prefix` in the path, percent-decoded; undefined when it does not decode. */
function nameAfter(c: Ctx, prefix: string): string | undefined {
  const raw = new URL(c.req.url).pathname.slice(prefix.length);
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

async function offer(c: Ctx, kind: "whep" | "whip", name: string | undefined, record: boolean): Promise<Response> {
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/sdp") return bad(415, "Content-Type must be application/sdp", { accept: "application/sdp" });
  if (Number(c.req.header("content-length") ?? "0") > FRAME_LIMITS.maxSdpBytes) return bad(413, "SDP offer too large");
  const sdp = await c.req.text();
  if (sdp.length > FRAME_LIMITS.maxSdpBytes) return bad(413, "SDP offer too large");
  // A first look only: the sidecar parses it for real (and says "Invalid SDP offer" for what passes here).
  if (!/^v=0\r?\n/.test(sdp) || !/\r?\nm=(audio|video) /.test(sdp)) return problem(c, Info.SDP_INVALID);
  if (name === undefined || name.length === 0) return problem(c, Info.BAD_URI);
  const auth = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
  const req: ResourceRequest = { kind, name, sdp, record, url: c.req.url, ...(auth ? { authToken: auth[1]! } : {}) };
  const id = c.env.SESSIONS.newUniqueId();
  const outcome = await c.env.SESSIONS.get(id).openResource(req);
  if (!outcome.ok) return problem(c, outcome.info);
  const headers = new Headers({
    ...CORS,
    "content-type": "application/sdp",
    // Absolute: some clients in the field do not resolve a relative one.
    location: new URL(`${WISH_RESOURCE_BASE}/${id.toString()}/${outcome.secret}`, c.req.url).href,
    "accept-patch": "application/trickle-ice-sdpfrag",
  });
  for (const l of links(c.env)) headers.append("link", l);
  return new Response(outcome.sdp, { status: 201, headers });
}

/** The resource's object, when the URL names one that can exist; its secret is checked by the object itself. */
function resource(c: Ctx): { stub: DurableObjectStub<import("./session-object.ts").SessionObject>; secret: string } | undefined {
  const id = c.req.param("id") ?? "";
  const secret = c.req.param("secret") ?? "";
  if (!/^[0-9a-f]{64}$/.test(id) || !/^[0-9a-f]{32}$/.test(secret)) return undefined;
  try {
    return { stub: c.env.SESSIONS.get(c.env.SESSIONS.idFromString(id)), secret };
  } catch {
    return undefined;
  }
}

export const whipWhep = new Hono<{ Bindings: Env }>();

// Preflights are kept 10 minutes (Chromium's default is 5 s): a player page on another origin pays one, not one per play.
const PREFLIGHT = { ...CORS, "access-control-max-age": "600" };
whipWhep.options("/whep/*", () => new Response(null, { status: 204, headers: { ...PREFLIGHT, "accept-post": "application/sdp" } }));
whipWhep.options("/whip/*", () => new Response(null, { status: 204, headers: { ...PREFLIGHT, "accept-post": "application/sdp" } }));
whipWhep.options(`${WISH_RESOURCE_BASE}/*`, () => new Response(null, { status: 204, headers: { ...PREFLIGHT, "accept-patch": "application/trickle-ice-sdpfrag" } }));

/** Each POST endpoint: its kind, and the stream name its path's rest stands for (undefined: a bad name). */
const ENDPOINTS: [prefix: string, kind: "whep" | "whip", name: (rest: string) => string | undefined][] = [
  ["/whep/vod/", "whep", (f) => (checkFileName(f) === null ? `vod://${f}` : undefined)],
  ["/whep/vod-live/", "whep", (f) => (checkFileName(f) === null ? `vod-live://${f}` : undefined)],
  ["/whep/live/", "whep", (n) => (checkPublishName(n) === null ? n : undefined)],
  ["/whip/", "whip", (n) => (checkPublishName(n) === null ? n : undefined)],
];
for (const [prefix, kind, name] of ENDPOINTS) {
  whipWhep.post(`${prefix}*`, (c) => {
    const rest = nameAfter(c, prefix);
    const record = kind === "whip" && /^(1|true|yes)$/i.test(c.req.query("record") ?? "");
    return offer(c, kind, rest !== undefined ? name(rest) : undefined, record);
  });
}

whipWhep.patch(`${WISH_RESOURCE_BASE}/:id/:secret`, async (c) => {
  const r = resource(c);
  const found = r && (await r.stub.resourceCall("look", r.secret));
  if (!found) return bad(404, "No such resource");
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/trickle-ice-sdpfrag") return bad(415, "Content-Type must be application/trickle-ice-sdpfrag", { "accept-patch": "application/trickle-ice-sdpfrag" });
  const frag = await c.req.text();
  if (frag.length > FRAME_LIMITS.maxSdpBytes) return bad(413, "SDP fragment too large");
  // Other ICE credentials than the offer's ask for an ICE restart, which this server does not do; the same ones (or
  // none) come with trickled candidates (RFC 8840), which it does not need.
  const ufrag = /^a=ice-ufrag:(\S+)/m.exec(frag)?.[1];
  if (ufrag !== undefined && found.ufrag !== undefined && ufrag !== found.ufrag) return bad(422, "ICE restart is not supported");
  return new Response(null, { status: 204, headers: CORS });
});

whipWhep.delete(`${WISH_RESOURCE_BASE}/:id/:secret`, async (c) => {
  const r = resource(c);
  if (!r || !(await r.stub.resourceCall("delete", r.secret))) return bad(404, "No such resource");
  return new Response(null, { status: 200, headers: CORS });
});

whipWhep.all("/whep/*", () => bad(405, "Method not allowed", { allow: "OPTIONS, POST" }));
whipWhep.all("/whip/*", () => bad(405, "Method not allowed", { allow: "OPTIONS, POST" }));
// A URL that is not a resource's: what a PATCH or DELETE on it finds is no resource.
whipWhep.on(["PATCH", "DELETE"], `${WISH_RESOURCE_BASE}/*`, () => bad(404, "No such resource"));
whipWhep.all(`${WISH_RESOURCE_BASE}/*`, () => bad(405, "Method not allowed", { allow: "OPTIONS, PATCH, DELETE" }));
