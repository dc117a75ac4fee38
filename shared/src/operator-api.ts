// The operator's side of the system: the edge's REST API (`/rest-api/...`, WCS's paths and field names where WCS
// has them) and the sidecar operations behind it. The edge holds no list of streams: each sidecar knows what it
// serves, so a REST call asks every sidecar and merges the answers (many sidecars behind one edge).
import { z } from "zod";
import { FRAME_LIMITS } from "./frames.ts";
import { StreamStatus } from "./status.ts";
import { BroadcastSeek } from "./broadcast-clock.ts";

export const REST_API_BASE = "/rest-api";

/** Sidecar operations the edge's REST API uses (same authentication as the rest of the control API). */
export const SIDECAR_OPS_PATHS = {
  /** `GET`: every stream on the sidecar. */
  streams: "/v1/streams",
  /** `POST TerminateRequest`: ends one stream with an event to its client (`Stopped by rest /terminate`). */
  terminate: "/v1/streams/terminate",
  /** `POST RecorderStartRequest`: records a publish on demand (a running recording of it is finished first). */
  recorderStart: "/v1/recorder/start",
  /** `POST RecorderStopRequest`: finishes that recording; the publish goes on. */
  recorderStop: "/v1/recorder/stop",
  /** `POST BroadcastSeekRequest`: moves a `vod-live://` broadcast running here to where the operator sought. */
  broadcastSeek: "/v1/broadcasts/seek",
  /** `POST ProbeRequest`: whether a file plays, and its length, without playing it. */
  probe: "/v1/probe",
  /** `GET`: the finished recordings. `DELETE <records>/<name>` removes one. (`GET <records>/<name>` downloads.) */
  records: "/v1/records",
} as const;

const sessionRef = z.string().min(1).max(128);
const mediaSessionId = z.string().min(1).max(FRAME_LIMITS.maxMediaSessionIdLength);
const name = z.string().max(FRAME_LIMITS.maxNameBytes);
/** WCS's `fileTemplate`; the sidecar renders and sanitizes it like RECORD_TEMPLATE. */
const fileTemplate = z.string().min(1).max(512);

export const SidecarStreamKind = z.enum(["vod", "vod-live", "live", "publish"]);
export type SidecarStreamKind = z.infer<typeof SidecarStreamKind>;

export const SidecarStream = z.object({
  sessionRef,
  mediaSessionId,
  /** What the sidecar serves: `vod://f.mp4`, `vod-live://f.mp4`, or a published name. */
  name,
  /** The name the client asked for, when it is another (a REST-started broadcast's localStreamName). */
  alias: name.optional(),
  published: z.boolean(),
  kind: SidecarStreamKind,
  status: z.enum([StreamStatus.PENDING, StreamStatus.PLAYING, StreamStatus.PUBLISHING]),
  /** ms since epoch of the play or publish request. */
  startTime: z.number().int().nonnegative(),
  /** A publish: its viewers on this sidecar. A `vod-live://` viewer: the broadcast's viewers here. Else 0. */
  viewers: z.number().int().nonnegative(),
  /** A publish being recorded, and the file it goes to (named as far as known before the end). */
  recording: z.boolean(),
  recordFile: z.string().max(1024).optional(),
});
export type SidecarStream = z.infer<typeof SidecarStream>;
export const StreamsResponse = z.object({ streams: z.array(SidecarStream) });
export type StreamsResponse = z.infer<typeof StreamsResponse>;

/** The broadcast of `file` that started at `startedAt` (with `loop`) goes on from `seek`. */
export const BroadcastSeekRequest = z.object({
  file: z.string().min(1).max(FRAME_LIMITS.maxNameBytes),
  startedAt: z.number().int().nonnegative(),
  loop: z.boolean(),
  seek: BroadcastSeek,
});
export type BroadcastSeekRequest = z.infer<typeof BroadcastSeekRequest>;
/** How many of the broadcast's viewers on that sidecar moved. */
export const BroadcastSeekResponse = z.object({ ok: z.literal(true), moved: z.number().int().nonnegative() });
export type BroadcastSeekResponse = z.infer<typeof BroadcastSeekResponse>;

/** `/rest-api/vod/seek`: a broadcast by localStreamName (a `/vod/startup` one) or by uri (`vod-live://<file>`). */
export const RestVodSeek = z.looseObject({
  localStreamName: z.string().max(255).optional(),
  uri: z.string().max(FRAME_LIMITS.maxNameBytes).optional(),
  positionMs: z.number().int().min(0).max(1e9),
});
export type RestVodSeek = z.infer<typeof RestVodSeek>;

export const TerminateRequest = z.object({ sessionRef, mediaSessionId });
export type TerminateRequest = z.infer<typeof TerminateRequest>;
export const TerminateResponse = z.object({ ok: z.literal(true), found: z.boolean() });
export type TerminateResponse = z.infer<typeof TerminateResponse>;

export const RecorderStartRequest = z.object({ sessionRef, mediaSessionId, fileTemplate: fileTemplate.optional() });
export type RecorderStartRequest = z.infer<typeof RecorderStartRequest>;
export const RecorderStartResponse = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), fileName: z.string().max(1024) }),
  z.object({ ok: z.literal(false), error: z.string().max(1024) }),
]);
export type RecorderStartResponse = z.infer<typeof RecorderStartResponse>;
export const RecorderStopRequest = z.object({ sessionRef, mediaSessionId });
export type RecorderStopRequest = z.infer<typeof RecorderStopRequest>;
export const RecorderStopResponse = z.object({
  ok: z.literal(true),
  /** Whether the publish existed and was being recorded. */
  found: z.boolean(),
  recordName: z.string().max(1024).optional(),
});
export type RecorderStopResponse = z.infer<typeof RecorderStopResponse>;

export const ProbeRequest = z.object({ file: z.string().min(1).max(FRAME_LIMITS.maxNameBytes) });
export type ProbeRequest = z.infer<typeof ProbeRequest>;
export const ProbeResponse = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), durationMs: z.number().nonnegative(), hasVideo: z.boolean(), hasAudio: z.boolean() }),
  z.object({ ok: z.literal(false), info: z.string().max(1024) }),
]);
export type ProbeResponse = z.infer<typeof ProbeResponse>;

export const RecordEntry = z.object({
  name: z.string().max(1024),
  size: z.number().int().nonnegative(),
  /** Last modification, ms since epoch. */
  modified: z.number().nonnegative(),
  /** From the file's movie header; absent when the file has none (still being written, or not an MP4). */
  durationMs: z.number().nonnegative().optional(),
  /**
   * Where it is: `local` on a sidecar's disk (no bucket configured), `pending` on a sidecar's disk until its upload
   * to the bucket is done, `bucket` in the bucket (every sidecar serves it).
   */
  stored: z.enum(["local", "pending", "bucket"]).optional(),
});
export type RecordEntry = z.infer<typeof RecordEntry>;
export const RecordsResponse = z.object({ records: z.array(RecordEntry) });
export type RecordsResponse = z.infer<typeof RecordsResponse>;

// ---- REST API request bodies. Loose objects: WCS clients send more fields than we act on.

/** `/stream/find`, `/stream/find_all`, `/stream/terminate`: every field present is a filter; `{}` is every stream. */
export const RestStreamFilter = z.looseObject({
  name: name.optional(),
  published: z.boolean().optional(),
  status: z.string().max(32).optional(),
  mediaSessionId: mediaSessionId.optional(),
  mediaSessionIds: z.array(mediaSessionId).max(1000).optional(),
  /** Ours: only the streams of one sidecar (its registry id). */
  sidecar: z.string().max(128).optional(),
});
export type RestStreamFilter = z.infer<typeof RestStreamFilter>;

export const RestVodStartup = z.looseObject({
  uri: z.string().min(1).max(FRAME_LIMITS.maxNameBytes),
  localStreamName: z.string().min(1).max(255),
  loop: z.boolean().default(false),
});
export type RestVodStartup = z.infer<typeof RestVodStartup>;

/** `/vod/find`, `/vod/terminate`: by localStreamName, by uri, or both. */
export const RestVodFilter = z.looseObject({
  localStreamName: z.string().max(255).optional(),
  uri: z.string().max(FRAME_LIMITS.maxNameBytes).optional(),
});
export type RestVodFilter = z.infer<typeof RestVodFilter>;

export const RestRecorderStartup = z.looseObject({
  mediaSessionId,
  config: z.looseObject({ fileTemplate: fileTemplate.optional() }).optional(),
});
export type RestRecorderStartup = z.infer<typeof RestRecorderStartup>;

export const RestRecorderTerminate = z.looseObject({ mediaSessionId });
export type RestRecorderTerminate = z.infer<typeof RestRecorderTerminate>;

export const RestRecordsFilter = z.looseObject({ name: z.string().max(1024).optional() });
export const RestRecordsDelete = z.looseObject({ name: z.string().min(1).max(1024) });

/** A stream as `/stream/find*` lists it: WCS's fields plus where it runs and how many watch it. */
export interface RestStream {
  mediaSessionId: string;
  name: string;
  published: boolean;
  status: string;
  mediaProvider: "WebRTC";
  record: boolean;
  /** The registry id of the sidecar serving it. */
  sidecar: string;
  /** ms since epoch. */
  startTime: number;
  viewers: number;
}

/** A VOD as `/vod/find*` lists it (WCS's fields; `status` is WCS's constant for a running local stream). */
export interface RestVod {
  localMediaSessionId: string;
  localStreamName: string;
  uri: string;
  status: "PROCESSED_LOCAL";
  hasAudio: boolean;
  hasVideo: boolean;
  record: false;
  loop: boolean;
  /** ms since epoch: the broadcast's position is now - startTime (mod its length when looping). */
  startTime: number;
  durationMs: number;
  viewers: number;
}
