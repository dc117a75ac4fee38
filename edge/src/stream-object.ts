// One Durable Object per published stream name: who publishes it now. A name is published by one stream at a time
// across every session and every edge location, which a per-session object cannot know; the name's object is the
// single place that decides. Later it also holds which sidecar serves the name (many sidecars behind one edge).
//
// A name may instead carry a broadcast started by the REST API (`/rest-api/vod/startup`, WCS's localStreamName):
// its players get the file's shared `vod-live://` broadcast, and nobody may publish under the name meanwhile.
//
// Storage: "publisher" → Publisher, absent when the name is free; "vod" → RestVodEntry while such a broadcast runs.
import { DurableObject } from "cloudflare:workers";
import { broadcastEndsAt, type BroadcastSeek } from "@edge-vod/shared";
import type { Env } from "./config.ts";
import type { Placement } from "./sidecar-registry.ts";

const PUBLISHER_KEY = "publisher";
const VOD_KEY = "vod";

/** A broadcast of a file under a stream name, started by the REST API with no viewer yet. */
export interface RestVodEntry {
  localMediaSessionId: string;
  localStreamName: string;
  /** `vod-live://<file>`, as given. */
  uri: string;
  file: string;
  loop: boolean;
  /** ms since epoch: the broadcast's clock, as a BroadcastObject's startedAt. */
  startTime: number;
  durationMs: number;
  hasAudio: boolean;
  hasVideo: boolean;
  /** The operator's last seek (REST `/vod/seek`): the position goes on from there. */
  seek?: BroadcastSeek;
}

/** A broadcast without loop is over after one pass (from its last seek). */
export function restVodOver(entry: RestVodEntry, now = Date.now()): boolean {
  return !entry.loop && now >= broadcastEndsAt({ startedAt: entry.startTime, seek: entry.seek }, entry.durationMs);
}

export interface Publisher {
  /** The SessionObject id (string form) of the publishing session. */
  sessionRef: string;
  mediaSessionId: string;
  /** ms since epoch. */
  since: number;
  /** The sidecar that receives it: its viewers are placed there (media is not relayed between sidecars). */
  sidecar?: Placement;
}

export class StreamObject extends DurableObject<Env> {
  /**
   * Takes the name for a publisher. Returns false when another live stream holds it. A holder whose session no
   * longer has that stream (a session that ended without releasing, e.g. evicted mid-teardown) is replaced.
   */
  async claim(candidate: Publisher): Promise<boolean> {
    if (await this.liveVod()) return false;
    const current = await this.ctx.storage.get<Publisher>(PUBLISHER_KEY);
    if (current && !(current.sessionRef === candidate.sessionRef && current.mediaSessionId === candidate.mediaSessionId)) {
      if (await this.holderAlive(current)) return false;
      console.warn(`stream name: taking over from stale publisher ${current.mediaSessionId}`);
    }
    await this.ctx.storage.put(PUBLISHER_KEY, candidate);
    return true;
  }

  /** Frees the name if this publisher holds it; a late release from an earlier publisher changes nothing. */
  async release(holder: { sessionRef: string; mediaSessionId: string }): Promise<void> {
    const current = await this.ctx.storage.get<Publisher>(PUBLISHER_KEY);
    if (current?.sessionRef === holder.sessionRef && current.mediaSessionId === holder.mediaSessionId) {
      await this.ctx.storage.delete(PUBLISHER_KEY);
    }
  }

  async publisher(): Promise<Publisher | null> {
    return (await this.ctx.storage.get<Publisher>(PUBLISHER_KEY)) ?? null;
  }

  /** What a player of this name gets: its publisher, or the REST-started broadcast under it, or nothing. */
  async source(): Promise<{ publisher: Publisher } | { vod: RestVodEntry } | null> {
    const publisher = await this.publisher();
    if (publisher) return { publisher };
    const vod = await this.liveVod();
    return vod ? { vod } : null;
  }

  /** Takes the name for a REST-started broadcast; false when a live publisher or another broadcast holds it. */
  async claimVod(entry: RestVodEntry): Promise<boolean> {
    if (await this.liveVod()) return false;
    const current = await this.ctx.storage.get<Publisher>(PUBLISHER_KEY);
    if (current && (await this.holderAlive(current))) return false;
    await this.ctx.storage.delete(PUBLISHER_KEY);
    await this.ctx.storage.put(VOD_KEY, entry);
    return true;
  }

  /** The broadcast under this name goes on from `seek`; the entry as it is now, or null if there is none. */
  async seekVod(seek: BroadcastSeek): Promise<RestVodEntry | null> {
    const current = await this.liveVod();
    if (!current) return null;
    const entry = { ...current, seek };
    await this.ctx.storage.put(VOD_KEY, entry);
    return entry;
  }

  /** Ends the broadcast under this name if it is that one; returns whether it was. */
  async releaseVod(localMediaSessionId: string): Promise<boolean> {
    const current = await this.ctx.storage.get<RestVodEntry>(VOD_KEY);
    if (current?.localMediaSessionId !== localMediaSessionId) return false;
    await this.ctx.storage.delete(VOD_KEY);
    return true;
  }

  /** The broadcast under this name unless it is over (one that is over is forgotten here). */
  private async liveVod(): Promise<RestVodEntry | null> {
    const vod = await this.ctx.storage.get<RestVodEntry>(VOD_KEY);
    if (!vod) return null;
    if (!restVodOver(vod)) return vod;
    await this.ctx.storage.delete(VOD_KEY);
    return null;
  }

  private async holderAlive(p: Publisher): Promise<boolean> {
    try {
      const session = this.env.SESSIONS.get(this.env.SESSIONS.idFromString(p.sessionRef));
      return await session.hasStream(p.mediaSessionId);
    } catch (err) {
      // Unknown is not the same as gone: keep the name with its holder rather than allow two publishers.
      console.warn(`stream name: cannot check publisher ${p.mediaSessionId}: ${String(err)}`);
      return true;
    }
  }
}
