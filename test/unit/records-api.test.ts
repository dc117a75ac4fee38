// The sidecar's record downloads (`/v1/records/<name>`), through a hono app set up as the control API is: the
// signature check first (signedAuth), JSON 404 for unknown routes, then the routes added by recordsRoutes().
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Hono } from "hono";
import { SIDECAR_PATHS } from "@edge-vod/shared";
import { checkRecordName } from "@edge-vod/shared";
import { parseRange, recordsRoutes } from "../../sidecar/src/api/records.ts";
import { ReplayCache } from "../../sidecar/src/api/replay-cache.ts";
import { signedAuth } from "../../sidecar/src/api/signed-auth.ts";
import { signedHeaders } from "../helpers/signed-fetch.ts";

const SECRET = "records-test-secret-0123456789";

let tmp: string;
let dir: string;
let app: Hono;
/** Several read chunks long, and not a multiple of the chunk size. */
const content = randomBytes(300 * 1024 + 123);
const size = content.length;

before(async () => {
  tmp = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), "records-api-")));
  dir = path.join(tmp, "records");
  await fs.mkdir(dir);
  await fs.mkdir(path.join(tmp, "outside"));
  await fs.writeFile(path.join(tmp, "outside", "secret.mp4"), "secret");
  await fs.writeFile(path.join(dir, "good.mp4"), content);
  await fs.writeFile(path.join(dir, "empty.mp4"), "");
  await fs.writeFile(path.join(dir, "Ёлка 🎄.mp4"), "unicode");
  await fs.writeFile(path.join(dir, "notes.txt"), "text");
  await fs.writeFile(path.join(dir, ".hidden.mp4"), "hidden");
  await fs.mkdir(path.join(dir, "folder.mp4"));
  await fs.symlink("../outside/secret.mp4", path.join(dir, "escape.mp4"));
  await fs.symlink(path.join(tmp, "outside", "secret.mp4"), path.join(dir, "absolute-link.mp4"));
  await fs.symlink("good.mp4", path.join(dir, "alias.mp4"));
  await promisify(execFile)("mkfifo", [path.join(dir, "pipe.mp4")]);

  app = new Hono();
  app.use("*", signedAuth(SECRET, { replay: new ReplayCache(), maxBodyBytes: 1024 }));
  app.notFound((c) => c.json({ error: "Not found" }, 404));
  recordsRoutes(app, dir);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const url = (rawName: string) => `http://sidecar${SIDECAR_PATHS.records}/${rawName}`;

async function get(rawName: string, headers: Record<string, string> = {}, method = "GET"): Promise<Response> {
  return app.request(url(rawName), { method, headers: await signedHeaders(SECRET, url(rawName), { method, headers }) });
}

async function bodyOf(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

/** Open descriptors of this process on `file` (Linux). */
async function openCount(file: string): Promise<number> {
  let n = 0;
  for (const fd of await fs.readdir("/proc/self/fd")) {
    const target = await fs.readlink(`/proc/self/fd/${fd}`).catch(() => "");
    if (target === file) n++;
  }
  return n;
}

async function waitClosed(file: string): Promise<void> {
  for (let i = 0; (await openCount(file)) > 0; i++) {
    if (i > 200) assert.fail(`${file} is still open`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("whole files", () => {
  test("GET streams the exact bytes with the file headers", async () => {
    const res = await get("good.mp4");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "video/mp4");
    assert.equal(res.headers.get("content-length"), String(size));
    assert.equal(res.headers.get("accept-ranges"), "bytes");
    assert.equal(res.headers.get("content-range"), null);
    assert.match(res.headers.get("etag") ?? "", /^"[^"]+"$/);
    const st = await fs.stat(path.join(dir, "good.mp4"));
    assert.equal(res.headers.get("last-modified"), new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString());
    assert.ok((await bodyOf(res)).equals(content));
    await waitClosed(path.join(dir, "good.mp4"));
  });

  test("HEAD answers the headers only and leaves no file open", async () => {
    const res = await get("good.mp4", {}, "HEAD");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(size));
    assert.equal(res.headers.get("content-type"), "video/mp4");
    assert.equal((await bodyOf(res)).length, 0);
    assert.equal(await openCount(path.join(dir, "good.mp4")), 0);
  });

  test("a download cancelled midway closes the file", async () => {
    const res = await get("good.mp4");
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.ok(first.value && first.value.length > 0 && first.value.length < size);
    assert.equal(await openCount(path.join(dir, "good.mp4")), 1);
    await reader.cancel();
    await waitClosed(path.join(dir, "good.mp4"));
  });

  test("an empty file, Unicode names and symlinks inside the folder are served", async () => {
    const empty = await get("empty.mp4");
    assert.equal(empty.status, 200);
    assert.equal(empty.headers.get("content-length"), "0");
    assert.equal((await bodyOf(empty)).length, 0);
    const uni = await get(encodeURIComponent("Ёлка 🎄.mp4"));
    assert.equal(uni.status, 200);
    assert.equal((await bodyOf(uni)).toString(), "unicode");
    const alias = await get("alias.mp4");
    assert.equal(alias.status, 200);
    assert.ok((await bodyOf(alias)).equals(content));
  });
});

describe("ranges", () => {
  const cases: Array<[string, number, number]> = [
    ["bytes=0-99", 0, 99],
    ["bytes=100-", 100, size - 1],
    ["bytes=-50", size - 50, size - 1],
    ["bytes=-999999999", 0, size - 1],
    ["bytes=70000-999999999", 70000, size - 1],
    [`bytes=${size - 1}-${size - 1}`, size - 1, size - 1],
    ["bytes=65530-65545", 65530, 65545], // across a read-chunk boundary
  ];
  for (const [range, start, end] of cases) {
    test(`${range} → 206 ${start}-${end}`, async () => {
      const res = await get("good.mp4", { range });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get("content-range"), `bytes ${start}-${end}/${size}`);
      assert.equal(res.headers.get("content-length"), String(end - start + 1));
      assert.ok((await bodyOf(res)).equals(content.subarray(start, end + 1)));
    });
  }

  test("HEAD with a range answers 206 headers without a body", async () => {
    const res = await get("good.mp4", { range: "bytes=10-19" }, "HEAD");
    assert.equal(res.status, 206);
    assert.equal(res.headers.get("content-range"), `bytes 10-19/${size}`);
    assert.equal(res.headers.get("content-length"), "10");
    assert.equal((await bodyOf(res)).length, 0);
  });

  for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, "bytes=-0"]) {
    test(`${range} → 416 with bytes */size`, async () => {
      const res = await get("good.mp4", { range });
      assert.equal(res.status, 416);
      assert.equal(res.headers.get("content-range"), `bytes */${size}`);
      assert.equal(typeof ((await res.json()) as { error: unknown }).error, "string");
    });
  }

  test("any range of an empty file is unsatisfiable", async () => {
    const res = await get("empty.mp4", { range: "bytes=0-" });
    assert.equal(res.status, 416);
    assert.equal(res.headers.get("content-range"), "bytes */0");
  });

  for (const range of ["bytes=0-1,5-9", "items=0-9", "bytes=abc", "bytes=9-5", "bytes=-", "bytes 0-9"]) {
    test(`'${range}' is ignored: 200 with the whole file`, async () => {
      const res = await get("good.mp4", { range });
      assert.equal(res.status, 200);
      assert.ok((await bodyOf(res)).equals(content));
    });
  }

  test("parseRange", () => {
    assert.deepEqual(parseRange("bytes=0-0", 10), { start: 0, end: 0 });
    assert.deepEqual(parseRange("bytes=-3", 10), { start: 7, end: 9 });
    assert.deepEqual(parseRange("BYTES = 2 - 4", 10), { start: 2, end: 4 });
    assert.equal(parseRange("bytes=10-", 10), "unsatisfiable");
    assert.equal(parseRange("bytes=-1", 0), "unsatisfiable");
    assert.equal(parseRange("bytes=1-2, 4-5", 10), null);
  });
});

describe("revalidation", () => {
  let etag: string;
  let lastModified: string;
  before(async () => {
    const res = await get("good.mp4", {}, "HEAD");
    etag = res.headers.get("etag")!;
    lastModified = res.headers.get("last-modified")!;
  });

  test("If-None-Match with the current ETag → 304 without a body", async () => {
    for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
      const res = await get("good.mp4", { "if-none-match": inm });
      assert.equal(res.status, 304, inm);
      assert.equal(res.headers.get("etag"), etag);
      assert.equal((await bodyOf(res)).length, 0);
    }
    const changed = await get("good.mp4", { "if-none-match": '"other"' });
    assert.equal(changed.status, 200);
    await changed.body?.cancel();
  });

  test("If-Modified-Since → 304 unless the file is newer; If-None-Match takes precedence", async () => {
    const notModified = await get("good.mp4", { "if-modified-since": lastModified });
    assert.equal(notModified.status, 304);
    const older = await get("good.mp4", { "if-modified-since": new Date(Date.parse(lastModified) - 1000).toUTCString() });
    assert.equal(older.status, 200);
    await older.body?.cancel();
    const both = await get("good.mp4", { "if-modified-since": lastModified, "if-none-match": '"other"' });
    assert.equal(both.status, 200);
    await both.body?.cancel();
    await waitClosed(path.join(dir, "good.mp4"));
  });

  test("If-Range: the range applies only to the same version", async () => {
    const same = await get("good.mp4", { range: "bytes=0-9", "if-range": etag });
    assert.equal(same.status, 206);
    await same.body?.cancel();
    const sameDate = await get("good.mp4", { range: "bytes=0-9", "if-range": lastModified });
    assert.equal(sameDate.status, 206);
    await sameDate.body?.cancel();
    const other = await get("good.mp4", { range: "bytes=0-9", "if-range": '"other"' });
    assert.equal(other.status, 200);
    assert.ok((await bodyOf(other)).equals(content));
  });
});

describe("confinement", () => {
  async function refused(rawName: string, status: number): Promise<void> {
    const res = await get(rawName);
    assert.equal(res.status, status, `${rawName}: ${res.status}`);
    assert.match(res.headers.get("content-type") ?? "", /application\/json/);
    const body = (await res.json()) as { error?: unknown };
    assert.equal(typeof body.error, "string", rawName);
  }

  test("escape attempts → 403", async () => {
    for (const raw of [
      "..%2Foutside%2Fsecret.mp4",
      "..%2F..%2F..%2Fetc%2Fpasswd",
      encodeURIComponent(path.join(tmp, "outside", "secret.mp4")), // absolute
      "%2Fetc%2Fpasswd",
      "..%5Coutside%5Csecret.mp4",
      "escape.mp4", // relative symlink out of the folder
      "absolute-link.mp4", // absolute symlink out of the folder
    ]) {
      await refused(raw, 403);
    }
  });

  test("a FIFO and a directory are not regular files → 403, without blocking", async () => {
    await refused("pipe.mp4", 403);
    await refused("folder.mp4", 403);
  });

  test("malformed names → 400", async () => {
    for (const raw of ["notes.txt", "good.MP3", "%00.mp4", "a%0Ab.mp4", ".hidden.mp4", encodeURIComponent("x".repeat(252) + ".mp4")]) {
      await refused(raw, 400);
    }
  });

  test("a missing file → 404", async () => {
    await refused("missing.mp4", 404);
    await refused(encodeURIComponent("нет такого.mp4"), 404);
  });

  test("paths below the records route are not routes at all", async () => {
    const res = await get("sub/good.mp4");
    assert.equal(res.status, 404);
  });

  test("checkRecordName", () => {
    assert.equal(checkRecordName("stream-1-.mp4"), null);
    assert.equal(checkRecordName("a/b.mp4"), "traversal");
    assert.equal(checkRecordName("a\\b.mp4"), "traversal");
    assert.equal(checkRecordName(""), "empty");
    assert.equal(checkRecordName("x.mp4\u0000"), "bad-char");
    assert.equal(checkRecordName("x\ud800.mp4"), "bad-char");
    assert.equal(checkRecordName("x.webm"), "not-mp4");
    assert.equal(checkRecordName("é".repeat(126) + ".mp4"), "too-long");
    assert.equal(checkRecordName("é".repeat(125) + ".mp4"), null);
  });
});

test("not signed with the secret, or a signed request sent again → 401 before anything is looked up", async () => {
  const u = url("good.mp4");
  const attempts: Array<[HeadersInit, string]> = [
    [{}, "Unsigned request"],
    [{ authorization: "Bearer wrong-secret-wrong-secret" }, "Unsigned request"],
    [{ authorization: `Bearer ${SECRET}` }, "Unsigned request"],
    [{ authorization: SECRET }, "Unsigned request"],
    [await signedHeaders("wrong-secret-wrong-secret", u), "Bad signature"],
    // Signed for another file: the path is part of the signature.
    [await signedHeaders(SECRET, url("empty.mp4")), "Bad signature"],
    [await signedHeaders(SECRET, u, { signedAt: Date.now() - 31_000 }), "Stale request"],
  ];
  for (const [headers, error] of attempts) {
    const res = await app.request(u, { headers });
    assert.equal(res.status, 401, error);
    assert.deepEqual(await res.json(), { error });
  }
  // The second time the same signed request (same nonce) comes, it is refused.
  const missing = url("missing.mp4");
  const once = await signedHeaders(SECRET, missing);
  assert.equal((await app.request(missing, { headers: once })).status, 404);
  const again = await app.request(missing, { headers: once });
  assert.equal(again.status, 401);
  assert.deepEqual(await again.json(), { error: "Replayed request" });
  assert.equal(await openCount(path.join(dir, "good.mp4")), 0);
});
