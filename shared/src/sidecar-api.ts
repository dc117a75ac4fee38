// The control channel between the edge (Durable Objects) and a media sidecar. The edge calls the sidecar's HTTP
// API; the sidecar reports stream events back to the edge's events URL. Both directions are signed with the shared
// secret (signing.ts), which never travels itself; anything else gets 401.
import { z } from "zod";
import { FRAME_LIMITS } from "./frames.ts";
import { StreamStatus } from "./status.ts";
import { VodOp, VodState } from "./vod-control.ts";
import { BroadcastSeek } from "./broadcast-clock.ts";

export const SIDECAR_PATHS = {
  play: "/v1/play",
  stop: "/v1/stop",
  publish: "/v1/publish",
  release: "/v1/release",
  health: "/v1/health",
  /** Seek, pause, resume and state of a `vod://` playback (VodControlRequest). */
  vod: "/v1/vod",
  /** `GET|HEAD /v1/records/<recordName>`: a finished recording, with range requests. */
  records: "/v1/records",
} as const;

/** Where the edge serves recordings to browsers, as WCS's recording demo expects. */
export const RECORDS_PUBLIC_PATH = "/client/records";

/** Path on the edge that receives sidecar events. */
export const EDGE_EVENTS_PATH = "/internal/v1/sidecar-events";

/**
 * Path on the edge where sidecars register: POST a SidecarHeartbeat every few seconds (signed, see signing.ts); GET
 * lists the registered sidecars (bearer secret, for operators' curl).
 */
export const EDGE_SIDECARS_PATH = "/internal/v1/sidecars";

/**
 * A random id a sidecar takes at start and reports in its health, heartbeats and play/publish answers: its streams
 * live in its memory, so the same URL answering with another instance means it restarted and they are gone.
 * Optional everywhere, so answers of sidecars that predate it still parse.
 */
export const SidecarInstance = z.string().min(1).max(128);

/** Bounds the heartbeat (and the registry's snapshot every session reads) whatever a sidecar holds. */
export const MAX_HELD_RECORDS = 500;
export const MAX_WARM_FILES = 100;

export const SidecarHeartbeat = z.object({
  /** Stable name of this sidecar (a host name, a pod name); its entry is replaced by a heartbeat with the same id. */
  id: z.string().min(1).max(128),
  /** The control API as the edge reaches it. */
  url: z.url({ protocol: /^https?$/ }),
  viewers: z.number().int().nonnegative(),
  publishers: z.number().int().nonnegative(),
  maxViewers: z.number().int().positive(),
  /** Sent once on a clean shutdown: place nothing more here. */
  leaving: z.boolean().optional(),
  /** This run of the sidecar: a new one means the streams of the last one are gone. */
  instance: SidecarInstance.optional(),
  /**
   * Finished recordings only this sidecar has (their upload to the bucket is pending): `vod://<name>` must be
   * played here until they are in the bucket. The oldest MAX_HELD_RECORDS when there are more.
   */
  holds: z.array(z.string().min(1).max(1024)).max(MAX_HELD_RECORDS).optional(),
  /**
   * Media this sidecar has warm (bucket files with blocks in its cache, prepared copies on its disk), most recently
   * used first: a new viewer of one of them goes here when its load allows.
   */
  warm: z.array(z.string().min(1).max(1024)).max(MAX_WARM_FILES).optional(),
});
export type SidecarHeartbeat = z.infer<typeof SidecarHeartbeat>;

/**
 * Path on the edge where sidecars sharing a bucket take turns preparing a file (POST a LeaseRequest, signed): one
 * lease per prepared copy, so the fleet prepares each file version once.
 */
export const EDGE_LEASES_PATH = "/internal/v1/prepare-leases";

export const LeaseRequest = z.object({
  /** The prepared copy's key (hex), the same on every host for one version of a bucket file. */
  key: z.string().regex(/^[0-9a-f]{16,128}$/),
  op: z.enum(["acquire", "renew", "release"]),
  /** The asking sidecar: its registry id and control URL (where others follow its copy as it grows). */
  holder: z.object({ id: z.string().min(1).max(128), url: z.url({ protocol: /^https?$/ }) }),
  /** acquire / renew: how long the lease holds without a renewal. */
  ttlMs: z.number().int().min(1000).max(600_000).optional(),
});
export type LeaseRequest = z.infer<typeof LeaseRequest>;

export const LeaseResponse = z.object({
  ok: z.literal(true),
  /** Whether the asker holds the lease now; if not, `holder` prepares it. */
  granted: z.boolean(),
  holder: z.object({ id: z.string(), url: z.string() }).optional(),
});
export type LeaseResponse = z.infer<typeof LeaseResponse>;

/** `GET /v1/prepared/<key>` (a copy being prepared here, by ranges) and its `/status` (how far it is). */
export const SIDECAR_PREPARED_PATH = "/v1/prepared";

export const PreparedStatus = z.object({
  /** Bytes of the copy written so far. */
  size: z.number().int().nonnegative(),
  /** The copy is complete (then it is, or soon will be, in the bucket too). */
  done: z.boolean(),
  /** The prepare failed: followers fail with this info. */
  failed: z.string().optional(),
});
export type PreparedStatus = z.infer<typeof PreparedStatus>;

const sessionRef = z.string().min(1).max(128);
const mediaSessionId = z.string().min(1).max(FRAME_LIMITS.maxMediaSessionIdLength);

export const PlayRequest = z.object({
  sessionRef,
  /** Where the sidecar POSTs StreamEvents for this stream. */
  eventsUrl: z.url(),
  mediaSessionId,
  name: z.string().max(FRAME_LIMITS.maxNameBytes),
  /**
   * The name the client asked for when it differs from `name`: a broadcast started by `/rest-api/vod/startup` is
   * played as `vod-live://<file>` under its `localStreamName`. Only listed back (`/v1/streams`), never opened.
   */
  alias: z.string().max(FRAME_LIMITS.maxNameBytes).optional(),
  sdp: z.string().min(1).max(FRAME_LIMITS.maxSdpBytes),
  /** `vod://`: the position to start at, ms of media time (createStream's custom.edgeVod.startMs). */
  startMs: z.number().int().nonnegative().optional(),
  /** `vod://`: report the playback's state about once a second while it plays (the page uses seek or pause). */
  reportState: z.boolean().optional(),
  /** Required for `vod-live://`: the shared broadcast this viewer joins, as the edge holds it. */
  broadcast: z
    .object({
      /** Wall-clock start of the broadcast, ms since epoch: every sidecar computes the position from it. */
      startedAt: z.number().int().nonnegative(),
      /** Start over at the end of the file instead of stopping every viewer. */
      loop: z.boolean(),
      /** The operator's last seek of the broadcast (REST `/vod/seek`): the position goes on from there. */
      seek: BroadcastSeek.optional(),
    })
    .optional(),
});
export type PlayRequest = z.infer<typeof PlayRequest>;

/** A browser publishes `name` (a plain stream name); with `record` the sidecar writes it to an MP4 file. */
export const PublishRequest = z.object({
  sessionRef,
  eventsUrl: z.url(),
  mediaSessionId,
  name: z.string().min(1).max(FRAME_LIMITS.maxNameBytes),
  sdp: z.string().min(1).max(FRAME_LIMITS.maxSdpBytes),
  record: z.boolean(),
  /** `{login}` of the record name template; empty when the session has none. */
  login: z.string().max(256).default(""),
});
export type PublishRequest = z.input<typeof PublishRequest>;

export const PlayResponse = z.discriminatedUnion("ok", [
  z.object({
    ok: z.literal(true),
    sdp: z.string(),
    /** `vod-live://`: length of one pass over the file, so the edge knows when a broadcast without loop is over. */
    durationMs: z.number().nonnegative().optional(),
    /** The sidecar run that holds the stream, kept by the edge to notice a restart. */
    instance: SidecarInstance.optional(),
  }),
  z.object({ ok: z.literal(false), info: z.string() }),
]);
export type PlayResponse = z.infer<typeof PlayResponse>;

/** `GET /v1/health`, as far as the edge reads it (the sidecar adds counters for operators). */
export const HealthResponse = z.object({
  ok: z.literal(true),
  instance: SidecarInstance.optional(),
  viewers: z.number().int().nonnegative(),
  publishers: z.number().int().nonnegative(),
});
export type HealthResponse = z.infer<typeof HealthResponse>;

export const StopRequest = z.object({ sessionRef, mediaSessionId });
export type StopRequest = z.infer<typeof StopRequest>;
export const StopResponse = z.object({
  ok: z.literal(true),
  found: z.boolean(),
  /** Set when the stopped stream was a recording publish: the bare file name the SDK's getRecordInfo() returns. */
  recordName: z.string().max(1024).optional(),
  /** Set when the stop ended the stream with an error rather than cleanly (e.g. the disk filled up). */
  info: z.string().max(1024).optional(),
});
export type StopResponse = z.infer<typeof StopResponse>;

export const ReleaseRequest = z.object({ sessionRef });
export type ReleaseRequest = z.infer<typeof ReleaseRequest>;
export const ReleaseResponse = z.object({ ok: z.literal(true), released: z.number().int().nonnegative() });

export const StreamEvent = z.object({
  sessionRef,
  mediaSessionId,
  status: z.enum([StreamStatus.PLAYING, StreamStatus.STOPPED, StreamStatus.FAILED, StreamStatus.PUBLISHING, StreamStatus.UNPUBLISHED]),
  info: z.string().max(1024).optional(),
  recordName: z.string().max(1024).optional(),
});
export type StreamEvent = z.infer<typeof StreamEvent>;

/** A seek, pause, resume or state query of one `vod://` playback, from its session. */
export const VodControlRequest = z.object({
  sessionRef,
  mediaSessionId,
  op: VodOp,
  positionMs: z.number().int().nonnegative().optional(),
});
export type VodControlRequest = z.infer<typeof VodControlRequest>;

export const VodControlResponse = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), edgeVod: VodState }),
  z.object({ ok: z.literal(false), info: z.string() }),
]);
export type VodControlResponse = z.infer<typeof VodControlResponse>;

/** A playback's state, posted to the events URL on every change and about once a second while playing. */
export const VodStateEvent = z.object({ sessionRef, mediaSessionId, edgeVod: VodState });
export type VodStateEvent = z.infer<typeof VodStateEvent>;

/** Everything a sidecar posts to the events URL. */
export const SidecarEvent = z.union([StreamEvent, VodStateEvent]);
export type SidecarEvent = z.infer<typeof SidecarEvent>;

/** Error body of every 4xx/5xx on both sides. */
export const ErrorBody = z.object({ error: z.string() });
export type ErrorBody = z.infer<typeof ErrorBody>;

/** Constant-time string comparison for the shared secret; works in Workers and Node (no node:crypto needed). */
export function safeEqual(a: string, b: string): boolean {
  const enc = new TextEncoder();
  const x = enc.encode(a);
  const y = enc.encode(b);
  // Walk the longer input whole so the time depends on lengths only, never on where the first difference is.
  let diff = x.length ^ y.length;
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0 && x.length > 0;
}

/** Checks an `Authorization: Bearer <secret>` header against the configured secret. */
export function bearerOk(header: string | null | undefined, secret: string): boolean {
  if (!header || !secret) return false;
  const m = /^Bearer (.+)$/.exec(header);
  return m !== null && safeEqual(m[1]!, secret);
}
