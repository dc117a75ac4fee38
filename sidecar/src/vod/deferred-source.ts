// A packet source whose tracks are not known yet: a copy still being prepared has no moov until ffmpeg has written
// its first fragment. Answering the offer and ICE + DTLS (about 200 ms) then run while ffmpeg starts, instead of
// after it; the viewer's clock starts only once the source is ready (see VodViewer.startSending).
import { Info } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";
import type { MediaPacket, PacketSource } from "./packet-source.ts";

export type PeriodicSource = PacketSource & { readonly periodSec: number };

class DeferredPacketSource implements PeriodicSource {
  private inner: PeriodicSource | undefined;
  private closed = false;
  private skipVideo = false;
  private error: MediaError | undefined;
  private errorDelivered = false;
  private handler: ((err: MediaError) => void) | undefined;
  private readonly started: Promise<void>;

  constructor(make: Promise<PeriodicSource>) {
    this.started = make.then(
      async (source) => {
        if (this.closed) {
          await source.close();
          return;
        }
        this.inner = source;
        source.onError = (err) => this.fail(err);
        if (this.skipVideo) source.skipVideoToNextKeyframe();
        await source.ready();
      },
      (err: unknown) => this.fail(err),
    );
  }

  get periodSec(): number {
    return this.inner?.periodSec ?? 0;
  }

  get ended(): boolean {
    return this.closed || this.error !== undefined || (this.inner?.ended ?? false);
  }

  get onError(): ((err: MediaError) => void) | undefined {
    return this.handler;
  }

  set onError(handler: ((err: MediaError) => void) | undefined) {
    this.handler = handler;
    if (handler && this.error && !this.errorDelivered) queueMicrotask(() => this.deliver());
  }

  ready(): Promise<void> {
    return this.started;
  }

  take(untilMs: number, out: MediaPacket[]): number {
    return this.inner && !this.closed ? this.inner.take(untilMs, out) : 0;
  }

  skipVideoToNextKeyframe(): void {
    if (this.inner) this.inner.skipVideoToNextKeyframe();
    else this.skipVideo = true;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.started;
    await this.inner?.close();
  }

  private fail(err: unknown): void {
    if (this.closed || this.error) return;
    this.error = err instanceof MediaError ? err : new MediaError(Info.FAILED_TO_READ_FILE, String(err));
    this.deliver();
  }

  private deliver(): void {
    const handler = this.handler;
    if (!handler || !this.error || this.errorDelivered) return;
    this.errorDelivered = true;
    try {
      handler(this.error);
    } catch (err) {
      console.error("deferred packet source: onError handler threw", err);
    }
  }
}

/** A source that takes nothing until `make` resolves, then is that source; fails with `make`'s rejection. */
export function deferredPacketSource(make: Promise<PeriodicSource>): PeriodicSource {
  return new DeferredPacketSource(make);
}
