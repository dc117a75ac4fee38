// File access behind a small interface: the local disk (local-disk.ts) and byte-range reads from object storage
// (object-access.ts) plug in without touching the MP4 reader or the players.

/** An opened media file that can be read at any offset. */
export interface RandomAccessFile {
  /** Media-relative name, as asked for (`sub/file.mp4`). */
  readonly name: string;
  readonly size: number;
  /** Stable identity of this version of the file (caches key on it): changes when the content may have changed. */
  readonly identity: string;
  /** Reads exactly `length` bytes at `position` into `target` at `offset` (fewer only at end of file); returns bytes read. */
  read(target: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
  /** Where a tool (ffmpeg) can read this file itself; absent for files no tool can reach (a copy being prepared). */
  toolSource?(): Promise<ToolSource>;
}

/** A file as ffmpeg reads it for a prepare. */
export interface ToolSource {
  /**
   * What ffmpeg opens: a local path, or a presigned URL of a bucket object, made when ffmpeg starts (a prepare may
   * wait for a slot a long time) and never logged whole (it carries a signature).
   */
  input(): Promise<string>;
  /** The same file on every host (a bucket object): its prepared copy is made once for the fleet. */
  shared: boolean;
  /**
   * Where the file lives, stable across runs and, for a bucket, the same on every host (`s3://bucket/key`): with
   * the identity it keys the prepared copy.
   */
  location: string;
  /** The identity the file has now (undefined when gone): a copy of a source that changed meanwhile is not kept. */
  currentIdentity(): Promise<string | undefined>;
}

export interface FileAccess {
  /** Opens a media-relative file; rejects with a MediaError (Info string) when it cannot be served. */
  open(name: string): Promise<RandomAccessFile>;
}

/** An error whose `info` is the exact string the client sees in FAILED. */
export class MediaError extends Error {
  constructor(
    readonly info: string,
    detail?: string,
  ) {
    super(detail ? `${info}: ${detail}` : info);
  }
}
