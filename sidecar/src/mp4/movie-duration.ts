// A file's length from its movie header (`moov/mvhd`), for listings of many recordings. Written by hand because
// mp4box parses the whole moov, sample tables included, to give this one field: megabytes of work per long file,
// where this reads a few headers.
import type { RandomAccessFile } from "../files/file-access.ts";

/** Boxes looked at before giving up: top-level boxes before moov, and moov's children before mvhd. */
const MAX_BOXES = 64;

/** Duration in ms, or undefined when there is no (complete) movie header or it says 0 (a fragmented file). */
export async function movieDurationMs(file: RandomAccessFile): Promise<number | undefined> {
  const head = new Uint8Array(32);
  const view = new DataView(head.buffer);
  const box = async (pos: number, end: number): Promise<{ type: string; start: number; size: number; header: number } | undefined> => {
    if (pos + 8 > end) return undefined;
    const got = await file.read(head, 0, 16, pos);
    if (got < 8) return undefined;
    let size = view.getUint32(0);
    const type = String.fromCharCode(head[4]!, head[5]!, head[6]!, head[7]!);
    let header = 8;
    if (size === 1) {
      if (got < 16) return undefined;
      size = Number(view.getBigUint64(8));
      header = 16;
    } else if (size === 0) {
      size = end - pos;
    }
    if (size < header || pos + size > end) return undefined;
    return { type, start: pos, size, header };
  };

  let moov;
  for (let pos = 0, i = 0; i < MAX_BOXES; i++) {
    const b = await box(pos, file.size);
    if (!b) return undefined;
    if (b.type === "moov") {
      moov = b;
      break;
    }
    pos += b.size;
  }
  if (!moov) return undefined;
  const end = moov.start + moov.size;
  for (let pos = moov.start + moov.header, i = 0; i < MAX_BOXES; i++) {
    const b = await box(pos, end);
    if (!b) return undefined;
    if (b.type === "mvhd") {
      const body = b.start + b.header;
      if ((await file.read(head, 0, 32, body)) < 32 || b.size < b.header + 32) return undefined;
      const version = head[0];
      // version 0: creation(4) modification(4) timescale(4) duration(4); version 1: 8, 8, 4, 8.
      const timescale = version === 1 ? view.getUint32(20) : view.getUint32(12);
      const duration = version === 1 ? Number(view.getBigUint64(24)) : view.getUint32(16);
      if (timescale === 0 || duration === 0 || (version === 0 && duration === 0xffffffff)) return undefined;
      return Math.round((duration / timescale) * 1000);
    }
    pos += b.size;
  }
  return undefined;
}
