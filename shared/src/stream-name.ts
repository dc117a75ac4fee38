// Stream names as the SDK sends them: `vod://file.mp4` (personal), `vod-live://file.mp4` (shared), or a plain
// published name. File names are checked here syntactically; the sidecar re-checks them against the disk.

export type StreamName =
  | { kind: "vod"; file: string }
  | { kind: "vod-live"; file: string }
  | { kind: "live"; name: string };

export type FileNameError = "empty" | "absolute" | "traversal" | "bad-char" | "too-long";

const SCHEMES = [
  ["vod://", "vod"],
  ["vod-live://", "vod-live"],
] as const;

export function parseStreamName(raw: string): StreamName {
  for (const [prefix, kind] of SCHEMES) {
    if (raw.length >= prefix.length && raw.slice(0, prefix.length).toLowerCase() === prefix) {
      return { kind, file: raw.slice(prefix.length) };
    }
  }
  return { kind: "live", name: raw };
}

/** Max bytes of a media-relative path; each component is also held to 255 bytes (ext4, xfs, S3 keys: 1024). */
export const MAX_FILE_PATH_BYTES = 1024;

/**
 * Checks a media-relative file name (`sub/dir/file.mp4`) for anything that could leave the media folder or confuse
 * a file system or an object store: absolute paths, `..`/`.` components, backslashes, control characters.
 * Returns null when the name is acceptable.
 */
export function checkFileName(file: string): FileNameError | null {
  if (file.length === 0) return "empty";
  if (file.startsWith("/") || /^[a-zA-Z]:/.test(file)) return "absolute";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(file)) return "bad-char";
  const parts = file.split("/");
  for (const part of parts) {
    if (part === ".." || part === ".") return "traversal";
    if (part === "") return "bad-char";
    if (new TextEncoder().encode(part).length > 255) return "too-long";
  }
  if (new TextEncoder().encode(file).length > MAX_FILE_PATH_BYTES) return "too-long";
  return null;
}

export type PublishNameError = "empty" | "scheme" | "bad-char" | "too-long";

/**
 * Checks a name a browser publishes under. Any printable text is a valid stream name (WCS allows it, and the
 * record file name is sanitized separately); control characters and the VOD schemes are not.
 */
export function checkPublishName(name: string): PublishNameError | null {
  if (name.trim().length === 0) return "empty";
  if (parseStreamName(name).kind !== "live") return "scheme";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return "bad-char";
  if (new TextEncoder().encode(name).length > 255) return "too-long";
  return null;
}

export type RecordNameError = "empty" | "traversal" | "bad-char" | "hidden" | "not-mp4" | "too-long";

/**
 * Syntactic check of a record name: a bare `*.mp4` name, no separators, no control characters, no leading dot,
 * at most 255 bytes. "traversal" is any name that names something outside the folder (a separator, `..`).
 */
export function checkRecordName(name: string): RecordNameError | null {
  if (name.length === 0) return "empty";
  if (/[/\\]/.test(name) || name === "." || name === "..") return "traversal";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]|\p{Cs}/u.test(name)) return "bad-char";
  if (name.startsWith(".")) return "hidden";
  if (!name.toLowerCase().endsWith(".mp4")) return "not-mp4";
  if (new TextEncoder().encode(name).length > 255) return "too-long";
  return null;
}
