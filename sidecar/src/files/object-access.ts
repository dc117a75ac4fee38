// Media files in object storage (S3_ENDPOINT), read by byte ranges through the host's shared block cache: nothing
// is downloaded whole, a viewer's reads cost GETs only for blocks no one on this host read lately, and a moov at
// the end of a file costs one more block.
//
// Versions: the first read of an open (block 0, which also gives the size and the ETag, so no HEAD is needed) pins
// the version; every later block is fetched with `If-Match` on that ETag, and blocks are cached under it. An
// object replaced while it plays fails that playback with "File changed while playing" at the first block it has
// not read yet, never with bytes of the new version; the next play opens the new one.
//
// Names are confined as on disk: checked syntactically (no `..`, no absolute names), then prefixed, so a key never
// leaves `S3_PREFIX`; the prefix's internal folder (prepared copies) is not playable by name.
import { checkFileName, Info } from "@edge-vod/shared";
import type { BlockCache } from "../store/block-cache.ts";
import { StoreError, type ObjectStore } from "../store/object-store.ts";
import { MediaError, type FileAccess, type RandomAccessFile, type ToolSource } from "./file-access.ts";

/** The first folder of the prefix that holds this project's own objects (prepared copies), never a media name. */
export const INTERNAL_FOLDER = ".edge-vod";

/** How long a prepare's presigned URL stays valid (made as ffmpeg starts): its longest run (prepare-cache.ts) and a margin. */
const TOOL_URL_SECONDS = 7 * 3600;
/** A read past this share of a block fetches the next one ahead (Wowza's media cache reads ahead at 30 %). */
const READ_AHEAD_AT = 0.3;
/** Objects whose last seen version is remembered, so that a play of a file whose first block is held costs a HEAD. */
const VERSIONS_KEPT = 10_000;

export class ObjectAccess implements FileAccess {
  /** key → the version an open last found (LRU order). */
  private readonly versions = new Map<string, { etag: string; size: number }>();
  /** First-block reads in flight, by key. */
  private readonly opening = new Map<string, Promise<{ etag: string; size: number }>>();

  constructor(
    private readonly store: ObjectStore,
    /** Key prefix of the media names (`S3_PREFIX`), "" or ending in "/". */
    private readonly prefix: string,
    private readonly blocks: BlockCache,
  ) {}

  async open(name: string): Promise<ObjectFile> {
    const bad = checkFileName(name);
    if (bad) throw new MediaError(Info.BAD_URI, `${JSON.stringify(name)}: ${bad}`);
    if (name === INTERNAL_FOLDER || name.startsWith(`${INTERNAL_FOLDER}/`)) throw new MediaError(Info.RESTRICTED_ACCESS, `${name}: internal`);
    return this.openKey(name, this.prefix + name);
  }

  /** An object by its full key (prepared copies under the internal folder): the caller made the key. */
  async openKey(name: string, key: string): Promise<ObjectFile> {
    const known = this.versions.get(key);
    if (known && this.blocks.has(objectIdentity(known.etag, known.size, key), 0)) {
      // Its first block is held: a HEAD tells whether it is still that version, without reading the block again.
      const head = await this.store.head(key).catch((e: unknown) => {
        throw mediaErrorOf(e, name, true);
      });
      if (!head) throw new MediaError(Info.FILE_NOT_FOUND, name);
      if (head.etag === known.etag && head.size === known.size) return new ObjectFile(name, key, head.size, head.etag, this.store, this.blocks);
    }
    const version = await this.firstBlock(key, name);
    return new ObjectFile(name, key, version.size, version.etag, this.store, this.blocks);
  }

  /**
   * The object's first block, read with no version known yet; it gives the version (size, ETag). Opens of one key
   * at the same moment share the read: 20 viewers arriving together cost one GET.
   */
  private firstBlock(key: string, name: string): Promise<{ etag: string; size: number }> {
    const pending = this.opening.get(key);
    if (pending) return pending;
    const reading = this.readFirstBlock(key, name).finally(() => this.opening.delete(key));
    this.opening.set(key, reading);
    return reading;
  }

  private async readFirstBlock(key: string, name: string): Promise<{ etag: string; size: number }> {
    const size = this.blocks.blockBytes;
    let first;
    try {
      first = await this.store.read(key, { start: 0, end: size - 1 });
    } catch (err) {
      // An empty object has no byte to range over: it opens, and the reader finds no movie in it.
      if (err instanceof StoreError && err.kind === "unsatisfiable") {
        const head = await this.store.head(key).catch((e: unknown) => {
          throw mediaErrorOf(e, name, true);
        });
        if (!head) throw new MediaError(Info.FILE_NOT_FOUND, name);
        return { etag: head.etag, size: head.size };
      }
      throw mediaErrorOf(err, name, true);
    }
    // A server that ignored the range sent it all: only the first block's worth is kept.
    this.blocks.offer(objectIdentity(first.etag, first.size, key), 0, first.bytes.length > size ? first.bytes.slice(0, size) : first.bytes);
    this.versions.delete(key);
    this.versions.set(key, { etag: first.etag, size: first.size });
    if (this.versions.size > VERSIONS_KEPT) this.versions.delete(this.versions.keys().next().value!);
    return { etag: first.etag, size: first.size };
  }
}

export class ObjectFile implements RandomAccessFile {
  readonly identity: string;

  constructor(
    readonly name: string,
    readonly key: string,
    readonly size: number,
    readonly etag: string,
    private readonly store: ObjectStore,
    private readonly blocks: BlockCache,
  ) {
    this.identity = objectIdentity(etag, size, key);
  }

  async read(target: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const end = Math.min(position + length, this.size);
    if (end <= position) return 0;
    const B = this.blocks.blockBytes;
    const first = Math.floor(position / B);
    const last = Math.floor((end - 1) / B);
    const fetches: Promise<Uint8Array>[] = [];
    for (let b = first; b <= last; b++) fetches.push(this.block(b));
    const parts = await Promise.all(fetches);
    let done = 0;
    for (let b = first; b <= last; b++) {
      const block = parts[b - first]!;
      const from = Math.max(position, b * B) - b * B;
      const to = Math.min(end, (b + 1) * B) - b * B;
      if (to > block.length) throw new MediaError(Info.FAILED_TO_READ_FILE, `${this.name}: block ${b} cut short`);
      target.set(block.subarray(from, to), offset + done);
      done += to - from;
    }
    // Playback reads forward: the next block is fetched while this one is still being read.
    if (end - last * B > READ_AHEAD_AT * B && (last + 1) * B < this.size && !this.blocks.has(this.identity, last + 1)) {
      this.block(last + 1).catch(() => undefined);
    }
    return done;
  }

  async toolSource(): Promise<ToolSource> {
    return {
      input: () => this.store.presignGet(this.key, TOOL_URL_SECONDS),
      shared: true,
      location: `${this.store.description}/${this.key}`,
      currentIdentity: async () => {
        const head = await this.store.head(this.key);
        return head ? objectIdentity(head.etag, head.size, this.key) : undefined;
      },
    };
  }

  async close(): Promise<void> {
    // Nothing is held open: blocks live in the shared cache.
  }

  private block(b: number): Promise<Uint8Array> {
    const B = this.blocks.blockBytes;
    return this.blocks.get(this.identity, b, async () => {
      const start = b * B;
      const end = Math.min(this.size, start + B) - 1;
      try {
        const got = await this.store.read(this.key, { start, end }, { ifMatch: this.etag });
        if (got.bytes.length !== end - start + 1) throw new MediaError(Info.FAILED_TO_READ_FILE, `${this.name}: block ${b} cut short`);
        return got.bytes;
      } catch (err) {
        throw mediaErrorOf(err, this.name, false);
      }
    });
  }
}

/** One version of one object: the key is part of it, since two objects with the same bytes have the same ETag. */
function objectIdentity(etag: string, size: number, key: string): string {
  return `obj:${etag}:${size}:${key}`;
}

/** A store failure in the words a player gets. `opening`: not found is the file's absence, else its replacement. */
export function mediaErrorOf(err: unknown, name: string, opening: boolean): MediaError {
  if (err instanceof MediaError) return err;
  if (!(err instanceof StoreError)) return new MediaError(Info.FAILED_TO_READ_FILE, `${name}: ${String(err)}`);
  const detail = `${name}: ${err.message}`;
  switch (err.kind) {
    case "not-found":
      return new MediaError(opening ? Info.FILE_NOT_FOUND : Info.FILE_CHANGED, detail);
    case "changed":
      return new MediaError(Info.FILE_CHANGED, detail);
    case "refused":
      return new MediaError(Info.STORAGE_REFUSED, detail);
    case "unavailable":
      return new MediaError(Info.STORAGE_UNAVAILABLE, detail);
    case "bad-request":
      return new MediaError(Info.BAD_URI, detail);
    case "unsatisfiable":
      return new MediaError(Info.FAILED_TO_READ_FILE, detail);
  }
}
