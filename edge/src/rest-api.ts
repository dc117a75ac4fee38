// The operator's REST API, `/rest-api/...`: WCS's methods, paths and fields where WCS has them (streams, VOD
// broadcasts, recording on demand) plus the finished recordings. Every call needs `Authorization: Bearer
// <REST_API_KEY>`. Streams live on the sidecars, so a call asks each healthy sidecar (registered ones, and
// SIDECAR_URL's) and merges what they say; one that does not answer is named in `X-Edge-Vod-Unreachable`.
// Answers are JSON; errors are `{error}` with a 4xx (5xx when no sidecar could be asked).
import { Hono, type Context } from "hono";
import type { z } from "zod";
import {
  Info,
  ProbeResponse,
  RecordEntry,
  RecordsResponse,
  RecorderStartResponse,
  RecorderStopResponse,
  RestRecorderStartup,
  RestRecorderTerminate,
  RestRecordsDelete,
  RestRecordsFilter,
  RestStreamFilter,
  RestVodFilter,
  RestVodSeek,
  RestVodStartup,
  BroadcastSeekResponse,
  type BroadcastSeek,
  RECORDS_PUBLIC_PATH,
  SIDECAR_OPS_PATHS,
  StreamsResponse,
  bearerOk,
  checkFileName,
  checkPublishName,
  checkRecordName,
  parseJsonBody,
  parseStreamName,
  validated,
  type ErrorBody,
  type RestStream,
  type RestVod,
  type SidecarStream,
} from "@edge-vod/shared";
import type { Env } from "./config.ts";
import { SidecarClient, sidecarBaseUrl } from "./sidecar-client.ts";
import { STATIC_SIDECAR_ID } from "./sidecar-registry.ts";
import { registryView } from "./registry-view.ts";
import type { RestVodEntry } from "./stream-object.ts";

type Ctx = Context<{ Bindings: Env }>;

/** A REST body is a filter or a few fields; anything near this is not one. */
const MAX_BODY_CHARS = 64 * 1024;
const UNREACHABLE_HEADER = "X-Edge-Vod-Unreachable";

const error = (message: string): ErrorBody => ({ error: message });

export const restApi = new Hono<{ Bindings: Env }>();

restApi.use("*", async (c, next) => {
  const key = c.env.REST_API_KEY;
  // No key configured: the API stays shut rather than open to anyone who finds the edge's URL.
  if (!key) return c.json(error("Unauthorized: the REST API is off until REST_API_KEY is set"), 401);
  if (!bearerOk(c.req.header("authorization"), key)) return c.json(error("Unauthorized"), 401);
  await next();
});

/** The request's JSON body validated by `schema`; a GET or an empty body is `{}` (WCS's find_all sends none). */
async function input<T extends z.ZodType>(c: Ctx, schema: T): Promise<{ ok: true; value: z.infer<T> } | { ok: false; res: Response }> {
  const fail = (status: 400 | 413, message: string) => ({ ok: false as const, res: c.json(error(message), status) });
  let text = "";
  if (c.req.method !== "GET") {
    if (Number(c.req.header("content-length") ?? "0") > MAX_BODY_CHARS) return fail(413, "Body too large");
    text = await c.req.text();
    if (text.length > MAX_BODY_CHARS) return fail(413, "Body too large");
  }
  const parsed = text.trim() === "" ? validated({}, schema) : parseJsonBody(text, schema);
  return parsed.ok ? parsed : fail(400, parsed.error);
}

// ---- the sidecars and what runs on them

interface Sidecar {
  id: string;
  client: SidecarClient;
}

interface Located extends SidecarStream {
  sidecar: Sidecar;
}

const names = (env: Env, name: string) => env.STREAMS.get(env.STREAMS.idFromName(name));
const catalog = (env: Env) => env.VODS.get(env.VODS.idFromName("vods"));

/** Every sidecar that may hold streams: the healthy registered ones, and SIDECAR_URL's unless it is one of them. */
async function sidecars(env: Env): Promise<Sidecar[]> {
  const out: Sidecar[] = [];
  const urls = new Set<string>();
  try {
    for (const s of (await registryView(env)).snapshot.sidecars) {
      const base = sidecarBaseUrl(s.url);
      if (!s.healthy || !base || urls.has(base)) continue;
      urls.add(base);
      out.push({ id: s.id, client: new SidecarClient(s.url, env.SIDECAR_SECRET) });
    }
  } catch (err) {
    console.warn(`rest-api: sidecar registry unavailable: ${String(err)}`);
  }
  const fixed = sidecarBaseUrl(env.SIDECAR_URL);
  if (fixed && !urls.has(fixed)) out.push({ id: STATIC_SIDECAR_ID, client: new SidecarClient(fixed, env.SIDECAR_SECRET) });
  return out;
}

/** Asks every sidecar; a sidecar without a valid answer is listed in `unreachable`, the others' results merged. */
async function fromEach<T>(env: Env, ask: (s: Sidecar) => Promise<T[] | null>): Promise<{ items: T[]; unreachable: string[] }> {
  const all = await sidecars(env);
  const answers = await Promise.all(all.map((s) => ask(s).catch(() => null)));
  const items: T[] = [];
  const unreachable: string[] = [];
  answers.forEach((a, i) => (a ? items.push(...a) : unreachable.push(all[i]!.id)));
  return { items, unreachable };
}

async function streamsOn(s: Sidecar): Promise<Located[] | null> {
  const res = await s.client.operate("GET", SIDECAR_OPS_PATHS.streams);
  if ("unreachable" in res || res.status !== 200) return null;
  const parsed = StreamsResponse.safeParse(res.body);
  return parsed.success ? parsed.data.streams.map((st) => ({ ...st, sidecar: s })) : null;
}

/** The name the client knows the stream by (a REST-started broadcast's players play its localStreamName). */
const clientName = (s: SidecarStream) => s.alias ?? s.name;

function toRest(s: Located): RestStream {
  return {
    mediaSessionId: s.mediaSessionId,
    name: clientName(s),
    published: s.published,
    status: s.status,
    mediaProvider: "WebRTC",
    record: s.recording,
    sidecar: s.sidecar.id,
    startTime: s.startTime,
    viewers: s.viewers,
  };
}

function matches(f: z.infer<typeof RestStreamFilter>, s: Located): boolean {
  if (f.name !== undefined && clientName(s) !== f.name) return false;
  if (f.published !== undefined && s.published !== f.published) return false;
  if (f.status !== undefined && s.status !== f.status.toUpperCase()) return false;
  if (f.mediaSessionId !== undefined && s.mediaSessionId !== f.mediaSessionId) return false;
  if (f.mediaSessionIds !== undefined && !f.mediaSessionIds.includes(s.mediaSessionId)) return false;
  if (f.sidecar !== undefined && s.sidecar.id !== f.sidecar) return false;
  return true;
}

function withUnreachable(c: Ctx, unreachable: string[]): void {
  if (unreachable.length > 0) c.header(UNREACHABLE_HEADER, unreachable.join(","));
}

/** Ends streams through their sidecars (each tells its client `Stopped by rest /terminate`); how many it reached. */
async function terminate(streams: readonly Located[]): Promise<number> {
  const done = await Promise.all(
    streams.map(async (s) => {
      const res = await s.sidecar.client.operate("POST", SIDECAR_OPS_PATHS.terminate, { sessionRef: s.sessionRef, mediaSessionId: s.mediaSessionId });
      return !("unreachable" in res) && res.status === 200;
    }),
  );
  return done.filter(Boolean).length;
}

// ---- /stream

const findStreams = async (c: Ctx, filtered: boolean) => {
  const f = filtered ? await input(c, RestStreamFilter) : ({ ok: true, value: {} } as const);
  if (!f.ok) return f.res;
  const { items, unreachable } = await fromEach(c.env, streamsOn);
  withUnreachable(c, unreachable);
  const found = items.filter((s) => matches(f.value, s)).map(toRest);
  // WCS answers an empty result with 404.
  return found.length > 0 ? c.json(found) : c.json(error("Stream not found"), 404);
};
restApi.on(["GET", "POST"], "/stream/find_all", (c) => findStreams(c, false));
restApi.on(["GET", "POST"], "/stream/find", (c) => findStreams(c, true));

restApi.post("/stream/terminate", async (c) => {
  const f = await input(c, RestStreamFilter);
  if (!f.ok) return f.res;
  const { items, unreachable } = await fromEach(c.env, streamsOn);
  withUnreachable(c, unreachable);
  const chosen = items.filter((s) => matches(f.value, s));
  if (chosen.length === 0) return c.json(error("Stream not found"), 404);
  const terminated = await terminate(chosen);
  return c.json({ message: "Stream termination request is received", terminated });
});

// ---- /vod: broadcasts of a file under a stream name (WCS's localStreamName), before any viewer comes

function toRestVod(e: RestVodEntry, viewers: number): RestVod {
  return {
    localMediaSessionId: e.localMediaSessionId,
    localStreamName: e.localStreamName,
    uri: e.uri,
    status: "PROCESSED_LOCAL",
    hasAudio: e.hasAudio,
    hasVideo: e.hasVideo,
    record: false,
    loop: e.loop,
    startTime: e.startTime,
    durationMs: e.durationMs,
    viewers,
  };
}

restApi.post("/vod/startup", async (c) => {
  const req = await input(c, RestVodStartup);
  if (!req.ok) return req.res;
  const { uri, localStreamName, loop } = req.value;
  const target = parseStreamName(uri);
  // As in WCS: startup makes shared broadcasts only; a personal vod:// belongs to its one player.
  if (target.kind !== "vod-live") return c.json(error("uri must be vod-live://<file>"), 400);
  if (checkFileName(target.file) !== null) return c.json(error(Info.BAD_URI), 400);
  if (checkPublishName(localStreamName) !== null) return c.json(error("Bad localStreamName"), 400);

  const all = await sidecars(c.env);
  let probe: ProbeResponse | undefined;
  for (const s of all) {
    const res = await s.client.operate("POST", SIDECAR_OPS_PATHS.probe, { file: target.file });
    if ("unreachable" in res || res.status !== 200) continue;
    const parsed = ProbeResponse.safeParse(res.body);
    if (parsed.success) {
      probe = parsed.data;
      break;
    }
  }
  if (!probe) return c.json(error(Info.MEDIA_SERVER_UNAVAILABLE), 503);
  if (!probe.ok) return c.json(error(probe.info), probe.info === Info.FILE_NOT_FOUND ? 404 : 400);

  const entry: RestVodEntry = {
    localMediaSessionId: crypto.randomUUID(),
    localStreamName,
    uri,
    file: target.file,
    loop,
    startTime: Date.now(),
    durationMs: probe.durationMs,
    hasAudio: probe.hasAudio,
    hasVideo: probe.hasVideo,
  };
  if (!(await names(c.env, localStreamName).claimVod(entry))) return c.json(error(Info.STREAM_NAME_ALREADY_IN_USE), 409);
  await catalog(c.env).add(entry);
  return c.json(toRestVod(entry, 0));
});

/** REST broadcasts matching the filter, each with its viewers now. */
async function findVods(c: Ctx, f: z.infer<typeof RestVodFilter>): Promise<{ vods: RestVodEntry[]; players: Located[]; unreachable: string[] }> {
  const vods = (await catalog(c.env).list()).filter(
    (e) => (f.localStreamName === undefined || e.localStreamName === f.localStreamName) && (f.uri === undefined || e.uri === f.uri),
  );
  const { items, unreachable } = vods.length > 0 || f.uri !== undefined ? await fromEach(c.env, streamsOn) : { items: [], unreachable: [] };
  return { vods, players: items, unreachable };
}

const vodFind = async (c: Ctx, filtered: boolean) => {
  const f = filtered ? await input(c, RestVodFilter) : ({ ok: true, value: {} } as const);
  if (!f.ok) return f.res;
  const { vods, players, unreachable } = await findVods(c, f.value);
  withUnreachable(c, unreachable);
  if (vods.length === 0) return c.json(error("Stream not found"), 404);
  return c.json(vods.map((e) => toRestVod(e, players.filter((p) => p.alias === e.localStreamName).length)));
};
restApi.on(["GET", "POST"], "/vod/find_all", (c) => vodFind(c, false));
restApi.on(["GET", "POST"], "/vod/find", (c) => vodFind(c, true));

restApi.post("/vod/terminate", async (c) => {
  const f = await input(c, RestVodFilter);
  if (!f.ok) return f.res;
  if (f.value.localStreamName === undefined && f.value.uri === undefined) return c.json(error("localStreamName or uri is required"), 400);
  const { vods, players, unreachable } = await findVods(c, f.value);
  withUnreachable(c, unreachable);
  for (const e of vods) {
    await names(c.env, e.localStreamName).releaseVod(e.localMediaSessionId);
    await catalog(c.env).remove(e.localStreamName, e.localMediaSessionId);
  }
  const local = new Set(vods.map((e) => e.localStreamName));
  // WCS: terminate applies to VOD played by its uri too, so vod:// and vod-live:// players of that uri end as well.
  const chosen = players.filter(
    (p) => (p.alias !== undefined && local.has(p.alias)) || (f.value.uri !== undefined && p.alias === undefined && p.name === f.value.uri),
  );
  if (vods.length === 0 && chosen.length === 0) return c.json(error("Stream not found"), 404);
  const terminated = await terminate(chosen);
  return c.json({ message: "Stream is stopped", terminated });
});

/**
 * Moves a running broadcast for every viewer: the edge's clock of it goes on from `positionMs` now, and every sidecar
 * serving it is told (each moves its viewers, who catch up to the new picture). A sidecar that misses the call moves
 * its viewers at its next join, which carries the clock.
 */
restApi.post("/vod/seek", async (c) => {
  const req = await input(c, RestVodSeek);
  if (!req.ok) return req.res;
  const { localStreamName, uri, positionMs } = req.value;
  let target: { file: string; startedAt: number; loop: boolean; seek: BroadcastSeek } | undefined;
  if (localStreamName !== undefined) {
    const source = await names(c.env, localStreamName).source();
    if (!source || !("vod" in source)) return c.json(error(Info.STREAM_NOT_FOUND), 404);
    if (positionMs >= source.vod.durationMs) return c.json(error(Info.POSITION_PAST_END), 400);
    const entry = await names(c.env, localStreamName).seekVod({ at: Date.now(), positionMs });
    if (!entry?.seek) return c.json(error(Info.STREAM_NOT_FOUND), 404);
    await catalog(c.env).add(entry);
    target = { file: entry.file, startedAt: entry.startTime, loop: entry.loop, seek: entry.seek };
  } else if (uri !== undefined) {
    const name = parseStreamName(uri);
    if (name.kind !== "vod-live" || checkFileName(name.file) !== null) return c.json(error("uri must be vod-live://<file>"), 400);
    const broadcast = c.env.BROADCASTS.get(c.env.BROADCASTS.idFromName(`vod-live://${name.file}`));
    const now = await broadcast.state();
    if (!now) return c.json(error(Info.STREAM_NOT_FOUND), 404);
    if (now.durationMs !== undefined && positionMs >= now.durationMs) return c.json(error(Info.POSITION_PAST_END), 400);
    const state = await broadcast.seek(positionMs);
    if (!state?.seek) return c.json(error(Info.STREAM_NOT_FOUND), 404);
    target = { file: name.file, startedAt: state.startedAt, loop: state.loop, seek: state.seek };
  } else {
    return c.json(error("localStreamName or uri is required"), 400);
  }
  const { items, unreachable } = await fromEach(c.env, async (s) => {
    const res = await s.client.operate("POST", SIDECAR_OPS_PATHS.broadcastSeek, target);
    if ("unreachable" in res || res.status !== 200) return null;
    const parsed = BroadcastSeekResponse.safeParse(res.body);
    return parsed.success ? [parsed.data.moved] : null;
  });
  withUnreachable(c, unreachable);
  return c.json({ message: "Seek request is received", positionMs, moved: items.reduce((a, b) => a + b, 0) });
});

// ---- /recorder: recording a running publish on demand

async function publishOf(c: Ctx, mediaSessionId: string): Promise<{ stream?: Located; unreachable: string[] }> {
  const { items, unreachable } = await fromEach(c.env, streamsOn);
  return { stream: items.find((s) => s.published && s.mediaSessionId === mediaSessionId), unreachable };
}

restApi.post("/recorder/startup", async (c) => {
  const req = await input(c, RestRecorderStartup);
  if (!req.ok) return req.res;
  const { stream, unreachable } = await publishOf(c, req.value.mediaSessionId);
  withUnreachable(c, unreachable);
  if (!stream) return c.json(error("Stream not found"), 404);
  const fileTemplate = req.value.config?.fileTemplate;
  const res = await stream.sidecar.client.operate("POST", SIDECAR_OPS_PATHS.recorderStart, {
    sessionRef: stream.sessionRef,
    mediaSessionId: stream.mediaSessionId,
    ...(fileTemplate !== undefined ? { fileTemplate } : {}),
  });
  if ("unreachable" in res) return c.json(error(Info.MEDIA_SERVER_UNAVAILABLE), 503);
  if (res.status === 404) return c.json(error("Stream not found"), 404);
  const parsed = RecorderStartResponse.safeParse(res.body);
  if (!parsed.success) return c.json(error(Info.MEDIA_SERVER_UNAVAILABLE), 502);
  if (!parsed.data.ok) return c.json(error(parsed.data.error), 500);
  return c.json({ mediaSessionId: stream.mediaSessionId, fileName: parsed.data.fileName });
});

restApi.post("/recorder/terminate", async (c) => {
  const req = await input(c, RestRecorderTerminate);
  if (!req.ok) return req.res;
  const { stream, unreachable } = await publishOf(c, req.value.mediaSessionId);
  withUnreachable(c, unreachable);
  if (!stream?.recording) return c.json(error("Recording not found"), 404);
  const res = await stream.sidecar.client.operate("POST", SIDECAR_OPS_PATHS.recorderStop, {
    sessionRef: stream.sessionRef,
    mediaSessionId: stream.mediaSessionId,
  });
  if ("unreachable" in res) return c.json(error(Info.MEDIA_SERVER_UNAVAILABLE), 503);
  const parsed = RecorderStopResponse.safeParse(res.body);
  if (!parsed.success) return c.json(error(Info.MEDIA_SERVER_UNAVAILABLE), 502);
  if (!parsed.data.found) return c.json(error("Recording not found"), 404);
  return c.json({ mediaSessionId: stream.mediaSessionId, ...(parsed.data.recordName !== undefined ? { recordName: parsed.data.recordName } : {}) });
});

restApi.on(["GET", "POST"], "/recorder/find_all", async (c) => {
  const { items, unreachable } = await fromEach(c.env, streamsOn);
  withUnreachable(c, unreachable);
  const recording = items
    .filter((s) => s.recording)
    .map((s) => ({ fileName: s.recordFile ?? "", mediaSessionId: s.mediaSessionId, name: s.name, sidecar: s.sidecar.id }));
  return recording.length > 0 ? c.json(recording) : c.json(error("Recording not found"), 404);
});

// ---- /records: finished recordings (ours; WCS leaves them to the file system)

restApi.on(["GET", "POST"], "/records/find_all", async (c) => {
  const f = await input(c, RestRecordsFilter);
  if (!f.ok) return f.res;
  const { items, unreachable } = await fromEach(c.env, async (s) => {
    const res = await s.client.operate("GET", SIDECAR_OPS_PATHS.records);
    if ("unreachable" in res || res.status !== 200) return null;
    const parsed = RecordsResponse.safeParse(res.body);
    return parsed.success ? parsed.data.records.map((r) => ({ ...r, sidecar: s.id })) : null;
  });
  withUnreachable(c, unreachable);
  // Every sidecar lists the bucket: one entry per object; files on a sidecar's disk are that sidecar's.
  const seen = new Set<string>();
  const records = items
    .filter((r: RecordEntry) => f.value.name === undefined || r.name === f.value.name)
    .filter((r) => {
      const key = r.stored === "bucket" ? `bucket\u0000${r.name}` : `${r.sidecar}\u0000${r.name}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .map((r) => ({ ...r, url: `${RECORDS_PUBLIC_PATH}/${encodeURIComponent(r.name)}` }));
  return c.json(records);
});

restApi.post("/records/delete", async (c) => {
  const req = await input(c, RestRecordsDelete);
  if (!req.ok) return req.res;
  const name = req.value.name;
  const bad = checkRecordName(name);
  if (bad === "traversal") return c.json(error(Info.RESTRICTED_ACCESS), 403);
  if (bad) return c.json(error(`Bad record name: ${bad}`), 400);
  // Every sidecar is asked: a copy on one's disk still waiting for its upload must not come back into the bucket.
  const all = await sidecars(c.env);
  const answers = await Promise.all(all.map((s) => s.client.operate("DELETE", `${SIDECAR_OPS_PATHS.records}/${encodeURIComponent(name)}`)));
  let answered = false;
  const deletedOn: string[] = [];
  for (const [i, res] of answers.entries()) {
    if ("unreachable" in res) continue;
    answered = true;
    if (res.status === 200) deletedOn.push(all[i]!.id);
    // Refused for a reason the operator should hear (being recorded, not a regular file, the bucket down).
    else if (res.status === 409 || res.status === 403 || res.status === 503) {
      return c.json(error(String((res.body as ErrorBody | undefined)?.error ?? "Refused")), res.status);
    }
  }
  if (deletedOn.length > 0) return c.json({ deleted: name, sidecar: deletedOn[0], sidecars: deletedOn });
  return answered ? c.json(error("Record not found"), 404) : c.json(error(Info.MEDIA_SERVER_UNAVAILABLE), 503);
});

restApi.all("*", (c) => c.json(error(`Unknown REST method ${c.req.method} ${new URL(c.req.url).pathname}`), 404));
