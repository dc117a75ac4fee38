// Several places seen as one: `vod://name` is looked up in the media folder, then in the records folder when
// recordings are kept apart (RECORD_DIR), then in the bucket (S3_ENDPOINT). Only "not found" moves on to the next
// layer; any other refusal (bad name, escape attempt, a bucket that refuses us) is final.
import { Info } from "@edge-vod/shared";
import { MediaError, type FileAccess, type RandomAccessFile } from "./file-access.ts";

export class LayeredAccess implements FileAccess {
  constructor(private readonly layers: FileAccess[]) {}

  async open(name: string): Promise<RandomAccessFile> {
    let notFound: unknown;
    for (const layer of this.layers) {
      try {
        return await layer.open(name);
      } catch (err) {
        if (!(err instanceof MediaError) || err.info !== Info.FILE_NOT_FOUND) throw err;
        notFound = err;
      }
    }
    throw notFound ?? new MediaError(Info.FILE_NOT_FOUND, name);
  }
}
