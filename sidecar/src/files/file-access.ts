// File access behind a small interface so that local disk today and byte-range reads from object storage
// (S3/R2) later plug in without touching the MP4 reader or the players.

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
}

export interface FileAccess {
  /** Opens a media-relative file; rejects with a MediaError (Info string) when it cannot be served. */
  open(name: string): Promise<RandomAccessFile>;
  /** Local path of the opened file, for tools that need one (ffmpeg); undefined for remote stores. */
  localPath?(name: string): Promise<string | undefined>;
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
