// The clock of a shared `vod-live://` broadcast, as the edge holds it and every sidecar serving it computes it: the
// position is wall-clock time since the start, or since the last operator seek (REST `/vod/seek`) from where that
// went. Every sidecar derives the same position, and the same RTP timestamps, from it, so viewers on different
// sidecars stay in step without media passing between sidecars.
import { z } from "zod";

export const BroadcastSeek = z.object({
  /** When the seek took effect, ms since epoch. */
  at: z.number().int().nonnegative(),
  /** The broadcast's position (ms of one pass of the file) at `at`. */
  positionMs: z.number().int().nonnegative(),
});
export type BroadcastSeek = z.infer<typeof BroadcastSeek>;

export interface BroadcastClock {
  /** ms since epoch; may lie a little in the future (the start lead). */
  startedAt: number;
  seek?: BroadcastSeek | undefined;
}

/** The broadcast's media position at `now` (ms since epoch), passes of a looping file counted on. */
export function broadcastPositionMs(clock: BroadcastClock, now: number): number {
  return clock.seek ? clock.seek.positionMs + (now - clock.seek.at) : now - clock.startedAt;
}

/** When one pass of `durationMs` is over (a broadcast without loop ends then), ms since epoch. */
export function broadcastEndsAt(clock: BroadcastClock, durationMs: number): number {
  return clock.seek ? clock.seek.at + durationMs - clock.seek.positionMs : clock.startedAt + durationMs;
}
