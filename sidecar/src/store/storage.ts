// The bucket as this sidecar uses it (S3_* settings): the store, the host's block cache over it, media access to
// the media names under S3_PREFIX, and whether the store answers, for health and for a clear line in the log.
import { FolderStore } from "./folder-store.ts";
import { BlockCache } from "./block-cache.ts";
import { S3Store, type S3StoreConfig } from "./s3-store.ts";
import type { ObjectStore, StoreError } from "./object-store.ts";
import { ObjectAccess } from "../files/object-access.ts";

export interface StorageConfig extends S3StoreConfig {
  /** An http(s) S3 endpoint, or `file:///path` for a folder that stands in for a bucket. */
  endpoint: string;
  /** "" or ending in "/": media names, recordings and the internal folder all live under it. */
  prefix: string;
  blockBytes: number;
  cacheBytes: number;
}

/** What health says of the store: `ok` false with the store's own words when it refuses or does not answer. */
export interface StorageStatus {
  store: string;
  endpoint: string;
  prefix: string;
  ok: boolean;
  /** The last failure while not ok. */
  error?: string;
  /** ms since epoch of the last request that got an answer. */
  lastOkAt?: number;
}

/** How often the store is asked whether it answers when nothing else asks it. */
const PROBE_MS = 30_000;

export class Storage {
  readonly store: ObjectStore;
  readonly blocks: BlockCache;
  readonly media: ObjectAccess;
  readonly prefix: string;
  private readonly state: StorageStatus;
  private timer: NodeJS.Timeout | undefined;
  private loggedAt = 0;

  constructor(cfg: StorageConfig) {
    this.prefix = cfg.prefix;
    const url = new URL(cfg.endpoint);
    this.state = { store: "", endpoint: url.protocol === "file:" ? url.href : url.origin, prefix: cfg.prefix, ok: true };
    const observe = (err: StoreError | undefined) => this.observe(err);
    this.store =
      url.protocol === "file:"
        ? new FolderStore(decodeURIComponent(url.pathname))
        : new S3Store(cfg, observe);
    this.state.store = this.store.description;
    this.blocks = new BlockCache(cfg.blockBytes, cfg.cacheBytes);
    this.media = new ObjectAccess(this.store, cfg.prefix, this.blocks);
  }

  get status(): StorageStatus {
    return { ...this.state };
  }

  /** Asks the store once now (the answer is logged when it is a failure) and then every PROBE_MS. */
  async start(): Promise<void> {
    await this.probe();
    this.timer = setInterval(() => void this.probe(), PROBE_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async probe(): Promise<void> {
    try {
      await this.store.list(this.prefix, { max: 1 });
      this.observe(undefined);
    } catch (err) {
      this.observe(err as StoreError);
    }
  }

  private observe(err: StoreError | undefined): void {
    if (!err) {
      if (!this.state.ok) console.log(`storage: ${this.state.store} at ${this.state.endpoint} answers again`);
      this.state.ok = true;
      delete this.state.error;
      this.state.lastOkAt = Date.now();
      return;
    }
    // Once per outage, and again at most once a minute while it lasts: every read of every viewer reports here.
    const now = Date.now();
    if (this.state.ok || now - this.loggedAt > 60_000) {
      this.loggedAt = now;
      const why = err.kind === "refused" ? "refuses access (check S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_BUCKET, S3_REGION)" : "does not answer";
      console.error(`storage: ${this.state.store} at ${this.state.endpoint} ${why}: ${err.message}`);
    }
    this.state.ok = false;
    this.state.error = err.message;
  }
}
