// Record file names as WCS makes them: a template (`stream_record_policy_template`, default
// `stream-{mediaSessionId}-{login}`) with placeholders, plus the container's extension.
//
// Stream names and logins come from browsers, so whatever they hold the result is one safe file name on any file
// system: no path separators, control or bidi-override characters, Windows-reserved characters or device names, no
// leading dot, no trailing dots or spaces, valid UTF-8 of at most 255 bytes (`.mp4` included, cut between
// characters, never inside one), and never empty. Other Unicode (letters, emoji) is kept, in NFC.
import fs from "node:fs/promises";
import path from "node:path";

export interface RecordNameFields {
  streamName: string;
  mediaSessionId: string;
  /** Empty when the session has none: the default template then gives `stream-<id>-.mp4`, as WCS does. */
  login: string;
  /** Ms since epoch. */
  startTimeMs: number;
  /** Unknown while recording: `{endTime}`, `{endTimeMillis}` and `{duration}` then render as empty. */
  endTimeMs?: number;
  durationMs?: number;
  sessionId?: string;
  audioCodec?: string;
  videoCodec?: string;
}

export const RECORD_EXTENSION = ".mp4";
/** ext4, xfs, btrfs, APFS and NTFS (in UTF-16 units, which never exceed UTF-8 bytes) all allow 255 per name. */
export const MAX_RECORD_NAME_BYTES = 255;
const MAX_BASE_BYTES = MAX_RECORD_NAME_BYTES - RECORD_EXTENSION.length;
/** Names tried by reserveRecordPath before it gives up (`name.mp4`, `name-1.mp4`, … `name-<n-1>.mp4`). */
const MAX_RESERVE_ATTEMPTS = 10_000;

/**
 * Renders a record template into a bare file name with `.mp4`.
 *
 * Placeholders (case-sensitive, as in WCS): `{streamName}`, `{mediaSessionId}`, `{login}`, `{sessionId}`,
 * `{audioCodec}`, `{videoCodec}`; `{startTime}` = `{startTimeMillis}` and `{endTime}` = `{endTimeMillis}` (ms since
 * epoch); `{duration}` (ms). Any other `{word}` is kept literally, so a misspelt placeholder shows in the file name
 * instead of silently vanishing. A template that already ends in `.mp4` does not get a second one.
 */
export function renderRecordName(template: string, fields: RecordNameFields): string {
  const tpl = template.toLowerCase().endsWith(RECORD_EXTENSION) ? template.slice(0, -RECORD_EXTENSION.length) : template;
  const values: Record<string, string> = {
    streamName: fields.streamName,
    mediaSessionId: fields.mediaSessionId,
    login: fields.login,
    startTime: ms(fields.startTimeMs),
    startTimeMillis: ms(fields.startTimeMs),
    endTime: ms(fields.endTimeMs),
    endTimeMillis: ms(fields.endTimeMs),
    duration: ms(fields.durationMs),
    sessionId: fields.sessionId ?? "",
    audioCodec: fields.audioCodec ?? "",
    videoCodec: fields.videoCodec ?? "",
  };
  // One pass: text that a value brings in is never taken for a placeholder.
  const rendered = tpl.replace(/\{([A-Za-z]+)\}/g, (whole, key: string) => (Object.hasOwn(values, key) ? values[key]! : whole));
  // `stream-` keeps the fallback non-empty whatever the id holds.
  const base = safeBase(rendered, MAX_BASE_BYTES) || safeBase(`stream-${fields.mediaSessionId}`, MAX_BASE_BYTES);
  return base + RECORD_EXTENSION;
}

/**
 * Creates `dir/fileName` exclusively (O_CREAT|O_EXCL, which also refuses to follow a planted symlink), so no two
 * recordings ever share a file. When the name is taken it tries `name-1.mp4`, `name-2.mp4`, … (cut so that the
 * name stays within 255 bytes). Creates `dir` when it is missing. The file is left empty and closed.
 */
export async function reserveRecordPath(
  dir: string,
  fileName: string,
  /** Names taken elsewhere (the bucket, uploads still pending), skipped as a file on disk is. */
  taken?: (name: string) => Promise<boolean>,
): Promise<{ path: string; name: string }> {
  // Names from renderRecordName pass through unchanged; anything else is made safe the same way.
  const stem = fileName.toLowerCase().endsWith(RECORD_EXTENSION) ? fileName.slice(0, -RECORD_EXTENSION.length) : fileName;
  const base = safeBase(stem, MAX_BASE_BYTES) || "stream";
  let madeDir = false;
  for (let n = 0; n < MAX_RESERVE_ATTEMPTS; ) {
    const suffix = n === 0 ? "" : `-${n}`;
    const name = (n === 0 ? base : truncateUtf8(base, MAX_BASE_BYTES - suffix.length)) + suffix + RECORD_EXTENSION;
    const full = path.join(dir, name);
    if (taken && (await taken(name))) {
      n++;
      continue;
    }
    try {
      const handle = await fs.open(full, "wx", 0o644);
      await handle.close();
      return { path: full, name };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST") {
        n++;
        continue;
      }
      if (code === "ENOENT" && !madeDir) {
        madeDir = true;
        await fs.mkdir(dir, { recursive: true });
        continue;
      }
      throw err;
    }
  }
  throw new Error(`no free record file name for ${base}${RECORD_EXTENSION} after ${MAX_RESERVE_ATTEMPTS} attempts`);
}

function ms(value: number | undefined): string {
  return value !== undefined && Number.isFinite(value) ? String(Math.round(value)) : "";
}

// Replaced by `_`: C0/C1 controls and DEL (\p{Cc}), lone surrogates (\p{Cs}: not encodable in UTF-8), line and
// paragraph separators, bidi embedding/override/isolate marks and other invisible format characters that can disguise
// a name (ZWJ, ZWNJ and variation selectors stay: emoji need them), BOM, the noncharacters U+FFFE/U+FFFF, the path
// separators and what Windows forbids: < > : " / \ | ? *
const UNSAFE_CHARS =
  // eslint-disable-next-line no-control-regex
  /[\p{Cc}\p{Cs}\p{Zl}\p{Zp}\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb\ufffe\uffff<>:"/\\|?*]/gu;
/** Windows device names, reserved with any extension too (`CON.mp4`, `com1.x.mp4`). */
const WINDOWS_RESERVED = /^(?:con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(?:\.|$)/i;
const TRAILING = /[\s.]+$/u;

/** One safe name without extension, of at most `maxBytes` UTF-8 bytes; "" when nothing usable is left. Idempotent. */
function safeBase(raw: string, maxBytes: number): string {
  // Normalized on both sides of the replacement, so that the result is NFC and a second pass changes nothing.
  let s = raw.normalize("NFC").replace(UNSAFE_CHARS, "_").normalize("NFC");
  s = s.replace(/^\s+/u, "").replace(/^\.+/, (dots) => "_".repeat(dots.length));
  s = truncateUtf8(s, maxBytes).replace(TRAILING, "");
  if (WINDOWS_RESERVED.test(s)) s = truncateUtf8(`_${s}`, maxBytes).replace(TRAILING, "");
  return s;
}

const encoder = new TextEncoder();
const utf8Length = (s: string): number => encoder.encode(s).length;
/** A grapheme longer than this (a pile of combining marks) is cut between its code points instead. */
const MAX_GRAPHEME_BYTES = 64;
const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/**
 * The longest prefix of a well-formed string that fits in `maxBytes` of UTF-8, cut between user-perceived
 * characters (an emoji sequence or a letter with its accents stays whole) and never inside a code point.
 */
export function truncateUtf8(s: string, maxBytes: number): string {
  if (utf8Length(s) <= maxBytes) return s;
  let out = "";
  let used = 0;
  for (const { segment } of graphemes.segment(s)) {
    const len = utf8Length(segment);
    if (used + len <= maxBytes) {
      out += segment;
      used += len;
      continue;
    }
    if (len > MAX_GRAPHEME_BYTES) {
      for (const cp of segment) {
        const n = utf8Length(cp);
        if (used + n > maxBytes) break;
        out += cp;
        used += n;
      }
    }
    break;
  }
  return out;
}
