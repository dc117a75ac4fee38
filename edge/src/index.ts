// The edge Worker: WebSocket signalling for the Web SDK (any path), the sidecar's event intake, and the Player.
import { Hono, type Context } from "hono";
import type { z } from "zod";
import { EDGE_EVENTS_PATH, EDGE_SIDECARS_PATH, RECORDS_PUBLIC_PATH, SidecarHeartbeat, StreamEvent, bearerOk, type ErrorBody } from "@edge-vod/shared";
import type { Env } from "./config.ts";
import { recordsProxy } from "./records-proxy.ts";

export { SessionObject } from "./session-object.ts";
export { StreamObject } from "./stream-object.ts";
export { BroadcastObject } from "./broadcast-object.ts";
export { SidecarRegistry } from "./sidecar-registry.ts";

/** A StreamEvent or a heartbeat is well under 2 KB; this only bounds what an authorized but broken sidecar can make us read. */
const MAX_EVENT_BODY_CHARS = 16 * 1024;

const app = new Hono<{ Bindings: Env }>();

const error = (message: string): ErrorBody => ({ error: message });

// The SDK opens exactly the URL it was given, so every path may be a signalling socket.
app.use("*", async (c, next) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") return next();
  if (c.req.method !== "GET") return c.json(error("WebSocket upgrade requires GET"), 400);
  const stub = c.env.SESSIONS.get(c.env.SESSIONS.newUniqueId());
  return stub.fetch(c.req.raw);
});

/** A sidecar's request: the shared secret, a bounded body, valid JSON of `schema`; else the error response. */
async function sidecarBody<T extends z.ZodType>(c: Context<{ Bindings: Env }>, schema: T, what: string): Promise<{ ok: true; value: z.infer<T> } | { ok: false; res: Response }> {
  const fail = (message: string, status: 400 | 401 | 413) => ({ ok: false as const, res: c.json(error(message), status) });
  if (!bearerOk(c.req.header("authorization"), c.env.SIDECAR_SECRET ?? "")) return fail("Unauthorized", 401);
  if (Number(c.req.header("content-length") ?? "0") > MAX_EVENT_BODY_CHARS) return fail("Body too large", 413);
  const text = await c.req.text();
  if (text.length > MAX_EVENT_BODY_CHARS) return fail("Body too large", 413);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return fail("Body is not valid JSON", 400);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return fail(`Invalid ${what}: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim(), 400);
  }
  return { ok: true, value: parsed.data };
}

app.post(EDGE_EVENTS_PATH, async (c) => {
  const parsed = await sidecarBody(c, StreamEvent, "StreamEvent");
  if (!parsed.ok) return parsed.res;
  const event = parsed.value;
  let id: DurableObjectId;
  try {
    id = c.env.SESSIONS.idFromString(event.sessionRef);
  } catch {
    return c.json(error("Malformed sessionRef"), 400);
  }
  try {
    const delivered = await c.env.SESSIONS.get(id).streamEvent(event);
    // A gone session or stream is normal (the viewer left first): 200, so the sidecar does not retry.
    return c.json({ ok: true, delivered });
  } catch (err) {
    console.error("events: delivery to the session failed:", err);
    // 5xx makes the sidecar retry; a lost STOPPED would leave the player hanging.
    return c.json(error("Session unavailable"), 503);
  }
});
app.all(EDGE_EVENTS_PATH, (c) => c.json(error("Method not allowed"), 405));

const registry = (env: Env) => env.SIDECARS.get(env.SIDECARS.idFromName("sidecars"));

// Sidecars register here (many sidecars behind one edge); operators list them with the same secret.
app.post(EDGE_SIDECARS_PATH, async (c) => {
  const parsed = await sidecarBody(c, SidecarHeartbeat, "heartbeat");
  if (!parsed.ok) return parsed.res;
  await registry(c.env).heartbeat(parsed.value);
  return c.json({ ok: true });
});
app.get(EDGE_SIDECARS_PATH, async (c) => {
  if (!bearerOk(c.req.header("authorization"), c.env.SIDECAR_SECRET ?? "")) return c.json(error("Unauthorized"), 401);
  return c.json({ sidecars: await registry(c.env).list() });
});
app.all(EDGE_SIDECARS_PATH, (c) => c.json(error("Method not allowed"), 405));

app.get("/", (c) => c.redirect(`/player.html${new URL(c.req.url).search}`, 302));

app.get(`${RECORDS_PUBLIC_PATH}/:name`, recordsProxy);

app.all("*", (c) => c.env.ASSETS.fetch(c.req.raw));

app.onError((err, c) => {
  console.error("edge:", err);
  return c.json(error("Internal error"), 500);
});

export default app;
