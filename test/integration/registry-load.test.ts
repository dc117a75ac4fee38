// What the sidecar registry (a Durable Object) costs per session: sessions place their streams and check their
// sidecars' liveness on every keep-alive tick from a snapshot of the registry their isolate reads at most once per
// REGISTRY_SNAPSHOT_MS, so the registry's calls stay bounded by time, not by the number of sessions. Counted here
// with 20 sessions, each with a stream on a registered sidecar, over 30 s of keep-alive ticks at the default 5 s.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { EDGE_SIDECARS_PATH } from "@edge-vod/shared";
import { SdkClient } from "../helpers/sdk-client.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { createWeriftViewer } from "../helpers/werift-viewer.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const secret = randomBytes(24).toString("hex");
const SESSIONS = 20;
const WINDOW_MS = 30_000;
const SNAPSHOT_MS = 1000;
let edge: WranglerDev;
let sidecar: SidecarProcess;

before(async () => {
  edge = await startWrangler({
    sidecarUrl: "",
    secret,
    logLevel: "warn",
    // Streams stay PENDING (the viewers never do ICE), and that must not end them during the window.
    vars: { STREAM_START_TIMEOUT_MS: "600000", REGISTRY_SNAPSHOT_MS: String(SNAPSHOT_MS) },
  });
  sidecar = await startSidecar({ secret, env: { EDGE_URL: edge.url, SIDECAR_ID: "a", HEARTBEAT_MS: "2000", ICE_TIMEOUT_MS: "120000" } });
  await new Promise((r) => setTimeout(r, 2500));
});

after(async () => {
  await edge?.stop();
  await sidecar?.stop();
});

async function registryCalls(): Promise<Record<string, number>> {
  const res = await fetch(edge.url + EDGE_SIDECARS_PATH, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(res.status, 200);
  return ((await res.json()) as { requests: Record<string, number> }).requests;
}

/** Calls that are not the sidecars' heartbeats or the operators' listing: what sessions cost the registry. */
const sessionCalls = (r: Record<string, number>) => Object.entries(r).reduce((n, [k, v]) => (k === "heartbeat" || k === "list" ? n : n + v), 0);

test(`${SESSIONS} sessions with a stream each cost the registry calls bounded by time, not by sessions`, async () => {
  const clients: SdkClient[] = [];
  const viewers: Awaited<ReturnType<typeof createWeriftViewer>>[] = [];
  try {
    const before = await registryCalls();
    const placingFrom = Date.now();
    for (let i = 0; i < SESSIONS; i++) {
      const client = await SdkClient.connect(edge.wsUrl);
      const viewer = await createWeriftViewer();
      const id = client.playStream({ name: "vod://sample.mp4", sdp: viewer.offerSdp });
      await client.waitFor((f) => f.message === "setRemoteSDP" && f.data[0] === id, { timeoutMs: 20_000, label: "setRemoteSDP" });
      clients.push(client);
      viewers.push(viewer);
    }
    const placed = sessionCalls(await registryCalls()) - sessionCalls(before);
    const placingMs = Date.now() - placingFrom;
    const start = await registryCalls();
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const end = await registryCalls();
    const calls = sessionCalls(end) - sessionCalls(start);
    const perSessionMinute = calls / SESSIONS / (WINDOW_MS / 60_000);
    console.log(
      `# registry: ${placed} calls to place ${SESSIONS} streams; ${calls} calls in ${WINDOW_MS / 1000} s of keep-alive ticks = ` +
        `${perSessionMinute.toFixed(2)} per session per minute (${JSON.stringify(end)})`,
    );
    // At most one snapshot read per period in this isolate (plus a little for ticks that race a refresh), whatever
    // the sessions: the design before called it once per session per tick, 12 per session per minute, 120 here.
    const bound = Math.ceil(WINDOW_MS / SNAPSHOT_MS) + 5;
    assert.ok(calls <= bound, `${calls} registry calls in the window, more than one per snapshot period (${bound})`);
    // Placing reads the same snapshot: no call per placement.
    assert.ok(placed <= Math.ceil(placingMs / SNAPSHOT_MS) + 2, `${placed} registry calls to place ${SESSIONS} streams in ${placingMs} ms`);
    for (const c of clients) assert.equal(c.readyState, WebSocket.OPEN);
  } finally {
    await Promise.all(viewers.map((v) => v.close()));
    await Promise.all(clients.map((c) => c.close()));
  }
});
