// Record downloads through the edge under `wrangler dev`: /client/records/<name> → the sidecar's /v1/records/<name>.
// The sidecar here is a small hono server with the real records routes (recordsRoutes) behind the sidecar's real
// signature check (signedAuth), serving a temporary records folder.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { RECORDS_PUBLIC_PATH, SIDECAR_PATHS } from "@edge-vod/shared";
import { recordsRoutes } from "../../sidecar/src/api/records.ts";
import { ReplayCache } from "../../sidecar/src/api/replay-cache.ts";
import { signedAuth } from "../../sidecar/src/api/signed-auth.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const SECRET = randomBytes(24).toString("hex");
const content = randomBytes(256 * 1024 + 7);
const size = content.length;
const UNICODE_NAME = "Ёлка 🎄 (it's 100%).mp4";

let tmp: string;
let server: http.Server;
let sidecarUrl: string;
/** Paths the fake sidecar was asked for, authorized or not. */
const seen: string[] = [];
let unauthorized = 0;
let edge: WranglerDev;

before(async () => {
  tmp = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), "records-download-")));
  const dir = path.join(tmp, "records");
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, "rec.mp4"), content);
  await fs.writeFile(path.join(dir, UNICODE_NAME), "unicode");
  await fs.writeFile(path.join(dir, "a..b.mp4"), "dots");
  await fs.writeFile(path.join(tmp, "secret.mp4"), "secret");
  await fs.symlink("../secret.mp4", path.join(dir, "escape.mp4"));

  const app = new Hono();
  const auth = signedAuth(SECRET, { replay: new ReplayCache(), maxBodyBytes: 1024, onRefused: () => unauthorized++ });
  app.use("*", async (c, next) => {
    seen.push(new URL(c.req.url).pathname);
    return auth(c, next);
  });
  app.notFound((c) => c.json({ error: "Not found" }, 404));
  recordsRoutes(app, dir);
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
      sidecarUrl = `http://127.0.0.1:${info.port}`;
      resolve();
    }) as http.Server;
  });
  edge = await startWrangler({ sidecarUrl, secret: SECRET });
});

after(async () => {
  await edge?.stop();
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  await fs.rm(tmp, { recursive: true, force: true });
});

const recordUrl = (rawName: string) => `${edge.url}${RECORDS_PUBLIC_PATH}/${rawName}`;

describe("downloads", () => {
  test("GET streams the file's exact bytes as an attachment", async () => {
    const res = await fetch(recordUrl("rec.mp4"));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "video/mp4");
    assert.equal(res.headers.get("content-length"), String(size));
    assert.equal(res.headers.get("accept-ranges"), "bytes");
    assert.match(res.headers.get("etag") ?? "", /^"[^"]+"$/);
    assert.ok(Number.isFinite(Date.parse(res.headers.get("last-modified") ?? "")));
    assert.equal(res.headers.get("content-disposition"), `attachment; filename="rec.mp4"; filename*=UTF-8''rec.mp4`);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(content));
    assert.ok(seen.includes(`${SIDECAR_PATHS.records}/rec.mp4`));
    assert.equal(unauthorized, 0);
  });

  test("a Unicode name is passed on encoded and offered under its own name", async () => {
    const res = await fetch(recordUrl(encodeURIComponent(UNICODE_NAME)));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "unicode");
    const cd = res.headers.get("content-disposition") ?? "";
    const star = /filename\*=UTF-8''(.+)$/.exec(cd)?.[1];
    assert.ok(star, cd);
    assert.doesNotMatch(star, /['()*\s]/);
    assert.equal(decodeURIComponent(star), UNICODE_NAME);
    assert.match(cd, /^attachment; filename="[\x20-\x7e]+"; /);
  });

  test("'..' inside a name is only dots: a..b.mp4 is served", async () => {
    const res = await fetch(recordUrl("a..b.mp4"));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "dots");
  });

  test("a range request → 206 with Content-Range and the slice", async () => {
    const res = await fetch(recordUrl("rec.mp4"), { headers: { range: "bytes=1000-70999" } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get("content-range"), `bytes 1000-70999/${size}`);
    assert.equal(res.headers.get("content-length"), "70000");
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(content.subarray(1000, 71000)));
    const tail = await fetch(recordUrl("rec.mp4"), { headers: { range: "bytes=-10" } });
    assert.equal(tail.status, 206);
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(content.subarray(size - 10)));
  });

  test("a range past the end → 416 with bytes */size", async () => {
    const res = await fetch(recordUrl("rec.mp4"), { headers: { range: `bytes=${size}-` } });
    assert.equal(res.status, 416);
    assert.equal(res.headers.get("content-range"), `bytes */${size}`);
    await res.body?.cancel();
  });

  test("HEAD gives the headers without a body", async () => {
    const res = await fetch(recordUrl("rec.mp4"), { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(size));
    assert.equal(res.headers.get("content-type"), "video/mp4");
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });

  test("If-None-Match with the ETag → 304", async () => {
    const first = await fetch(recordUrl("rec.mp4"), { method: "HEAD" });
    const etag = first.headers.get("etag")!;
    const res = await fetch(recordUrl("rec.mp4"), { headers: { "if-none-match": etag } });
    assert.equal(res.status, 304);
    assert.equal(res.headers.get("etag"), etag);
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });
});

describe("refusals", () => {
  async function refused(rawName: string, status: number): Promise<{ error: string }> {
    const res = await fetch(recordUrl(rawName));
    assert.equal(res.status, status, `${rawName}: ${res.status}`);
    assert.match(res.headers.get("content-type") ?? "", /application\/json/);
    const body = (await res.json()) as { error: string };
    assert.equal(typeof body.error, "string");
    return body;
  }

  test("bad names → 400 at the edge, without asking the sidecar", async () => {
    const before = seen.length;
    for (const raw of ["notes.txt", "..%2Fsecret.mp4", "a%2Fb.mp4", "a%5Cb.mp4", "x%00.mp4", "..mp4", ".hidden.mp4", encodeURIComponent("я".repeat(126) + ".mp4")]) {
      const body = await refused(raw, 400);
      assert.match(body.error, /^Bad record name/);
    }
    assert.deepEqual(seen.slice(before), []);
  });

  test("a missing record → 404", async () => {
    await refused("missing.mp4", 404);
    assert.ok(seen.includes(`${SIDECAR_PATHS.records}/missing.mp4`));
  });

  test("a symlink out of the records folder → 403 from the sidecar", async () => {
    await refused("escape.mp4", 403);
  });

  test("the sidecar down → 502", async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    const body = await refused("rec.mp4", 502);
    assert.equal(body.error, "Media server unavailable");
  });
});
