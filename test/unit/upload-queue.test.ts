// Recordings on their way to a store: a FolderStore (S3's contract, its 5 MiB part minimum included), wrapped where
// a test needs the store to fail, lose an answer or count what it was asked.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { RecordHookEvent } from "../../sidecar/src/record/record-hook.ts";
import { UploadQueue, expectedEtag } from "../../sidecar/src/record/upload-queue.ts";
import { FolderStore } from "../../sidecar/src/store/folder-store.ts";
import { MIN_PART_BYTES, StoreError, type ObjectStore } from "../../sidecar/src/store/object-store.ts";

const PART = MIN_PART_BYTES;
const PREFIX = "rec/";
let tmp: string;
let dir: string;
let store: FolderStore;
const queues: UploadQueue[] = [];

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "upload-queue-"));
  dir = path.join(tmp, "records");
  await fs.mkdir(dir);
  store = new FolderStore(path.join(tmp, "bucket"));
});

afterEach(async () => {
  for (const q of queues.splice(0)) await q.stop();
  await fs.rm(tmp, { recursive: true, force: true });
});

interface Call {
  op: string;
  args: unknown[];
}

/** `inner` with every request recorded in `calls`; `before` runs first and may throw to fail it. */
function wrap(inner: ObjectStore, before: (call: Call) => void = () => undefined): ObjectStore & { calls: Call[] } {
  const calls: Call[] = [];
  const wrapped = new Proxy(inner, {
    get(target, prop) {
      if (prop === "calls") return calls;
      const v = Reflect.get(target, prop) as unknown;
      if (typeof v !== "function") return v;
      return async (...args: unknown[]) => {
        const call = { op: String(prop), args };
        calls.push(call);
        before(call);
        return (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  });
  return wrapped as ObjectStore & { calls: Call[] };
}

const count = (s: { calls: Call[] }, op: string) => s.calls.filter((c) => c.op === op).length;
const partNumbers = (s: { calls: Call[] }) => s.calls.filter((c) => c.op === "uploadPart").map((c) => c.args[2]);

function event(name: string, bytes: number): RecordHookEvent {
  return { streamName: "cam 1", recordName: name, mediaSessionId: "ms-1", durationMs: 1234, bytes, startTimeMs: 1000, endTimeMs: 2234 };
}

async function recording(name: string, bytes: number): Promise<Buffer> {
  const data = randomBytes(bytes);
  await fs.writeFile(path.join(dir, name), data);
  return data;
}

function queueOver(s: ObjectStore) {
  const hooked: RecordHookEvent[] = [];
  const queue = new UploadQueue({ dir, store: s, prefix: PREFIX, hook: (e) => hooked.push(e), partBytes: PART });
  queues.push(queue);
  return { queue, hooked };
}

async function bucketBytes(key: string): Promise<Uint8Array> {
  const head = await store.head(key);
  assert.ok(head, `${key} is in the store`);
  return head.size === 0 ? new Uint8Array(0) : (await store.read(key, { start: 0 })).bytes;
}

const exists = (file: string) => fs.stat(file).then(() => true, () => false);
const journal = () => fs.readdir(path.join(dir, ".edge-vod", "uploads")).then((n) => n.filter((f) => f.endsWith(".json")), () => []);

/** The queue's idle(); a failure with its last error, rather than a hang, once more than `allowed` attempts failed. */
async function drained(queue: UploadQueue, allowed = 0): Promise<void> {
  let done = false;
  void queue.idle().then(() => (done = true));
  while (!done) {
    if (queue.stats.failures > allowed) throw new Error(`upload attempt ${queue.stats.failures} failed: ${queue.stats.lastError}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits for `cond` (a state the queue reaches on its own); fails with `what` rather than hanging the run. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("a small recording goes up in one PUT; the hook gets its key, the local copy and its journal entry go", async () => {
  const data = await recording("small.mp4", 300_000);
  const s = wrap(store);
  const { queue, hooked } = queueOver(s);
  await queue.start();
  await queue.enqueue(event("small.mp4", data.length));
  await drained(queue);
  assert.equal(count(s, "put"), 1);
  assert.equal(count(s, "createMultipart") + count(s, "uploadPart"), 0);
  assert.deepEqual(hooked, [{ ...event("small.mp4", data.length), key: "rec/small.mp4", store: store.description }]);
  assert.deepEqual(await bucketBytes("rec/small.mp4"), new Uint8Array(data));
  assert.equal(await exists(path.join(dir, "small.mp4")), false);
  assert.deepEqual(await journal(), []);
  assert.deepEqual(queue.pendingNames(), []);
  assert.equal(queue.stats.uploaded, 1);
  assert.equal(queue.stats.bytes, data.length);
});

test("a recording larger than a part goes up in parts, with S3's multipart ETag", async () => {
  const data = await recording("big.mp4", 2 * PART + 2_000_000);
  const { etag: expected } = await expectedEtag(path.join(dir, "big.mp4"), PART);
  // S3's form worked out here, apart from expectedEtag: the MD5 of the three parts' MD5s, and "-3".
  const digests = [0, 1, 2].map((i) => createHash("md5").update(data.subarray(i * PART, (i + 1) * PART)).digest());
  assert.equal(expected, `${createHash("md5").update(Buffer.concat(digests)).digest("hex")}-3`);
  const s = wrap(store);
  const { queue, hooked } = queueOver(s);
  await queue.start();
  await queue.enqueue(event("big.mp4", data.length));
  await drained(queue);
  assert.deepEqual(partNumbers(s), [1, 2, 3]);
  assert.equal(count(s, "put"), 0);
  assert.equal((await store.head("rec/big.mp4"))?.etag, expected);
  assert.deepEqual(await bucketBytes("rec/big.mp4"), new Uint8Array(data));
  assert.equal(hooked.length, 1);
  assert.equal(await exists(path.join(dir, "big.mp4")), false);
  assert.deepEqual(await journal(), []);
});

test("a queue stopped after a part resumes in a new queue from the journal, without that part again", async () => {
  const data = await recording("resumed.mp4", 2 * PART + 1_000_000);
  const { etag } = await expectedEtag(path.join(dir, "resumed.mp4"), PART);
  let failed!: () => void;
  const partFailed = new Promise<void>((r) => (failed = r));
  const first = queueOver(
    wrap(store, ({ op, args }) => {
      if (op === "uploadPart" && (args[2] as number) >= 2) {
        failed();
        throw new StoreError("unavailable", "connection reset");
      }
    }),
  );
  await first.queue.start();
  await first.queue.enqueue(event("resumed.mp4", data.length));
  await partFailed;
  await first.queue.stop();
  assert.equal(first.hooked.length, 0);
  assert.equal(await exists(path.join(dir, "resumed.mp4")), true);
  assert.equal((await journal()).length, 1);

  const s = wrap(store);
  const second = queueOver(s);
  await second.queue.start();
  assert.deepEqual(second.queue.pendingNames(), ["resumed.mp4"]);
  await drained(second.queue);
  assert.deepEqual(partNumbers(s), [2, 3]);
  assert.equal(count(s, "createMultipart"), 0, "the journalled upload id is used");
  assert.deepEqual(await bucketBytes("rec/resumed.mp4"), new Uint8Array(data));
  assert.equal((await store.head("rec/resumed.mp4"))?.etag, etag);
  assert.deepEqual(second.hooked.map((e) => e.key), ["rec/resumed.mp4"]);
  assert.equal(await exists(path.join(dir, "resumed.mp4")), false);
  assert.deepEqual(await journal(), []);
});

test("a store that does not answer: the file stays on disk and pending, and lands once the store is back", async () => {
  const data = await recording("outage.mp4", 200_000);
  let down = true;
  const s = wrap(store, () => {
    if (down) throw new StoreError("unavailable", "HTTP 503 SlowDown");
  });
  const { queue, hooked } = queueOver(s);
  await queue.start();
  await queue.enqueue(event("outage.mp4", data.length));
  // Retried after its first backoff (1 s) and failed again: it keeps trying.
  await until(() => queue.stats.failures >= 2, "two failed attempts");
  assert.equal(await exists(path.join(dir, "outage.mp4")), true);
  assert.deepEqual(queue.pendingNames(), ["outage.mp4"]);
  assert.equal(queue.stats.pending, 1);
  assert.match(queue.stats.lastError ?? "", /outage\.mp4: HTTP 503 SlowDown/);
  assert.equal(await store.head("rec/outage.mp4"), undefined);
  assert.equal(hooked.length, 0);
  down = false;
  await drained(queue, queue.stats.failures);
  assert.deepEqual(await bucketBytes("rec/outage.mp4"), new Uint8Array(data));
  assert.equal(hooked.length, 1);
  assert.equal(await exists(path.join(dir, "outage.mp4")), false);
  assert.equal(queue.stats.lastError, undefined);
  assert.deepEqual(await journal(), []);
});

test("remove() of a pending upload drops it: nothing of it reaches the store", async () => {
  await recording("dropped.mp4", 100_000);
  const kept = await recording("kept.mp4", 100_000);
  let down = true;
  const { queue, hooked } = queueOver(
    wrap(store, () => {
      if (down) throw new StoreError("unavailable", "connect ECONNREFUSED");
    }),
  );
  await queue.start();
  await queue.enqueue(event("dropped.mp4", 100_000));
  await until(() => queue.stats.failures >= 1, "a failed attempt");
  assert.equal(await queue.remove("dropped.mp4"), true);
  assert.equal(await queue.remove("dropped.mp4"), false);
  assert.equal(queue.has("dropped.mp4"), false);
  down = false;
  // One upload at a time, oldest first: once this one is in, the dropped one would have been too.
  await queue.enqueue(event("kept.mp4", kept.length));
  await drained(queue, queue.stats.failures);
  assert.deepEqual(hooked.map((e) => e.recordName), ["kept.mp4"]);
  assert.equal(await store.head("rec/dropped.mp4"), undefined);
  assert.deepEqual(await bucketBytes("rec/kept.mp4"), new Uint8Array(kept));
  // Deleting the file is the caller's part.
  assert.equal(await exists(path.join(dir, "dropped.mp4")), true);
  assert.deepEqual(await journal(), []);
});

test("remove() while the upload is in flight: what it put in the store is deleted again", async () => {
  await recording("inflight.mp4", 100_000);
  const later = await recording("later.mp4", 100_000);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const putStarted = new Promise<void>((r) => (started = r));
  const inner = wrap(store);
  const s: ObjectStore = Object.assign(Object.create(inner) as ObjectStore, {
    async put(...args: Parameters<ObjectStore["put"]>) {
      if (args[0] === "rec/inflight.mp4") {
        started();
        await gate;
      }
      return inner.put(...args);
    },
  });
  const { queue, hooked } = queueOver(s);
  await queue.start();
  await queue.enqueue(event("inflight.mp4", 100_000));
  await putStarted;
  assert.equal(await queue.remove("inflight.mp4"), true);
  release();
  await queue.enqueue(event("later.mp4", later.length));
  await drained(queue);
  assert.deepEqual(hooked.map((e) => e.recordName), ["later.mp4"]);
  assert.equal(await store.head("rec/inflight.mp4"), undefined);
  assert.deepEqual(await journal(), []);
});

test("remove() during a multipart upload: its journal entry never comes back, and a restart has nothing to upload", async () => {
  await recording("multi.mp4", 2 * PART + 1000);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const partStarted = new Promise<void>((r) => (started = r));
  const inner = wrap(store);
  const s: ObjectStore = Object.assign(Object.create(inner) as ObjectStore, {
    async uploadPart(...args: Parameters<ObjectStore["uploadPart"]>) {
      if (args[2] === 1) {
        started();
        await gate;
      }
      return inner.uploadPart(...args);
    },
  });
  const { queue, hooked } = queueOver(s);
  await queue.start();
  await queue.enqueue(event("multi.mp4", 2 * PART + 1000));
  await partStarted;
  assert.equal(await queue.remove("multi.mp4"), true);
  release();
  await until(() => queue.stats.failures > 0, "the in-flight upload gives up");
  assert.deepEqual(await journal(), [], "the removed upload is not journalled again");
  await queue.stop();
  const again = queueOver(store);
  await again.queue.start();
  assert.deepEqual(again.queue.pendingNames(), []);
  assert.deepEqual(hooked, []);
  assert.equal(await store.head("rec/multi.mp4"), undefined);
});

test("a PUT whose answer was lost is recognised in the store on the retry, not uploaded again", async () => {
  const data = await recording("lost.mp4", 150_000);
  const s = wrap(store);
  let puts = 0;
  const lossy: ObjectStore = Object.assign(Object.create(s) as ObjectStore, {
    async put(...args: Parameters<ObjectStore["put"]>) {
      await s.put(...args);
      if (++puts === 1) throw new StoreError("unavailable", "socket hang up");
      return { etag: "never" };
    },
  });
  const { queue, hooked } = queueOver(lossy);
  await queue.start();
  await queue.enqueue(event("lost.mp4", data.length));
  await drained(queue, 1);
  assert.equal(queue.stats.failures, 1);
  assert.equal(count(s, "put"), 1);
  assert.deepEqual(await bucketBytes("rec/lost.mp4"), new Uint8Array(data));
  assert.equal(hooked.length, 1);
  assert.equal(await exists(path.join(dir, "lost.mp4")), false);
});

test("a multipart upload whose completion answer was lost is recognised by its ETag", async () => {
  const data = await recording("lost-parts.mp4", PART + 500_000);
  const s = wrap(store);
  const lossy: ObjectStore = Object.assign(Object.create(s) as ObjectStore, {
    async completeMultipart(...args: Parameters<ObjectStore["completeMultipart"]>) {
      await s.completeMultipart(...args);
      throw new StoreError("unavailable", "timed out");
    },
  });
  const { queue, hooked } = queueOver(lossy);
  await queue.start();
  await queue.enqueue(event("lost-parts.mp4", data.length));
  await drained(queue);
  assert.equal(count(s, "completeMultipart"), 1);
  assert.deepEqual(partNumbers(s), [1, 2]);
  assert.deepEqual(await bucketBytes("rec/lost-parts.mp4"), new Uint8Array(data));
  assert.equal(hooked.length, 1);
});

test("an object already in the store with the recording's size and ETag is taken as its upload", async () => {
  const data = await recording("there.mp4", 120_000);
  await store.put("rec/there.mp4", data);
  const s = wrap(store);
  const { queue, hooked } = queueOver(s);
  await queue.start();
  await queue.enqueue(event("there.mp4", data.length));
  await drained(queue);
  assert.equal(count(s, "put") + count(s, "createMultipart") + count(s, "uploadPart"), 0);
  assert.deepEqual(hooked.map((e) => e.key), ["rec/there.mp4"]);
  assert.equal(await exists(path.join(dir, "there.mp4")), false);
});

test("another object under the key is never overwritten: the recording stays on disk, pending", async () => {
  const data = await recording("taken.mp4", 100_000);
  const other = randomBytes(100_000);
  await store.put("rec/taken.mp4", other);
  const s = wrap(store);
  const { queue, hooked } = queueOver(s);
  await queue.start();
  await queue.enqueue(event("taken.mp4", data.length));
  await until(() => queue.stats.failures >= 1, "a failed attempt");
  await queue.stop();
  assert.equal(count(s, "put") + count(s, "createMultipart") + count(s, "uploadPart") + count(s, "delete"), 0);
  assert.match(queue.stats.lastError ?? "", /already has another rec\/taken\.mp4/);
  assert.deepEqual(await bucketBytes("rec/taken.mp4"), new Uint8Array(other));
  assert.deepEqual(await fs.readFile(path.join(dir, "taken.mp4")), data);
  assert.deepEqual(queue.pendingNames(), ["taken.mp4"]);
  assert.equal((await journal()).length, 1);
  assert.equal(hooked.length, 0);
});
