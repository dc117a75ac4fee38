// A folder of small JSON entries that survive a crash: what a recording in progress needs to be finished after a
// SIGKILL, and the uploads still owed to the bucket. One file per entry, written whole (temporary file, fsync,
// rename, fsync of the folder), so an entry is either the old one or the new one, never half of each.
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";

export class Journal<T> {
  constructor(readonly dir: string) {}

  /** The entry id of a name (record names can be 255 bytes of UTF-8: too long for a file name with a suffix). */
  static idOf(name: string): string {
    return createHash("sha256").update(name).digest("hex").slice(0, 40);
  }

  async put(id: string, value: T): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const file = path.join(this.dir, `${id}.json`);
    const tmp = path.join(this.dir, `.${id}.${randomUUID()}.tmp`);
    const h = await fs.open(tmp, "w");
    try {
      await h.writeFile(JSON.stringify(value));
      await h.sync();
    } finally {
      await h.close();
    }
    await fs.rename(tmp, file);
    await syncDir(this.dir);
  }

  async remove(id: string): Promise<void> {
    await fs.rm(path.join(this.dir, `${id}.json`), { force: true });
    await syncDir(this.dir);
  }

  /** Every entry, oldest file first; unreadable ones (a disk error, a hand edit) are logged and skipped. */
  async list(): Promise<{ id: string; value: T }[]> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    const out: { id: string; value: T; mtime: number }[] = [];
    for (const n of names) {
      const file = path.join(this.dir, n);
      if (n.startsWith(".") && n.endsWith(".tmp")) {
        await fs.rm(file, { force: true });
        continue;
      }
      if (!n.endsWith(".json")) continue;
      try {
        const [raw, st] = await Promise.all([fs.readFile(file, "utf8"), fs.stat(file)]);
        out.push({ id: n.slice(0, -5), value: JSON.parse(raw) as T, mtime: st.mtimeMs });
      } catch (err) {
        console.error(`journal ${file}: unreadable, skipped: ${String(err)}`);
      }
    }
    return out.sort((a, b) => a.mtime - b.mtime).map(({ id, value }) => ({ id, value }));
  }
}

/** Makes a rename durable. Best effort: some file systems refuse to open or sync a directory. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const h = await fs.open(dir, "r");
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // ignore
  }
}
