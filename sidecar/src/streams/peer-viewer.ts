// The life of one viewer's peer connection, whatever feeds it (a file, a live publisher): ICE must complete within
// a time limit, an ICE failure or the feed's end ends it with exactly one event, and a close from the edge ends it
// silently. Subclasses start sending in onConnected() and stop their feed in releaseFeed().
import type { RTCPeerConnection } from "werift";
import { Info, StreamStatus } from "@edge-vod/shared";

/** A PLI soon after a keyframe went out is about that keyframe still in flight; skipping would cost a whole GOP. */
export const PLI_GRACE_MS = 250;
/** Time after the last packet of a file before the peer connection is closed, so the tail reaches the browser. */
const DRAIN_MS = 300;

export type EndStatus = typeof StreamStatus.STOPPED | typeof StreamStatus.FAILED;

export interface ViewerEvents {
  playing(): void;
  ended(status: EndStatus, info?: string): void;
}

export abstract class PeerViewer {
  protected state: "negotiating" | "playing" | "closed" = "negotiating";
  private readonly iceTimer: NodeJS.Timeout;
  private disposed: Promise<void> | undefined;

  constructor(
    protected readonly pc: RTCPeerConnection,
    protected readonly events: ViewerEvents,
    iceTimeoutMs: number,
  ) {
    this.iceTimer = setTimeout(() => this.end(StreamStatus.FAILED, Info.FAILED_BY_ICE_TIMEOUT), iceTimeoutMs);
    pc.connectionStateChange.subscribe((s) => {
      if (s === "connected" && this.state === "negotiating") {
        clearTimeout(this.iceTimer);
        this.state = "playing";
        this.onConnected();
      } else if (s === "failed") {
        this.end(StreamStatus.FAILED, Info.FAILED_BY_ICE_ERROR);
      }
    });
  }

  /** ICE and DTLS are up: start sending (and report PLAYING when it does). */
  protected abstract onConnected(): void;

  /** Stops what feeds this viewer; called once, with the peer connection's close. */
  protected abstract releaseFeed(): Promise<unknown>;

  /** Ends the viewer with one event to the client. */
  protected end(status: EndStatus, info?: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.events.ended(status, info);
    void this.dispose();
  }

  /** PLAYING from ICE + DTLS on, for the REST API's lists. */
  get status(): typeof StreamStatus.PENDING | typeof StreamStatus.PLAYING {
    return this.state === "playing" ? StreamStatus.PLAYING : StreamStatus.PENDING;
  }

  /** Ends the viewer on an operator's request: STOPPED with `info` to the client, like the end of the file. */
  terminate(info: string): void {
    this.end(StreamStatus.STOPPED, info);
  }

  /** Ends the viewer without any event (the edge already told the client). */
  async close(): Promise<void> {
    this.state = "closed";
    await this.dispose();
  }

  protected dispose(): Promise<void> {
    this.disposed ??= (async () => {
      clearTimeout(this.iceTimer);
      await Promise.allSettled([this.releaseFeed(), this.pc.close()]);
    })();
    return this.disposed;
  }

  /** The file is over: STOPPED once the tail had time to reach the browser; a close from the edge meanwhile wins. */
  protected stopAfterDrain(): void {
    setTimeout(() => {
      if (this.disposed === undefined) this.end(StreamStatus.STOPPED);
    }, DRAIN_MS);
  }
}
