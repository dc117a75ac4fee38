// What the edge's REST API asks of a sidecar: the streams here, ending one, recording a publish on demand, probing
// a file, and listing or deleting finished recordings. Mounted on the control API, behind its authentication.
import type { Hono } from "hono";
import {
  Info,
  ProbeRequest,
  RecorderStartRequest,
  RecorderStopRequest,
  SIDECAR_OPS_PATHS,
  BroadcastSeekRequest,
  TerminateRequest,
  type BroadcastSeekResponse,
  checkFileName,
  type ProbeResponse,
  type RecorderStopResponse,
  type SidecarStream,
  type SidecarStreamKind,
  type StreamsResponse,
  type TerminateResponse,
} from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";
import type { UploadQueue } from "../record/upload-queue.ts";
import type { Storage } from "../store/storage.ts";
import type { RegistryEntry } from "../streams/registry.ts";
import { RecordsCatalog } from "./records-catalog.ts";
import type { MediaOpener } from "../vod/media-opener.ts";
import { body, type Services } from "./control.ts";

export function operationsRoutes(
  app: Hono,
  services: Services,
  opts: { opener: MediaOpener; recordDir: string; storage?: Storage; uploads?: UploadQueue },
): void {
  const { vod, live, publish, broadcasts } = services;

  app.get(SIDECAR_OPS_PATHS.streams, (c) => c.json({ streams: listStreams(services) } satisfies StreamsResponse));

  app.post(SIDECAR_OPS_PATHS.terminate, async (c) => {
    const req = await body(c, TerminateRequest);
    if (!req.ok) return req.res;
    const { sessionRef, mediaSessionId } = req.value;
    const info = Info.STOPPED_BY_REST_TERMINATE;
    for (const registry of [vod.viewers, broadcasts.viewers, live.viewers]) {
      const viewer = registry.get(sessionRef, mediaSessionId)?.stream;
      if (viewer) {
        viewer.terminate(info);
        return c.json({ ok: true, found: true } satisfies TerminateResponse);
      }
    }
    const found = await publish.terminate(sessionRef, mediaSessionId, info);
    return c.json({ ok: true, found } satisfies TerminateResponse);
  });

  app.post(SIDECAR_OPS_PATHS.recorderStart, async (c) => {
    const req = await body(c, RecorderStartRequest);
    if (!req.ok) return req.res;
    const { sessionRef, mediaSessionId, fileTemplate } = req.value;
    const res = await publish.startRecording(sessionRef, mediaSessionId, fileTemplate);
    if (!res) return c.json({ error: "Stream not found" }, 404);
    return c.json(res, res.ok ? 200 : 500);
  });

  app.post(SIDECAR_OPS_PATHS.recorderStop, async (c) => {
    const req = await body(c, RecorderStopRequest);
    if (!req.ok) return req.res;
    const res = await publish.stopRecording(req.value.sessionRef, req.value.mediaSessionId);
    return c.json({ ok: true, ...res } satisfies RecorderStopResponse);
  });

  app.post(SIDECAR_OPS_PATHS.broadcastSeek, async (c) => {
    const req = await body(c, BroadcastSeekRequest);
    if (!req.ok) return req.res;
    return c.json({ ok: true, moved: broadcasts.seek(req.value) } satisfies BroadcastSeekResponse);
  });
  app.post(SIDECAR_OPS_PATHS.probe, async (c) => {
    const req = await body(c, ProbeRequest);
    if (!req.ok) return req.res;
    return c.json(await probe(opts.opener, req.value.file));
  });

  const records = new RecordsCatalog({ dir: opts.recordDir, active: () => activeRecordFiles(services), storage: opts.storage, uploads: opts.uploads });
  app.get(SIDECAR_OPS_PATHS.records, async (c) => {
    try {
      return c.json({ records: await records.list() });
    } catch (err) {
      // A listing without the bucket's part would look complete: none at all, and the edge names this sidecar.
      console.error("records: listing failed:", err);
      return c.json({ error: Info.STORAGE_UNAVAILABLE }, 503);
    }
  });
  app.delete(`${SIDECAR_OPS_PATHS.records}/:name`, async (c) => {
    const result = await records.remove(c.req.param("name"));
    return result === "deleted" ? c.json({ ok: true }) : c.json({ error: result.error }, result.status);
  });
}

function listStreams({ vod, live, publish, broadcasts }: Services): SidecarStream[] {
  const out: SidecarStream[] = [];
  // Viewers per served name: a publish's live viewers, a broadcast's viewers here.
  const watching = new Map<string, number>();
  for (const e of [...live.viewers.entries(), ...broadcasts.viewers.entries()]) {
    watching.set(e.meta.name, (watching.get(e.meta.name) ?? 0) + 1);
  }
  const add = (e: RegistryEntry<{ status: SidecarStream["status"] }>, kind: SidecarStreamKind, extra: Partial<SidecarStream> = {}) =>
    out.push({
      sessionRef: e.sessionRef,
      mediaSessionId: e.mediaSessionId,
      name: e.meta.name,
      ...(e.meta.alias !== undefined ? { alias: e.meta.alias } : {}),
      published: kind === "publish",
      kind,
      status: e.stream.status,
      startTime: e.meta.startTime,
      viewers: 0,
      recording: false,
      ...extra,
    });
  for (const e of vod.viewers.entries()) add(e, "vod");
  for (const e of broadcasts.viewers.entries()) add(e, "vod-live", { viewers: watching.get(e.meta.name) ?? 0 });
  for (const e of live.viewers.entries()) add(e, "live");
  for (const e of publish.entries()) {
    if (!e.stream.live) continue;
    const file = e.stream.recordFile;
    add(e, "publish", { viewers: watching.get(e.meta.name) ?? 0, recording: file !== undefined, ...(file !== undefined ? { recordFile: file } : {}) });
  }
  return out;
}

function activeRecordFiles(services: Services): Set<string> {
  const names = new Set<string>();
  for (const e of services.publish.entries()) {
    const file = e.stream.recordFile;
    if (file !== undefined) names.add(file);
  }
  return names;
}

async function probe(opener: MediaOpener, file: string): Promise<ProbeResponse> {
  if (checkFileName(file) !== null) return { ok: false, info: Info.BAD_URI };
  try {
    const media = await opener.open(file);
    try {
      return { ok: true, durationMs: Math.round(media.durationSec * 1000), hasVideo: media.have.video, hasAudio: media.have.audio };
    } finally {
      await media.close();
    }
  } catch (err) {
    if (err instanceof MediaError) return { ok: false, info: err.info };
    console.error(`probe ${file}:`, err);
    return { ok: false, info: Info.FAILED_TO_READ_FILE };
  }
}
