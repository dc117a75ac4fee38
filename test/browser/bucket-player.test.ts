// The Player page in Debian Chromium plays a file that is only in the bucket (a real Swift S3 server): the sidecar's
// media folder is empty, so every byte the browser gets was read by ranges from the object.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { S3Store } from "../../sidecar/src/store/s3-store.ts";
import { launchChromium, openPlayer as openPlayerOn, playSampleToEnd } from "../helpers/chromium.ts";
import { SAMPLE_MP4 } from "../helpers/fixtures.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startSwift, type SwiftServer } from "../helpers/swift.ts";
import { startWrangler } from "../helpers/wrangler.ts";

const BUCKET = "player-bucket";
const PREFIX = "vod/";
let swift: SwiftServer;
let mediaDir: string;
let sidecar: SidecarProcess;
let edge: Awaited<ReturnType<typeof startWrangler>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;

before(async () => {
  const secret = randomBytes(24).toString("hex");
  swift = await startSwift();
  await swift.createBucket(BUCKET);
  const store = new S3Store(swift.storeConfig(BUCKET));
  await store.put(`${PREFIX}sample.mp4`, await fs.readFile(SAMPLE_MP4));
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-bucket-player-"));
  sidecar = await startSidecar({ secret, mediaDir, env: swift.env(BUCKET, PREFIX) });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await edge?.stop();
  await sidecar?.stop();
  await swift?.stop();
  if (mediaDir) await fs.rm(mediaDir, { recursive: true, force: true });
});

const openPlayer = async (stream: string): Promise<Page> => openPlayerOn(await browser.context.newPage(), edge.url, stream);

test("vod://sample.mp4 from the bucket plays picture and sound in Chromium, then reports STOPPED at the end", async () => {
  // Otherwise a copy in the media folder could be what plays.
  assert.deepEqual(await fs.readdir(mediaDir), []);
  const page = await openPlayer("vod://sample.mp4");
  try {
    await playSampleToEnd(page);
  } catch (err) {
    throw new Error(`${String(err)}\n--- sidecar ---\n${sidecar.output()}`);
  } finally {
    await page.close();
  }
});
