// RTP time for the recorder: 32-bit RTP timestamps extended past their wraparound, their mapping to wall clock
// (RTCP sender reports, else arrival time), and each track's place on the file's timeline.
//
// How the tracks share one timeline: every track is anchored once, at its first written sample, at
// `wall(firstSample) - origin` (origin = the wall clock of the file's first sample). After that a track's times come
// from its own RTP timestamps only: loss leaves a gap (the previous sample's duration grows), it never shifts later
// samples, and a sender report arriving later never moves anything already placed. `wall()` uses the sender reports
// when every recorded track has one (Chromium sends the first within about a second; the recorder waits that long
// before writing), otherwise arrival time: the smallest `arrival - rtpTime` seen, i.e. the least delayed packet.

const WRAP = 2 ** 32;
const HALF = 2 ** 31;
/** Seconds from the NTP epoch (1900) to the Unix epoch (1970). */
const NTP_UNIX_OFFSET_S = 2_208_988_800;

/** Extends 32-bit RTP timestamps to an unbounded number line (may go below 0 for packets reordered around the start). */
export class RtpTimestampUnwrapper {
  private last: number | undefined;

  /** The extended value of `ts`, the one nearest the previous result; becomes the new reference. */
  unwrap(ts: number): number {
    const ext = this.peek(ts);
    this.last = ext;
    return ext;
  }

  /** Like {@link unwrap} without moving the reference (for sender reports, which may lag the packets). */
  peek(ts: number): number {
    const t = ts >>> 0;
    const last = this.last;
    if (last === undefined) return t;
    const low = ((last % WRAP) + WRAP) % WRAP;
    let delta = t - low;
    if (delta >= HALF) delta -= WRAP;
    else if (delta < -HALF) delta += WRAP;
    return last + delta;
  }
}

/** 64-bit NTP timestamp (seconds since 1900 . 32-bit fraction) to milliseconds since the Unix epoch. */
export function ntpToUnixMs(ntp: bigint): number {
  let seconds = Number((ntp >> 32n) & 0xffffffffn);
  // RFC 4330 §3: seconds with the top bit clear belong to era 1 (from February 2036 on).
  if (seconds < HALF) seconds += WRAP;
  const fraction = Number(ntp & 0xffffffffn);
  return (seconds - NTP_UNIX_OFFSET_S) * 1000 + (fraction * 1000) / WRAP;
}

/** Unix milliseconds to a 64-bit NTP timestamp (the inverse of {@link ntpToUnixMs}, for tests and senders). */
export function unixMsToNtp(ms: number): bigint {
  const totalSeconds = Math.floor(ms / 1000);
  const fraction = Math.floor(((ms - totalSeconds * 1000) / 1000) * WRAP);
  const seconds = (totalSeconds + NTP_UNIX_OFFSET_S) % WRAP;
  return (BigInt(seconds) << 32n) | BigInt(fraction);
}

export type SyncSource = "sr" | "arrival";

/** One track's RTP clock: unwrapping plus the two ways to reach wall clock. */
export class RtpClock {
  private readonly unwrapper = new RtpTimestampUnwrapper();
  private readonly msPerTick: number;
  /** Latest sender report: wall ms of extended tick `srExt`. */
  private srWallMs = Number.NaN;
  private srExt = Number.NaN;
  /** min(arrival - ext * msPerTick): wall ms of tick 0 as seen by the least delayed packet. */
  private arrivalBaseMs = Number.POSITIVE_INFINITY;

  constructor(readonly rate: number) {
    this.msPerTick = 1000 / rate;
  }

  unwrap(ts: number): number {
    return this.unwrapper.unwrap(ts);
  }

  /** Records when a packet carrying extended tick `ext` arrived (ms, the recorder's clock). */
  observeArrival(ext: number, arrivalMs: number): void {
    const base = arrivalMs - ext * this.msPerTick;
    if (base < this.arrivalBaseMs) this.arrivalBaseMs = base;
  }

  senderReport(ntp: bigint, rtpTimestamp: number): void {
    this.srExt = this.unwrapper.peek(rtpTimestamp);
    this.srWallMs = ntpToUnixMs(ntp);
  }

  get hasSenderReport(): boolean {
    return !Number.isNaN(this.srExt);
  }

  get hasArrival(): boolean {
    return this.arrivalBaseMs !== Number.POSITIVE_INFINITY;
  }

  /** Wall clock (ms) of extended tick `ext` by the given source; NaN when that source has no data yet. */
  wallMs(ext: number, source: SyncSource): number {
    if (source === "sr") return this.srWallMs + (ext - this.srExt) * this.msPerTick;
    return this.hasArrival ? this.arrivalBaseMs + ext * this.msPerTick : Number.NaN;
  }
}

export interface TrackTimelineOptions {
  /**
   * A timestamp step this much larger than the time that passed between arrivals is a sender discontinuity (new
   * SSRC, restarted encoder), not a gap: the track then continues from arrival time instead of jumping. Default 5000.
   */
  maxJumpMs?: number;
}

/**
 * Places one track's samples on the file timeline in ticks of the track's clock (90 kHz video, 48 kHz Opus).
 * Loss-free and lossy streams map the same way: ticks = anchorTicks + (ext - anchorExt).
 */
export class TrackTimeline {
  private anchorExt = Number.NaN;
  private anchorTicks = 0;
  private lastExt = Number.NaN;
  private lastArrivalMs = Number.NaN;
  private lastTicks = Number.NaN;
  private readonly maxJumpTicks: number;
  private readonly ticksPerMs: number;
  /** Times the timeline re-anchored on a discontinuity. */
  discontinuities = 0;

  constructor(
    readonly rate: number,
    opts: TrackTimelineOptions = {},
  ) {
    this.ticksPerMs = rate / 1000;
    this.maxJumpTicks = (opts.maxJumpMs ?? 5000) * this.ticksPerMs;
  }

  get anchored(): boolean {
    return !Number.isNaN(this.anchorExt);
  }

  /** Fixes the track's position: extended tick `ext` is at `ticks` on the file timeline. */
  anchor(ext: number, ticks: number, arrivalMs: number): void {
    this.anchorExt = ext;
    this.anchorTicks = ticks;
    this.lastExt = ext;
    this.lastTicks = ticks;
    this.lastArrivalMs = arrivalMs;
  }

  /**
   * File ticks of extended tick `ext`. A step backwards returns a value <= the previous one (the caller drops such
   * samples), unless it is a large jump, which like an implausibly large step forward re-anchors the track just after
   * its previous sample plus the time that passed between arrivals.
   */
  place(ext: number, arrivalMs: number): number {
    if (!this.anchored) throw new Error("TrackTimeline.place before anchor");
    const step = ext - this.lastExt;
    const elapsedTicks = Math.max(0, arrivalMs - this.lastArrivalMs) * this.ticksPerMs;
    if (step > elapsedTicks + this.maxJumpTicks || step < -this.maxJumpTicks) {
      this.discontinuities++;
      this.anchorExt = ext;
      this.anchorTicks = this.lastTicks + Math.max(1, Math.round(elapsedTicks));
    }
    const ticks = this.anchorTicks + (ext - this.anchorExt);
    if (ticks > this.lastTicks) {
      this.lastExt = ext;
      this.lastTicks = ticks;
      this.lastArrivalMs = arrivalMs;
    }
    return ticks;
  }
}
