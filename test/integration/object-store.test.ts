// The ObjectStore contract, run the same against a folder (FolderStore) and a real S3 server (OpenStack Swift's
// s3api, started here): range reads with suffix ranges, If-Match pinning, multipart with 5 MiB parts, listing,
// deletion, presigned URLs, and the error kinds callers tell apart.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { FolderStore } from "../../sidecar/src/store/folder-store.ts";
import { MIN_PART_BYTES, StoreError, type ObjectStore, type StoreErrorKind } from "../../sidecar/src/store/object-store.ts";
import { S3Store } from "../../sidecar/src/store/s3-store.ts";
import { startSwift, type SwiftServer } from "../helpers/swift.ts";

let swift: SwiftServer;
let folder: string;

before(async () => {
  swift = await startSwift();
  await swift.createBucket("contract");
  folder = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-folder-store-"));
});

after(async () => {
  await swift?.stop();
  await fs.rm(folder, { recursive: true, force: true });
});

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

async function kindOf(p: Promise<unknown>): Promise<StoreErrorKind | "resolved"> {
  try {
    await p;
    return "resolved";
  } catch (err) {
    assert.ok(err instanceof StoreError, `not a StoreError: ${String(err)}`);
    return err.kind;
  }
}

/** What a presigned URL (or a folder's path) gives to someone without credentials. */
async function fetchPresigned(url: string, range?: string): Promise<Buffer> {
  if (!/^https?:/.test(url)) {
    const all = await fs.readFile(url);
    if (!range) return all;
    const [a, b] = range.replace("bytes=", "").split("-").map(Number);
    return all.subarray(a, b! + 1);
  }
  const res = await fetch(url, range ? { headers: { range } } : {});
  assert.ok(res.ok, `presigned GET ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

const backends: [string, () => ObjectStore][] = [
  ["a folder", () => new FolderStore(folder)],
  [
    "Swift's S3 API",
    () =>
      new S3Store(swift.storeConfig("contract")),
  ],
];

for (const [label, make] of backends) {
  describe(`the object store contract on ${label}`, () => {
    test("range reads (first bytes, a middle, a suffix), the size and ETag of the version read", async () => {
      const store = make();
      const body = randomBytes(100_000);
      const { etag } = await store.put("ranges/ü file (1).mp4", body, { metadata: { "edge-vod-duration-ms": "1234" } });
      assert.equal(etag, md5(body), "a plain upload's ETag is its MD5");
      const first = await store.read("ranges/ü file (1).mp4", { start: 0, end: 999 });
      assert.deepEqual([first.size, first.start, first.etag, first.bytes.length], [100_000, 0, etag, 1000]);
      assert.ok(Buffer.from(first.bytes).equals(body.subarray(0, 1000)));
      const mid = await store.read("ranges/ü file (1).mp4", { start: 50_000, end: 50_099 });
      assert.ok(Buffer.from(mid.bytes).equals(body.subarray(50_000, 50_100)));
      const suffix = await store.read("ranges/ü file (1).mp4", { suffix: 500 });
      assert.equal(suffix.start, 99_500);
      assert.ok(Buffer.from(suffix.bytes).equals(body.subarray(99_500)), "a suffix range is the last bytes");
      const past = await store.read("ranges/ü file (1).mp4", { start: 99_990, end: 200_000 });
      assert.equal(past.bytes.length, 10, "a range past the end is cut at it");
      assert.equal(await kindOf(store.read("ranges/ü file (1).mp4", { start: 100_000 })), "unsatisfiable");
      const head = await store.head("ranges/ü file (1).mp4");
      assert.deepEqual([head?.size, head?.etag, head?.metadata["edge-vod-duration-ms"]], [100_000, etag, "1234"]);
      const streamed = await store.stream("ranges/ü file (1).mp4", { start: 10, end: 19 });
      assert.deepEqual([streamed.status, streamed.start, streamed.length, streamed.size], [206, 10, 10, 100_000]);
      assert.ok(Buffer.from(await new Response(streamed.body).arrayBuffer()).equals(body.subarray(10, 20)));
    });

    test("If-Match pins the version: another one is 'changed' (412), a missing object 'not-found'", async () => {
      const store = make();
      const v1 = await store.put("pinned.bin", randomBytes(2000));
      assert.equal((await store.read("pinned.bin", { start: 0, end: 9 }, { ifMatch: v1.etag })).bytes.length, 10);
      const v2 = await store.put("pinned.bin", randomBytes(2000));
      assert.notEqual(v1.etag, v2.etag);
      assert.equal(await kindOf(store.read("pinned.bin", { start: 0, end: 9 }, { ifMatch: v1.etag })), "changed");
      assert.equal(await kindOf(store.stream("pinned.bin", undefined, { ifMatch: v1.etag })), "changed");
      assert.equal(await kindOf(store.read("no/such/object.mp4", { start: 0, end: 9 })), "not-found");
      assert.equal(await store.head("no/such/object.mp4"), undefined);
    });

    test("multipart: 5 MiB parts and a short last one make one object with S3's multipart ETag; a small middle part is refused", async () => {
      const store = make();
      const parts = [randomBytes(MIN_PART_BYTES), randomBytes(MIN_PART_BYTES), randomBytes(1234)];
      const id = await store.createMultipart("multi/big.mp4", { contentType: "video/mp4", metadata: { "edge-vod-duration-ms": "5" } });
      const done = [];
      for (const [i, p] of parts.entries()) done.push({ partNumber: i + 1, etag: await store.uploadPart("multi/big.mp4", id, i + 1, p) });
      const { etag } = await store.completeMultipart("multi/big.mp4", id, done);
      const expected = `${createHash("md5").update(Buffer.concat(parts.map((p) => createHash("md5").update(p).digest()))).digest("hex")}-3`;
      assert.equal(etag, expected);
      const head = await store.head("multi/big.mp4");
      assert.deepEqual([head?.size, head?.etag], [2 * MIN_PART_BYTES + 1234, expected]);
      const tail = await store.read("multi/big.mp4", { suffix: 1234 });
      assert.ok(Buffer.from(tail.bytes).equals(parts[2]!));

      const small = await store.createMultipart("multi/small.mp4");
      const a = await store.uploadPart("multi/small.mp4", small, 1, randomBytes(1000));
      const b = await store.uploadPart("multi/small.mp4", small, 2, randomBytes(1000));
      assert.equal(await kindOf(store.completeMultipart("multi/small.mp4", small, [{ partNumber: 1, etag: a }, { partNumber: 2, etag: b }])), "bad-request");
      await store.abortMultipart("multi/small.mp4", small);
      assert.equal(await store.head("multi/small.mp4"), undefined);
    });

    test("list: by prefix, top level only with a delimiter, in pages", async () => {
      const store = make();
      for (const k of ["list/a.mp4", "list/b.mp4", "list/c.mp4", "list/sub/d.mp4", "listless.mp4"]) await store.put(k, randomBytes(10));
      const top = await store.list("list/", { delimiter: "/" });
      assert.deepEqual(top.objects.map((o) => o.key), ["list/a.mp4", "list/b.mp4", "list/c.mp4"]);
      assert.deepEqual(top.prefixes, ["list/sub/"]);
      assert.ok(top.objects.every((o) => o.size === 10 && o.etag.length > 0));
      const all = await store.list("list/");
      assert.deepEqual(all.objects.map((o) => o.key), ["list/a.mp4", "list/b.mp4", "list/c.mp4", "list/sub/d.mp4"]);
      const page1 = await store.list("list/", { max: 2 });
      assert.equal(page1.objects.length, 2);
      assert.ok(page1.next);
      const page2 = await store.list("list/", { max: 2, after: page1.next! });
      assert.deepEqual(page2.objects.map((o) => o.key), ["list/c.mp4", "list/sub/d.mp4"]);
    });

    test("delete removes an object; deleting one that is not there is no error", async () => {
      const store = make();
      await store.put("gone.mp4", randomBytes(10));
      await store.delete("gone.mp4");
      assert.equal(await store.head("gone.mp4"), undefined);
      await store.delete("gone.mp4");
    });

    test("a presigned URL reads the object without credentials, ranges included", async () => {
      const store = make();
      const body = randomBytes(50_000);
      await store.put("presigned/ü x.mp4", body);
      const url = await store.presignGet("presigned/ü x.mp4", 600);
      assert.ok((await fetchPresigned(url)).equals(body));
      assert.ok((await fetchPresigned(url, "bytes=100-199")).equals(body.subarray(100, 200)));
    });
  });
}

test("wrong credentials are 'refused' (not 'not-found'), a server that does not answer 'unavailable'", async () => {
  const wrong = new S3Store(swift.storeConfig("contract", { secretAccessKey: "not-the-secret", timeoutMs: 5000 }));
  assert.equal(await kindOf(wrong.read("pinned.bin", { start: 0, end: 9 })), "refused");
  assert.equal(await kindOf(wrong.list("")), "refused");
  const noBucket = new S3Store(swift.storeConfig("no-such-bucket", { timeoutMs: 5000 }));
  assert.equal(await kindOf(noBucket.read("x.mp4", { start: 0, end: 9 })), "refused");
  const down = new S3Store({ endpoint: "http://127.0.0.1:9", bucket: "contract", region: "us-east-1", accessKeyId: "a", secretAccessKey: "b", forcePathStyle: true, timeoutMs: 2000 });
  assert.equal(await kindOf(down.read("x.mp4", { start: 0, end: 9 })), "unavailable");
});
