// The streams of one kind on this sidecar (vod viewers, live viewers, publishers), keyed by the edge session
// (sessionRef) and the SDK's mediaSessionId: what the edge's stop and release calls address.

export interface Closable {
  close(): Promise<unknown>;
}

export class StreamRegistry<T extends Closable> {
  private readonly map = new Map<string, T>();

  private static key(sessionRef: string, mediaSessionId: string): string {
    return `${sessionRef}\u0000${mediaSessionId}`;
  }

  get size(): number {
    return this.map.size;
  }

  has(sessionRef: string, mediaSessionId: string): boolean {
    return this.map.has(StreamRegistry.key(sessionRef, mediaSessionId));
  }

  values(): IterableIterator<T> {
    return this.map.values();
  }

  add(sessionRef: string, mediaSessionId: string, stream: T): void {
    this.map.set(StreamRegistry.key(sessionRef, mediaSessionId), stream);
  }

  /** Removes the entry if it is still `stream` (a later stream may reuse the id). */
  forget(sessionRef: string, mediaSessionId: string, stream: T): void {
    const k = StreamRegistry.key(sessionRef, mediaSessionId);
    if (this.map.get(k) === stream) this.map.delete(k);
  }

  /** Removes and returns the stream, for the caller to end. */
  take(sessionRef: string, mediaSessionId: string): T | undefined {
    const k = StreamRegistry.key(sessionRef, mediaSessionId);
    const stream = this.map.get(k);
    this.map.delete(k);
    return stream;
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
    await Promise.allSettled(mine.map(([, s]) => s.close()));
    return mine.length;
  }

  async closeAll(): Promise<void> {
    const all = [...this.map.values()];
    this.map.clear();
    await Promise.allSettled(all.map((s) => s.close()));
  }
}
