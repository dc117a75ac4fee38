// The map between a playback's output clock (what its RTP timestamps follow: wall-clock ms since it started
// sending) and its media clock (ms of the file). One segment at a time: from media `fromMs` at output `atMs` the
// media runs `speed` times faster than real time up to `knotMs`, then in real time. A seek is such a segment
// (catch-up from the keyframe before the position), a resume one with no catch-up, and a playback nobody moved is
// the identity, whose packets keep their own timestamps.
import type { KeyframeSide } from "./packet-source.ts";

/** VOD_CATCHUP_SPEED's default: how many times faster than real time a catch-up's frames go out. */
export const DEFAULT_CATCH_UP_SPEED = 45;

/** Where video goes on from after a seek: the keyframe before it when catching up, else the next one. */
export const seekSide = (catchUpSpeed: number): KeyframeSide => (catchUpSpeed > 1 ? "before" : "after");

export class PlayClock {
  private fromMs = 0;
  private atMs = 0;
  private knotMs = 0;
  private speed = 1;
  /** Output time of the knot. */
  private knotAtMs = 0;
  private same = true;

  /** Media and output clocks are one: what a playback nobody moved plays on. */
  get isIdentity(): boolean {
    return this.same;
  }

  identity(): void {
    this.same = true;
    this.fromMs = this.atMs = this.knotMs = this.knotAtMs = 0;
    this.speed = 1;
  }

  /** From media `fromMs` at output `atMs`, `speed` times real time up to media `knotMs`, then real time. */
  catchUp(fromMs: number, knotMs: number, atMs: number, speed: number): void {
    if (!(speed >= 1)) throw new RangeError(`speed must be >= 1, not ${speed}`);
    this.same = false;
    this.fromMs = fromMs;
    this.atMs = atMs;
    this.knotMs = Math.max(fromMs, knotMs);
    this.speed = speed;
    this.knotAtMs = atMs + (this.knotMs - fromMs) / speed;
  }

  /** From media `fromMs` at output `atMs`, in real time. */
  resumeAt(fromMs: number, atMs: number): void {
    this.catchUp(fromMs, fromMs, atMs, 1);
  }

  /** Whether a packet due at media `dueMs` is part of the fast stretch (the catch-up). */
  squeezes(dueMs: number): boolean {
    return !this.same && this.speed > 1 && dueMs < this.knotMs;
  }

  /** Media time due at output time `outMs`: before the segment's start, earlier than anything it sends. */
  mediaAt(outMs: number): number {
    if (this.same) return outMs;
    if (outMs < this.knotAtMs) return this.fromMs + (outMs - this.atMs) * this.speed;
    return this.knotMs + (outMs - this.knotAtMs);
  }

  /**
   * Output time of a packet due at media `dueMs` and presented `offsetMs` after that (B-frames): the offset is
   * scaled as the media clock is at `dueMs`, so frames keep their presentation order across the knot.
   */
  outputOf(dueMs: number, offsetMs: number): number {
    if (this.same) return dueMs + offsetMs;
    if (dueMs < this.knotMs) return this.atMs + (dueMs - this.fromMs + offsetMs) / this.speed;
    return this.knotAtMs + (dueMs - this.knotMs) + offsetMs;
  }
}
