// The packets a track sent last, by sequence number, for NACKs: header fields in typed arrays and the payload
// (shared, read only) by reference, so that keeping one costs no copy and no object.
//
// How many a track needs is its packet rate times how late a NACK can come. At real time a few hundred cover over a
// second; a catch-up (a vod-live joiner, a seek) sends a GOP at up to 45x real time, and a loss early in that burst is
// NACKed while hundreds more go out. So the history is deep only while a burst runs and for a while after it, and
// shallow otherwise: at 1024 slots it was ~18 KB of every viewer's memory for the whole playback.

const EMPTY_SEQS = new Int32Array(0);
const EMPTY_TIMESTAMPS = new Uint32Array(0);
const EMPTY_MARKERS = new Uint8Array(0);

export class SendHistory {
  private mask = 0;
  private seqs = EMPTY_SEQS;
  private timestamps = EMPTY_TIMESTAMPS;
  private markers = EMPTY_MARKERS;
  private payloads: (Uint8Array | undefined)[] = [];
  /** The last sequence number kept: a resize keeps the newest packets. */
  private lastSeq = -1;
  /** performance.now() after which a deep history goes back to shallow (Infinity: while a burst runs). */
  private shallowAtMs = Infinity;

  constructor(
    /** Slots at real time; a power of two. */
    private readonly shallow: number,
    /** Slots while a burst runs and for `holdMs` after it; a power of two, >= shallow. */
    private readonly deep: number,
    /** How long a burst's packets stay NACKable once it ended. */
    private readonly holdMs: number,
  ) {
    this.resize(shallow);
  }

  get size(): number {
    return this.mask + 1;
  }

  /** A burst starts: every packet from here on stays until `burstEnded` + holdMs. */
  burst(): void {
    this.shallowAtMs = Infinity;
    if (this.size < this.deep) this.resize(this.deep);
  }

  /** The burst is over: the history goes back to shallow `holdMs` after `nowMs`, at the next packet kept then. */
  burstEnded(nowMs: number): void {
    if (this.size > this.shallow && this.shallowAtMs === Infinity) this.shallowAtMs = nowMs + this.holdMs;
  }

  keep(seq: number, timestamp: number, marker: boolean, payload: Uint8Array, nowMs: number): void {
    if (nowMs >= this.shallowAtMs) {
      this.shallowAtMs = Infinity;
      this.resize(this.shallow);
    }
    const slot = seq & this.mask;
    this.seqs[slot] = seq;
    this.timestamps[slot] = timestamp;
    this.markers[slot] = marker ? 1 : 0;
    this.payloads[slot] = payload;
    this.lastSeq = seq;
  }

  /** The payload sent as `seq`, if still kept (then `timestampOf` and `markerOf` answer for it). */
  payloadOf(seq: number): Uint8Array | undefined {
    const slot = seq & this.mask;
    return this.seqs[slot] === seq ? this.payloads[slot] : undefined;
  }

  timestampOf(seq: number): number {
    return this.timestamps[seq & this.mask]!;
  }

  markerOf(seq: number): boolean {
    return this.markers[seq & this.mask] === 1;
  }

  /** To `slots` (a power of two), keeping the newest packets that fit (none before the first). */
  private resize(slots: number): void {
    const old = { mask: this.mask, seqs: this.seqs, timestamps: this.timestamps, markers: this.markers, payloads: this.payloads };
    this.mask = slots - 1;
    this.seqs = new Int32Array(slots).fill(-1);
    this.timestamps = new Uint32Array(slots);
    this.markers = new Uint8Array(slots);
    this.payloads = new Array<Uint8Array | undefined>(slots).fill(undefined);
    if (this.lastSeq < 0) return;
    const keep = Math.min(slots, old.mask + 1);
    for (let k = 0; k < keep; k++) {
      const seq = (this.lastSeq - k) & 0xffff;
      const from = seq & old.mask;
      if (old.seqs[from] !== seq) continue;
      const to = seq & this.mask;
      this.seqs[to] = seq;
      this.timestamps[to] = old.timestamps[from]!;
      this.markers[to] = old.markers[from]!;
      this.payloads[to] = old.payloads[from];
    }
  }
}
