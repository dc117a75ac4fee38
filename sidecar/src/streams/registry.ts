// The streams of one kind on this sidecar (vod viewers, live viewers, publishers), keyed by the edge session
// (sessionRef) and the SDK's mediaSessionId: what the edge's stop and release calls address.

export interface Closable {
  close(): Promise<unknown>;
}

/** What the REST API lists about a stream besides its state. */
export interface StreamMeta {
  /** What is served: `vod://f.mp4`, `vod-live://f.mp4`, a published name. */
  name: string;
  /** The name the client asked for, when another (see PlayRequest.alias). */
  alias?: string;
  /** ms since epoch of the request. */
  startTime: number;
  /** A publish's `{login}`, for recordings started later on demand. */
  login?: string;
}

export interface RegistryEntry<T> {
  readonly sessionRef: string;
  readonly mediaSessionId: string;
  readonly stream: T;
  readonly meta: StreamMeta;
}

export class StreamRegistry<T extends Closable> {
  private readonly map = new Map<string, RegistryEntry<T>>();

  private static key(sessionRef: string, mediaSessionId: string): string {
    return `${sessionRef}\u0000${mediaSessionId}`;
  }

  get size(): number {
    return this.map.size;
  }

  has(sessionRef: string, mediaSessionId: string): boolean {
    return this.map.has(StreamRegistry.key(sessionRef, mediaSessionId));
  }

  *values(): IterableIterator<T> {
    for (const e of this.map.values()) yield e.stream;
  }

  entries(): IterableIterator<RegistryEntry<T>> {
    return this.map.values();
  }

  get(sessionRef: string, mediaSessionId: string): RegistryEntry<T> | undefined {
    return this.map.get(StreamRegistry.key(sessionRef, mediaSessionId));
  }

  add(sessionRef: string, mediaSessionId: string, stream: T, meta: StreamMeta): void {
    this.map.set(StreamRegistry.key(sessionRef, mediaSessionId), { sessionRef, mediaSessionId, stream, meta });
  }

  /** Removes the entry if it is still `stream` (a later stream may reuse the id). */
  forget(sessionRef: string, mediaSessionId: string, stream: T): void {
    const k = StreamRegistry.key(sessionRef, mediaSessionId);
    if (this.map.get(k)?.stream === stream) this.map.delete(k);
  }

  /** Removes and returns the stream, for the caller to end. */
  take(sessionRef: string, mediaSessionId: string): T | undefined {
    const k = StreamRegistry.key(sessionRef, mediaSessionId);
    const entry = this.map.get(k);
    this.map.delete(k);
    return entry?.stream;
  }

  /** Ends a stream on the edge's request (no event: the edge tells the client). Returns whether it existed. */
  async stop(sessionRef: string, mediaSessionId: string): Promise<boolean> {
    const stream = this.take(sessionRef, mediaSessionId);
    if (!stream) return false;
    await stream.close();
    return true;
  }

  /** Ends every stream of a session that is gone. */
  async release(sessionRef: string): Promise<number> {
    const prefix = `${sessionRef}\u0000`;
    const mine = [...this.map.entries()].filter(([k]) => k.startsWith(prefix));
    for (const [k] of mine) this.map.delete(k);
    await Promise.allSettled(mine.map(([, e]) => e.stream.close()));
    return mine.length;
  }

  async closeAll(): Promise<void> {
    const all = [...this.map.values()];
    this.map.clear();
    await Promise.allSettled(all.map((e) => e.stream.close()));
  }
}

/** A new stream's meta from its request; `startTime` is now. */
export function streamMeta(req: { name: string; alias?: string | undefined }): StreamMeta {
  return { name: req.name, ...(req.alias !== undefined ? { alias: req.alias } : {}), startTime: Date.now() };
}
