// Blocks of objects read from the store, shared by every reader on this host: each viewer of a bucket file, its
// index parse and its prepare's probes read through here, so N viewers of one file cost one GET per block, not N.
// One fetch in flight per block (later askers wait for it), least recently used blocks evicted past the budget.
// Keys name a version (the object's ETag is part of the file key), so a replaced object never serves old blocks
// under its new version or the other way round.

export interface BlockCacheStats {
  /** Bytes of blocks held now. */
  bytes: number;
  /** Blocks served without a fetch of their own (held, or joined a fetch in flight). */
  hits: number;
  /** Blocks fetched from the store. */
  misses: number;
  /** Bytes fetched from the store. */
  fetchedBytes: number;
}

export class BlockCache {
  private readonly held = new Map<string, Uint8Array>();
  private readonly inFlight = new Map<string, Promise<Uint8Array>>();
  readonly stats: BlockCacheStats = { bytes: 0, hits: 0, misses: 0, fetchedBytes: 0 };

  constructor(
    /** Size of every block but a file's last. */
    readonly blockBytes: number,
    private readonly maxBytes: number,
  ) {}

  /** Block `index` of `fileKey`, from the cache or from `fetch` (called at most once at a time per block). */
  get(fileKey: string, index: number, fetch: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const key = `${index}\u0000${fileKey}`;
    const block = this.held.get(key);
    if (block) {
      // Map order is the LRU order: the newest use goes to the end.
      this.held.delete(key);
      this.held.set(key, block);
      this.stats.hits++;
      return Promise.resolve(block);
    }
    const pending = this.inFlight.get(key);
    if (pending) {
      this.stats.hits++;
      return pending;
    }
    this.stats.misses++;
    const fetching = fetch().then(
      (bytes) => {
        this.inFlight.delete(key);
        this.stats.fetchedBytes += bytes.length;
        this.put(key, bytes);
        return bytes;
      },
      (err: unknown) => {
        this.inFlight.delete(key);
        throw err;
      },
    );
    this.inFlight.set(key, fetching);
    return fetching;
  }

  /** A block fetched by another way (the first read of an open): counted and kept as if fetched here. */
  offer(fileKey: string, index: number, bytes: Uint8Array): void {
    const key = `${index}\u0000${fileKey}`;
    this.stats.misses++;
    this.stats.fetchedBytes += bytes.length;
    if (this.held.has(key) || this.inFlight.has(key)) return;
    this.put(key, bytes);
  }

  has(fileKey: string, index: number): boolean {
    const key = `${index}\u0000${fileKey}`;
    return this.held.has(key) || this.inFlight.has(key);
  }

  private put(key: string, bytes: Uint8Array): void {
    if (bytes.length > this.maxBytes) return;
    const old = this.held.get(key);
    if (old) this.stats.bytes -= old.length;
    this.held.set(key, bytes);
    this.stats.bytes += bytes.length;
    for (const [k, b] of this.held) {
      if (this.stats.bytes <= this.maxBytes) break;
      this.held.delete(k);
      this.stats.bytes -= b.length;
    }
  }
}
