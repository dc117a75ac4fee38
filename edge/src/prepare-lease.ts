// One Durable Object per prepared copy of a bucket file (its key): which sidecar prepares it now. Sidecars that
// share a bucket ask here before they start ffmpeg, so a file version is prepared once for the whole fleet; the
// others follow the holder's copy as it grows, then read the finished one from the bucket. A lease not renewed
// within its TTL (the holder died) is free again.
//
// Storage: "lease" → Lease, absent when free.
import { DurableObject } from "cloudflare:workers";
import type { LeaseRequest, LeaseResponse } from "@edge-vod/shared";
import type { Env } from "./config.ts";

const KEY = "lease";
const DEFAULT_TTL_MS = 30_000;

interface Lease {
  holder: { id: string; url: string };
  expiresAt: number;
}

export class PrepareLease extends DurableObject<Env> {
  async handle(req: LeaseRequest): Promise<LeaseResponse> {
    const now = Date.now();
    const held = await this.ctx.storage.get<Lease>(KEY);
    const live = held && held.expiresAt > now ? held : undefined;
    const mine = live?.holder.id === req.holder.id;
    const ttl = req.ttlMs ?? DEFAULT_TTL_MS;
    switch (req.op) {
      case "acquire":
      case "renew":
        if (live && !mine) return { ok: true, granted: false, holder: live.holder };
        // A renewal of a lease that lapsed is an acquire: nobody else took it meanwhile.
        await this.ctx.storage.put(KEY, { holder: req.holder, expiresAt: now + ttl } satisfies Lease);
        return { ok: true, granted: true, holder: req.holder };
      case "release":
        if (mine) await this.ctx.storage.delete(KEY);
        return { ok: true, granted: false, ...(live && !mine ? { holder: live.holder } : {}) };
    }
  }
}
