import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Info } from "@edge-vod/shared";
import { MediaError } from "../../sidecar/src/files/file-access.ts";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";

let tmp: string;
let media: string;
let disk: LocalDiskAccess;
const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff);

before(async () => {
  tmp = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), "local-disk-")));
  media = path.join(tmp, "media");
  await fs.mkdir(path.join(media, "sub"), { recursive: true });
  await fs.mkdir(path.join(tmp, "outside"));
  await fs.writeFile(path.join(tmp, "outside", "secret.mp4"), "secret");
  await fs.writeFile(path.join(media, "good.mp4"), bytes);
  await fs.writeFile(path.join(media, "sub", "inner.mp4"), "inner");
  await fs.symlink("../outside/secret.mp4", path.join(media, "escape.mp4"));
  await fs.symlink(path.join(tmp, "outside"), path.join(media, "outdir"));
  await fs.symlink("good.mp4", path.join(media, "alias.mp4"));
  await fs.symlink("sub", path.join(media, "subalias"));
  await fs.symlink("nowhere.mp4", path.join(media, "dangling.mp4"));
  await promisify(execFile)("mkfifo", [path.join(media, "pipe.mp4")]);
  disk = new LocalDiskAccess(media);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function refused(name: string, info: string, access: LocalDiskAccess = disk) {
  await assert.rejects(access.open(name), (err: unknown) => {
    assert.ok(err instanceof MediaError, `${name}: ${String(err)}`);
    assert.equal(err.info, info, `${name}: ${err.message}`);
    return true;
  });
}

test("syntactically bad names are refused before the disk is touched", async (t) => {
  const realpath = t.mock.method(fs, "realpath");
  const stat = t.mock.method(fs, "stat");
  const open = t.mock.method(fs, "open");
  // A root that does not exist would give "File not found" if anything were looked up.
  const nowhere = new LocalDiskAccess(path.join(tmp, "no-such-root"));
  for (const name of ["../outside/secret.mp4", "sub/../../outside/secret.mp4", "/etc/passwd", "", "a//b.mp4", "a\\b"]) {
    await refused(name, Info.BAD_URI, nowhere);
    await refused(name, Info.BAD_URI);
  }
  assert.equal(realpath.mock.callCount() + stat.mock.callCount() + open.mock.callCount(), 0);
  // The spies do see the disk being used for a good name.
  await (await disk.open("good.mp4")).close();
  assert.ok(realpath.mock.callCount() > 0 && stat.mock.callCount() > 0 && open.mock.callCount() > 0);
});

test("symlinks that leave the media folder are refused", async () => {
  await refused("escape.mp4", Info.RESTRICTED_ACCESS);
  await refused("outdir/secret.mp4", Info.RESTRICTED_ACCESS);
  await assert.rejects(disk.localPath("escape.mp4"), (e: unknown) => e instanceof MediaError && e.info === Info.RESTRICTED_ACCESS);
});

test("directories and FIFOs are refused without blocking", { timeout: 5000 }, async () => {
  await refused("sub", Info.RESTRICTED_ACCESS);
  await refused("subalias", Info.RESTRICTED_ACCESS);
  await refused("pipe.mp4", Info.RESTRICTED_ACCESS);
});

test("device files are refused without being read, even inside the folder", { timeout: 5000 }, async () => {
  // A media folder that holds devices (here /dev itself): /dev/zero would never end, /dev/urandom is no file.
  const devices = new LocalDiskAccess("/dev");
  for (const name of ["zero", "null", "urandom"]) await refused(name, Info.RESTRICTED_ACCESS, devices);
});

test("missing files are not found", async () => {
  await refused("missing.mp4", Info.FILE_NOT_FOUND);
  await refused("missing/dir.mp4", Info.FILE_NOT_FOUND);
  await refused("good.mp4/child.mp4", Info.FILE_NOT_FOUND);
  await refused("dangling.mp4", Info.FILE_NOT_FOUND);
  await refused("x.mp4", Info.FILE_NOT_FOUND, new LocalDiskAccess(path.join(tmp, "no-such-root")));
});

test("a good file reads the right bytes at an offset, short only at the end", async () => {
  const file = await disk.open("good.mp4");
  try {
    assert.equal(file.name, "good.mp4");
    assert.equal(file.size, bytes.length);
    const st = await fs.stat(path.join(media, "good.mp4"));
    assert.equal(file.identity, `${st.size}-${st.mtimeMs}-${st.ino}`);
    const target = new Uint8Array(20);
    assert.equal(await file.read(target, 2, 10, 1000), 10);
    assert.deepEqual(target.subarray(2, 12), bytes.subarray(1000, 1010));
    assert.deepEqual(target.subarray(0, 2), new Uint8Array(2));
    assert.equal(await file.read(target, 0, 20, bytes.length - 5), 5);
    assert.deepEqual(target.subarray(0, 5), bytes.subarray(bytes.length - 5));
    assert.equal(await file.read(target, 0, 20, bytes.length + 100), 0);
  } finally {
    await file.close();
    await file.close(); // closing twice is harmless
  }
});

test("a symlink that stays inside the folder is fine, and localPath gives the real path", async () => {
  const file = await disk.open("alias.mp4");
  const inner = await disk.open("subalias/inner.mp4");
  try {
    const target = new Uint8Array(16);
    assert.equal(await file.read(target, 0, 16, 0), 16);
    assert.deepEqual(target, bytes.subarray(0, 16));
    assert.equal(inner.size, 5);
  } finally {
    await file.close();
    await inner.close();
  }
  assert.equal(await disk.localPath("alias.mp4"), path.join(media, "good.mp4"));
  assert.equal(await disk.localPath("subalias/inner.mp4"), path.join(media, "sub", "inner.mp4"));
});

test("a media root reached through a symlink still works", async () => {
  const link = path.join(tmp, "media-link");
  await fs.symlink(media, link);
  const viaLink = new LocalDiskAccess(link);
  const file = await viaLink.open("good.mp4");
  await file.close();
  await refused("escape.mp4", Info.RESTRICTED_ACCESS, viaLink);
});

test("a changed file gets a new identity", async () => {
  const p = path.join(media, "changing.mp4");
  await fs.writeFile(p, "one");
  const a = await disk.open("changing.mp4");
  await a.close();
  await fs.writeFile(p, "three");
  const b = await disk.open("changing.mp4");
  await b.close();
  assert.notEqual(a.identity, b.identity);
});
