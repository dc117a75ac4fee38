// Several sidecars behind one edge: they register with heartbeats, new viewers go to the least loaded one, a
// `vod-live://` broadcast plays in sync on all of them (no media between sidecars), and a sidecar that dies fails
// its own viewers cleanly while the next viewer lands on a survivor.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { EDGE_SIDECARS_PATH } from "@edge-vod/shared";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { joinViewer, mediaZeroAt, type JoinedViewer } from "../helpers/vod-live-viewer.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";

const FRAME_MS = 1000 / 30;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secret = randomBytes(24).toString("hex");

let edge: WranglerDev;
const sidecars: SidecarProcess[] = [];

before(async () => {
  // No SIDECAR_URL: only registered sidecars serve.
  edge = await startWrangler({
    sidecarUrl: "",
    secret,
    logLevel: "warn",
    vars: { VOD_LIVE_LOOP: "true", SIDECAR_DEAD_AFTER_MS: "1500", KEEPALIVE_INTERVAL_MS: "500" },
  });
  for (const id of ["a", "b"]) {
    sidecars.push(await startSidecar({ secret, env: { EDGE_URL: edge.url, SIDECAR_ID: id, HEARTBEAT_MS: "300" } }));
  }
});

after(async () => {
  await edge?.stop();
  await Promise.all(sidecars.map((s) => s.stop()));
});

interface Listed {
  id: string;
  healthy: boolean;
  viewers: number;
}

async function registered(): Promise<Listed[]> {
  const res = await fetch(edge.url + EDGE_SIDECARS_PATH, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(res.status, 200);
  return ((await res.json()) as { sidecars: Listed[] }).sidecars;
}

async function viewersOn(s: SidecarProcess): Promise<number> {
  const res = await signedFetch(secret, `${s.url}/v1/health`);
  return ((await res.json()) as { viewers: number }).viewers;
}

function spread(viewers: readonly JoinedViewer[], fromFrames: readonly number[] = []): number {
  const zeros = viewers.map((v, i) => mediaZeroAt(v.received, fromFrames[i] ?? 0));
  return Math.max(...zeros) - Math.min(...zeros);
}

test("the registry refuses heartbeats not signed with the secret and lists registered sidecars to operators only", async () => {
  const anon = await fetch(edge.url + EDGE_SIDECARS_PATH);
  assert.equal(anon.status, 401);
  const evil = JSON.stringify({ id: "evil", url: "http://127.0.0.1:1", viewers: 0, publishers: 0, maxViewers: 1 });
  // Heartbeats must be signed: even the right secret as a bearer is refused (it would travel on the wire).
  for (const authorization of ["Bearer wrong-secret-wrong-secret", `Bearer ${secret}`]) {
    const res = await fetch(edge.url + EDGE_SIDECARS_PATH, {
      method: "POST",
      headers: { "content-type": "application/json", authorization },
      body: evil,
    });
    assert.equal(res.status, 401, authorization);
    assert.deepEqual(await res.json(), { error: "Unsigned request" });
  }
  const forged = await signedFetch("wrong-secret-wrong-secret", edge.url + EDGE_SIDECARS_PATH, { method: "POST", body: evil });
  assert.equal(forged.status, 401);
  assert.deepEqual(await forged.json(), { error: "Bad signature" });
  const stale = await signedFetch(secret, edge.url + EDGE_SIDECARS_PATH, { method: "POST", body: evil, signedAt: Date.now() - 60_000 });
  assert.equal(stale.status, 401);
  assert.deepEqual(await stale.json(), { error: "Stale request" });
  const bad = await signedFetch(secret, edge.url + EDGE_SIDECARS_PATH, {
    method: "POST",
    body: JSON.stringify({ id: "x", url: "file:///etc/passwd", viewers: 0, publishers: 0, maxViewers: 1 }),
  });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /url/);
  const list = await registered();
  assert.deepEqual(list.map((s) => [s.id, s.healthy]).sort(), [["a", true], ["b", true]]);
});

test("viewers spread over two sidecars play one broadcast in sync; a killed sidecar fails its viewers, the next lands on the survivor", async (t) => {
  const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
  const viewers: JoinedViewer[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      viewers.push(await joinViewer(edge.wsUrl, "vod-live://sample.mp4"));
      await sleep(300);
    }
    const onA = await viewersOn(a);
    const onB = await viewersOn(b);
    t.diagnostic(`placed ${onA} viewers on sidecar a and ${onB} on b`);
    assert.equal(onA + onB, 6);
    assert.ok(onA >= 2 && onB >= 2, `both sidecars serve viewers (${onA} / ${onB})`);

    await sleep(1500);
    const before = spread(viewers);
    t.diagnostic(`media clock spread across both sidecars: ${before.toFixed(1)} ms`);
    assert.ok(before <= 100 + FRAME_MS, `viewers on both sidecars agree within 100 ms + one frame (${before.toFixed(1)} ms)`);

    await a.kill("SIGKILL");
    const framesAtKill = viewers.map((v) => v.received.videoFrameTimestamps.length);
    // Every viewer either fails with a clear info (it was on a) or keeps playing (it was on b).
    const failed: JoinedViewer[] = [];
    const deadline = Date.now() + 15_000;
    while (failed.length < onA && Date.now() < deadline) {
      await sleep(200);
      failed.length = 0;
      for (const v of viewers) if (v.client.statusEvents(v.id).some((e) => e.status === "FAILED")) failed.push(v);
    }
    assert.equal(failed.length, onA, "exactly the viewers of the dead sidecar fail");
    for (const v of failed) {
      const ev = v.client.statusEvents(v.id).find((e) => e.status === "FAILED")!;
      assert.equal(ev.info, "Media server lost");
    }
    const survivors = viewers.filter((v) => !failed.includes(v));
    await sleep(1000);
    for (const v of survivors) {
      assert.deepEqual(v.client.statusEvents(v.id).map((e) => e.status), ["PLAYING"], "viewers on b are untouched");
      assert.ok(v.received.videoFrameTimestamps.length > framesAtKill[viewers.indexOf(v)]! + 15, "and keep receiving frames");
    }
    assert.deepEqual((await registered()).map((s) => [s.id, s.healthy]).sort(), [["a", false], ["b", true]]);

    // A retry goes to the survivor and joins the same broadcast, in sync.
    const retry = await joinViewer(edge.wsUrl, "vod-live://sample.mp4");
    viewers.push(retry);
    assert.equal(await viewersOn(b), onB + 1, "the new viewer is placed on the surviving sidecar");
    await sleep(1500);
    const group = [...survivors, retry];
    const fromFrames = group.map((v) => Math.max(0, v.received.videoFrameTimestamps.length - 30));
    const after = spread(group, fromFrames);
    assert.ok(after <= 100 + FRAME_MS, `the late viewer is in sync with the others (${after.toFixed(1)} ms)`);
  } finally {
    await Promise.allSettled(viewers.map((v) => v.close()));
  }
});

test("a registered sidecar that refuses connections is skipped: the stream is placed on another one", async () => {
  const b = sidecars[1]!;
  // The viewers of the test before are released asynchronously (socket close → edge → sidecar).
  for (let i = 0; i < 50 && (await viewersOn(b)) > 0; i++) await sleep(100);
  // One viewer loads b, so an idle-looking sidecar on a port nobody listens on is the least loaded: picked first.
  const first = await joinViewer(edge.wsUrl, "vod://sample.mp4");
  // Until b's heartbeat reports that viewer, b and the ghost would tie at no load.
  for (let i = 0; i < 50 && !(await registered()).some((e) => e.id === "b" && e.viewers > 0); i++) await sleep(100);
  const res = await signedFetch(secret, edge.url + EDGE_SIDECARS_PATH, {
    method: "POST",
    // It says it has the file warm too, as b does (b prepared its audio): nothing but its refusal makes it lose.
    body: JSON.stringify({ id: "ghost", url: "http://127.0.0.1:9", viewers: 0, publishers: 0, maxViewers: 100000, warm: ["sample.mp4"] }),
  });
  assert.equal(res.status, 200);
  // Sessions place by the registry snapshot their isolate holds (REGISTRY_SNAPSHOT_MS, 1 s): the ghost is in the next.
  await sleep(1200);
  const second = await joinViewer(edge.wsUrl, "vod://sample.mp4");
  try {
    assert.equal(await viewersOn(b), 2, "played on the sidecar that answers");
    const ghost = (await registered()).find((s) => s.id === "ghost");
    assert.equal(ghost?.healthy, false, "the refusing sidecar is marked down");
  } finally {
    await Promise.all([first.close(), second.close()]);
  }
});
