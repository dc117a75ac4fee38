// The broadcasts started by the REST API (`/rest-api/vod/startup`), for `/vod/find` and `/vod/find_all`: one Durable
// Object (a single instance, `idFromName("vods")`). Durable Objects cannot be enumerated, so the names' own
// StreamObjects, which decide who holds a name, cannot list them; this is their index, written at startup and
// terminate (and an operator's seek) only; a broadcast without loop drops out once one pass is over.
//
// Storage: "vod:<localStreamName>" → RestVodEntry.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./config.ts";
import { restVodOver, type RestVodEntry } from "./stream-object.ts";

const PREFIX = "vod:";

export class VodCatalog extends DurableObject<Env> {
  async add(entry: RestVodEntry): Promise<void> {
    await this.ctx.storage.put(PREFIX + entry.localStreamName, entry);
  }

  /** Removes the entry of `localStreamName` if it is that broadcast (or any, without an id). */
  async remove(localStreamName: string, localMediaSessionId?: string): Promise<void> {
    const entry = await this.ctx.storage.get<RestVodEntry>(PREFIX + localStreamName);
    if (entry && (localMediaSessionId === undefined || entry.localMediaSessionId === localMediaSessionId)) {
      await this.ctx.storage.delete(PREFIX + localStreamName);
    }
  }

  /** The broadcasts that are not over, sorted by name. */
  async list(): Promise<RestVodEntry[]> {
    const now = Date.now();
    const out: RestVodEntry[] = [];
    const over: string[] = [];
    for (const [key, entry] of await this.ctx.storage.list<RestVodEntry>({ prefix: PREFIX })) {
      if (restVodOver(entry, now)) over.push(key);
      else out.push(entry);
    }
    if (over.length > 0) await this.ctx.storage.delete(over);
    return out;
  }
}
