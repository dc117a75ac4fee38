// A SIDECAR_URL sidecar that dies under playing streams: its viewers get FAILED "Media server lost" (the edge sees
// the restart by the sidecar's new instance id, or the death by health checks that go unanswered), and the same
// session can play again once a sidecar answers. Real sidecars, SIGKILLed (no clean shutdown, no events).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { SIDECAR_PATHS } from "@edge-vod/shared";
import { SdkClient } from "../helpers/sdk-client.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import { freePort } from "../helpers/ports.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";
import { createWeriftViewer } from "../helpers/werift-viewer.ts";

const secret = randomBytes(24).toString("hex");
const sidecars: SidecarProcess[] = [];
const edges: WranglerDev[] = [];
let restartPort: number;
let killPort: number;
/** Only a restart (another instance answering) can fail streams here: unanswered health checks never add up. */
let restartEdge: WranglerDev;
/** Three unanswered health checks in a row (1.2 s) and the sidecar is gone. */
let killEdge: WranglerDev;

before(async () => {
  [restartPort, killPort] = [await freePort(), await freePort()];
  sidecars.push(await startSidecar({ secret, port: restartPort }), await startSidecar({ secret, port: killPort }));
  const fast = { KEEPALIVE_INTERVAL_MS: "400" };
  [restartEdge, killEdge] = await Promise.all([
    startWrangler({ sidecarUrl: `http://127.0.0.1:${restartPort}`, secret, logLevel: "warn", vars: { ...fast, SIDECAR_HEALTH_MISSES: "1000" } }),
    startWrangler({ sidecarUrl: `http://127.0.0.1:${killPort}`, secret, logLevel: "warn", vars: { ...fast, SIDECAR_HEALTH_MISSES: "3" } }),
  ]);
  edges.push(restartEdge, killEdge);
});

after(async () => {
  await Promise.allSettled(edges.map((e) => e.stop()));
  await Promise.allSettled(sidecars.map((s) => s.stop()));
});

type Viewer = Awaited<ReturnType<typeof createWeriftViewer>>;

/** playStream with a werift peer; resolves once PLAYING. */
async function play(client: SdkClient, viewers: Viewer[]): Promise<string> {
  const viewer = await createWeriftViewer();
  viewers.push(viewer);
  const id = client.playStream({ name: "vod://sample.mp4", sdp: viewer.offerSdp });
  const frame = await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id, { timeoutMs: 20_000, label: "setRemoteSDP" });
  await viewer.setAnswer(String(frame.data[1]));
  await client.waitForStatus(id, "PLAYING", { timeoutMs: 20_000 });
  return id;
}

async function viewersOn(port: number): Promise<number> {
  const res = await signedFetch(secret, `http://127.0.0.1:${port}${SIDECAR_PATHS.health}`);
  return ((await res.json()) as { viewers: number }).viewers;
}

test("a sidecar restarted under a playing viewer: FAILED 'Media server lost', and a new play on the same session plays", async () => {
  const client = await SdkClient.connect(restartEdge.wsUrl);
  const viewers: Viewer[] = [];
  try {
    const first = await play(client, viewers);
    const old = sidecars[0]!;
    await old.kill("SIGKILL");
    sidecars.push(await startSidecar({ secret, port: restartPort }));
    const ev = await client.waitForStatus(first, ["FAILED", "STOPPED"], { timeoutMs: 15_000 });
    assert.equal(ev.status, "FAILED");
    assert.equal(ev.info, "Media server lost");

    const second = await play(client, viewers);
    assert.equal(await viewersOn(restartPort), 1, "the new play runs on the restarted sidecar");
    assert.deepEqual(client.statusEvents(first).map((e) => e.status), ["PLAYING", "FAILED"], "the lost stream gets exactly one FAILED");
    assert.deepEqual(client.statusEvents(second).map((e) => e.status), ["PLAYING"]);
  } finally {
    await Promise.allSettled([...viewers.map((v) => v.close()), client.close()]);
  }
});

test("a sidecar killed and not restarted: FAILED 'Media server lost'; the session stays and a new play fails cleanly", async () => {
  const client = await SdkClient.connect(killEdge.wsUrl);
  const viewers: Viewer[] = [];
  try {
    const id = await play(client, viewers);
    await sidecars[1]!.kill("SIGKILL");
    const ev = await client.waitForStatus(id, ["FAILED", "STOPPED"], { timeoutMs: 15_000 });
    assert.equal(ev.status, "FAILED");
    assert.equal(ev.info, "Media server lost");

    const retry = client.playStream({ name: "vod://sample.mp4", sdp: viewers[0]!.offerSdp });
    const failed = await client.waitForStatus(retry, undefined, { timeoutMs: 15_000 });
    assert.equal(failed.status, "FAILED");
    assert.equal(failed.info, "Media server unavailable");
  } finally {
    await Promise.allSettled([...viewers.map((v) => v.close()), client.close()]);
  }
});
