// The sidecars behind this edge, as their heartbeats describe them (control URL, load, the recordings only they
// hold, the media they have warm). Sessions do not call it per placement or per keep-alive tick: they read a
// snapshot of it, cached for REGISTRY_SNAPSHOT_MS in their isolate and shared by every session there, and decide
// placement and liveness from that (registry-view.ts). So its load is one read per isolate per snapshot period plus
// the heartbeats, whatever the number of sessions; and there are REGISTRY_SHARDS copies of it (every heartbeat goes
// to each), each isolate reading one, so even that load is spread.
//
// A sidecar that has not beaten within SIDECAR_DEAD_AFTER_MS, said it is leaving, or refused a connection counts as
// down until its next heartbeat.
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
  /** Said it is leaving, or refused a connection: down until it beats again. */
  down: boolean;
  /** The run that sent the last heartbeat. */
  instance?: string;
  holds?: string[];
  warm?: string[];
}

/** A sidecar as sessions see it. */
export interface SidecarView {
  id: string;
  url: string;
  viewers: number;
  publishers: number;
  maxViewers: number;
  healthy: boolean;
  instance?: string;
  /** Recordings only it has (their upload is pending). */
  holds: string[];
  /** Media it has warm, most recent first. */
  warm: string[];
}

export interface RegistrySnapshot {
  /** ms since epoch when it was taken. */
  at: number;
  sidecars: SidecarView[];
}

export interface SidecarInfo extends Omit<Entry, "holds" | "warm"> {
  healthy: boolean;
  holds: number;
  warm: number;
}

export class SidecarRegistry extends DurableObject<Env> {
  /** Calls since this object started, by method: what its load is made of (GET /internal/v1/sidecars shows them). */
  private readonly calls: Record<string, number> = {};

  private count(method: string): void {
    this.calls[method] = (this.calls[method] ?? 0) + 1;
  }

  async heartbeat(hb: SidecarHeartbeat): Promise<void> {
    this.count("heartbeat");
    const entry: Entry = {
      id: hb.id,
      url: hb.url,
      viewers: hb.viewers,
      publishers: hb.publishers,
      maxViewers: hb.maxViewers,
      lastSeen: Date.now(),
      down: hb.leaving === true,
      ...(hb.instance ? { instance: hb.instance } : {}),
      ...(hb.holds?.length ? { holds: hb.holds } : {}),
      ...(hb.warm?.length ? { warm: hb.warm } : {}),
    };
    await this.ctx.storage.put(PREFIX + hb.id, entry);
  }

  /** Every sidecar with its health now: what sessions place streams and judge liveness by. */
  async snapshot(): Promise<RegistrySnapshot> {
    this.count("snapshot");
    const now = Date.now();
    const sidecars: SidecarView[] = [];
    for (const e of (await this.entries()).values()) {
      sidecars.push({
        id: e.id,
        url: e.url,
        viewers: e.viewers,
        publishers: e.publishers,
        maxViewers: e.maxViewers,
        healthy: this.healthy(e, now),
        ...(e.instance ? { instance: e.instance } : {}),
        holds: e.holds ?? [],
        warm: e.warm ?? [],
      });
    }
    return { at: now, sidecars };
  }

  /** A call to this sidecar could not connect: place nothing more there until it beats again. */
  async markDown(id: string): Promise<void> {
    this.count("markDown");
    const entry = await this.ctx.storage.get<Entry>(PREFIX + id);
    if (entry && !entry.down) await this.ctx.storage.put(PREFIX + id, { ...entry, down: true });
  }

  /** Calls so far by method. */
  requests(): Record<string, number> {
    return { ...this.calls };
  }

  async list(): Promise<SidecarInfo[]> {
    this.count("list");
    const now = Date.now();
    const out: SidecarInfo[] = [];
    for (const entry of (await this.entries()).values()) {
      const { holds, warm, ...info } = entry;
      out.push({ ...info, healthy: this.healthy(entry, now), holds: holds?.length ?? 0, warm: warm?.length ?? 0 });
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
