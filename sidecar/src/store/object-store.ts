// Object storage behind one small interface: an S3-compatible server (s3-store.ts) or a folder (folder-store.ts,
// `S3_ENDPOINT=file:///path`, the same contract on one machine). Media reads (files/object-access.ts), recording
// uploads (record/upload-queue.ts) and the fleet's prepared copies all go through it, and the contract tests run
// against each backend.
//
// Keys are full object keys (the configured prefix already applied); the callers confine names before they get here.

/** What went wrong, as far as a caller has to tell cases apart. */
export type StoreErrorKind =
  /** No such object. */
  | "not-found"
  /** `If-Match` did not hold: the object is another version now. */
  | "changed"
  /** Credentials, permissions, a missing bucket: asking again will not help. */
  | "refused"
  /** Network, timeout, 5xx, throttling: asking again later may. */
  | "unavailable"
  /** A range with no byte in the object. */
  | "unsatisfiable"
  /** The request itself was wrong (a multipart part too small, a malformed key). */
  | "bad-request";

export class StoreError extends Error {
  constructor(
    readonly kind: StoreErrorKind,
    message: string,
    /** The server's error code (`NoSuchKey`, `InvalidAccessKeyId`, …) when it gave one. */
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Bytes `start`..`end` (inclusive; to the end when absent), or the last `suffix` bytes. */
export type ByteRange = { start: number; end?: number } | { suffix: number };

export interface ReadOptions {
  /** The version the read is pinned to: another one fails with kind "changed". */
  ifMatch?: string;
}

export interface RangeResult {
  bytes: Uint8Array;
  /** Size of the whole object. */
  size: number;
  etag: string;
  /** Where `bytes` start in the object. */
  start: number;
}

export interface StreamResult {
  /** 206 when a range was asked for and served. */
  status: 200 | 206;
  body: ReadableStream<Uint8Array>;
  size: number;
  etag: string;
  start: number;
  length: number;
  lastModifiedMs: number;
}

export interface ObjectHead {
  key: string;
  size: number;
  etag: string;
  lastModifiedMs: number;
  /** User metadata (`x-amz-meta-*`), names lower case without the prefix. */
  metadata: Record<string, string>;
}

export interface ListedObject {
  key: string;
  size: number;
  etag: string;
  lastModifiedMs: number;
}

export interface ListResult {
  objects: ListedObject[];
  /** Common prefixes, when listed with a delimiter. */
  prefixes: string[];
  /** Pass as `after` for the next page; absent on the last one. */
  next?: string;
}

export interface PutOptions {
  metadata?: Record<string, string>;
  contentType?: string;
}

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

export interface ObjectStore {
  /** Where it stores, for logs and health (`s3://bucket at https://…`), never a credential. */
  readonly description: string;
  read(key: string, range: ByteRange, opts?: ReadOptions): Promise<RangeResult>;
  /** The object (or a range of it) as a stream, for downloads. */
  stream(key: string, range: ByteRange | undefined, opts?: ReadOptions): Promise<StreamResult>;
  /** Undefined when there is no such object. */
  head(key: string): Promise<ObjectHead | undefined>;
  put(key: string, body: Uint8Array, opts?: PutOptions): Promise<{ etag: string }>;
  createMultipart(key: string, opts?: PutOptions): Promise<string>;
  /** Parts but the last must be at least 5 MiB (as on AWS); returns the part's ETag. */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array): Promise<string>;
  completeMultipart(key: string, uploadId: string, parts: readonly CompletedPart[]): Promise<{ etag: string }>;
  abortMultipart(key: string, uploadId: string): Promise<void>;
  list(prefix: string, opts?: { delimiter?: string; after?: string; max?: number }): Promise<ListResult>;
  /** Deleting an object that does not exist is not an error (as on S3). */
  delete(key: string): Promise<void>;
  /** What ffmpeg can read the object from without credentials: a presigned URL (or a path, for a folder). */
  presignGet(key: string, expiresSec: number): Promise<string>;
}

/** Smallest part but the last of a multipart upload on AWS S3, R2 and Swift. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;

/** An ETag as servers quote it, without the quotes (and without a weak marker). */
export function bareEtag(raw: string | null | undefined): string {
  return (raw ?? "").trim().replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}
