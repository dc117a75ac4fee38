// A packet source whose tracks are not known yet: a copy still being prepared has no moov until ffmpeg has written
// its first fragment. Answering the offer and ICE + DTLS (about 200 ms) then run while ffmpeg starts, instead of
// after it; the viewer's clock starts only once the source is ready (see VodViewer.startSending).
import type { MediaError } from "../files/file-access.ts";
import { LateError } from "./late-error.ts";
import type { KeyframeSide, MediaPacket, SeekableSource } from "./packet-source.ts";

class DeferredPacketSource implements SeekableSource {
  private inner: SeekableSource | undefined;
  private closed = false;
  private skipVideo = false;
  /** A seek before the source exists: applied to it first. */
  private pendingSeek: { positionMs: number; side: KeyframeSide } | undefined;
  private readonly failure = new LateError("deferred packet source");
  private readonly started: Promise<void>;

  constructor(make: Promise<SeekableSource>) {
    this.started = make.then(
      async (source) => {
        if (this.closed) {
          await source.close();
          return;
        }
        this.inner = source;
        source.onError = (err) => this.fail(err);
        if (this.pendingSeek) source.seek(this.pendingSeek.positionMs, this.pendingSeek.side);
        if (this.skipVideo) source.skipVideoToNextKeyframe();
      },
      (err: unknown) => this.fail(err),
    );
  }

  get periodSec(): number {
    return this.inner?.periodSec ?? 0;
  }

  get videoStartMs(): number | undefined {
    return this.inner?.videoStartMs;
  }

  seek(positionMs: number, side: KeyframeSide): void {
    if (this.inner) this.inner.seek(positionMs, side);
    else this.pendingSeek = { positionMs, side };
  }

  get ended(): boolean {
    return this.closed || this.failure.failed || (this.inner?.ended ?? false);
  }

  get onError(): ((err: MediaError) => void) | undefined {
    return this.failure.handler;
  }

  set onError(handler: ((err: MediaError) => void) | undefined) {
    this.failure.handler = handler;
  }

  ready(): Promise<void> {
    // The inner source's latest window: after a seek, that of the new position.
    return this.started.then(() => (this.closed ? undefined : this.inner?.ready()));
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
    if (!this.closed) this.failure.report(err);
  }
}

/** A source that takes nothing until `make` resolves, then is that source; fails with `make`'s rejection. */
export function deferredPacketSource(make: Promise<SeekableSource>): SeekableSource {
  return new DeferredPacketSource(make);
}
