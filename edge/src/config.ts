import type { SessionObject } from "./session-object.ts";
import type { BroadcastObject } from "./broadcast-object.ts";
import type { StreamObject } from "./stream-object.ts";
import type { SidecarRegistry } from "./sidecar-registry.ts";
import type { VodCatalog } from "./vod-catalog.ts";
import type { PrepareLease } from "./prepare-lease.ts";
import { FRAME_LIMITS } from "@edge-vod/shared";

export interface Env {
  SESSIONS: DurableObjectNamespace<SessionObject>;
  STREAMS: DurableObjectNamespace<StreamObject>;
  BROADCASTS: DurableObjectNamespace<BroadcastObject>;
  SIDECARS: DurableObjectNamespace<SidecarRegistry>;
  VODS: DurableObjectNamespace<VodCatalog>;
  LEASES: DurableObjectNamespace<PrepareLease>;
  ASSETS: Fetcher;
  SIDECAR_URL?: string;
  SIDECAR_SECRET?: string;
  /** Bearer key of the REST API (`/rest-api/...`); without it the API answers 401 to everyone. A secret. */
  REST_API_KEY?: string;
  /**
   * Origin the sidecar should POST stream events to. By default it is the origin of the WebSocket upgrade, which
   * on Cloudflare is always a host routed to this Worker; behind `wrangler dev` the Host header is whatever the
   * client sent, and the sidecar sends the shared secret to that host, so pin it when the dev port is reachable
   * by others.
   */
  EDGE_EVENTS_ORIGIN?: string;
  /** Secret of the session tokens (shared/src/auth-token.ts); when set, `connection` must carry a valid authToken. */
  AUTH_TOKEN_SECRET?: string;
  /** The operator's backend: POST <url>/<method> for connect, publishStream, playStream, stopStream, ... */
  REST_HOOK_URL?: string;
  /** Signs the hook POSTs (X-Edge-Vod-Signature) when set. */
  REST_HOOK_SECRET?: string;
  /** How long an authorizing hook may take before the action is refused, ms (default 3000). */
  REST_HOOK_TIMEOUT_MS?: string;
  /** Largest accepted client frame (default 262144; the runtime itself takes no more than 32 MiB). */
  MAX_FRAME_BYTES?: string;
  /** Sustained client frames per second per socket (default 100) and the burst above it (default 200). */
  MAX_FRAMES_PER_SECOND?: string;
  MAX_FRAMES_BURST?: string;
  /** Concurrent streams in one session (default 16). */
  MAX_STREAMS_PER_SESSION?: string;
  KEEPALIVE_INTERVAL_MS?: string;
  KEEPALIVE_PROBES?: string;
  STREAM_START_TIMEOUT_MS?: string;
  /** `vod-live://` looping: "true" loops every file, else a comma-separated list of the files that loop. */
  VOD_LIVE_LOOP?: string;
  /** How long a broadcast outlives its last viewer, ms (default 5000): a viewer back within it rejoins in place. */
  VOD_LIVE_GRACE_MS?: string;
  /** A new broadcast starts this long after its first viewer asked, ms (default 500), so it sees the first frame. */
  VOD_LIVE_START_LEAD_MS?: string;
  /** A registered sidecar silent for this long is down (default 6000: three missed 2 s heartbeats). */
  SIDECAR_DEAD_AFTER_MS?: string;
  /** Keep-alive ticks in a row on which SIDECAR_URL's sidecar does not answer its health check before its streams are lost (default 2). */
  SIDECAR_HEALTH_MISSES?: string;
  /** How long an isolate uses its snapshot of the sidecar registry before reading it again, ms (default 1000). */
  REGISTRY_SNAPSHOT_MS?: string;
  /** Copies of the sidecar registry (default 4): every heartbeat goes to each, every isolate reads one. */
  REGISTRY_SHARDS?: string;
  /** ICE servers WHEP/WHIP clients are told of (Link headers): JSON as RTCConfiguration.iceServers. */
  ICE_SERVERS?: string;
}

/** WCS defaults: keep_alive.server_interval=5000, and 10 unanswered pings end the connection. */
export const KEEPALIVE_DEFAULTS = { intervalMs: 5000, probes: 10 } as const;

/** A session is one browser tab; more concurrent streams than this is a runaway page or abuse. */
export const MAX_STREAMS_PER_SESSION = 16;

function intVar(raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  return Number.isInteger(n) && n >= min && n <= max ? n : fallback;
}

export function keepAliveConfig(env: Env): { intervalMs: number; probes: number } {
  return {
    intervalMs: intVar(env.KEEPALIVE_INTERVAL_MS, KEEPALIVE_DEFAULTS.intervalMs, 50, 600_000),
    probes: intVar(env.KEEPALIVE_PROBES, KEEPALIVE_DEFAULTS.probes, 1, 1000),
  };
}

/**
 * Longest a stream may stay PENDING. The sidecar normally ends it first (play answer within 15 s, then its own
 * ICE timeout of 15 s); this backstop covers a sidecar that died or whose events were lost, because the SDK's
 * stop() loops forever on a PENDING stream.
 */
export const STREAM_START_TIMEOUT_MS = 40_000;

export function streamStartTimeoutMs(env: Env): number {
  return intVar(env.STREAM_START_TIMEOUT_MS, STREAM_START_TIMEOUT_MS, 100, 600_000);
}

export interface VodLiveConfig {
  graceMs: number;
  startLeadMs: number;
}

export function vodLiveConfig(env: Env): VodLiveConfig {
  return {
    graceMs: intVar(env.VOD_LIVE_GRACE_MS, 5000, 0, 3_600_000),
    startLeadMs: intVar(env.VOD_LIVE_START_LEAD_MS, 500, 0, 10_000),
  };
}

/** Whether a new broadcast of `file` loops (WCS's global `vod_live_loop`, or per file). */
export function vodLiveLoops(env: Env, file: string): boolean {
  const raw = (env.VOD_LIVE_LOOP ?? "").trim();
  if (raw === "true") return true;
  return raw
    .split(",")
    .map((s) => s.trim())
    .includes(file);
}

/** See SIDECAR_HEALTH_MISSES: one miss is a blip (a GC pause, a dropped connection), two in a row a dead process. */
export function sidecarHealthMisses(env: Env): number {
  return intVar(env.SIDECAR_HEALTH_MISSES, 2, 1, 1000);
}

export function sidecarDeadAfterMs(env: Env): number {
  return intVar(env.SIDECAR_DEAD_AFTER_MS, 6000, 100, 600_000);
}

export interface RestHookConfig {
  /** Without a trailing slash; a method's URL is `${url}/${method}`. */
  url: string;
  secret?: string;
  timeoutMs: number;
}

/** REST_HOOK_URL's hooks, or undefined when none is configured (or it is not an http(s) URL: logged, hooks off). */
export function restHookConfig(env: Env): RestHookConfig | undefined {
  const raw = env.REST_HOOK_URL?.trim();
  if (!raw) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    console.error(`REST_HOOK_URL is not an http(s) URL (${raw}); hooks are off`);
    return undefined;
  }
  return {
    url: url.href.replace(/\/+$/, ""),
    ...(env.REST_HOOK_SECRET ? { secret: env.REST_HOOK_SECRET } : {}),
    timeoutMs: intVar(env.REST_HOOK_TIMEOUT_MS, 3000, 50, 60_000),
  };
}

/**
 * workerd closes a socket whose message is over 32 MiB itself (measured with wrangler 4.86: close 1009 "Message is
 * too large: <n> > 33554432", the object gets webSocketError), so a larger limit could never apply.
 */
const RUNTIME_MAX_FRAME_BYTES = 32 * 1024 * 1024;

export interface FrameLimits {
  maxFrameBytes: number;
  framesPerSecond: number;
  burst: number;
  maxStreams: number;
}

export function frameLimits(env: Env): FrameLimits {
  const framesPerSecond = intVar(env.MAX_FRAMES_PER_SECOND, 100, 1, 100_000);
  return {
    maxFrameBytes: intVar(env.MAX_FRAME_BYTES, FRAME_LIMITS.maxFrameBytes, 1024, RUNTIME_MAX_FRAME_BYTES),
    framesPerSecond,
    burst: Math.max(framesPerSecond, intVar(env.MAX_FRAMES_BURST, 200, 1, 1_000_000)),
    maxStreams: intVar(env.MAX_STREAMS_PER_SESSION, MAX_STREAMS_PER_SESSION, 1, 10_000),
  };
}

export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/** ICE_SERVERS, as RTCConfiguration.iceServers takes them; a value that is not that is logged and ignored. */
export function iceServers(env: Env): IceServer[] {
  const raw = env.ICE_SERVERS?.trim();
  if (!raw) return [];
  try {
    const list = JSON.parse(raw) as unknown;
    if (!Array.isArray(list)) throw new Error("not an array");
    return list.map((e: unknown) => {
      const o = e as { urls?: unknown; username?: unknown; credential?: unknown };
      const urls = typeof o.urls === "string" ? [o.urls] : Array.isArray(o.urls) ? o.urls : [];
      if (urls.length === 0 || !urls.every((u) => typeof u === "string" && /^(stun|stuns|turn|turns):/.test(u))) throw new Error(`bad urls in ${JSON.stringify(e)}`);
      return {
        urls: urls as string[],
        ...(typeof o.username === "string" ? { username: o.username } : {}),
        ...(typeof o.credential === "string" ? { credential: o.credential } : {}),
      };
    });
  } catch (err) {
    console.error(`ICE_SERVERS is not a JSON list of ICE servers (${String(err)}); none announced`);
    return [];
  }
}
