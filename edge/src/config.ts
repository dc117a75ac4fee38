import type { SessionObject } from "./session-object.ts";
import type { BroadcastObject } from "./broadcast-object.ts";
import type { StreamObject } from "./stream-object.ts";
import type { SidecarRegistry } from "./sidecar-registry.ts";

export interface Env {
  SESSIONS: DurableObjectNamespace<SessionObject>;
  STREAMS: DurableObjectNamespace<StreamObject>;
  BROADCASTS: DurableObjectNamespace<BroadcastObject>;
  SIDECARS: DurableObjectNamespace<SidecarRegistry>;
  ASSETS: Fetcher;
  SIDECAR_URL?: string;
  SIDECAR_SECRET?: string;
  /**
   * Origin the sidecar should POST stream events to. By default it is the origin of the WebSocket upgrade, which
   * on Cloudflare is always a host routed to this Worker; behind `wrangler dev` the Host header is whatever the
   * client sent, and the sidecar sends the shared secret to that host, so pin it when the dev port is reachable
   * by others.
   */
  EDGE_EVENTS_ORIGIN?: string;
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

export function sidecarDeadAfterMs(env: Env): number {
  return intVar(env.SIDECAR_DEAD_AFTER_MS, 6000, 100, 600_000);
}
