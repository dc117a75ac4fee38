// A packet source's failure goes to its player's onError once, even when it happened before the player subscribed:
// sources start reading (or preparing) from creation on, and the player subscribes later.
import { Info } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";

export class LateError {
  private error: MediaError | undefined;
  private delivered = false;
  private fn: ((err: MediaError) => void) | undefined;

  constructor(private readonly what: string) {}

  get failed(): boolean {
    return this.error !== undefined;
  }

  get handler(): ((err: MediaError) => void) | undefined {
    return this.fn;
  }

  /** A handler set after the failure gets it on a microtask, not inside the setter. */
  set handler(fn: ((err: MediaError) => void) | undefined) {
    this.fn = fn;
    if (fn && this.error && !this.delivered) queueMicrotask(() => this.deliver());
  }

  /** Records the first failure (later ones are dropped) and delivers it if a handler is set. */
  report(err: unknown): void {
    if (this.error) return;
    this.error = err instanceof MediaError ? err : new MediaError(Info.FAILED_TO_READ_FILE, String(err));
    this.deliver();
  }

  private deliver(): void {
    const fn = this.fn;
    if (!fn || !this.error || this.delivered) return;
    this.delivered = true;
    try {
      fn(this.error);
    } catch (err) {
      // The handler runs on a read path, where a throw would only surface as an unhandled rejection.
      console.error(`${this.what}: onError handler threw`, err);
    }
  }
}
