// The ObjectStore of an S3-compatible server: AWS S3, Cloudflare R2, MinIO, Swift's s3api, ...
//
// aws4fetch signs the requests (SigV4, headers or presigned query): it is 8 KB with no dependencies and runs in Node
// and in Workers alike, where @aws-sdk/client-s3 weighs 23 MB and, since 3.729, sends CRC32 checksums that R2 and
// other non-AWS servers refuse unless two options are turned off. Its own retries are off: callers decide (a block
// read fails a viewer fast, an upload retries for hours). fast-xml-parser reads the few XML answers S3 gives.
import { createHash } from "node:crypto";
import { AwsClient } from "aws4fetch";
import { XMLParser } from "fast-xml-parser";
import {
  StoreError,
  bareEtag,
  type ByteRange,
  type CompletedPart,
  type ListResult,
  type ObjectHead,
  type ObjectStore,
  type PutOptions,
  type RangeResult,
  type ReadOptions,
  type StoreErrorKind,
  type StreamResult,
} from "./object-store.ts";

export interface S3StoreConfig {
  /** `https://s3.us-east-1.amazonaws.com`, `https://<account>.r2.cloudflarestorage.com`, `http://minio:9000`. */
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** `https://endpoint/bucket/key` (MinIO, Swift) instead of `https://bucket.endpoint/key`. */
  forcePathStyle: boolean;
  /** Per request, headers and body (reads); uploads of a part get longer. */
  timeoutMs: number;
}

/** Told the outcome of every request: health shows whether the store answers (ok) or why not. */
export type StoreObserver = (err: StoreError | undefined) => void;

/** An 8 MiB part of a slow link still has time; a stuck connection is given up. */
const UPLOAD_TIMEOUT_MS = 120_000;
/** An error body is a few hundred bytes; more is not read. */
const MAX_ERROR_BODY = 16 * 1024;

const xml = new XMLParser({
  // Keys and ETags are text, even when they look like numbers.
  parseTagValue: false,
  isArray: (name) => name === "Contents" || name === "CommonPrefixes",
});

export class S3Store implements ObjectStore {
  readonly description: string;
  private readonly aws: AwsClient;
  private readonly base: URL;

  constructor(
    private readonly cfg: S3StoreConfig,
    private readonly observe: StoreObserver = () => undefined,
  ) {
    this.aws = new AwsClient({
      accessKeyId: cfg.accessKeyId,
      secretAccessKey: cfg.secretAccessKey,
      service: "s3",
      region: cfg.region,
      retries: 0,
    });
    this.base = new URL(cfg.endpoint);
    this.description = `s3://${cfg.bucket}`;
  }

  async read(key: string, range: ByteRange, opts: ReadOptions = {}): Promise<RangeResult> {
    const res = await this.send("GET", key, { headers: { range: rangeHeader(range), ...ifMatch(opts) } });
    // A server that ignores the range sends the whole object: only the bytes asked for are kept in memory.
    const want = "suffix" in range ? range.suffix : range.end !== undefined ? range.end - range.start + 1 : Infinity;
    let bytes: Uint8Array;
    try {
      bytes = await readBody(res, res.status === 206 ? Infinity : want);
    } catch (err) {
      const e = new StoreError("unavailable", `${this.description}: GET ${key}: body: ${networkText(err)}`);
      this.observe(e);
      throw e;
    }
    const { size, start } = extent(res, Number(res.headers.get("content-length") ?? bytes.length));
    return { bytes, size, start, etag: bareEtag(res.headers.get("etag")) };
  }

  async stream(key: string, range: ByteRange | undefined, opts: ReadOptions = {}): Promise<StreamResult> {
    const res = await this.send("GET", key, { headers: { ...(range ? { range: rangeHeader(range) } : {}), ...ifMatch(opts) }, streaming: true });
    const length = Number(res.headers.get("content-length") ?? "NaN");
    const { size, start } = extent(res, length);
    return {
      status: res.status === 206 ? 206 : 200,
      body: res.body ?? new ReadableStream({ start: (c) => c.close() }),
      size,
      start,
      length,
      etag: bareEtag(res.headers.get("etag")),
      lastModifiedMs: Date.parse(res.headers.get("last-modified") ?? "") || 0,
    };
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    let res: Response;
    try {
      res = await this.send("HEAD", key);
    } catch (err) {
      if (err instanceof StoreError && err.kind === "not-found") return undefined;
      throw err;
    }
    const metadata: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      if (k.startsWith("x-amz-meta-")) metadata[k.slice("x-amz-meta-".length)] = v;
    });
    return {
      key,
      size: Number(res.headers.get("content-length") ?? "0"),
      etag: bareEtag(res.headers.get("etag")),
      lastModifiedMs: Date.parse(res.headers.get("last-modified") ?? "") || 0,
      metadata,
    };
  }

  async put(key: string, body: Uint8Array, opts: PutOptions = {}): Promise<{ etag: string }> {
    // Content-MD5: the server checks the bytes it got against it and refuses a corrupted upload.
    const headers = { ...putHeaders(opts), "content-md5": md5(body).toString("base64") };
    const res = await this.send("PUT", key, { headers, body, timeoutMs: UPLOAD_TIMEOUT_MS });
    await res.body?.cancel();
    return { etag: bareEtag(res.headers.get("etag")) };
  }

  async createMultipart(key: string, opts: PutOptions = {}): Promise<string> {
    const res = await this.send("POST", key, { query: { uploads: "" }, headers: putHeaders(opts) });
    const doc = xml.parse(await res.text()) as { InitiateMultipartUploadResult?: { UploadId?: string } };
    const id = doc.InitiateMultipartUploadResult?.UploadId;
    if (!id) throw new StoreError("unavailable", `${key}: no UploadId in the answer`);
    return id;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array): Promise<string> {
    const res = await this.send("PUT", key, {
      query: { partNumber: String(partNumber), uploadId },
      headers: { "content-md5": md5(body).toString("base64") },
      body,
      timeoutMs: UPLOAD_TIMEOUT_MS,
    });
    await res.body?.cancel();
    const etag = bareEtag(res.headers.get("etag"));
    if (!etag) throw new StoreError("unavailable", `${key}: part ${partNumber} answered without an ETag`);
    return etag;
  }

  async completeMultipart(key: string, uploadId: string, parts: readonly CompletedPart[]): Promise<{ etag: string }> {
    const body =
      "<CompleteMultipartUpload>" +
      parts.map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>"${p.etag}"</ETag></Part>`).join("") +
      "</CompleteMultipartUpload>";
    const res = await this.send("POST", key, {
      query: { uploadId },
      headers: { "content-type": "application/xml" },
      body: new TextEncoder().encode(body),
      timeoutMs: UPLOAD_TIMEOUT_MS,
    });
    const text = await res.text();
    const doc = xml.parse(text) as { CompleteMultipartUploadResult?: { ETag?: string }; Error?: { Code?: string; Message?: string } };
    // S3 (and R2) may answer 200 and still fail the upload in the body.
    if (doc.Error) {
      const err = classify(500, doc.Error.Code, `${key}: complete failed: ${doc.Error.Code ?? ""} ${doc.Error.Message ?? ""}`.trim());
      this.observe(err);
      throw err;
    }
    const etag = bareEtag(doc.CompleteMultipartUploadResult?.ETag);
    if (!etag) throw new StoreError("unavailable", `${key}: complete answered without an ETag`);
    return { etag };
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      const res = await this.send("DELETE", key, { query: { uploadId } });
      await res.body?.cancel();
    } catch (err) {
      if (!(err instanceof StoreError && err.kind === "not-found")) throw err;
    }
  }

  async list(prefix: string, opts: { delimiter?: string; after?: string; max?: number } = {}): Promise<ListResult> {
    const query: Record<string, string> = { "list-type": "2", prefix };
    if (opts.delimiter) query.delimiter = opts.delimiter;
    if (opts.after) query["continuation-token"] = opts.after;
    if (opts.max) query["max-keys"] = String(opts.max);
    const res = await this.send("GET", undefined, { query });
    type Doc = {
      ListBucketResult?: {
        Contents?: { Key: string; Size: string; ETag?: string; LastModified?: string }[];
        CommonPrefixes?: { Prefix: string }[];
        IsTruncated?: string;
        NextContinuationToken?: string;
      };
    };
    const doc = (xml.parse(await res.text()) as Doc).ListBucketResult ?? {};
    const out: ListResult = {
      objects: (doc.Contents ?? []).map((c) => ({
        key: String(c.Key),
        size: Number(c.Size),
        etag: bareEtag(c.ETag),
        lastModifiedMs: Date.parse(c.LastModified ?? "") || 0,
      })),
      prefixes: (doc.CommonPrefixes ?? []).map((p) => String(p.Prefix)),
    };
    if (doc.IsTruncated === "true" && doc.NextContinuationToken) out.next = doc.NextContinuationToken;
    return out;
  }

  async delete(key: string): Promise<void> {
    try {
      const res = await this.send("DELETE", key);
      await res.body?.cancel();
    } catch (err) {
      if (!(err instanceof StoreError && err.kind === "not-found")) throw err;
    }
  }

  async presignGet(key: string, expiresSec: number): Promise<string> {
    const url = new URL(this.url(key));
    // SigV4 presigned URLs live at most 7 days.
    url.searchParams.set("X-Amz-Expires", String(Math.max(1, Math.min(expiresSec, 7 * 24 * 3600))));
    const signed = await this.aws.sign(url.toString(), { method: "GET", aws: { signQuery: true } });
    return signed.url;
  }

  /** The object's URL (or the bucket's, for `key` undefined), path style or virtual-hosted. */
  private url(key: string | undefined, query: Record<string, string> = {}): string {
    const path = key === undefined ? "" : key.split("/").map(encodeSegment).join("/");
    const u = new URL(this.base.href);
    const basePath = u.pathname.replace(/\/+$/, "");
    if (this.cfg.forcePathStyle) u.pathname = `${basePath}/${encodeSegment(this.cfg.bucket)}/${path}`;
    else {
      u.hostname = `${this.cfg.bucket}.${u.hostname}`;
      u.pathname = `${basePath}/${path}`;
    }
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    // `?uploads` must go without `=`; URLSearchParams writes `uploads=`, which S3 takes the same.
    return u.toString();
  }

  private async send(
    method: "GET" | "HEAD" | "PUT" | "POST" | "DELETE",
    key: string | undefined,
    opts: { query?: Record<string, string>; headers?: Record<string, string>; body?: Uint8Array; timeoutMs?: number; streaming?: boolean } = {},
  ): Promise<Response> {
    const url = this.url(key, opts.query);
    const timeoutMs = opts.timeoutMs ?? this.cfg.timeoutMs;
    // A download streams for as long as it takes: only its headers have to come in time.
    const headersOnly = new AbortController();
    const timer = opts.streaming ? setTimeout(() => headersOnly.abort(new DOMException("timed out", "TimeoutError")), timeoutMs) : undefined;
    let res: Response;
    try {
      res = await this.aws.fetch(url, {
        method,
        headers: opts.headers ?? {},
        ...(opts.body ? { body: opts.body as Uint8Array<ArrayBuffer> } : {}),
        signal: opts.streaming ? headersOnly.signal : AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const e = new StoreError("unavailable", `${this.description}: ${method} ${key ?? "(bucket)"}: ${networkText(err)}`);
      this.observe(e);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    if (res.ok) {
      this.observe(undefined);
      return res;
    }
    const text = method === "HEAD" ? "" : (await res.text().catch(() => "")).slice(0, MAX_ERROR_BODY);
    const doc = text ? (safeParse(text) as { Error?: { Code?: string; Message?: string } }) : {};
    const code = doc.Error?.Code;
    const what = `${this.description}: ${method} ${key ?? "(bucket)"}: HTTP ${res.status}${code ? ` ${code}` : ""}${doc.Error?.Message ? `: ${doc.Error.Message}` : ""}`;
    const err = classify(res.status, code, what);
    // A missing object or a changed version is an answer: the store works.
    this.observe(err.kind === "refused" || err.kind === "unavailable" ? err : undefined);
    throw err;
  }
}

function classify(status: number, code: string | undefined, message: string): StoreError {
  let kind: StoreErrorKind;
  if (status === 404) kind = code === "NoSuchBucket" ? "refused" : "not-found";
  else if (status === 412) kind = "changed";
  else if (status === 416) kind = "unsatisfiable";
  else if (status === 401 || status === 403) kind = "refused";
  else if (status === 400) kind = code && REFUSING_400.has(code) ? "refused" : "bad-request";
  else if (status === 408 || status === 429 || status >= 500) kind = "unavailable";
  else kind = "bad-request";
  return new StoreError(kind, message, code);
}

/** 400s that mean the configuration is wrong (a region the bucket is not in, bad keys), not the request. */
const REFUSING_400 = new Set(["AuthorizationHeaderMalformed", "InvalidAccessKeyId", "ExpiredToken", "InvalidToken", "InvalidBucketName"]);

function rangeHeader(range: ByteRange): string {
  if ("suffix" in range) return `bytes=-${range.suffix}`;
  return `bytes=${range.start}-${range.end ?? ""}`;
}

function ifMatch(opts: ReadOptions): Record<string, string> {
  return opts.ifMatch ? { "if-match": `"${opts.ifMatch}"` } : {};
}

/** The object's size and where the body starts, from Content-Range (206) or the body's length (200). */
function extent(res: Response, bodyLength: number): { size: number; start: number } {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
  if (res.status === 206 && m) return { start: Number(m[1]), size: m[3] === "*" ? NaN : Number(m[3]) };
  return { start: 0, size: bodyLength };
}

/** The body, or its first `max` bytes (the rest is not downloaded). */
async function readBody(res: Response, max: number): Promise<Uint8Array> {
  if (!Number.isFinite(max)) return new Uint8Array(await res.arrayBuffer());
  const out = new Uint8Array(max);
  let n = 0;
  const reader = res.body?.getReader();
  if (!reader) return out.subarray(0, 0);
  while (n < max) {
    const { done, value } = await reader.read();
    if (done) break;
    const take = Math.min(value.length, max - n);
    out.set(value.subarray(0, take), n);
    n += take;
  }
  await reader.cancel().catch(() => undefined);
  return out.subarray(0, n);
}

function putHeaders(opts: PutOptions): Record<string, string> {
  const h: Record<string, string> = { "content-type": opts.contentType ?? "application/octet-stream" };
  for (const [k, v] of Object.entries(opts.metadata ?? {})) h[`x-amz-meta-${k.toLowerCase()}`] = v;
  return h;
}

/** RFC 3986 encoding of one path segment: S3 signs the path encoded exactly so. */
function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function md5(body: Uint8Array): Buffer {
  return createHash("md5").update(body).digest();
}

function safeParse(text: string): unknown {
  try {
    return xml.parse(text);
  } catch {
    return {};
  }
}

function networkText(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === "TimeoutError") return "timed out";
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}
