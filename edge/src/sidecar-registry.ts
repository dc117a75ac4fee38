// The sidecars behind this edge: one Durable Object (a single instance, `idFromName("sidecars")`) that sidecars
// report to with heartbeats (their control URL and load) and that sessions ask where to place a stream and whether
// the sidecars their streams run on are still alive. A sidecar that has not beaten within SIDECAR_DEAD_AFTER_MS, said
// it is leaving, or refused a connection counts as down until its next heartbeat.
//
// Storage: "sidecar:<id>" → Entry.
import { DurableObject } from "cloudflare:workers";
import type { SidecarHeartbeat } from "@edge-vod/shared";
import { sidecarDeadAfterMs, type Env } from "./config.ts";

const PREFIX = "sidecar:";

/** Where a stream runs: the registered sidecar's id and control URL. */
export interface Placement {
  id: string;
  url: string;
  /** The run of the sidecar that answered the stream's play/publish (SidecarInstance), when it said. */
  instance?: string;
}

/** The sidecar named by SIDECAR_URL: used when none is registered, never reported dead. */
export const STATIC_SIDECAR_ID = "static";

interface Entry {
  id: string;
  url: string;
  viewers: number;
  publishers: number;
  maxViewers: number;
  /** ms since epoch of the last heartbeat. */
  lastSeen: number;
  /** Streams placed here since that heartbeat: a burst of joins must not all land on one sidecar between beats. */
  placed: number;
  /** Said it is leaving, or refused a connection: down until it beats again. */
  down: boolean;
  /** The run that sent the last heartbeat. */
  instance?: string;
}

export interface SidecarInfo extends Omit<Entry, "placed"> {
  healthy: boolean;
}

export class SidecarRegistry extends DurableObject<Env> {
  async heartbeat(hb: SidecarHeartbeat): Promise<void> {
    const entry: Entry = {
      id: hb.id,
      url: hb.url,
      viewers: hb.viewers,
      publishers: hb.publishers,
      maxViewers: hb.maxViewers,
      lastSeen: Date.now(),
      placed: 0,
      down: hb.leaving === true,
      ...(hb.instance ? { instance: hb.instance } : {}),
    };
    await this.ctx.storage.put(PREFIX + hb.id, entry);
  }

  /** The least loaded healthy sidecar (share of its capacity in use), or null when none is; counts the placement. */
  async pick(exclude: readonly string[] = []): Promise<Placement | null> {
    const now = Date.now();
    let best: Entry | undefined;
    let bestLoad = Infinity;
    for (const entry of (await this.entries()).values()) {
      if (!this.healthy(entry, now) || exclude.includes(entry.id)) continue;
      const load = (entry.viewers + entry.placed) / entry.maxViewers;
      if (load < bestLoad) {
        best = entry;
        bestLoad = load;
      }
    }
    if (!best) return null;
    best.placed++;
    await this.ctx.storage.put(PREFIX + best.id, best);
    return { id: best.id, url: best.url };
  }

  /**
   * For each placement, whether its streams are gone: its sidecar is down (silent, leaving, refused, or unknown), or
   * beats now as another run than the one that took the stream (it restarted between two checks).
   */
  async lost(placements: readonly Placement[]): Promise<boolean[]> {
    const now = Date.now();
    const entries = await this.entries();
    return placements.map((p) => {
      const entry = entries.get(PREFIX + p.id);
      if (!entry || !this.healthy(entry, now)) return true;
      return p.instance !== undefined && entry.instance !== undefined && p.instance !== entry.instance;
    });
  }

  /** A call to this sidecar could not connect: place nothing more there until it beats again. */
  async markDown(id: string): Promise<void> {
    const entry = await this.ctx.storage.get<Entry>(PREFIX + id);
    if (entry && !entry.down) await this.ctx.storage.put(PREFIX + id, { ...entry, down: true });
  }

  async list(): Promise<SidecarInfo[]> {
    const now = Date.now();
    const out: SidecarInfo[] = [];
    for (const entry of (await this.entries()).values()) {
      const { placed: _placed, ...info } = entry;
      out.push({ ...info, healthy: this.healthy(entry, now) });
    }
    return out;
  }

  private entries(): Promise<Map<string, Entry>> {
    return this.ctx.storage.list<Entry>({ prefix: PREFIX });
  }

  private healthy(entry: Entry, now: number): boolean {
    return !entry.down && now - entry.lastSeen <= sidecarDeadAfterMs(this.env);
  }
}
