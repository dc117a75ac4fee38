// The finished recordings this sidecar can name: bare `*.mp4` regular files in the records folder (except those
// being recorded), and, with a bucket, the recordings under S3_PREFIX. A file on disk whose upload is pending is
// listed as `pending`, one in the bucket as `bucket`; the edge merges the lists of every sidecar.
import fs from "node:fs/promises";
import path from "node:path";
import { checkRecordName, type RecordEntry } from "@edge-vod/shared";
import { LocalDiskAccess } from "../files/local-disk.ts";
import { movieDurationMs } from "../mp4/movie-duration.ts";
import type { UploadQueue } from "../record/upload-queue.ts";
import type { Storage } from "../store/storage.ts";
import type { ObjectHead } from "../store/object-store.ts";

/** Durations by name + version; cleared whole when it grows past this. */
const DURATION_CACHE_MAX = 10_000;
/** Listing pages asked of the bucket at most (1000 keys each): a listing is for operators, not for every viewer. */
const MAX_LIST_PAGES = 100;
/** HEADs in flight while a listing reads durations of objects it has not seen. */
const HEAD_CONCURRENCY = 8;
/**
 * Objects a listing looks at for the first time at most (a HEAD each, for the metadata that marks a recording and
 * holds its duration): a large bucket is listed in time, and the rest fills in over the next listings.
 */
const MAX_NEW_LOOKS = 500;

/** What an object's metadata says: uploaded by us as a recording, and its length. */
interface Look {
  recording: boolean;
  durationMs?: number;
}

/** A recording in the bucket is an object this project's upload queue made (its metadata says so). */
export function lookOf(head: ObjectHead | undefined): Look | undefined {
  if (!head) return undefined;
  const ms = Number(head.metadata["edge-vod-duration-ms"]);
  return { recording: head.metadata["edge-vod-delivery"] !== undefined, ...(Number.isFinite(ms) && ms >= 0 ? { durationMs: ms } : {}) };
}

export type RemoveResult = "deleted" | { status: 400 | 403 | 404 | 409 | 500 | 503; error: string };

export interface RecordsCatalogOptions {
  dir: string;
  /** Files being recorded now: neither listed nor deletable. */
  active: () => Set<string>;
  storage?: Storage | undefined;
  uploads?: UploadQueue | undefined;
}

export class RecordsCatalog {
  private readonly disk: LocalDiskAccess;
  private readonly durations = new Map<string, number | undefined>();
  /** Bucket objects looked at, by key and ETag. */
  private readonly looks = new Map<string, Look>();

  constructor(private readonly opts: RecordsCatalogOptions) {
    this.disk = new LocalDiskAccess(opts.dir);
  }

  async list(): Promise<RecordEntry[]> {
    const out = [...(await this.listDisk()), ...(await this.listBucket())];
    return out.sort((a, b) => a.name.localeCompare(b.name) || (a.stored ?? "").localeCompare(b.stored ?? ""));
  }

  async remove(name: string): Promise<RemoveResult> {
    const bad = checkRecordName(name);
    if (bad === "traversal") return { status: 403, error: "Restricted access" };
    if (bad) return { status: 400, error: `Bad record name: ${bad}` };
    if (this.opts.active().has(name)) return { status: 409, error: "Record is being written" };
    const local = await this.removeLocal(name);
    if (local !== "deleted" && local.status !== 404) return local;
    const { storage } = this.opts;
    if (!storage) return local;
    const key = storage.prefix + name;
    try {
      const there = lookOf(await storage.store.head(key));
      // A media file under the prefix with a recording's name is not a recording: not deleted here.
      if (there?.recording) await storage.store.delete(key);
      return there?.recording || local === "deleted" ? "deleted" : local;
    } catch (err) {
      console.error(`records: deleting ${key} from the bucket failed:`, err);
      return { status: 503, error: "Media storage unavailable" };
    }
  }

  private async listDisk(): Promise<RecordEntry[]> {
    const active = this.opts.active();
    const dirents = await fs.readdir(this.opts.dir, { withFileTypes: true }).catch(() => []);
    const out: RecordEntry[] = [];
    for (const d of dirents) {
      // Symlinks are not listed: Dirent.isFile() is false for them, and a link is not a recording made here.
      if (!d.isFile() || checkRecordName(d.name) !== null || active.has(d.name)) continue;
      const st = await fs.stat(path.join(this.opts.dir, d.name)).catch(() => undefined);
      if (!st) continue;
      const durationMs = await this.durationOf(`disk\u0000${d.name}\u0000${st.size}\u0000${st.mtimeMs}`, async () => {
        const file = await this.disk.open(d.name);
        try {
          return await movieDurationMs(file);
        } finally {
          await file.close();
        }
      });
      const stored = !this.opts.storage ? "local" : this.opts.uploads?.has(d.name) ? "pending" : "local";
      out.push({ name: d.name, size: st.size, modified: Math.round(st.mtimeMs), ...(durationMs !== undefined ? { durationMs } : {}), stored });
    }
    return out;
  }

  /** Recordings are bare names, so only the prefix's top level is listed (a media folder's subfolders are not). */
  private async listBucket(): Promise<RecordEntry[]> {
    const storage = this.opts.storage;
    if (!storage) return [];
    const found: { name: string; key: string; size: number; etag: string; modified: number }[] = [];
    let after: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const res = await storage.store.list(storage.prefix, { delimiter: "/", ...(after ? { after } : {}) });
      for (const o of res.objects) {
        const name = o.key.slice(storage.prefix.length);
        if (checkRecordName(name) === null) found.push({ name, key: o.key, size: o.size, etag: o.etag, modified: o.lastModifiedMs });
      }
      if (!res.next) break;
      after = res.next;
    }
    const out: RecordEntry[] = [];
    let budget = MAX_NEW_LOOKS;
    for (let i = 0; i < found.length; i += HEAD_CONCURRENCY) {
      await Promise.all(
        found.slice(i, i + HEAD_CONCURRENCY).map(async (o) => {
          const cacheKey = `${o.key}\u0000${o.etag}`;
          let look = this.looks.get(cacheKey);
          if (look === undefined) {
            if (budget-- <= 0) return;
            look = await storage.store.head(o.key).then(lookOf, () => undefined);
            if (look === undefined) return;
            if (this.looks.size >= DURATION_CACHE_MAX) this.looks.clear();
            this.looks.set(cacheKey, look);
          }
          // Media files share the prefix: only what this project uploaded as a recording is one.
          if (!look.recording) return;
          const durationMs = look.durationMs;
          out.push({ name: o.name, size: o.size, modified: Math.round(o.modified), ...(durationMs !== undefined ? { durationMs } : {}), stored: "bucket" });
        }),
      );
    }
    return out;
  }

  private async removeLocal(name: string): Promise<RemoveResult> {
    // A bare checked name joined to the folder stays in it; lstat so that a symlink is refused, not followed.
    const full = path.join(this.opts.dir, name);
    const st = await fs.lstat(full).catch(() => undefined);
    if (!st) {
      return (await this.opts.uploads?.remove(name)) ? "deleted" : { status: 404, error: "Record not found" };
    }
    if (!st.isFile()) return { status: 403, error: "Restricted access" };
    // The upload first: it must not put back what is being deleted.
    await this.opts.uploads?.remove(name);
    try {
      await fs.unlink(full);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { status: 404, error: "Record not found" };
      console.error(`records: deleting ${name} failed:`, err);
      return { status: 500, error: "Delete failed" };
    }
    return "deleted";
  }

  private async durationOf(key: string, read: () => Promise<number | undefined>): Promise<number | undefined> {
    if (this.durations.has(key)) return this.durations.get(key);
    const durationMs = await read().catch(() => undefined);
    if (this.durations.size >= DURATION_CACHE_MAX) this.durations.clear();
    this.durations.set(key, durationMs);
    return durationMs;
  }
}
