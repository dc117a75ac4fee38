// A local file's parts into an open multipart upload: what the recording upload queue (which journals every part)
// and the fleet's prepared copies (which do not) both send.
import fs from "node:fs/promises";
import type { CompletedPart, ObjectStore } from "./object-store.ts";

/**
 * Uploads the parts of `file` (`size` bytes, `partBytes` each but the last) after those already in `parts`,
 * appending each as it is done; `afterPart` runs after each (a journal write), and may throw to stop.
 */
export async function uploadFileParts(
  store: ObjectStore,
  key: string,
  uploadId: string,
  file: string,
  size: number,
  partBytes: number,
  parts: CompletedPart[],
  afterPart: () => Promise<void> = async () => undefined,
): Promise<void> {
  const count = Math.ceil(size / partBytes);
  const h = await fs.open(file, "r");
  try {
    for (let n = parts.length + 1; n <= count; n++) {
      const start = (n - 1) * partBytes;
      const length = Math.min(partBytes, size - start);
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await h.read(buf, 0, length, start);
      if (bytesRead !== length) throw new Error(`${file}: short read of part ${n}`);
      parts.push({ partNumber: n, etag: await store.uploadPart(key, uploadId, n, buf) });
      await afterPart();
    }
  } finally {
    await h.close();
  }
}
