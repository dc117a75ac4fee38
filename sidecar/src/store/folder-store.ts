// An ObjectStore in a folder (`S3_ENDPOINT=file:///srv/objects`): the bucket's contract on one machine, with no S3
// server, for trying the bucket features out and for the contract tests beside a real server. Objects are files
// under the folder; their ETags (the MD5 of their bytes, as S3 gives for a plain upload) and metadata sit in a hidden
// folder beside them. A file put there by hand is an object too, its ETag made from its size, mtime and inode.
// Writes go to a temporary file renamed into place, so a reader holding the old version never sees the new one.
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import {
  MIN_PART_BYTES,
  StoreError,
  type ByteRange,
  type CompletedPart,
  type ListResult,
  type ListedObject,
  type ObjectHead,
  type ObjectStore,
  type PutOptions,
  type RangeResult,
  type ReadOptions,
  type StreamResult,
} from "./object-store.ts";

/** Metadata, multipart parts and temporary files: never an object. */
const META = ".edge-vod-store";

interface Meta {
  etag: string;
  /** The data file this was written for: a file replaced by hand is not described by it. */
  ino: number;
  metadata: Record<string, string>;
}

export class FolderStore implements ObjectStore {
  readonly description: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.description = `file://${this.root}`;
  }

  async read(key: string, range: ByteRange, opts: ReadOptions = {}): Promise<RangeResult> {
    const { handle, size, etag } = await this.openVersion(key, opts);
    try {
      const { start, end } = resolve(range, size, key);
      const bytes = new Uint8Array(end - start + 1);
      let done = 0;
      while (done < bytes.length) {
        const { bytesRead } = await handle.read(bytes, done, bytes.length - done, start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return { bytes: bytes.subarray(0, done), size, etag, start };
    } finally {
      await handle.close();
    }
  }

  async stream(key: string, range: ByteRange | undefined, opts: ReadOptions = {}): Promise<StreamResult> {
    const { handle, size, etag, mtimeMs } = await this.openVersion(key, opts);
    let start = 0;
    let end = size - 1;
    try {
      if (range) ({ start, end } = resolve(range, size, key));
    } catch (err) {
      await handle.close();
      throw err;
    }
    const length = Math.max(0, end - start + 1);
    // The open descriptor keeps reading the version it opened, whatever is renamed over the name meanwhile.
    let body: ReadableStream<Uint8Array>;
    if (length === 0) {
      await handle.close();
      body = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    } else body = Readable.toWeb(handle.createReadStream({ start, end })) as ReadableStream<Uint8Array>;
    return { status: range ? 206 : 200, body, size, etag, start, length, lastModifiedMs: mtimeMs };
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    const file = this.pathOf(key);
    const st = await fs.stat(file).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    const meta = await this.meta(key, st.ino);
    return { key, size: st.size, etag: meta?.etag ?? handEtag(st), lastModifiedMs: st.mtimeMs, metadata: meta?.metadata ?? {} };
  }

  async put(key: string, body: Uint8Array, opts: PutOptions = {}): Promise<{ etag: string }> {
    const etag = createHash("md5").update(body).digest("hex");
    await this.install(key, etag, opts, async (tmp) => fs.writeFile(tmp, body));
    return { etag };
  }

  async createMultipart(key: string, opts: PutOptions = {}): Promise<string> {
    this.pathOf(key);
    const id = randomUUID();
    const dir = path.join(this.root, META, "uploads", id);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, "upload.json"), JSON.stringify({ key, opts }));
    return id;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array): Promise<string> {
    const dir = await this.uploadDir(key, uploadId);
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) throw new StoreError("bad-request", `part number ${partNumber}`);
    await fs.writeFile(path.join(dir, String(partNumber)), body);
    return createHash("md5").update(body).digest("hex");
  }

  async completeMultipart(key: string, uploadId: string, parts: readonly CompletedPart[]): Promise<{ etag: string }> {
    const dir = await this.uploadDir(key, uploadId);
    const { opts } = JSON.parse(await fs.readFile(path.join(dir, "upload.json"), "utf8")) as { opts: PutOptions };
    const digests: Buffer[] = [];
    const files: string[] = [];
    for (const [i, p] of parts.entries()) {
      if (p.partNumber <= (parts[i - 1]?.partNumber ?? 0)) throw new StoreError("bad-request", "InvalidPartOrder");
      const file = path.join(dir, String(p.partNumber));
      const bytes = await fs.readFile(file).catch(() => undefined);
      const digest = bytes && createHash("md5").update(bytes).digest();
      if (!bytes || !digest || digest.toString("hex") !== p.etag) throw new StoreError("bad-request", `InvalidPart ${p.partNumber}`);
      if (i < parts.length - 1 && bytes.length < MIN_PART_BYTES) throw new StoreError("bad-request", `EntityTooSmall: part ${p.partNumber}`, "EntityTooSmall");
      digests.push(digest);
      files.push(file);
    }
    // S3's multipart ETag: the MD5 of the parts' MD5s, and how many there were.
    const etag = `${createHash("md5").update(Buffer.concat(digests)).digest("hex")}-${parts.length}`;
    await this.install(key, etag, opts, async (tmp) => {
      const out = await fs.open(tmp, "w");
      try {
        for (const f of files) await out.write(await fs.readFile(f));
      } finally {
        await out.close();
      }
    });
    await fs.rm(dir, { recursive: true, force: true });
    return { etag };
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    const dir = await this.uploadDir(key, uploadId).catch(() => undefined);
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  }

  async list(prefix: string, opts: { delimiter?: string; after?: string; max?: number } = {}): Promise<ListResult> {
    const max = opts.max ?? 1000;
    const all: ListedObject[] = [];
    await this.walk("", all);
    const objects: ListedObject[] = [];
    const prefixes = new Set<string>();
    let next: string | undefined;
    let last: string | undefined;
    for (const o of all.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
      if (!o.key.startsWith(prefix) || (opts.after !== undefined && o.key <= opts.after)) continue;
      const rest = o.key.slice(prefix.length);
      const cut = opts.delimiter ? rest.indexOf(opts.delimiter) : -1;
      const group = cut >= 0 ? prefix + rest.slice(0, cut + opts.delimiter!.length) : undefined;
      // Keys of a prefix already listed cost nothing: the page ends only before a new entry, so a prefix never
      // comes back on the next page.
      if (group === undefined || !prefixes.has(group)) {
        if (objects.length + prefixes.size >= max) {
          next = last;
          break;
        }
        if (group !== undefined) prefixes.add(group);
        else objects.push(o);
      }
      last = o.key;
    }
    return { objects, prefixes: [...prefixes], ...(next !== undefined ? { next } : {}) };
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.pathOf(key), { force: true });
    await fs.rm(this.metaPath(key), { force: true });
  }

  async presignGet(key: string): Promise<string> {
    // ffmpeg reads a path as it is (a file: URL it would not percent-decode).
    return this.pathOf(key);
  }

  /** The object's file; a key that would leave the folder or reach the hidden one is refused. */
  private pathOf(key: string): string {
    const parts = key.split("/");
    if (key === "" || key.startsWith("/") || parts.some((p) => p === "" || p === "." || p === "..") || parts[0] === META || key.includes("\0")) {
      throw new StoreError("bad-request", `bad key ${JSON.stringify(key)}`);
    }
    return path.join(this.root, ...parts);
  }

  private metaPath(key: string): string {
    this.pathOf(key);
    return path.join(this.root, META, "meta", `${key}.json`);
  }

  private async meta(key: string, ino: number): Promise<Meta | undefined> {
    const raw = await fs.readFile(this.metaPath(key), "utf8").catch(() => undefined);
    if (raw === undefined) return undefined;
    try {
      const m = JSON.parse(raw) as Meta;
      return m.ino === ino ? m : undefined;
    } catch {
      return undefined;
    }
  }

  private async openVersion(key: string, opts: ReadOptions): Promise<{ handle: fs.FileHandle; size: number; etag: string; mtimeMs: number }> {
    const file = this.pathOf(key);
    const handle = await fs.open(file, "r").catch((err: NodeJS.ErrnoException) => {
      throw new StoreError(err.code === "ENOENT" || err.code === "ENOTDIR" || err.code === "EISDIR" ? "not-found" : "unavailable", `${key}: ${err.message}`);
    });
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new StoreError("not-found", `${key}: not a file`);
      const etag = (await this.meta(key, st.ino))?.etag ?? handEtag(st);
      if (opts.ifMatch !== undefined && opts.ifMatch !== etag) throw new StoreError("changed", `${key}: is ${etag}, not ${opts.ifMatch}`);
      return { handle, size: st.size, etag, mtimeMs: st.mtimeMs };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  private async install(key: string, etag: string, opts: PutOptions, write: (tmp: string) => Promise<void>): Promise<void> {
    const file = this.pathOf(key);
    const tmpDir = path.join(this.root, META, "tmp");
    await fs.mkdir(tmpDir, { recursive: true });
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = path.join(tmpDir, randomUUID());
    try {
      await write(tmp);
      const { ino } = await fs.stat(tmp);
      const metaFile = this.metaPath(key);
      await fs.mkdir(path.dirname(metaFile), { recursive: true });
      await fs.writeFile(metaFile, JSON.stringify({ etag, ino, metadata: lower(opts.metadata ?? {}) } satisfies Meta));
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  private async uploadDir(key: string, uploadId: string): Promise<string> {
    if (!/^[0-9a-f-]{36}$/.test(uploadId)) throw new StoreError("not-found", `NoSuchUpload ${uploadId}`);
    const dir = path.join(this.root, META, "uploads", uploadId);
    const raw = await fs.readFile(path.join(dir, "upload.json"), "utf8").catch(() => undefined);
    if (raw === undefined || (JSON.parse(raw) as { key: string }).key !== key) throw new StoreError("not-found", `NoSuchUpload ${uploadId}`);
    return dir;
  }

  private async walk(rel: string, out: ListedObject[]): Promise<void> {
    const dir = path.join(this.root, rel);
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const key = rel ? `${rel}/${e.name}` : e.name;
      if (!rel && e.name === META) continue;
      if (e.isDirectory()) await this.walk(key, out);
      else if (e.isFile()) {
        const st = await fs.stat(path.join(dir, e.name)).catch(() => undefined);
        if (!st) continue;
        const meta = await this.meta(key, st.ino);
        out.push({ key, size: st.size, etag: meta?.etag ?? handEtag(st), lastModifiedMs: st.mtimeMs });
      }
    }
  }
}

function resolve(range: ByteRange, size: number, key: string): { start: number; end: number } {
  if ("suffix" in range) {
    if (range.suffix <= 0 || size === 0) throw new StoreError("unsatisfiable", `${key}: bytes=-${range.suffix} of ${size}`);
    return { start: Math.max(0, size - range.suffix), end: size - 1 };
  }
  if (range.start >= size) throw new StoreError("unsatisfiable", `${key}: bytes=${range.start}- of ${size}`);
  return { start: range.start, end: Math.min(range.end ?? size - 1, size - 1) };
}

function handEtag(st: { size: number; mtimeMs: number; ino: number }): string {
  return createHash("md5").update(`${st.size}-${st.mtimeMs}-${st.ino}`).digest("hex");
}

function lower(m: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k.toLowerCase(), v]));
}
