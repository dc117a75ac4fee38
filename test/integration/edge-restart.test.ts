// Durable Objects that lose their memory (eviction, a restarted edge) come back from storage. workerd cannot be told
// to evict one object, so the whole edge is restarted on the same state folder: every object starts from storage.
// What a user sees: a `vod-live://` broadcast goes on at the same position, and the sessions that died with the old
// edge are cleaned up by their own alarms (their viewers released at the sidecar, their published names free again).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SIDECAR_PATHS } from "@edge-vod/shared";
import { SAMPLE_MP4 } from "../helpers/fixtures.ts";
import { freePort } from "../helpers/ports.ts";
import { SdkClient } from "../helpers/sdk-client.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { joinViewer, mediaZeroAt, type JoinedViewer } from "../helpers/vod-live-viewer.ts";
import { createWeriftPublisher } from "../helpers/werift-publisher.ts";
import { startWrangler, type WranglerDev, type WranglerOptions } from "../helpers/wrangler.ts";

const FRAME_MS = 1000 / 30;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secret = randomBytes(24).toString("hex");

let sidecar: SidecarProcess;
let stateDir: string;
let edge: WranglerDev;
let edgeOptions: WranglerOptions;

before(async () => {
  stateDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-state-"));
  sidecar = await startSidecar({ secret });
  edgeOptions = {
    sidecarUrl: sidecar.url,
    secret,
    logLevel: "warn",
    // Same port after the restart: the sidecar keeps posting events where the old sessions told it to.
    port: await freePort(),
    persistTo: stateDir,
    vars: { VOD_LIVE_LOOP: "true", VOD_LIVE_GRACE_MS: "120000", KEEPALIVE_INTERVAL_MS: "500" },
  };
  edge = await startWrangler(edgeOptions);
});

after(async () => {
  await edge?.stop();
  await sidecar?.stop();
  await fs.rm(stateDir, { recursive: true, force: true });
});

async function sidecarHealth(): Promise<{ viewers: number; publishers: number }> {
  const res = await signedFetch(secret, sidecar.url + SIDECAR_PATHS.health);
  assert.equal(res.status, 200);
  return (await res.json()) as { viewers: number; publishers: number };
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(200);
  }
}

test("after an edge restart: dead sessions release their streams, their names publish again, a broadcast goes on in place", async () => {
  const name = `restart-${randomUUID().slice(0, 8)}`;
  const viewers: JoinedViewer[] = [];
  const publishers: Awaited<ReturnType<typeof createWeriftPublisher>>[] = [];
  const clients: SdkClient[] = [];
  const publish = async () => {
    const client = await SdkClient.connect(edge.wsUrl);
    clients.push(client);
    const pub = await createWeriftPublisher(SAMPLE_MP4, { audio: false });
    publishers.push(pub);
    const id = client.publishStream({ name, sdp: pub.offerSdp });
    const frame = await client.waitFor(
      (f) => (f.message === "setRemoteSDP" && f.data[0] === id) || (f.message === "notifyStreamStatusEvent" && (f.data[0] as { mediaSessionId?: string }).mediaSessionId === id),
      { timeoutMs: 20_000, label: `answer for publish ${name}` },
    );
    assert.equal(frame.message, "setRemoteSDP", `publish ${name}: ${frame.raw}`);
    await pub.setAnswer(String(frame.data[1]));
    return client.waitForStatus(id, ["PUBLISHING", "FAILED"], { timeoutMs: 20_000 });
  };
  try {
    viewers.push(await joinViewer(edge.wsUrl, "vod-live://sample.mp4"));
    assert.equal((await publish()).status, "PUBLISHING");
    const playing = await sidecarHealth();
    assert.deepEqual([playing.viewers, playing.publishers], [1, 1]);
    await sleep(1500);
    const before = mediaZeroAt(viewers[0]!.received);

    await edge.stop();
    edge = await startWrangler(edgeOptions);

    // Nothing tells the sidecar that those sessions are gone but the sessions' own alarms, run from storage.
    await waitUntil("the dead sessions' viewer and publisher are released at the sidecar", async () => {
      const h = await sidecarHealth();
      return h.viewers === 0 && h.publishers === 0;
    });
    const again = await publish();
    assert.equal(again.status, "PUBLISHING", `the dead session's name is free again (${again.info ?? ""})`);

    const late = await joinViewer(edge.wsUrl, "vod-live://sample.mp4");
    viewers.push(late);
    await sleep(1500);
    const after = mediaZeroAt(late.received);
    const drift = Math.abs(after - before);
    assert.ok(drift <= 100 + FRAME_MS, `the broadcast goes on where it was: media time 0 moved ${drift.toFixed(1)} ms across the restart`);
  } finally {
    await Promise.allSettled([...viewers.map((v) => v.close()), ...publishers.map((p) => p.close()), ...clients.map((c) => c.close())]);
  }
});
