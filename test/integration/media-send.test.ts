// The sidecar's media send under a squeezed socket: every viewer's media socket gets a tiny SO_SNDBUF
// (RTP_SEND_BUFFER_BYTES), and vod-live:// joiners arrive mid-GOP, so each join bursts its catch-up (here at 10x). Whatever
// the kernel cannot take at once waits in Node's queue (native path) or libuv's (JS path), and what is lost anyway
// comes back by NACK: every viewer ends up with every video packet, in order, on AES-CM and AES-GCM alike, and the sidecar
// stays up. Runs on the native send, and on the JS path under `npm run test:js-path`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SIDECAR_PATHS, type PlayRequest, type PlayResponse } from "@edge-vod/shared";
import { makeFixture } from "../helpers/fixtures.ts";
import { assertContinuous, recordingViewer, until } from "../helpers/rtp-record.ts";
import { EXPECTED_MEDIA_SEND, startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import type { ViewerSrtp } from "../helpers/werift-viewer.ts";

let sidecar: SidecarProcess;
let dir: string;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-send-"));
  // 800 kbps with keyframes 4 s apart: a joiner's catch-up is up to ~400 KB at VOD_CATCHUP_SPEED 10, ~0.4 s. (At the
  // default 45x this one test process's own werift receivers, not the sidecar, drop bursts beyond what their NACK
  // retries, 10 at 5-ms intervals, recover on a loaded machine.)
  await makeFixture(dir, "burst.mp4", [
    ...["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=12"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=12"],
    ...["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "120", "-bf", "0", "-b:v", "800k"],
    ...["-c:a", "libopus", "-b:a", "32k", "-ac", "2"],
  ]);
  sidecar = await startSidecar({ secret: randomBytes(24).toString("hex"), mediaDir: dir, env: { RTP_SEND_BUFFER_BYTES: "4096", VOD_CATCHUP_SPEED: "10" } });
});

after(async () => {
  await sidecar?.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

async function join(srtp: ViewerSrtp, startedAt: number) {
  const viewer = await recordingViewer({ srtp });
  const body: PlayRequest = {
    sessionRef: "direct",
    eventsUrl: "http://127.0.0.1:9/events",
    mediaSessionId: randomUUID(),
    name: "vod-live://burst.mp4",
    sdp: viewer.offerSdp,
    broadcast: { startedAt, loop: true },
  };
  const res = await signedFetch(sidecar.secret, sidecar.url + SIDECAR_PATHS.play, { method: "POST", body: JSON.stringify(body) });
  const answer = (await res.json()) as PlayResponse;
  assert.ok(answer.ok, `play refused: ${JSON.stringify(answer)}`);
  await viewer.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  return viewer;
}

test("with a tiny socket send buffer, joiners' catch-up bursts reach every viewer whole and in order (AES-CM and AES-GCM)", { timeout: 120_000 }, async (t) => {
  const startedAt = Date.now();
  const viewers: Awaited<ReturnType<typeof join>>[] = [];
  try {
    // Joins spread over the GOP, so each lands mid-GOP and catches up. Chromium's list (AES-GCM on the native path,
    // where the sidecar is the DTLS server; AES-CM on the JS path), AES-CM alone, and werift's list (AES-GCM either way).
    const lists: readonly ViewerSrtp[] = ["chromium", "aes-cm", "any"];
    for (let i = 0; i < 9; i++) {
      viewers.push(await join(lists[i % 3]!, startedAt));
      await new Promise((r) => setTimeout(r, 250));
    }
    const joinedAt = performance.now();
    await until("every viewer's video", () => viewers.every((v) => v.video.length > 150), 60_000);
    await new Promise((r) => setTimeout(r, 3000));
    const send = await sidecar.mediaSend();
    t.diagnostic(`media send: ${JSON.stringify(send)}; video packets per viewer: ${viewers.map((v) => v.video.length).join(" ")}`);
    for (const [i, v] of viewers.entries()) {
      assertContinuous(v.video, `viewer ${i} video`);
      // Audio has no NACK (as in browsers): what this process's own sockets dropped during another viewer's burst
      // stays lost, so its continuity is checked once the joins are over.
      assertContinuous(
        v.audio.filter((p) => p.at > joinedAt + 1000),
        `viewer ${i} audio`,
      );
    }
    assert.equal(send.mode, EXPECTED_MEDIA_SEND, send.reason);
    const res = await signedFetch(sidecar.secret, `${sidecar.url}/v1/health`);
    assert.equal(res.status, 200);
  } finally {
    await Promise.allSettled(viewers.map((v) => v.pc.close()));
  }
});
