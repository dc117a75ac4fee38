// Finished recordings on their way to the bucket (`<S3_PREFIX><recordName>`). The file stays in RECORD_DIR, and
// plays from there, until the object is in the bucket and checked (its size, and the ETag the upload got); only
// then is the record hook told (with the key) and the local copy deleted. Every step is in a journal entry, so a
// sidecar that dies, or a bucket that is down for hours, delays an upload and loses nothing:
//
//   queued ──► uploading (multipart: the upload id and each finished part are journalled) ──► uploaded ──► done
//
// A restart resumes a multipart upload at its next part; an attempt whose answer was lost is recognised by a HEAD
// (same size and the ETag its bytes must give), so no recording is uploaded twice. Failures retry with backoff (1 s
// doubling to a minute), forever. Files up to PART_BYTES go up in one PUT, larger ones in fixed PART_BYTES parts
// (R2 wants every part but the last the same size). One upload at a time: recordings must not starve playback.
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { StoreError, type ObjectHead, type ObjectStore } from "../store/object-store.ts";
import { Journal } from "./journal.ts";
import { uploadFileParts } from "../store/file-upload.ts";
import type { RecordHook, RecordHookEvent } from "./record-hook.ts";

/** Size of every part but the last; files up to this size go up in one PUT. */
export const PART_BYTES = 8 * 1024 * 1024;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 60_000;

const HookEvent = z.object({
  streamName: z.string(),
  recordName: z.string(),
  mediaSessionId: z.string(),
  durationMs: z.number(),
  bytes: z.number(),
  startTimeMs: z.number(),
  endTimeMs: z.number(),
});

const Entry = z.object({
  name: z.string().min(1),
  key: z.string().min(1),
  size: z.number().int().nonnegative(),
  /** The ETag the bytes must give: MD5 for one PUT, MD5 of the parts' MD5s and their count for a multipart upload. */
  expectedEtag: z.string(),
  event: HookEvent,
  delivery: z.string(),
  uploadId: z.string().optional(),
  parts: z.array(z.object({ partNumber: z.number().int().positive(), etag: z.string() })).default([]),
  /** Set once the object is in the bucket and checked. */
  etag: z.string().optional(),
  queuedAt: z.number(),
});
type Entry = z.infer<typeof Entry>;

export interface UploadStats {
  /** Recordings waiting for (or in) their upload. */
  pending: number;
  uploaded: number;
  /** Failed attempts (each is retried). */
  failures: number;
  bytes: number;
  /** The last attempt's failure while uploads are failing. */
  lastError?: string;
}

export interface UploadQueueOptions {
  /** RECORD_DIR: the files, and the journal in its `.edge-vod/uploads`. */
  dir: string;
  store: ObjectStore;
  /** S3_PREFIX. */
  prefix: string;
  /** Told once per recording, after the upload, with the key. */
  hook: RecordHook;
  /** The set of pending names changed (the heartbeat tells the edge where they are). */
  onChange?: () => void;
  partBytes?: number;
}

export class UploadQueue {
  readonly stats: UploadStats = { pending: 0, uploaded: 0, failures: 0, bytes: 0 };
  private readonly journal: Journal<Entry>;
  private readonly entries = new Map<string, Entry>();
  private readonly retryAt = new Map<string, number>();
  private readonly attempts = new Map<string, number>();
  /** Removed while their upload was in flight: what that upload puts in the bucket is deleted again. */
  private readonly cancelled = new Set<Entry>();
  private busy: Entry | undefined;
  /** Uploaded, their hook under way: not picked again. */
  private readonly announcing = new Set<Entry>();
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly partBytes: number;

  constructor(private readonly opts: UploadQueueOptions) {
    this.journal = new Journal(path.join(opts.dir, ".edge-vod", "uploads"));
    this.partBytes = opts.partBytes ?? PART_BYTES;
  }

  /** Loads what an earlier run left to upload and starts working. */
  async start(): Promise<void> {
    for (const { id, value } of await this.journal.list()) {
      const parsed = Entry.safeParse(value);
      if (!parsed.success) {
        console.error(`uploads: journal entry ${id} is not one, skipped: ${parsed.error.message}`);
        continue;
      }
      this.entries.set(parsed.data.name, parsed.data);
    }
    this.stats.pending = this.entries.size;
    if (this.entries.size > 0) console.log(`uploads: ${this.entries.size} recording(s) from an earlier run still to upload`);
    this.running = this.loop();
  }

  /** The object key of a record name. */
  keyOf(name: string): string {
    return this.opts.prefix + name;
  }

  /** Queues a finished recording (its file in RECORD_DIR); durable once this resolves. */
  async enqueue(event: RecordHookEvent): Promise<void> {
    // Queued already (a recovery that redoes a hand-over a crash cut short): the journalled upload goes on.
    if (this.entries.has(event.recordName)) return;
    const file = path.join(this.opts.dir, event.recordName);
    const { size, etag } = await expectedEtag(file, this.partBytes);
    const entry: Entry = {
      name: event.recordName,
      key: this.keyOf(event.recordName),
      size,
      expectedEtag: etag,
      event,
      delivery: randomUUID(),
      parts: [],
      queuedAt: Date.now(),
    };
    await this.journal.put(Journal.idOf(entry.name), entry);
    this.entries.set(entry.name, entry);
    this.stats.pending = this.entries.size;
    this.opts.onChange?.();
    this.wake?.();
  }

  /** Record names still on this host's disk only, oldest first. */
  pendingNames(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Drops a pending upload (records/delete); the caller deletes the file. An upload in flight finishes first. */
  async remove(name: string): Promise<boolean> {
    const entry = this.entries.get(name);
    if (!entry) return false;
    this.cancelled.add(entry);
    this.entries.delete(name);
    this.stats.pending = this.entries.size;
    await this.journal.remove(Journal.idOf(name));
    if (entry.uploadId) await this.opts.store.abortMultipart(entry.key, entry.uploadId).catch(() => undefined);
    this.opts.onChange?.();
    return true;
  }

  /** Resolves once nothing is pending (tests, shutdown reports). */
  idle(): Promise<void> {
    if (this.entries.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Stops after the request in flight, waiting for it a few seconds at most: the journal resumes it next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await Promise.race([this.running, new Promise((r) => setTimeout(r, 3000).unref())]);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      for (const e of this.cancelled) if (this.busy !== e) this.cancelled.delete(e);
      const now = Date.now();
      let next: Entry | undefined;
      let soonest = Infinity;
      for (const e of this.entries.values()) {
        if (this.announcing.has(e)) continue;
        const at = this.retryAt.get(e.name) ?? 0;
        if (at <= now) {
          next = e;
          break;
        }
        soonest = Math.min(soonest, at);
      }
      if (!next) {
        if (this.entries.size === 0) for (const w of this.idleWaiters.splice(0)) w();
        await new Promise<void>((resolve) => {
          const timer = Number.isFinite(soonest) ? setTimeout(resolve, soonest - now) : undefined;
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
        continue;
      }
      this.busy = next;
      try {
        await this.upload(next);
        this.retryAt.delete(next.name);
        this.attempts.delete(next.name);
        delete this.stats.lastError;
      } catch (err) {
        if (this.stopped) break;
        const n = (this.attempts.get(next.name) ?? 0) + 1;
        this.attempts.set(next.name, n);
        const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (n - 1));
        this.retryAt.set(next.name, Date.now() + wait);
        this.stats.failures++;
        this.stats.lastError = `${next.name}: ${text(err)}`;
        // Once, then every 10th attempt: an outage of hours must not fill the log.
        if (n === 1 || n % 10 === 0) console.warn(`uploads: ${next.name} (attempt ${n}): ${text(err)}; retrying in ${wait} ms, the file stays on disk`);
      } finally {
        this.busy = undefined;
      }
    }
  }

  private async upload(entry: Entry): Promise<void> {
    const { store } = this.opts;
    const file = path.join(this.opts.dir, entry.name);
    if (!entry.etag) {
      const st = await fs.stat(file).catch(() => undefined);
      if (!st) {
        // Deleted by hand (or by records/delete while this ran): nothing left to upload.
        console.error(`uploads: ${entry.name} is gone from ${this.opts.dir}; dropping its upload`);
        await this.forget(entry);
        return;
      }
      if (st.size !== entry.size) throw new Error(`${entry.name} changed size on disk (${st.size}, queued at ${entry.size})`);
      const there = await store.head(entry.key);
      if (there && ours(there, entry)) {
        // An earlier attempt went through and its answer was lost.
        entry.etag = there.etag;
      } else if (there) {
        // Another recording has that key (another host, a name reused by hand): never overwritten.
        throw new Error(`the bucket already has another ${entry.key} (${there.size} bytes); not overwriting it`);
      } else {
        entry.etag = entry.size <= this.partBytes ? await this.putWhole(entry, file) : await this.putParts(entry, file);
      }
      const check = await store.head(entry.key);
      if (!check || check.size !== entry.size || check.etag !== entry.etag) {
        const got = check ? `${check.size} bytes, ETag ${check.etag}` : "nothing";
        delete entry.etag;
        throw new Error(`the bucket shows ${got} for ${entry.key}, not ${entry.size} bytes`);
      }
      if (this.cancelled.delete(entry)) {
        await store.delete(entry.key);
        await this.forget(entry);
        return;
      }
      if (entry.etag !== entry.expectedEtag) console.warn(`uploads: ${entry.key}: the store's ETag ${entry.etag} is not the MD5 form ${entry.expectedEtag} (encrypted bucket?); size checked`);
      await this.persist(entry);
      this.stats.uploaded++;
      this.stats.bytes += entry.size;
      console.log(`uploads: ${entry.name} is in ${store.description} as ${entry.key} (${entry.size} bytes)`);
    }
    await fs.rm(file, { force: true });
    // The entry stays (journalled as uploaded) until the hook got it or gave up: a restart meanwhile tells it again,
    // with the same delivery id. The queue goes on with the next upload.
    this.announcing.add(entry);
    void Promise.resolve(this.opts.hook({ ...entry.event, key: entry.key, store: store.description }, { delivery: entry.delivery }))
      .catch(() => undefined)
      .then(() => this.forget(entry))
      .finally(() => this.announcing.delete(entry));
  }

  private async putWhole(entry: Entry, file: string): Promise<string> {
    const bytes = await fs.readFile(file);
    return (await this.opts.store.put(entry.key, bytes, { contentType: "video/mp4", metadata: meta(entry) })).etag;
  }

  private async putParts(entry: Entry, file: string): Promise<string> {
    const { store } = this.opts;
    if (!entry.uploadId) {
      entry.uploadId = await store.createMultipart(entry.key, { contentType: "video/mp4", metadata: meta(entry) });
      entry.parts = [];
      await this.persist(entry);
    }
    try {
      // Each finished part is journalled: a restart resumes at the next one.
      await uploadFileParts(store, entry.key, entry.uploadId, file, entry.size, this.partBytes, entry.parts, () => this.persist(entry));
    } catch (err) {
      // The upload expired or was aborted on the server: start it over.
      if (err instanceof StoreError && err.kind === "not-found") {
        delete entry.uploadId;
        entry.parts = [];
        await this.persist(entry);
      }
      throw err;
    }
    try {
      const { etag } = await store.completeMultipart(entry.key, entry.uploadId, entry.parts);
      return etag;
    } catch (err) {
      // An answer lost after the server completed it: the object is there, with the bytes' ETag.
      const there = await store.head(entry.key).catch(() => undefined);
      if (there && ours(there, entry)) return there.etag;
      if (err instanceof StoreError && (err.kind === "not-found" || err.kind === "bad-request")) {
        delete entry.uploadId;
        entry.parts = [];
        await this.persist(entry);
      }
      throw err;
    }
  }

  /** Journals the entry's progress, unless it was removed meanwhile (its upload still in flight). */
  private async persist(entry: Entry): Promise<void> {
    if (this.entries.get(entry.name) !== entry) throw new Error(`${entry.name}: removed while it uploaded`);
    await this.journal.put(Journal.idOf(entry.name), entry);
  }

  /** Drops a finished (or dropped) entry; one removed meanwhile, or replaced by a new recording of its name, is left be. */
  private async forget(entry: Entry): Promise<void> {
    if (this.entries.get(entry.name) !== entry) return;
    this.entries.delete(entry.name);
    await this.journal.remove(Journal.idOf(entry.name));
    // A hook that finished while the loop sleeps: whoever waits for an empty queue hears it now.
    if (this.entries.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    this.stats.pending = this.entries.size;
    this.opts.onChange?.();
  }
}

/** What the bucket's ETag must be for these bytes, uploaded whole or in `partBytes` parts. */
export async function expectedEtag(file: string, partBytes: number): Promise<{ size: number; etag: string }> {
  const h = await fs.open(file, "r");
  try {
    const { size } = await h.stat();
    const whole = createHash("md5");
    const parts: Buffer[] = [];
    const buf = Buffer.allocUnsafe(Math.min(partBytes, 1 << 20));
    let part = createHash("md5");
    let inPart = 0;
    for (let pos = 0; pos < size; ) {
      const want = Math.min(buf.length, size - pos, partBytes - inPart);
      const { bytesRead } = await h.read(buf, 0, want, pos);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      whole.update(chunk);
      part.update(chunk);
      pos += bytesRead;
      inPart += bytesRead;
      if (inPart === partBytes) {
        parts.push(part.digest());
        part = createHash("md5");
        inPart = 0;
      }
    }
    if (size <= partBytes) return { size, etag: whole.digest("hex") };
    if (inPart > 0) parts.push(part.digest());
    return { size, etag: `${createHash("md5").update(Buffer.concat(parts)).digest("hex")}-${parts.length}` };
  } finally {
    await h.close();
  }
}

/**
 * Object metadata: what listings show without reading the file, and which upload made it (a store whose ETags are
 * not MD5s, an encrypted bucket, still tells its own object from another by it).
 */
function meta(entry: Entry): Record<string, string> {
  return {
    "edge-vod-duration-ms": String(Math.round(entry.event.durationMs)),
    "edge-vod-stream": encodeURIComponent(entry.event.streamName),
    "edge-vod-delivery": entry.delivery,
  };
}

/** Whether the object under the key is this entry's upload (an attempt whose answer was lost). */
function ours(there: ObjectHead, entry: Entry): boolean {
  return there.size === entry.size && (there.etag === entry.expectedEtag || there.metadata["edge-vod-delivery"] === entry.delivery);
}

function text(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
