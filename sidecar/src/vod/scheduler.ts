// One timer drives every playback on the sidecar: a timer per viewer (or per packet) costs a callback and a
// timer-heap entry per viewer per frame, and drifts independently; one tick walks all due work at once.

export interface Paced {
  /** Sends whatever is due at `nowMs` (performance.now() clock). Must not throw. */
  pump(nowMs: number): void;
}

export class Scheduler {
  private readonly members = new Set<Paced>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly tickMs: number) {}

  add(member: Paced): void {
    this.members.add(member);
    if (!this.timer) this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  remove(member: Paced): void {
    this.members.delete(member);
    if (this.members.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  get size(): number {
    return this.members.size;
  }

  private tick(): void {
    const now = performance.now();
    for (const member of this.members) {
      try {
        member.pump(now);
      } catch (err) {
        // A bug in one playback must not stall every other viewer on the host.
        console.error("scheduler: pump failed", err);
        this.members.delete(member);
      }
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.members.clear();
  }
}
