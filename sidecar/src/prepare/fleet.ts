// Prepared copies once per fleet: sidecars that share a bucket prepare each version of a bucket file once. Before
// it starts ffmpeg, a sidecar takes the copy's lease at the edge (one Durable Object per copy); the holder
// prepares, serves its copy to the others as it grows (`GET /v1/prepared/<key>`, by ranges, and `/status`), then
// uploads the finished copy under `<S3_PREFIX>.edge-vod/prepared/<key>.mp4` and lets the lease go. Everyone else
// plays the holder's copy as it grows, or the finished one from the bucket: one ffmpeg per file for the fleet.
import { Info, EDGE_LEASES_PATH, LeaseResponse, PreparedStatus, SIDECAR_PREPARED_PATH, signRequest, type LeaseRequest } from "@edge-vod/shared";
import fs from "node:fs/promises";
import { MediaError, type RandomAccessFile } from "../files/file-access.ts";
import { INTERNAL_FOLDER, type ObjectFile } from "../files/object-access.ts";
import { expectedEtag, PART_BYTES } from "../record/upload-queue.ts";
import type { CompletedPart } from "../store/object-store.ts";
import { uploadFileParts } from "../store/file-upload.ts";
import type { Storage } from "../store/storage.ts";
import { GrowingIndex } from "./growing-index.ts";

/** A lease lives this long without a renewal; the holder renews at a third of it. */
const LEASE_TTL_MS = 30_000;
/** How often a follower asks the holder how far its copy is. */
const FOLLOW_POLL_MS = 100;
/** How long the followers wait for an answer from a holder that went away (its lease lapses in LEASE_TTL_MS). */
const FOLLOW_GIVE_UP_MS = 2 * LEASE_TTL_MS;
const REQUEST_TIMEOUT_MS = 10_000;

export interface FleetOptions {
  storage: Storage;
  edgeUrl: string;
  secret: string;
  /** This sidecar as the others reach it. */
  self: { id: string; url: string };
}

/** A copy being written somewhere, as its viewers follow it (a local prepare job, or another host's). */
export interface GrowingCopy {
  readonly index: GrowingIndex;
  /** A reader for one viewer; close() releases it. */
  acquire(): RandomAccessFile;
  /** Resolves with the finished copy's name (or where it is), or the error that ended it; never rejects. */
  readonly finished: Promise<string | MediaError>;
}

export class FleetPrepare {
  constructor(private readonly opts: FleetOptions) {}

  copyKey(key: string): string {
    return `${this.opts.storage.prefix}${INTERNAL_FOLDER}/prepared/${key}.mp4`;
  }

  /** The finished copy in the bucket, if there is one. */
  async inBucket(key: string): Promise<ObjectFile | undefined> {
    try {
      return await this.opts.storage.media.openKey(`prepared ${key}`, this.copyKey(key));
    } catch (err) {
      if (err instanceof MediaError && err.info === Info.FILE_NOT_FOUND) return undefined;
      throw err;
    }
  }

  async lease(key: string, op: LeaseRequest["op"]): Promise<LeaseResponse> {
    const url = this.opts.edgeUrl + EDGE_LEASES_PATH;
    const body = JSON.stringify({ key, op, holder: this.opts.self, ttlMs: LEASE_TTL_MS } satisfies LeaseRequest);
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(await signRequest(this.opts.secret, { method: "POST", url, body })) },
      body,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const parsed = LeaseResponse.safeParse(await res.json().catch(() => undefined));
    if (!res.ok || !parsed.success) throw new Error(`lease ${op} for ${key}: HTTP ${res.status}`);
    return parsed.data;
  }

  /** Keeps a granted lease alive until the returned function releases it. */
  hold(key: string): () => Promise<void> {
    const timer = setInterval(() => {
      void this.lease(key, "renew").then(
        (r) => {
          // Lapsed and taken by another host (this one stalled for a whole TTL): both prepare; the first copy in the
          // bucket stays (publish does not replace one).
          if (!r.granted) console.warn(`prepare ${key}: the lease went to ${r.holder?.id ?? "another host"}`);
        },
        (err: unknown) => console.warn(`prepare ${key}: lease renewal failed: ${String(err)}`),
      );
    }, LEASE_TTL_MS / 3);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await this.lease(key, "release").catch(() => undefined);
    };
  }

  /**
   * Puts a finished local copy into the bucket (in parts when large), where every host finds it; a copy already
   * there is kept (viewers are pinned to its version).
   */
  async publish(key: string, file: string): Promise<void> {
    const store = this.opts.storage.store;
    const objectKey = this.copyKey(key);
    if (await store.head(objectKey)) return;
    const { size } = await fs.stat(file);
    if (size <= PART_BYTES) {
      await store.put(objectKey, await fs.readFile(file), { contentType: "video/mp4" });
    } else {
      const id = await store.createMultipart(objectKey, { contentType: "video/mp4" });
      try {
        const parts: CompletedPart[] = [];
        await uploadFileParts(store, objectKey, id, file, size, PART_BYTES, parts);
        await store.completeMultipart(objectKey, id, parts);
      } catch (err) {
        await store.abortMultipart(objectKey, id).catch(() => undefined);
        throw err;
      }
    }
    const head = await store.head(objectKey);
    if (head?.size !== size) throw new Error(`${objectKey}: the bucket shows ${head?.size ?? "nothing"}, not ${size} bytes`);
    // Checked in passing: what went up is what ffmpeg wrote.
    const want = (await expectedEtag(file, PART_BYTES)).etag;
    if (head.etag !== want) console.warn(`prepare ${key}: the bucket's ETag ${head.etag} is not ${want}; size checked`);
  }

  /** Another host's copy, followed as it grows. */
  follow(key: string, holderUrl: string): GrowingCopy {
    return new RemoteCopy(key, holderUrl.replace(/\/+$/, ""), this.opts.secret);
  }
}

/** The holder's copy over its control API: read by ranges, its growth polled, signed like every control call. */
class RemoteCopy implements GrowingCopy {
  readonly index: GrowingIndex;
  readonly finished: Promise<string | MediaError>;
  private size = 0;
  private readonly file: RandomAccessFile;

  constructor(
    private readonly key: string,
    private readonly holderUrl: string,
    private readonly secret: string,
  ) {
    const self = this;
    this.file = {
      name: `prepared ${key} at ${holderUrl}`,
      get size() {
        return self.size;
      },
      identity: `remote:${key}`,
      read: (t, o, l, p) => this.read(t, o, l, p),
      close: async () => undefined,
    };
    this.index = new GrowingIndex(this.file);
    this.finished = this.poll();
  }

  acquire(): RandomAccessFile {
    return this.file;
  }

  private async get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    const url = `${this.holderUrl}${SIDECAR_PREPARED_PATH}/${this.key}${path}`;
    return fetch(url, { headers: { ...headers, ...(await signRequest(this.secret, { method: "GET", url })) }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  }

  private async read(target: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const end = Math.min(position + length, this.size);
    let done = 0;
    // The holder may send less than asked (it caps a range): ask on from where it stopped.
    while (position + done < end) {
      let res: Response;
      try {
        res = await this.get("", { range: `bytes=${position + done}-${end - 1}` });
      } catch (err) {
        throw new MediaError(Info.PREPARE_FAILED, `${this.file.name}: ${String(err)}`);
      }
      if (res.status !== 206 && res.status !== 200) {
        await res.body?.cancel();
        throw new MediaError(Info.PREPARE_FAILED, `${this.file.name}: HTTP ${res.status}`);
      }
      const bytes = new Uint8Array(await res.arrayBuffer());
      const got = Math.min(bytes.length, end - position - done);
      if (got === 0) break;
      target.set(bytes.subarray(0, got), offset + done);
      done += got;
    }
    return done;
  }

  private async poll(): Promise<string | MediaError> {
    let answeredAt = Date.now();
    for (;;) {
      let status: PreparedStatus | undefined;
      try {
        const res = await this.get("/status");
        const parsed = PreparedStatus.safeParse(await res.json().catch(() => undefined));
        if (res.ok && parsed.success) status = parsed.data;
      } catch {
        status = undefined;
      }
      if (!status) {
        if (Date.now() - answeredAt > FOLLOW_GIVE_UP_MS) {
          const err = new MediaError(Info.PREPARE_FAILED, `${this.file.name}: the host preparing it does not answer`);
          this.index.fail(err);
          return err;
        }
      } else {
        answeredAt = Date.now();
        if (status.failed !== undefined) {
          const err = new MediaError(Info.PREPARE_FAILED, `${this.file.name}: ${status.failed}`);
          this.index.fail(err);
          return err;
        }
        this.size = status.size;
        await this.index.update(status.size, status.done);
        if (this.index.error) return this.index.error;
        if (status.done) return this.file.name;
      }
      await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
    }
  }
}
