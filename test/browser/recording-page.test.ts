// The Stream Recording page in Debian Chromium (fake camera) with the unmodified Web SDK, through the real edge
// (wrangler dev) and a fake sidecar: it answers the publish, reports PUBLISHING when told, names the record on stop,
// and serves that record through the real records routes, so the page's download link can be followed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import type { Page } from "playwright-core";
import { Info, SIDECAR_PATHS } from "@edge-vod/shared";
import { recordsRoutes } from "../../sidecar/src/api/records.ts";
import { ReplayCache } from "../../sidecar/src/api/replay-cache.ts";
import { signedAuth } from "../../sidecar/src/api/signed-auth.ts";
import { launchChromium } from "../helpers/chromium.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const SECRET = randomBytes(24).toString("hex");
const ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=edge-vod-fake\r\nt=0 0\r\n";
/** A name that needs encoding in both links. */
const RECORD_NAME = "stream-ä b#1&x=2.mp4";
const RECORD_BYTES = randomBytes(10_000);

interface Publish {
  sessionRef: string;
  eventsUrl: string;
  mediaSessionId: string;
  name: string;
  record: boolean;
}

const publishes: Publish[] = [];
let tmp: string;
let server: http.Server;
let edge: WranglerDev;
let browser: Awaited<ReturnType<typeof launchChromium>>;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "recording-page-"));
  await fs.writeFile(path.join(tmp, RECORD_NAME), RECORD_BYTES);
  const app = new Hono();
  app.use("*", signedAuth(SECRET, { replay: new ReplayCache(), maxBodyBytes: 256 * 1024 }));
  app.post(SIDECAR_PATHS.publish, async (c) => {
    const body = (await c.req.json()) as Publish;
    publishes.push(body);
    return c.json(body.name === "refused" ? { ok: false, info: Info.NO_COMMON_CODECS } : { ok: true, sdp: ANSWER });
  });
  app.post(SIDECAR_PATHS.stop, async (c) => {
    const body = (await c.req.json()) as { mediaSessionId: string };
    const pub = publishes.find((p) => p.mediaSessionId === body.mediaSessionId);
    return c.json(pub?.record ? { ok: true, found: true, recordName: RECORD_NAME } : { ok: true, found: true });
  });
  app.post(SIDECAR_PATHS.release, (c) => c.json({ ok: true, released: 0 }));
  recordsRoutes(app, tmp);
  const url = await new Promise<string>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) =>
      resolve(`http://127.0.0.1:${info.port}`),
    ) as http.Server;
  });
  edge = await startWrangler({ sidecarUrl: url, secret: SECRET });
  browser = await launchChromium(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]);
});

after(async () => {
  await browser?.close();
  await edge?.stop();
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  await fs.rm(tmp, { recursive: true, force: true });
});

async function openPage(query = ""): Promise<Page> {
  const page = await browser.context.newPage();
  // The fake answer has no m-lines, so the SDK logs a rejected setRemoteDescription; the page does not depend on it.
  page.on("pageerror", (err) => console.log(`page error: ${err.message}`));
  await page.goto(`${edge.url}/recording.html${query}`);
  await page.waitForFunction(() => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined");
  return page;
}

const waitStatus = (page: Page, status: string) =>
  page.waitForFunction((s) => document.querySelector("#status")?.textContent === s, status, { timeout: 20_000 });

async function waitPublish(name: string): Promise<Publish> {
  for (let i = 0; ; i++) {
    const p = publishes.find((x) => x.name === name);
    if (p) return p;
    if (i > 400) assert.fail(`no publish of ${name}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("the page defaults to its own origin and a random stream name", async () => {
  const page = await openPage();
  assert.equal(await page.inputValue("#url"), edge.wsUrl.replace(/\/$/, ""));
  assert.match(await page.inputValue("#streamName"), /^rec-[0-9a-z]+$/);
  assert.equal(await page.locator("#publishBtn").innerText(), "Start");
  assert.equal(await page.locator("#record").isVisible(), false);
  await page.close();
});

test("Start publishes with record:true; Stop ends with UNPUBLISHED and links to the record", async () => {
  const page = await openPage("?stream=my-recording");
  await page.click("#publishBtn");
  const pub = await waitPublish("my-recording");
  assert.equal(pub.record, true);
  await page.waitForFunction(() => document.querySelector("#localVideo video") !== null, undefined, { timeout: 10_000 });
  // What the sidecar says once media flows.
  const res = await signedFetch(SECRET, pub.eventsUrl, {
    method: "POST",
    body: JSON.stringify({ sessionRef: pub.sessionRef, mediaSessionId: pub.mediaSessionId, status: "PUBLISHING" }),
  });
  assert.equal(res.status, 200);
  await waitStatus(page, "PUBLISHING");
  assert.equal(await page.locator("#publishBtn").innerText(), "Stop");
  assert.equal(await page.locator("#record").isVisible(), false);

  await page.click("#publishBtn");
  await waitStatus(page, "UNPUBLISHED");
  assert.equal(await page.locator("#publishBtn").innerText(), "Start");
  assert.equal(await page.locator("#record").isVisible(), true);
  assert.equal(await page.evaluate(() => (window as unknown as { recorder: { stream: { getRecordInfo(): string } } }).recorder.stream.getRecordInfo()), RECORD_NAME);

  const recordHref = await page.getAttribute("#recordLink", "href");
  assert.equal(recordHref, `${edge.url}/client/records/${encodeURIComponent(RECORD_NAME)}`);
  assert.equal(await page.locator("#recordLink").innerText(), RECORD_NAME);
  const download = await fetch(recordHref!);
  assert.equal(download.status, 200);
  assert.ok(Buffer.from(await download.arrayBuffer()).equals(RECORD_BYTES));

  const playHref = await page.getAttribute("#playLink", "href");
  const play = new URL(playHref!);
  assert.equal(play.pathname, "/player.html");
  assert.equal(play.searchParams.get("stream"), `vod://${RECORD_NAME}`);
  assert.equal(play.searchParams.get("url"), null);
  await page.close();
});

test("a refused publish shows FAILED with the server's info and no record links", async () => {
  const page = await openPage("?stream=refused");
  await page.click("#publishBtn");
  await waitStatus(page, "FAILED");
  assert.equal(await page.locator("#info").innerText(), Info.NO_COMMON_CODECS);
  assert.equal(await page.locator("#record").isVisible(), false);
  assert.equal(await page.locator("#publishBtn").innerText(), "Start");
  await page.close();
});
