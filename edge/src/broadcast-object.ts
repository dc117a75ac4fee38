// One Durable Object per `vod-live://<file>` name: the shared broadcast's clock. It holds when the broadcast started
// (wall clock), whether it loops, how long one pass of the file lasts, and who watches it. Every sidecar serving
// the broadcast computes the position from `startedAt`, so they stay in sync without passing media between them.
//
// Storage: "state" → BroadcastState while a broadcast exists; "viewer:<sessionRef>:<mediaSessionId>" → ViewerEntry
// for each viewer; alarm: the idle grace period after the last viewer left.
import { DurableObject } from "cloudflare:workers";
import { broadcastEndsAt, type BroadcastSeek, type PlayRequest } from "@edge-vod/shared";
import { vodLiveConfig, type Env } from "./config.ts";

const STATE_KEY = "state";
const VIEWER_PREFIX = "viewer:";

export interface BroadcastState {
  /** ms since epoch; may lie a little in the future (the start lead) while the first viewer connects. */
  startedAt: number;
  loop: boolean;
  /** One pass of the file, ms, once a sidecar has opened it. Without loop the broadcast is over after it. */
  durationMs?: number;
  viewers: number;
  /** When the last viewer left (ms since epoch); the broadcast ends after the grace period unless one joins. */
  idleSince?: number;
  /** The operator's last seek (REST `/vod/seek`): the position goes on from there. */
  seek?: BroadcastSeek;
}

export interface ViewerRef {
  sessionRef: string;
  mediaSessionId: string;
}

interface ViewerEntry {
  since: number;
  /** Id of the sidecar serving this viewer. */
  sidecar: string;
}

/** What a viewer takes to its sidecar: the broadcast's clock, as the play request carries it. */
export type Joined = NonNullable<PlayRequest["broadcast"]>;

const viewerKey = (v: ViewerRef) => `${VIEWER_PREFIX}${v.sessionRef}:${v.mediaSessionId}`;

export class BroadcastObject extends DurableObject<Env> {
  /** Adds a viewer; starts a new broadcast when none runs (or the last one is over). */
  async join(viewer: ViewerRef, loop: boolean, sidecar: string): Promise<Joined> {
    const now = Date.now();
    const cfg = vodLiveConfig(this.env);
    let state = await this.ctx.storage.get<BroadcastState>(STATE_KEY);
    if (!state || this.isOver(state, now, cfg.graceMs)) {
      await this.ctx.storage.deleteAll();
      state = { startedAt: now + cfg.startLeadMs, loop, viewers: 0 };
    }
    const key = viewerKey(viewer);
    if ((await this.ctx.storage.get<ViewerEntry>(key)) === undefined) state.viewers++;
    await this.ctx.storage.put(key, { since: now, sidecar } satisfies ViewerEntry);
    delete state.idleSince;
    await this.ctx.storage.put(STATE_KEY, state);
    await this.ctx.storage.deleteAlarm();
    return { startedAt: state.startedAt, loop: state.loop, ...(state.seek ? { seek: state.seek } : {}) };
  }

  /**
   * The operator moves the running broadcast to `positionMs` from now on; the clock every sidecar serving it then
   * follows. Null when no broadcast runs (or it is over).
   */
  async seek(positionMs: number): Promise<BroadcastState | null> {
    const now = Date.now();
    const state = await this.ctx.storage.get<BroadcastState>(STATE_KEY);
    if (!state || this.isOver(state, now, vodLiveConfig(this.env).graceMs)) return null;
    const next = { ...state, seek: { at: now, positionMs } };
    await this.ctx.storage.put(STATE_KEY, next);
    return next;
  }

  /** Removes a viewer (idempotent); the last one out starts the grace period. */
  async leave(viewer: ViewerRef): Promise<void> {
    const state = await this.ctx.storage.get<BroadcastState>(STATE_KEY);
    const key = viewerKey(viewer);
    if (!state || !(await this.ctx.storage.delete(key))) return;
    state.viewers = Math.max(0, state.viewers - 1);
    if (state.viewers === 0) {
      state.idleSince = Date.now();
      await this.ctx.storage.setAlarm(state.idleSince + vodLiveConfig(this.env).graceMs);
    }
    await this.ctx.storage.put(STATE_KEY, state);
  }

  /** A sidecar opened the file of the broadcast that started at `startedAt`: one pass lasts `durationMs`. */
  async setDuration(startedAt: number, durationMs: number): Promise<void> {
    const state = await this.ctx.storage.get<BroadcastState>(STATE_KEY);
    if (!state || state.startedAt !== startedAt || state.durationMs === durationMs) return;
    await this.ctx.storage.put(STATE_KEY, { ...state, durationMs });
  }

  /** The broadcast now, with how many of its viewers each sidecar serves. */
  async state(): Promise<(BroadcastState & { sidecars: Record<string, number> }) | null> {
    const state = await this.ctx.storage.get<BroadcastState>(STATE_KEY);
    if (!state) return null;
    const sidecars: Record<string, number> = {};
    for (const v of (await this.ctx.storage.list<ViewerEntry>({ prefix: VIEWER_PREFIX })).values()) {
      sidecars[v.sidecar] = (sidecars[v.sidecar] ?? 0) + 1;
    }
    return { ...state, sidecars };
  }

  async alarm(): Promise<void> {
    const state = await this.ctx.storage.get<BroadcastState>(STATE_KEY);
    if (state && this.isOver(state, Date.now(), vodLiveConfig(this.env).graceMs)) await this.ctx.storage.deleteAll();
  }

  private isOver(state: BroadcastState, now: number, graceMs: number): boolean {
    if (!state.loop && state.durationMs !== undefined && now >= broadcastEndsAt(state, state.durationMs)) return true;
    return state.viewers === 0 && state.idleSince !== undefined && now - state.idleSince >= graceMs;
  }
}
