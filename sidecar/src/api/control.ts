// The control API the edge calls. Only the edge holds the shared secret: every request must be signed with it
// (api/signed-auth.ts), else 401. `GET /metrics` is the exception, with its own optional token (api/metrics.ts).
import { Hono, type Context } from "hono";
import type { z } from "zod";
import {
  Info,
  PlayRequest,
  PublishRequest,
  ReleaseRequest,
  SIDECAR_PATHS,
  StopRequest,
  VodControlRequest,
  parseJsonBody,
  parseStreamName,
  type PlayResponse,
  type StopResponse,
} from "@edge-vod/shared";
import type { LiveService } from "../live/live-service.ts";
import type { PublishService } from "../publish/publish-service.ts";
import type { BroadcastService } from "../vod/broadcast-service.ts";
import type { VodService } from "../vod/vod-service.ts";
import type { PrepareCache } from "../prepare/prepare-cache.ts";
import type { Storage } from "../store/storage.ts";
import type { UploadQueue } from "../record/upload-queue.ts";
import { gcTotalMs } from "../runtime/gc-stats.ts";
import { METRICS_PATH, type SidecarMetrics } from "./metrics.ts";
import { ReplayCache } from "./replay-cache.ts";
import { BODY_TOO_LARGE, signedAuth } from "./signed-auth.ts";
import { mediaSendStats } from "../native/send-batch.ts";
import { processStats } from "../runtime/process-stats.ts";

export interface Services {
  vod: VodService;
  live: LiveService;
  publish: PublishService;
  broadcasts: BroadcastService;
  /** Its cache hits, prepares and failures show in health. */
  prepare?: PrepareCache;
  /** Served at GET /metrics; plays and refusals are counted into it. */
  metrics?: SidecarMetrics;
  /** The bucket, when S3_ENDPOINT is set: health says whether it answers. */
  storage?: Storage;
  /** Recordings on their way to the bucket: health counts them. */
  uploads?: UploadQueue;
}

export interface Limits {
  /** Viewers of every kind on this sidecar; one more gets "Server overloaded" rather than degrading everyone. */
  maxViewers: number;
}

const MAX_BODY_BYTES = 256 * 1024;

/** The request's JSON body validated by `schema`, or the 4xx to answer with. Every control route reads its body here. */
export async function body<T extends z.ZodType>(c: Context, schema: T): Promise<{ ok: true; value: z.infer<T> } | { ok: false; res: Response }> {
  const len = Number(c.req.header("content-length") ?? "0");
  if (len > MAX_BODY_BYTES) return { ok: false, res: c.json({ error: BODY_TOO_LARGE }, 413) };
  // The signature check read the body already; hono hands the same bytes over again.
  const text = await c.req.text();
  if (text.length > MAX_BODY_BYTES) return { ok: false, res: c.json({ error: BODY_TOO_LARGE }, 413) };
  const parsed = parseJsonBody(text, schema);
  return parsed.ok ? parsed : { ok: false, res: c.json({ error: parsed.error }, 400) };
}

/** Viewers of every kind on this sidecar: what MAX_VIEWERS bounds and the heartbeat reports. */
export function totalViewers({ vod, live, broadcasts }: Pick<Services, "vod" | "live" | "broadcasts">): number {
  return vod.viewerCount + live.viewerCount + broadcasts.viewerCount;
}

/**
 * `instance`: this run's random id (SidecarInstance), in health and in every stream answer, so the edge can tell a
 * restarted sidecar on the same URL from the one that holds its streams.
 */
function withInstance(answer: PlayResponse, instance: string): PlayResponse {
  return answer.ok ? { ...answer, instance } : answer;
}

export function controlApi(secret: string, services: Services, limits: Limits, instance: string): Hono {
  const { vod, live, publish, broadcasts } = services;
  const viewerCount = () => totalViewers(services);
  const app = new Hono();
  const metrics = services.metrics;
  const auth = signedAuth(secret, {
    replay: new ReplayCache(),
    maxBodyBytes: MAX_BODY_BYTES,
    ...(metrics ? { onRefused: (reason: string) => metrics.controlRefused(reason) } : {}),
  });
  app.use("*", (c, next) => (c.req.path === METRICS_PATH ? next() : auth(c, next)));
  if (metrics) app.get(METRICS_PATH, metrics.route);
  app.get(SIDECAR_PATHS.health, (c) =>
    c.json({
      ok: true,
      instance,
      viewers: viewerCount(),
      publishers: publish.publisherCount,
      broadcasts: broadcasts.broadcastCount,
      gcMs: gcTotalMs(),
      mediaSend: mediaSendStats(),
      process: processStats(),
      prepare: services.prepare?.stats,
      ...(services.storage ? { storage: { ...services.storage.status, blocks: services.storage.blocks.stats, uploads: services.uploads?.stats } } : {}),
    }),
  );
  app.post(SIDECAR_PATHS.play, async (c) => {
    const req = await body(c, PlayRequest);
    if (!req.ok) return req.res;
    const kind = parseStreamName(req.value.name).kind;
    const service = kind === "live" ? live : kind === "vod-live" ? broadcasts : vod;
    const answer: PlayResponse =
      viewerCount() >= limits.maxViewers ? { ok: false, info: Info.SERVER_OVERLOADED } : await service.play(req.value);
    metrics?.playAnswered(kind, answer);
    return c.json(withInstance(answer, instance));
  });
  app.post(SIDECAR_PATHS.publish, async (c) => {
    const req = await body(c, PublishRequest);
    if (!req.ok) return req.res;
    return c.json(withInstance(await publish.publish(req.value), instance));
  });
  app.post(SIDECAR_PATHS.stop, async (c) => {
    const req = await body(c, StopRequest);
    if (!req.ok) return req.res;
    const { sessionRef, mediaSessionId } = req.value;
    if (
      (await vod.viewers.stop(sessionRef, mediaSessionId)) ||
      (await broadcasts.viewers.stop(sessionRef, mediaSessionId)) ||
      (await live.viewers.stop(sessionRef, mediaSessionId))
    ) {
      return c.json({ ok: true, found: true } satisfies StopResponse);
    }
    return c.json({ ok: true, ...(await publish.stop(sessionRef, mediaSessionId)) } satisfies StopResponse);
  });
  app.post(SIDECAR_PATHS.vod, async (c) => {
    const req = await body(c, VodControlRequest);
    if (!req.ok) return req.res;
    const { sessionRef, mediaSessionId } = req.value;
    // Broadcasts and live streams run on their own clock: nobody seeks them alone.
    if (broadcasts.viewers.has(sessionRef, mediaSessionId) || live.viewers.has(sessionRef, mediaSessionId)) {
      return c.json({ ok: false, info: Info.NOT_SUPPORTED });
    }
    return c.json(vod.control(req.value));
  });
  app.post(SIDECAR_PATHS.release, async (c) => {
    const req = await body(c, ReleaseRequest);
    if (!req.ok) return req.res;
    const ref = req.value.sessionRef;
    const counts = await Promise.all([
      vod.viewers.release(ref),
      broadcasts.viewers.release(ref),
      live.viewers.release(ref),
      publish.release(ref),
    ]);
    return c.json({ ok: true, released: counts.reduce((a, b) => a + b, 0) });
  });
  app.notFound((c) => c.json({ error: "Not found" }, 404));
  app.onError((err, c) => {
    console.error("control api:", err);
    return c.json({ error: "Internal error" }, 500);
  });
  return app;
}
