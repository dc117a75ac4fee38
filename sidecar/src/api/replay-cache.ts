// Nonces of the signed control requests seen within the signature window: the same signed request a second time is
// a replay. Bounded: past `maxEntries` live nonces the control API answers 503 rather than let memory grow.
import { SIGNATURE_WINDOW_MS } from "@edge-vod/shared";

export type NonceCheck = "fresh" | "replayed" | "full";

export class ReplayCache {
  /** nonce -> time after which it can be forgotten; insertion order is expiry order (see `check`). */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly maxEntries = 200_000,
    private readonly windowMs = SIGNATURE_WINDOW_MS,
  ) {}

  get size(): number {
    return this.seen.size;
  }

  /** Records `nonce` (of a request whose signature and timestamp were valid); "fresh" the first time only. */
  check(nonce: string, now = Date.now()): NonceCheck {
    this.prune(now);
    if (this.seen.has(nonce)) return "replayed";
    if (this.seen.size >= this.maxEntries) return "full";
    // A request is accepted until its timestamp + window, and its timestamp is at most now + window: now + 2 windows
    // covers it. Taking the expiry from the arrival time (not the request's timestamp) keeps the Map ordered by
    // expiry, so pruning stops at the first live entry.
    this.seen.set(nonce, now + 2 * this.windowMs);
    return "fresh";
  }

  private prune(now: number): void {
    for (const [nonce, expiresAt] of this.seen) {
      if (expiresAt > now) break;
      this.seen.delete(nonce);
    }
  }
}
