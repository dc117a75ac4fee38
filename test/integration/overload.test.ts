// A sidecar at its MAX_VIEWERS refuses the next viewer with "Server overloaded" instead of degrading everyone.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Info } from "@edge-vod/shared";
import { SdkClient } from "../helpers/sdk-client.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { joinViewer } from "../helpers/vod-live-viewer.ts";
import { createWeriftViewer } from "../helpers/werift-viewer.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let sidecar: SidecarProcess;
let edge: WranglerDev;

before(async () => {
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret, env: { MAX_VIEWERS: "2" } });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
});

after(async () => {
  await edge?.stop();
  await sidecar?.stop();
});

test("past MAX_VIEWERS the next viewer gets FAILED 'Server overloaded'; those playing go on; a freed place is taken again", async () => {
  const a = await joinViewer(edge.wsUrl, "vod://sample.mp4");
  const b = await joinViewer(edge.wsUrl, "vod-live://sample.mp4");
  const client = await SdkClient.connect(edge.wsUrl);
  const extra = await createWeriftViewer();
  try {
    for (const name of ["vod://sample.mp4", "vod-live://sample.mp4"]) {
      const id = client.playStream({ name, sdp: extra.offerSdp });
      const ev = await client.waitForStatus(id, "FAILED", { timeoutMs: 20_000 });
      assert.equal(ev.info, Info.SERVER_OVERLOADED, name);
    }
    const before = [a.received.videoFrameTimestamps.length, b.received.videoFrameTimestamps.length];
    await sleep(1000);
    assert.ok(a.received.videoFrameTimestamps.length > before[0]! + 15, "the first viewer still gets frames");
    assert.ok(b.received.videoFrameTimestamps.length > before[1]! + 15, "the second viewer still gets frames");

    await a.close();
    // The sidecar counts the viewer out once the edge stopped it (the socket's close releases the session).
    let replaced;
    for (let i = 0; i < 20 && !replaced; i++) {
      replaced = await joinViewer(edge.wsUrl, "vod://sample.mp4").catch(() => undefined);
      if (!replaced) await sleep(250);
    }
    assert.ok(replaced, "a place freed by a viewer that left is taken by the next one");
    await replaced.close();
  } finally {
    await Promise.allSettled([a.close(), b.close(), extra.close(), client.close()]);
  }
});
