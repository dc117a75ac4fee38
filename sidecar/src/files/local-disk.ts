// Media files on the local disk. Names come from viewers, so every name is confined to the media folder: the
// syntactic check first (nothing touches the disk for a name like `../x`), then the real path after symlinks must
// still lie inside the real root, and only regular files are opened (a FIFO or device could block or have effects).
import { constants, type Stats } from "node:fs";
import fs, { type FileHandle } from "node:fs/promises";
import path from "node:path";
import { checkFileName, Info } from "@edge-vod/shared";
import { MediaError, type FileAccess, type RandomAccessFile, type ToolSource } from "./file-access.ts";

// O_NOFOLLOW: the last component cannot be swapped for a symlink between realpath() and open(). O_NONBLOCK: should a
// FIFO appear there in that window, open() returns at once instead of waiting for a writer; fstat then rejects it.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export class LocalDiskAccess implements FileAccess {
  private realRoot: Promise<string> | undefined;

  constructor(private readonly root: string) {}

  async open(name: string): Promise<LocalFile> {
    const real = await this.confine(name);
    // Checked before opening so that a FIFO or device in the folder is never opened at all.
    const before = await fs.stat(real).catch((err: unknown) => {
      throw fsError(err, name);
    });
    if (!before.isFile()) throw new MediaError(Info.RESTRICTED_ACCESS, `${name}: not a regular file`);
    const handle = await fs.open(real, OPEN_FLAGS).catch((err: unknown) => {
      throw fsError(err, name);
    });
    try {
      const st = await handle.stat();
      if (!st.isFile() || st.ino !== before.ino || st.dev !== before.dev) {
        throw new MediaError(Info.RESTRICTED_ACCESS, `${name}: file changed while opening`);
      }
      return new LocalFile(name, handle, st, real);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err instanceof MediaError ? err : fsError(err, name);
    }
  }

  localPath(name: string): Promise<string> {
    return this.confine(name);
  }

  /** Real path of a media-relative name, guaranteed to lie inside the real media root. */
  private async confine(name: string): Promise<string> {
    const bad = checkFileName(name);
    if (bad) throw new MediaError(Info.BAD_URI, `${JSON.stringify(name)}: ${bad}`);
    const root = await this.resolveRoot();
    const real = await fs.realpath(path.join(root, name)).catch((err: unknown) => {
      throw fsError(err, name);
    });
    const prefix = root.endsWith(path.sep) ? root : root + path.sep;
    if (!real.startsWith(prefix)) throw new MediaError(Info.RESTRICTED_ACCESS, `${name}: outside the media folder`);
    return real;
  }

  private resolveRoot(): Promise<string> {
    // Cached once it resolves; a root that does not exist yet is looked up again on the next open.
    this.realRoot ??= fs.realpath(this.root).catch((err: unknown) => {
      this.realRoot = undefined;
      throw fsError(err, "media folder");
    });
    return this.realRoot;
  }
}

export class LocalFile implements RandomAccessFile {
  readonly size: number;
  /** Modification time (ms since epoch) of the opened file, for HTTP validators. */
  readonly mtimeMs: number;
  readonly identity: string;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly handle: FileHandle,
    st: Stats,
    /** Its real path, confined to its folder; absent for files no tool should open by name. */
    private readonly realPath?: string,
  ) {
    this.size = st.size;
    this.mtimeMs = st.mtimeMs;
    this.identity = fileIdentity(st);
  }

  async toolSource(): Promise<ToolSource> {
    const p = this.realPath;
    if (p === undefined) throw new MediaError(Info.FAILED_TO_READ_FILE, `${this.name}: no path to read it by`);
    return {
      input: async () => p,
      shared: false,
      // The path is part of the key because identity (size, mtime, inode) is only unique within one file system.
      location: p,
      currentIdentity: async () => {
        const st = await fs.stat(p).catch(() => undefined);
        return st ? fileIdentity(st) : undefined;
      },
    };
  }

  async read(target: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    let done = 0;
    try {
      while (done < length) {
        const { bytesRead } = await this.handle.read(target, offset + done, length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (err) {
      throw new MediaError(Info.FAILED_TO_READ_FILE, `${this.name}: ${errText(err)}`);
    }
    return done;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

/** A local file version's identity (size, mtime, inode): what caches key on, and what a prepare re-checks. */
export function fileIdentity(st: Pick<Stats, "size" | "mtimeMs" | "ino">): string {
  return `${st.size}-${st.mtimeMs}-${st.ino}`;
}

function fsError(err: unknown, name: string): MediaError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const detail = `${name}: ${errText(err)}`;
  switch (code) {
    case "ENOENT":
    case "ENOTDIR":
      return new MediaError(Info.FILE_NOT_FOUND, detail);
    case "ELOOP": // a symlink where O_NOFOLLOW forbids one, or a symlink cycle
    case "EACCES":
    case "EPERM":
      return new MediaError(Info.RESTRICTED_ACCESS, detail);
    case "ENAMETOOLONG":
      return new MediaError(Info.BAD_URI, detail);
    default:
      return new MediaError(Info.FAILED_TO_READ_FILE, detail);
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
