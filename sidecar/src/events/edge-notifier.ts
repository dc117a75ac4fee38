// Delivers stream events to the edge. Events of one stream must arrive in order (PLAYING before STOPPED), so each
// stream has a promise chain; a failed POST is retried a few times because a lost STOPPED or FAILED would leave the
// browser's stream hanging. State reports (seek, pause, position) are not retried and the latest one replaces one
// still waiting: a position is stale by the next second anyway.
import { signRequest, type SidecarEvent, type StreamEvent, type VodStateEvent } from "@edge-vod/shared";

const RETRY_DELAYS_MS = [200, 1000, 3000];

export type EventSink = (eventsUrl: string, event: StreamEvent) => void;
export type StateSink = (eventsUrl: string, event: VodStateEvent) => void;

const keyOf = (e: { sessionRef: string; mediaSessionId: string }) => `${e.sessionRef}\u0000${e.mediaSessionId}`;

export class EdgeNotifier {
  private readonly chains = new Map<string, Promise<void>>();
  /** The newest state report of a stream not posted yet, by stream key. */
  private readonly states = new Map<string, { url: string; event: VodStateEvent }>();

  constructor(
    private readonly secret: string,
    /** Sees every event as it is queued (the metrics count failures). */
    private readonly observe?: (event: StreamEvent) => void,
  ) {}

  readonly send: EventSink = (eventsUrl, event) => {
    this.observe?.(event);
    this.enqueue(keyOf(event), () => this.post(eventsUrl, event));
  };

  readonly sendState: StateSink = (eventsUrl, event) => {
    const key = keyOf(event);
    const waiting = this.states.has(key);
    this.states.set(key, { url: eventsUrl, event });
    if (waiting) return;
    this.enqueue(key, () => {
      const latest = this.states.get(key);
      this.states.delete(key);
      return latest ? this.post(latest.url, latest.event, 0) : Promise.resolve();
    });
  };

  /** Runs `task` after everything queued for the stream `key` before it. */
  private enqueue(key: string, task: () => Promise<void>): void {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const next = prev.then(task);
    this.chains.set(key, next);
    void next.finally(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }

  private async post(url: string, event: SidecarEvent, retries = RETRY_DELAYS_MS.length): Promise<void> {
    const what = "status" in event ? event.status : "state";
    for (let attempt = 0; ; attempt++) {
      try {
        const body = JSON.stringify(event);
        // Signed afresh on every attempt: a retry is a new request within the edge's time window.
        const signature = await signRequest(this.secret, { method: "POST", url, body });
        const res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", ...signature },
          body,
          signal: AbortSignal.timeout(5000),
        });
        await res.body?.cancel();
        // 4xx means the edge refused the event itself (gone session, bad secret): retrying cannot help.
        if (res.ok || (res.status >= 400 && res.status < 500)) {
          if (!res.ok) console.warn(`events: edge answered ${res.status} for ${what} of ${event.mediaSessionId}`);
          return;
        }
      } catch (err) {
        if (attempt >= retries) {
          console.warn(`events: giving up on ${what} of ${event.mediaSessionId}: ${String(err)}`);
          return;
        }
      }
      const delay = RETRY_DELAYS_MS[attempt];
      if (delay === undefined || attempt >= retries) return;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
