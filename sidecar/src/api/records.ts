// Downloads of finished recordings: `GET|HEAD /v1/records/<name>`, which the edge proxies as `/client/records/<name>`.
// The names are bare `*.mp4` names in the records folder, confined to it by LocalDiskAccess (real path inside the
// folder, O_NOFOLLOW, regular files only). The file is streamed, never read into memory, with single byte ranges
// (seeking in a <video>, resumed downloads) and ETag / Last-Modified revalidation.
//
// With a bucket, a recording not (or no longer) on this disk is streamed from the bucket (`<S3_PREFIX><name>`), its
// ranges and validators the object's, pinned to the version the first look saw: the same bytes wherever it is.
//
// Statuses: 400 a malformed name, 403 a name that tries to leave the folder (separators, a symlink out of it) or is
// not a regular file, 404 no such file, 416 a range past the end, 503 the bucket does not answer; errors are
// `{error}` JSON. The caller's app checks the request's signature (api/signed-auth.ts) before these routes run.
import type { Hono } from "hono";
import { Info, SIDECAR_PATHS, checkRecordName, type ErrorBody } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";
import { LocalDiskAccess, type LocalFile } from "../files/local-disk.ts";
import { StoreError } from "../store/object-store.ts";
import type { Storage } from "../store/storage.ts";
import { lookOf } from "./records-catalog.ts";

/** Read size of the download stream. */
const CHUNK_BYTES = 64 * 1024;

/** Adds `GET` (and so `HEAD`) `${SIDECAR_PATHS.records}/:name` to `app`, serving files from `recordDir`. */
export function recordsRoutes(app: Hono, recordDir: string, storage?: Storage): void {
  const disk = new LocalDiskAccess(recordDir);
  // hono answers HEAD with the GET route and drops the body; serveRecord sees the HEAD and opens no stream.
  app.get(`${SIDECAR_PATHS.records}/:name`, (c) => serveRecord(disk, c.req.param("name"), c.req.raw, storage));
}

const json = (status: number, error: string, headers: Record<string, string> = {}): Response =>
  new Response(JSON.stringify({ error } satisfies ErrorBody), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });

async function serveRecord(disk: LocalDiskAccess, name: string, req: Request, storage: Storage | undefined): Promise<Response> {
  const bad = checkRecordName(name);
  if (bad === "traversal") return json(403, "Restricted access");
  if (bad) return json(400, `Bad record name (${bad})`);

  let file: LocalFile;
  try {
    file = await disk.open(name);
  } catch (err) {
    if (!(err instanceof MediaError)) throw err;
    switch (err.info) {
      case Info.FILE_NOT_FOUND:
        return storage ? serveObject(storage, name, req) : json(404, "Record not found");
      case Info.RESTRICTED_ACCESS:
        return json(403, "Restricted access");
      case Info.BAD_URI:
        return json(400, "Bad record name");
      default:
        throw err;
    }
  }

  let handedOver = false;
  try {
    return await respond(req, { size: file.size, etag: file.identity, mtimeMs: file.mtimeMs }, (start, length) => {
      handedOver = true;
      return Promise.resolve(fileStream(file, start, length));
    });
  } finally {
    if (!handedOver) await file.close().catch(() => undefined);
  }
}

/** A recording in the bucket, streamed through: validators, ranges and statuses as for a file on disk. */
async function serveObject(storage: Storage, name: string, req: Request): Promise<Response> {
  const key = storage.prefix + name;
  try {
    const head = await storage.store.head(key);
    // Only recordings: a media file under the prefix is not downloadable by its name here.
    if (!head || !lookOf(head)?.recording) return json(404, "Record not found");
    // Pinned: an object replaced between the HEAD and this GET fails the download instead of mixing versions.
    return await respond(req, { size: head.size, etag: head.etag, mtimeMs: head.lastModifiedMs }, async (start, length) =>
      (await storage.store.stream(key, { start, end: start + length - 1 }, { ifMatch: head.etag })).body,
    );
  } catch (err) {
    if (err instanceof StoreError && err.kind === "changed") return json(503, "Record changed while it was asked for", { "retry-after": "1" });
    if (err instanceof StoreError && err.kind === "not-found") return json(404, "Record not found");
    console.error(`records: ${key} from the bucket:`, err);
    return json(503, Info.STORAGE_UNAVAILABLE, { "retry-after": "5" });
  }
}

/**
 * The answer for one version of a recording (`etag` unquoted): 304 for a current copy, 416 for a range outside it,
 * else 200 or 206 with the body `open` gives for the bytes wanted (not called for HEAD or an empty range).
 */
async function respond(
  req: Request,
  v: { size: number; etag: string; mtimeMs: number },
  open: (start: number, length: number) => Promise<ReadableStream<Uint8Array>>,
): Promise<Response> {
  const etag = `"${v.etag}"`;
  const lastModified = new Date(Math.floor(v.mtimeMs / 1000) * 1000);
  const headers: Record<string, string> = {
    "content-type": "video/mp4",
    "accept-ranges": "bytes",
    etag,
    "last-modified": lastModified.toUTCString(),
    // Stored, but checked again before each use: a name can be deleted and recorded anew.
    "cache-control": "no-cache",
  };
  if (notModified(req.headers, etag, lastModified)) return new Response(null, { status: 304, headers });
  let range: Range | "unsatisfiable" | null = null;
  const rangeHeader = req.headers.get("range");
  if (rangeHeader !== null && ifRangeHolds(req.headers.get("if-range"), etag, lastModified)) range = parseRange(rangeHeader, v.size);
  if (range === "unsatisfiable") return json(416, "Range not satisfiable", { ...headers, "content-range": `bytes */${v.size}` });
  const start = range?.start ?? 0;
  const end = range?.end ?? v.size - 1; // inclusive; -1 for an empty file
  const length = end - start + 1;
  headers["content-length"] = String(length);
  if (range) headers["content-range"] = `bytes ${start}-${end}/${v.size}`;
  const status = range ? 206 : 200;
  if (req.method === "HEAD" || length === 0) return new Response(null, { status, headers });
  return new Response(await open(start, length), { status, headers });
}

/** A pull stream over `length` bytes from `start`; the file is closed at the end, on error and on cancel. */
function fileStream(file: LocalFile, start: number, length: number): ReadableStream<Uint8Array> {
  let position = start;
  const endPosition = start + length;
  const close = () => file.close().catch(() => undefined);
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const want = Math.min(CHUNK_BYTES, endPosition - position);
        const chunk = new Uint8Array(want);
        let got: number;
        try {
          got = await file.read(chunk, 0, want, position);
        } catch (err) {
          await close();
          controller.error(err);
          return;
        }
        if (got < want) {
          // The file shrank under us: end the response as broken rather than short of its Content-Length.
          await close();
          controller.error(new Error(`${file.name}: file shrank while it was being sent`));
          return;
        }
        position += got;
        controller.enqueue(chunk);
        if (position >= endPosition) {
          await close();
          controller.close();
        }
      },
      cancel: close,
    },
    { highWaterMark: 0 },
  );
}

interface Range {
  start: number;
  /** Inclusive. */
  end: number;
}

/**
 * One `bytes=` range (RFC 9110 §14.1.2): `a-b`, `a-`, `-n`. Null when the header is to be ignored (another unit,
 * bad syntax, several ranges: the whole file is then sent with 200), "unsatisfiable" when no byte of it exists.
 */
export function parseRange(header: string, size: number): Range | "unsatisfiable" | null {
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return null;
  const [, first = "", last = ""] = m;
  if (first === "" && last === "") return null;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return null;
  if (start >= size) return "unsatisfiable";
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  return { start, end };
}

/** If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2). */
function notModified(headers: Headers, etag: string, lastModified: Date): boolean {
  const inm = headers.get("if-none-match");
  if (inm !== null) {
    const tags = inm.split(",").map((t) => t.trim().replace(/^W\//, ""));
    return tags.includes("*") || tags.includes(etag);
  }
  const ims = headers.get("if-modified-since");
  if (ims === null) return false;
  const since = Date.parse(ims);
  return Number.isFinite(since) && lastModified.getTime() <= since;
}

/** A Range applies only while the client's copy is still current (If-Range with a strong ETag or a date). */
function ifRangeHolds(ifRange: string | null, etag: string, lastModified: Date): boolean {
  if (ifRange === null) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith("W/")) return value === etag;
  const date = Date.parse(value);
  return Number.isFinite(date) && date === lastModified.getTime();
}
