// Keeps this sidecar registered at the edge (many sidecars behind one edge): a heartbeat with its control URL and
// load every few seconds. The edge places new streams on the least loaded sidecar that beat recently and fails the
// streams of one that went silent; on a clean shutdown the sidecar says it is leaving.
import { EDGE_SIDECARS_PATH, signRequest, type SidecarHeartbeat } from "@edge-vod/shared";

export interface HeartbeatOptions {
  edgeUrl: string;
  secret: string;
  intervalMs: number;
  /** What to report; called on every beat. */
  describe: () => SidecarHeartbeat;
}

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private leaving = false;

  constructor(private readonly opts: HeartbeatOptions) {}

  start(): void {
    void this.beat();
    this.timer = setInterval(() => void this.beat(), this.opts.intervalMs);
  }

  /** Stops beating and tells the edge, so no new stream is placed here while the process ends. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.leaving = true;
    await this.post({ ...this.opts.describe(), leaving: true }).catch(() => {});
  }

  /** A beat now, outside the period (a recording the edge must know of); resolves when the edge has it, or failed. */
  beatNow(): Promise<void> {
    return this.beat();
  }

  private async beat(): Promise<void> {
    try {
      // After stop(), a beat still tells the edge what changed (recordings finished on the way out), never that
      // streams may be placed here again.
      await this.post(this.leaving ? { ...this.opts.describe(), leaving: true } : this.opts.describe());
      if (this.failing) console.log("heartbeat: registered at the edge again");
      this.failing = false;
    } catch (err) {
      // Logged once per outage, not once per beat.
      if (!this.failing) console.warn(`heartbeat: edge ${this.opts.edgeUrl} unreachable: ${err instanceof Error ? err.message : String(err)}`);
      this.failing = true;
    }
  }

  private async post(body: SidecarHeartbeat): Promise<void> {
    const url = this.opts.edgeUrl + EDGE_SIDECARS_PATH;
    const json = JSON.stringify(body);
    const signature = await signRequest(this.opts.secret, { method: "POST", url, body: json });
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...signature },
      body: json,
      signal: AbortSignal.timeout(Math.max(1000, this.opts.intervalMs)),
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  }
}
