// One Durable Object per published stream name: who publishes it now. A name is published by one stream at a time
// across every session and every edge location, which a per-session object cannot know; the name's object is the
// single place that decides. Later it also holds which sidecar serves the name (many sidecars behind one edge).
//
// Storage: "publisher" → Publisher, absent when the name is free.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./config.ts";
import type { Placement } from "./sidecar-registry.ts";

const PUBLISHER_KEY = "publisher";

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
