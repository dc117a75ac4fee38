// The control API the edge calls. Only the edge holds the shared secret; every other caller gets 401.
import { Hono, type Context } from "hono";
import type { z } from "zod";
import { PlayRequest, ReleaseRequest, SIDECAR_PATHS, StopRequest, bearerOk } from "@edge-vod/shared";
import type { VodService } from "../vod/vod-service.ts";

const MAX_BODY_BYTES = 256 * 1024;

async function body<T extends z.ZodType>(c: Context, schema: T): Promise<{ ok: true; value: z.infer<T> } | { ok: false; res: Response }> {
  const len = Number(c.req.header("content-length") ?? "0");
  if (len > MAX_BODY_BYTES) return { ok: false, res: c.json({ error: "Request body too large" }, 413) };
  let json: unknown;
  try {
    const text = await c.req.text();
    if (text.length > MAX_BODY_BYTES) return { ok: false, res: c.json({ error: "Request body too large" }, 413) };
    json = JSON.parse(text);
  } catch {
    return { ok: false, res: c.json({ error: "Body is not valid JSON" }, 400) };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, res: c.json({ error: `Invalid request: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim() }, 400) };
  }
  return { ok: true, value: parsed.data };
}

export function controlApi(secret: string, vod: VodService): Hono {
  const app = new Hono();
  app.use("*", async (c, next) => {
    if (!bearerOk(c.req.header("authorization"), secret)) return c.json({ error: "Unauthorized" }, 401);
    await next();
  });
  app.get(SIDECAR_PATHS.health, (c) => c.json({ ok: true, viewers: vod.viewerCount }));
  app.post(SIDECAR_PATHS.play, async (c) => {
    const req = await body(c, PlayRequest);
    if (!req.ok) return req.res;
    return c.json(await vod.play(req.value));
  });
  app.post(SIDECAR_PATHS.stop, async (c) => {
    const req = await body(c, StopRequest);
    if (!req.ok) return req.res;
    return c.json({ ok: true, found: await vod.stop(req.value.sessionRef, req.value.mediaSessionId) });
  });
  app.post(SIDECAR_PATHS.release, async (c) => {
    const req = await body(c, ReleaseRequest);
    if (!req.ok) return req.res;
    return c.json({ ok: true, released: await vod.release(req.value.sessionRef) });
  });
  app.notFound((c) => c.json({ error: "Not found" }, 404));
  app.onError((err, c) => {
    console.error("control api:", err);
    return c.json({ error: "Internal error" }, 500);
  });
  return app;
}
