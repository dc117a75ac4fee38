import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { RECORD_HOOK_HEADERS, createRecordHook, signRecordHook, type RecordHookEvent } from "../../sidecar/src/record/record-hook.ts";
import { freePort } from "../helpers/ports.ts";

const SECRET = "hook-test-secret-0123456789abcdef";

interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Answers each request with the next planned status (200 when the plan is used up); "hang" never answers. */
let plan: Array<number | "hang">;
let received: Received[];
let server: http.Server;
let base: string;

before(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => (body += d));
    req.on("end", () => {
      received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      const next = plan.shift() ?? 200;
      if (next === "hang") return;
      res.writeHead(next, { "content-type": "application/json" }).end(next === 200 ? '{"ok":true}' : '{"error":"x"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

beforeEach(() => {
  plan = [];
  received = [];
});

function recordingLog() {
  const warn: string[] = [];
  const error: string[] = [];
  return { warn, error, log: { warn: (m: string) => warn.push(m), error: (m: string) => error.push(m) } };
}

const event: RecordHookEvent = {
  streamName: "Ёлка 🎄",
  recordName: "stream-abc-.mp4",
  mediaSessionId: "abc",
  durationMs: 65_333,
  bytes: 1_234_567,
  startTimeMs: 1_700_000_000_000,
  endTimeMs: 1_700_000_065_333,
};

test("POSTs the event as JSON, signed with the secret, which is never sent itself", async () => {
  const { log, warn, error } = recordingLog();
  const hook = createRecordHook(`${base}/hooks/record?x=1`, SECRET, { log });
  // The caller is not made to wait; the promise settles once the delivery is done (the upload queue waits on it).
  const delivered = hook(event);
  assert.ok(delivered instanceof Promise);
  await delivered;
  assert.equal(received.length, 1);
  const [r] = received;
  assert.equal(r!.method, "POST");
  assert.equal(r!.url, "/hooks/record?x=1");
  assert.match(r!.headers["content-type"] ?? "", /^application\/json/);
  assert.deepEqual(JSON.parse(r!.body), event);
  const ts = String(r!.headers[RECORD_HOOK_HEADERS.timestamp]);
  assert.match(ts, /^\d{13}$/);
  const expected = `sha256=${createHmac("sha256", SECRET).update(`${ts}.${r!.body}`).digest("hex")}`;
  assert.equal(r!.headers[RECORD_HOOK_HEADERS.signature], expected);
  assert.equal(await signRecordHook(SECRET, ts, r!.body), expected);
  assert.match(String(r!.headers[RECORD_HOOK_HEADERS.delivery]), /^[0-9a-f-]{36}$/);
  assert.equal(r!.headers.authorization, undefined);
  for (const value of Object.values(r!.headers)) assert.ok(!String(value).includes(SECRET));
  assert.deepEqual([warn, error], [[], []]);
});

test("a 500 is retried, with the same delivery id and a fresh signature", async () => {
  plan = [500, 503];
  const { log, warn, error } = recordingLog();
  const hook = createRecordHook(base, SECRET, { log, backoffMs: 5 });
  hook(event);
  await hook.idle();
  assert.equal(received.length, 3);
  assert.deepEqual(new Set(received.map((r) => r.body)).size, 1);
  assert.equal(new Set(received.map((r) => r.headers[RECORD_HOOK_HEADERS.delivery])).size, 1);
  for (const r of received) {
    const ts = String(r.headers[RECORD_HOOK_HEADERS.timestamp]);
    assert.equal(r.headers[RECORD_HOOK_HEADERS.signature], await signRecordHook(SECRET, ts, r.body));
  }
  assert.equal(warn.length, 2);
  assert.match(warn[0]!, /HTTP 500/);
  assert.deepEqual(error, []);
});

test("a 4xx other than 408/429 is final", async () => {
  plan = [400];
  const { log, error } = recordingLog();
  const hook = createRecordHook(base, SECRET, { log, backoffMs: 5 });
  hook(event);
  await hook.idle();
  assert.equal(received.length, 1);
  assert.equal(error.length, 1);
  assert.match(error[0]!, /HTTP 400.*giving up after 1 attempt/);
});

test("gives up after the last retry, logging once, without throwing", async () => {
  plan = [500, 500, 500, 500];
  const { log, warn, error } = recordingLog();
  const hook = createRecordHook(base, SECRET, { log, backoffMs: 1, retries: 2 });
  hook(event);
  await hook.idle();
  assert.equal(received.length, 3);
  assert.equal(warn.length, 2);
  assert.equal(error.length, 1);
  assert.match(error[0]!, /stream-abc-\.mp4: HTTP 500; giving up after 3 attempt/);
});

test("an unreachable receiver and a receiver that never answers are retried, then given up", async () => {
  const deadPort = await freePort();
  const { log, error } = recordingLog();
  const dead = createRecordHook(`http://127.0.0.1:${deadPort}/`, SECRET, { log, backoffMs: 1, retries: 1 });
  assert.doesNotThrow(() => dead(event));
  await dead.idle();
  assert.equal(error.length, 1);
  assert.match(error[0]!, /giving up after 2 attempt/);

  plan = ["hang", "hang"];
  const { log: log2, error: error2 } = recordingLog();
  const slow = createRecordHook(base, SECRET, { log: log2, backoffMs: 1, retries: 1, timeoutMs: 200 });
  slow(event);
  await slow.idle();
  assert.equal(received.length, 2);
  assert.equal(error2.length, 1);
  assert.match(error2[0]!, /timed out; giving up after 2 attempt/);
  server.closeAllConnections();
});

test("several events are delivered independently; idle() waits for all of them", async () => {
  const hook = createRecordHook(base, SECRET, { backoffMs: 1 });
  for (let i = 0; i < 5; i++) hook({ ...event, recordName: `r${i}.mp4` });
  await hook.idle();
  assert.deepEqual(received.map((r) => (JSON.parse(r.body) as RecordHookEvent).recordName).sort(), ["r0.mp4", "r1.mp4", "r2.mp4", "r3.mp4", "r4.mp4"]);
});

test("without a URL the hook does nothing", async () => {
  const hook = createRecordHook(undefined, SECRET);
  hook(event);
  await hook.idle();
  assert.equal(received.length, 0);
});
