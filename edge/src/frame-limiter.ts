// Per-socket frame rate limit: a token bucket of `burst` frames refilled at `perSecond`.
//
// Kept in memory, not in ctx.storage: a socket that sends fast keeps its Durable Object awake (hibernation only
// evicts an idle object), so the bucket lives exactly as long as it matters, and a storage write per frame would
// cost more than the frames themselves. An evicted object starts over with a full bucket: at most one more burst.
export class FrameLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one frame's token; false when the socket is over its rate. */
  take(now = Date.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
