// The host's block cache, and media files read through it from a store (a FolderStore, the same contract as S3).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Info } from "@edge-vod/shared";
import { MediaError } from "../../sidecar/src/files/file-access.ts";
import { ObjectAccess } from "../../sidecar/src/files/object-access.ts";
import { BlockCache } from "../../sidecar/src/store/block-cache.ts";
import { FolderStore } from "../../sidecar/src/store/folder-store.ts";

const B = 1024;
const PREFIX = "vod/";
let tmp: string;
let store: FolderStore;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "block-cache-"));
  store = new FolderStore(tmp);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Bytes that differ at every offset within a block and from one `seed` to another. */
const pattern = (length: number, seed = 0) => Uint8Array.from({ length }, (_, i) => (i * 7 + (i >> 8) + seed * 31) & 0xff);

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A fetch that counts its calls and returns `bytes`. */
function counted(bytes: Uint8Array) {
  const fetch = async () => {
    fetch.calls++;
    return bytes;
  };
  fetch.calls = 0;
  return fetch;
}

async function refused(promise: Promise<unknown>, info: string, what: string) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof MediaError, `${what}: ${String(err)}`);
    assert.equal(err.info, info, `${what}: ${err.message}`);
    return true;
  });
}

test("concurrent gets of one block share one fetch and get the same bytes", async () => {
  const cache = new BlockCache(B, 16 * B);
  const gate = deferred<Uint8Array>();
  let calls = 0;
  const fetch = () => {
    calls++;
    return gate.promise;
  };
  const gets = Array.from({ length: 8 }, () => cache.get("f", 0, fetch));
  assert.ok(cache.has("f", 0), "a block being fetched counts as there");
  const bytes = pattern(B);
  gate.resolve(bytes);
  const got = await Promise.all(gets);
  assert.equal(calls, 1);
  for (const g of got) assert.equal(g, bytes);
  assert.deepEqual(cache.stats, { bytes: B, hits: 7, misses: 1, fetchedBytes: B });
});

test("stats count hits, misses and fetched bytes per block and per file", async () => {
  const cache = new BlockCache(B, 16 * B);
  const a0 = counted(pattern(B, 1));
  const a1 = counted(pattern(100, 2));
  const b0 = counted(pattern(B, 3));
  await cache.get("a", 0, a0);
  await cache.get("a", 0, a0);
  await cache.get("a", 1, a1);
  // Another file's block 0 is another block.
  assert.deepEqual(await cache.get("b", 0, b0), pattern(B, 3));
  assert.deepEqual(await cache.get("a", 0, a0), pattern(B, 1));
  assert.deepEqual([a0.calls, a1.calls, b0.calls], [1, 1, 1]);
  assert.deepEqual(cache.stats, { bytes: 2 * B + 100, hits: 2, misses: 3, fetchedBytes: 2 * B + 100 });
});

test("past the budget the least recently used block goes first; a block used again stays", async () => {
  const cache = new BlockCache(B, 3 * B);
  const fetches = [0, 1, 2, 3].map((i) => counted(pattern(B, i)));
  for (const i of [0, 1, 2]) await cache.get("f", i, fetches[i]!);
  // Block 0 is the oldest fetched but the newest used: block 1 is the one to go.
  await cache.get("f", 0, fetches[0]!);
  await cache.get("f", 3, fetches[3]!);
  assert.deepEqual([0, 1, 2, 3].map((i) => cache.has("f", i)), [true, false, true, true]);
  assert.equal(cache.stats.bytes, 3 * B);
  await cache.get("f", 1, fetches[1]!);
  assert.deepEqual(fetches.map((f) => f.calls), [1, 2, 1, 1]);
  // Fetching 1 again pushed out 2, now the least recently used.
  assert.deepEqual([0, 1, 2, 3].map((i) => cache.has("f", i)), [true, true, false, true]);
  assert.equal(cache.stats.bytes, 3 * B);
});

test("a failed fetch is not kept: the next get fetches again", async () => {
  const cache = new BlockCache(B, 16 * B);
  let calls = 0;
  const failing = async (): Promise<Uint8Array> => {
    calls++;
    throw new Error("store down");
  };
  const both = [cache.get("f", 0, failing), cache.get("f", 0, failing)];
  for (const p of both) await assert.rejects(p, /store down/);
  assert.equal(calls, 1, "the waiter shares the failed fetch too");
  assert.equal(cache.has("f", 0), false);
  assert.equal(cache.stats.bytes, 0);
  const ok = counted(pattern(B));
  assert.deepEqual(await cache.get("f", 0, ok), pattern(B));
  assert.equal(ok.calls, 1);
  assert.ok(cache.has("f", 0));
});

test("maxBytes 0 keeps nothing but still shares a fetch in flight", async () => {
  const cache = new BlockCache(B, 0);
  const gate = deferred<Uint8Array>();
  let calls = 0;
  const fetch = () => {
    calls++;
    return gate.promise;
  };
  const gets = [cache.get("f", 0, fetch), cache.get("f", 0, fetch), cache.get("f", 0, fetch)];
  gate.resolve(pattern(B));
  for (const g of await Promise.all(gets)) assert.deepEqual(g, pattern(B));
  assert.equal(calls, 1);
  assert.equal(cache.has("f", 0), false);
  assert.equal(cache.stats.bytes, 0);
  const again = counted(pattern(B));
  await cache.get("f", 0, again);
  assert.equal(again.calls, 1);
  cache.offer("f", 1, pattern(B));
  assert.equal(cache.has("f", 1), false);
});

test("reads across block boundaries give the object's bytes; reads past the end are cut", async () => {
  const bytes = pattern(5 * B + 300);
  await store.put(`${PREFIX}span.mp4`, bytes);
  const access = new ObjectAccess(store, PREFIX, new BlockCache(B, 64 * B));
  const file = await access.open("span.mp4");
  assert.equal(file.size, bytes.length);
  const cases: [position: number, length: number][] = [
    [0, 10],
    [B - 1, 2],
    [B - 100, 2 * B + 200],
    [3 * B, B],
    [0, bytes.length],
  ];
  for (const [position, length] of cases) {
    // An offset into the target too: the bytes must land where asked.
    const target = new Uint8Array(length + 5);
    assert.equal(await file.read(target, 5, length, position), length, `${position}+${length}`);
    assert.deepEqual(target.subarray(5), bytes.subarray(position, position + length), `${position}+${length}`);
  }
  const tail = new Uint8Array(500);
  assert.equal(await file.read(tail, 0, 500, bytes.length - 100), 100);
  assert.deepEqual(tail.subarray(0, 100), bytes.subarray(bytes.length - 100));
  assert.equal(await file.read(tail, 0, 10, bytes.length), 0);
  assert.equal(await file.read(tail, 0, 10, bytes.length + B), 0);
});

test("a replaced object: a new identity for the new version; an old reader's unread block fails as FILE_CHANGED, its cached one still reads", async () => {
  const first = pattern(4 * B, 1);
  const second = pattern(4 * B, 2);
  await store.put(`${PREFIX}replaced.mp4`, first);
  const access = new ObjectAccess(store, PREFIX, new BlockCache(B, 64 * B));
  const old = await access.open("replaced.mp4");
  // Within block 0's first 30 %: nothing is read ahead, so block 1 and later are unread.
  const head = new Uint8Array(10);
  await old.read(head, 0, 10, 0);
  assert.deepEqual(head, first.subarray(0, 10));
  await store.put(`${PREFIX}replaced.mp4`, second);
  const fresh = await access.open("replaced.mp4");
  assert.notEqual(fresh.identity, old.identity);
  await refused(old.read(new Uint8Array(10), 0, 10, 3 * B), Info.FILE_CHANGED, "unread block of the old version");
  const cached = new Uint8Array(100);
  assert.equal(await old.read(cached, 0, 100, 200), 100);
  assert.deepEqual(cached, first.subarray(200, 300));
  // Blocks 0 and 1, not far enough into 1 to read 2 ahead.
  const now = new Uint8Array(B + 10);
  assert.equal(await fresh.read(now, 0, now.length, 0), now.length);
  assert.deepEqual(now, second.subarray(0, B + 10));
  // Deleted rather than replaced: the same for a reader in the middle of it.
  await store.delete(`${PREFIX}replaced.mp4`);
  await refused(fresh.read(new Uint8Array(10), 0, 10, 3 * B), Info.FILE_CHANGED, "deleted");
});

test("an object with the same bytes under the same name keeps its identity", async () => {
  const bytes = pattern(2 * B, 5);
  await store.put(`${PREFIX}same.mp4`, bytes);
  const access = new ObjectAccess(store, PREFIX, new BlockCache(B, 64 * B));
  const a = await access.open("same.mp4");
  await store.put(`${PREFIX}same.mp4`, bytes);
  const b = await access.open("same.mp4");
  assert.equal(a.identity, b.identity);
  await store.put(`${PREFIX}same-copy.mp4`, bytes);
  assert.notEqual((await access.open("same-copy.mp4")).identity, a.identity, "the key is part of the identity");
});

test("bad names are refused before the store is asked; the internal folder is restricted; missing is not found", async (t) => {
  const access = new ObjectAccess(store, PREFIX, new BlockCache(B, 64 * B));
  await store.put(`${PREFIX}.edge-vod/prepared/x.mp4`, pattern(B));
  await store.put("outside.mp4", pattern(B));
  const read = t.mock.method(store, "read");
  const head = t.mock.method(store, "head");
  const bad = ["../outside.mp4", "sub/../../outside.mp4", "/etc/passwd", "/vod/x.mp4", "", "a//b.mp4", `${"x".repeat(10_000)}.mp4`, `${"a/".repeat(5_000)}x.mp4`];
  for (const name of bad) await refused(access.open(name), Info.BAD_URI, name.slice(0, 40));
  assert.equal(read.mock.callCount() + head.mock.callCount(), 0);
  for (const name of [".edge-vod/prepared/x.mp4", ".edge-vod"]) await refused(access.open(name), Info.RESTRICTED_ACCESS, name);
  assert.equal(read.mock.callCount() + head.mock.callCount(), 0);
  await refused(access.open("missing.mp4"), Info.FILE_NOT_FOUND, "missing");
  await refused(access.open("no/such/folder.mp4"), Info.FILE_NOT_FOUND, "missing folder");
  assert.ok(read.mock.callCount() > 0, "the spy does see the store being asked");
});

test("an empty object opens with size 0 and reads nothing", async () => {
  await store.put(`${PREFIX}empty.mp4`, new Uint8Array(0));
  const access = new ObjectAccess(store, PREFIX, new BlockCache(B, 64 * B));
  const file = await access.open("empty.mp4");
  assert.equal(file.size, 0);
  assert.equal(await file.read(new Uint8Array(10), 0, 10, 0), 0);
});
