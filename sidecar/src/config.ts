// Sidecar configuration from the environment; documented in README.md ("Configuration").
import os from "node:os";
import path from "node:path";
import type { StorageConfig } from "./store/storage.ts";
import { DEFAULT_CATCH_UP_SPEED } from "./vod/play-clock.ts";

export interface SidecarConfig {
  host: string;
  port: number;
  secret: string;
  mediaDir: string;
  cacheDir: string;
  /** Bytes the prepared copies in cacheDir may take; least recently used ones are deleted past it. */
  cacheMaxBytes: number;
  /** Bytes of packetized samples kept for the playbacks of a file to share (vod/packet-store.ts). */
  packetStoreBytes: number;
  /** ffmpeg prepares running at once on this host; more wait their turn. */
  prepareConcurrency: number;
  /** Address written into ICE candidates instead of the host's own (a media host behind 1:1 NAT). */
  publicIp: string | undefined;
  /** Extra host addresses to gather on (werift skips loopback unless listed). */
  iceHostAddresses: string[];
  /** UDP port range for media; undefined = any ephemeral port. */
  rtpPortRange: [number, number] | undefined;
  /** How long a viewer may take to complete ICE + DTLS before it fails. */
  iceTimeoutMs: number;
  /** Scheduler tick; every viewer is served from this one timer. */
  tickMs: number;
  /** A `vod-live://` broadcast's viewers are spread over this much time (see vod/live-source.ts). */
  vodLiveSpreadMs: number;
  vodLiveViewersPerSlot: number;
  /**
   * How many times faster than real time the frames from the keyframe before a `vod://` seek's position, or before a
   * `vod-live://` joiner's, go out so that the picture there shows at once; 1 turns that off (the next keyframe).
   */
  catchUpSpeed: number;
  /** A `vod://` playback paused for longer than this ends STOPPED ("Stopped by pause timeout"). */
  pauseTimeoutMs: number;
  /** SO_SNDBUF of each viewer's media socket, bytes; 0 keeps the kernel's default (net.core.wmem_default). */
  rtpSendBufferBytes: number;
  ffmpegPath: string | undefined;
  maxViewers: number;
  /** Where recordings are written; `vod://` looks here after mediaDir. Defaults to mediaDir. */
  recordDir: string;
  /** Record file name template with WCS's placeholders; the extension is added. */
  recordTemplate: string;
  /** POSTed `{streamName, recordName, ...}` when a recording is finalized; undefined = no hook. */
  recordHookUrl: string | undefined;
  /** A publisher that sends no RTP for this long fails with "Failed by RTP activity". */
  rtpActivityTimeoutMs: number;
  /** Registration at the edge (many sidecars behind one edge); undefined = the edge's SIDECAR_URL names this one. */
  registry: { edgeUrl: string; id: string; publicUrl: string; intervalMs: number } | undefined;
  /** Bearer token GET /metrics requires; undefined = /metrics is open (it holds counts, nothing secret). */
  metricsToken: string | undefined;
  /** The bucket (S3_ENDPOINT and the rest); undefined = local folders only. */
  storage: StorageConfig | undefined;
}

export class ConfigError extends Error {}

function httpUrl(key: string, raw: string): string {
  try {
    const u = new URL(raw);
    if (u.protocol === "http:" || u.protocol === "https:") return raw;
  } catch {
    /* reported below */
  }
  throw new ConfigError(`${key} must be an http(s) URL, got '${raw}'`);
}

function int(env: NodeJS.ProcessEnv, key: string, def: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${key} must be an integer in ${min}..${max}, got '${raw}'`);
  return n;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): SidecarConfig {
  const secret = env.SIDECAR_SECRET ?? "";
  if (secret.length < 16) throw new ConfigError("SIDECAR_SECRET must be set (at least 16 characters); the edge uses the same value");
  let rtpPortRange: [number, number] | undefined;
  if (env.RTP_PORT_MIN || env.RTP_PORT_MAX) {
    const lo = int(env, "RTP_PORT_MIN", 20000, 1024, 65535);
    const hi = int(env, "RTP_PORT_MAX", 40000, 1024, 65535);
    if (hi <= lo) throw new ConfigError("RTP_PORT_MAX must be greater than RTP_PORT_MIN");
    rtpPortRange = [lo, hi];
  }
  const recordHookUrl = env.RECORD_HOOK_URL ? httpUrl("RECORD_HOOK_URL", env.RECORD_HOOK_URL) : undefined;
  const mediaDir = path.resolve(env.MEDIA_DIR || "media");
  const host = env.SIDECAR_HOST || "127.0.0.1";
  const port = int(env, "SIDECAR_PORT", 8790, 0, 65535);
  const registry = env.EDGE_URL
    ? {
        edgeUrl: httpUrl("EDGE_URL", env.EDGE_URL).replace(/\/+$/, ""),
        id: env.SIDECAR_ID || `${os.hostname()}:${port}`,
        publicUrl: httpUrl("SIDECAR_PUBLIC_URL", env.SIDECAR_PUBLIC_URL || `http://${host}:${port}`).replace(/\/+$/, ""),
        intervalMs: int(env, "HEARTBEAT_MS", 2000, 100, 60000),
      }
    : undefined;
  const hostAddresses = (env.ICE_HOST_ADDRESSES ?? "127.0.0.1")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    host,
    port,
    secret,
    mediaDir,
    cacheDir: path.resolve(env.CACHE_DIR || "cache"),
    cacheMaxBytes: int(env, "CACHE_MAX_MB", 20480, 16, 1 << 30) * 1024 * 1024,
    packetStoreBytes: int(env, "PACKET_STORE_MB", 256, 0, 1 << 20) * 1024 * 1024,
    prepareConcurrency: int(env, "PREPARE_CONCURRENCY", 2, 1, 64),
    publicIp: env.PUBLIC_IP || undefined,
    iceHostAddresses: hostAddresses,
    rtpPortRange,
    iceTimeoutMs: int(env, "ICE_TIMEOUT_MS", 15000, 1000, 120000),
    tickMs: int(env, "TICK_MS", 5, 1, 50),
    vodLiveSpreadMs: int(env, "VOD_LIVE_SPREAD_MS", 1000, 0, 5000),
    vodLiveViewersPerSlot: int(env, "VOD_LIVE_VIEWERS_PER_SLOT", 3, 1, 100000),
    catchUpSpeed: int(env, "VOD_CATCHUP_SPEED", DEFAULT_CATCH_UP_SPEED, 1, 1000),
    pauseTimeoutMs: int(env, "VOD_PAUSE_TIMEOUT_MS", 600_000, 1000, 86_400_000),
    rtpSendBufferBytes: int(env, "RTP_SEND_BUFFER_BYTES", 0, 0, 64 << 20),
    ffmpegPath: env.FFMPEG_PATH || undefined,
    maxViewers: int(env, "MAX_VIEWERS", 500, 1, 100000),
    recordDir: env.RECORD_DIR ? path.resolve(env.RECORD_DIR) : mediaDir,
    recordTemplate: env.RECORD_TEMPLATE || "stream-{mediaSessionId}-{login}",
    recordHookUrl,
    rtpActivityTimeoutMs: int(env, "RTP_ACTIVITY_TIMEOUT_MS", 10000, 1000, 600000),
    registry,
    metricsToken: env.METRICS_TOKEN || undefined,
    storage: storageConfig(env),
  };
}

/** S3_* as README documents them; undefined without S3_ENDPOINT. */
function storageConfig(env: NodeJS.ProcessEnv): StorageConfig | undefined {
  const endpoint = env.S3_ENDPOINT?.trim();
  if (!endpoint) return undefined;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ConfigError(`S3_ENDPOINT must be an http(s) URL (or file:///path), got '${endpoint}'`);
  }
  const folder = url.protocol === "file:";
  if (!folder && url.protocol !== "http:" && url.protocol !== "https:") throw new ConfigError(`S3_ENDPOINT must be an http(s) URL (or file:///path), got '${endpoint}'`);
  const need = (key: string): string => {
    const v = env[key]?.trim();
    if (!v) throw new ConfigError(`${key} must be set when S3_ENDPOINT is`);
    return v;
  };
  const bucket = folder ? "" : need("S3_BUCKET");
  if (!folder && !/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/.test(bucket)) throw new ConfigError(`S3_BUCKET is not a bucket name: '${bucket}'`);
  let prefix = (env.S3_PREFIX ?? "").trim().replace(/^\/+/, "");
  if (prefix && !prefix.endsWith("/")) prefix += "/";
  if (prefix.split("/").some((p, i, all) => (p === "" && i < all.length - 1) || p === "." || p === "..")) {
    throw new ConfigError(`S3_PREFIX must be a plain folder path such as 'vod/', got '${env.S3_PREFIX}'`);
  }
  return {
    endpoint,
    bucket,
    region: env.S3_REGION?.trim() || "us-east-1",
    accessKeyId: folder ? "" : need("S3_ACCESS_KEY_ID"),
    secretAccessKey: folder ? "" : need("S3_SECRET_ACCESS_KEY"),
    forcePathStyle: /^(1|true|yes)$/i.test(env.S3_FORCE_PATH_STYLE ?? ""),
    prefix,
    blockBytes: int(env, "S3_BLOCK_KB", 1024, 64, 16384) * 1024,
    cacheBytes: int(env, "S3_CACHE_MB", 256, 0, 1 << 20) * 1024 * 1024,
    timeoutMs: int(env, "S3_TIMEOUT_MS", 10000, 500, 600000),
  };
}
