// The edge Worker: WebSocket signalling for the Web SDK (any path), the sidecar's event intake, and the Player.
import { Hono, type Context } from "hono";
import type { z } from "zod";
import { EDGE_EVENTS_PATH, EDGE_LEASES_PATH, LeaseRequest, EDGE_SIDECARS_PATH, RECORDS_PUBLIC_PATH, REST_API_BASE, SidecarEvent, SidecarHeartbeat, bearerOk, parseJsonBody, verifyRequest, type ErrorBody } from "@edge-vod/shared";
import type { Env } from "./config.ts";
import { recordsProxy } from "./records-proxy.ts";
import { heartbeatAll, registryShard, registryShards } from "./registry-view.ts";
import { restApi } from "./rest-api.ts";
import { whipWhep } from "./whip-whep.ts";

export { SessionObject } from "./session-object.ts";
export { StreamObject } from "./stream-object.ts";
export { BroadcastObject } from "./broadcast-object.ts";
export { SidecarRegistry } from "./sidecar-registry.ts";
export { VodCatalog } from "./vod-catalog.ts";
export { PrepareLease } from "./prepare-lease.ts";

/** A StreamEvent is well under 2 KB; this only bounds what a broken or hostile caller can make us read. */
const MAX_EVENT_BODY_BYTES = 16 * 1024;
/** A heartbeat lists the recordings a sidecar holds and the files it has warm (bounded in SidecarHeartbeat). */
const MAX_HEARTBEAT_BODY_BYTES = 1024 * 1024;

const app = new Hono<{ Bindings: Env }>();

const error = (message: string): ErrorBody => ({ error: message });

// The SDK opens exactly the URL it was given, so every path may be a signalling socket.
app.use("*", async (c, next) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") return next();
  if (c.req.method !== "GET") return c.json(error("WebSocket upgrade requires GET"), 400);
  const stub = c.env.SESSIONS.get(c.env.SESSIONS.newUniqueId());
  return stub.fetch(c.req.raw);
});

/**
 * A sidecar's request: a bounded body, signed with the shared secret within the signature window, valid JSON of
 * `schema`; else the error response.
 *
 * No nonce store here (a Worker is stateless; a Durable Object per request would cost more than it guards): a
 * request captured on the wire can be replayed within the 30 s window, and that is harmless. Events are idempotent
 * per stream: a terminal status deletes the stream, so a replayed one finds nothing, and a replayed PLAYING or
 * PUBLISHING repeats what the client already heard. A replayed heartbeat re-registers what was just registered.
 */
async function sidecarBody<T extends z.ZodType>(
  c: Context<{ Bindings: Env }>,
  schema: T,
  what: string,
  maxBytes = MAX_EVENT_BODY_BYTES,
): Promise<{ ok: true; value: z.infer<T> } | { ok: false; res: Response }> {
  const fail = (message: string, status: 400 | 401 | 413) => ({ ok: false as const, res: c.json(error(message), status) });
  if (Number(c.req.header("content-length") ?? "0") > maxBytes) return fail("Body too large", 413);
  const bytes = await c.req.arrayBuffer();
  if (bytes.byteLength > maxBytes) return fail("Body too large", 413);
  const signed = await verifyRequest(c.env.SIDECAR_SECRET ?? "", { method: c.req.method, url: c.req.url, headers: c.req.raw.headers, body: bytes });
  if (!signed.ok) return fail(signed.reason, 401);
  const parsed = parseJsonBody(new TextDecoder().decode(bytes), schema, what);
  return parsed.ok ? parsed : fail(parsed.error, 400);
}

app.post(EDGE_EVENTS_PATH, async (c) => {
  const parsed = await sidecarBody(c, SidecarEvent, "StreamEvent");
  if (!parsed.ok) return parsed.res;
  const event = parsed.value;
  let id: DurableObjectId;
  try {
    id = c.env.SESSIONS.idFromString(event.sessionRef);
  } catch {
    return c.json(error("Malformed sessionRef"), 400);
  }
  try {
    const session = c.env.SESSIONS.get(id);
    const delivered = "edgeVod" in event ? await session.vodStateEvent(event) : await session.streamEvent(event);
    // A gone session or stream is normal (the viewer left first): 200, so the sidecar does not retry.
    return c.json({ ok: true, delivered });
  } catch (err) {
    console.error("events: delivery to the session failed:", err);
    // 5xx makes the sidecar retry; a lost STOPPED would leave the player hanging.
    return c.json(error("Session unavailable"), 503);
  }
});
app.all(EDGE_EVENTS_PATH, (c) => c.json(error("Method not allowed"), 405));

// Sidecars register here (many sidecars behind one edge); operators list them with the same secret.
app.post(EDGE_SIDECARS_PATH, async (c) => {
  const parsed = await sidecarBody(c, SidecarHeartbeat, "heartbeat", MAX_HEARTBEAT_BODY_BYTES);
  if (!parsed.ok) return parsed.res;
  await heartbeatAll(c.env, parsed.value);
  return c.json({ ok: true });
});
app.get(EDGE_SIDECARS_PATH, async (c) => {
  if (!bearerOk(c.req.header("authorization"), c.env.SIDECAR_SECRET ?? "")) return c.json(error("Unauthorized"), 401);
  // Every shard's calls, by method and summed: what the registry's load is made of.
  const shards = Array.from({ length: registryShards(c.env) }, (_, i) => registryShard(c.env, i));
  const perShard = await Promise.all(shards.map((s) => s.requests()));
  const requests: Record<string, number> = {};
  for (const r of perShard) for (const [k, v] of Object.entries(r)) requests[k] = (requests[k] ?? 0) + v;
  return c.json({ sidecars: await shards[0]!.list(), requests, shards: perShard });
});
app.all(EDGE_SIDECARS_PATH, (c) => c.json(error("Method not allowed"), 405));

// Sidecars sharing a bucket take turns preparing a file: one lease per prepared copy (prepare-lease.ts).
app.post(EDGE_LEASES_PATH, async (c) => {
  const parsed = await sidecarBody(c, LeaseRequest, "lease request");
  if (!parsed.ok) return parsed.res;
  const lease = c.env.LEASES.get(c.env.LEASES.idFromName(parsed.value.key));
  return c.json(await lease.handle(parsed.value));
});
app.all(EDGE_LEASES_PATH, (c) => c.json(error("Method not allowed"), 405));

app.route(REST_API_BASE, restApi);
app.route("/", whipWhep);

app.get("/", (c) => c.redirect(`/player.html${new URL(c.req.url).search}`, 302));

app.get(`${RECORDS_PUBLIC_PATH}/:name`, recordsProxy);

app.all("*", (c) => c.env.ASSETS.fetch(c.req.raw));

app.onError((err, c) => {
  console.error("edge:", err);
  return c.json(error("Internal error"), 500);
});

export default app;
