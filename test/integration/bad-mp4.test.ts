// Broken MP4 files played through the real sidecar's control API, as the edge would call it: each play is refused
// with the exact info the viewer sees in FAILED, and the sidecar goes on serving a good file afterwards.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Info, SIDECAR_PATHS } from "@edge-vod/shared";
import { SAMPLE_MP4 } from "../helpers/fixtures.ts";
import { walkBoxes } from "../helpers/mp4-mutate.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { signedFetch } from "../helpers/signed-fetch.ts";
import { createWeriftViewer } from "../helpers/werift-viewer.ts";

let sidecar: SidecarProcess;
let mediaDir: string;
let events: http.Server;
let eventsUrl: string;
const secret = randomBytes(24).toString("hex");

/** sample.mp4 with `edit` applied to a copy, written into the media folder as `name`. */
async function broken(whole: Uint8Array, name: string, edit: (b: Uint8Array, v: DataView) => Uint8Array | void): Promise<void> {
  const copy = whole.slice();
  const out = edit(copy, new DataView(copy.buffer)) ?? copy;
  await fs.writeFile(path.join(mediaDir, name), out);
}

before(async () => {
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-bad-mp4-"));
  const whole = new Uint8Array(await fs.readFile(SAMPLE_MP4));
  await fs.writeFile(path.join(mediaDir, "sample.mp4"), whole);
  const boxes = walkBoxes(whole);
  const box = (type: string) => {
    const b = boxes.find((x) => x.type === type);
    assert.ok(b, `sample.mp4 has a ${type}`);
    return b;
  };
  const moov = box("moov");
  const stsz = boxes.find((x) => x.type === "stsz" && x.parents.some((p) => boxes[p]!.type === "trak"))!;
  const avcC = box("avcC");
  await broken(whole, "truncated.mp4", (b) => b.subarray(0, Math.floor(b.length * 0.4)));
  await broken(whole, "empty.mp4", () => new Uint8Array(0));
  await broken(whole, "huge-box.mp4", (_, v) => v.setUint32(moov.start, 0xffffffff));
  await broken(whole, "four-billion-samples.mp4", (_, v) => {
    // A constant sample size of 1 byte and a count of 2^32 - 1: twelve bytes claiming four billion samples.
    v.setUint32(stsz.start + stsz.headerSize + 4, 1);
    v.setUint32(stsz.start + stsz.headerSize + 8, 0xffffffff);
  });
  // lengthSizeMinusOne = 2: 3-byte NAL lengths, which H.264 does not have.
  await broken(whole, "corrupt-avcc.mp4", (b) => void (b[avcC.start + avcC.headerSize + 4] = 0xfe));

  // The sidecar posts stream events here; these tests only need them accepted.
  events = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}'));
  });
  await new Promise<void>((r) => events.listen(0, "127.0.0.1", () => r()));
  eventsUrl = `http://127.0.0.1:${(events.address() as { port: number }).port}/events`;
  sidecar = await startSidecar({ secret, mediaDir });
});

after(async () => {
  await sidecar?.stop();
  await new Promise((r) => events?.close(r));
  await fs.rm(mediaDir, { recursive: true, force: true });
});

async function call(p: string, body: object): Promise<{ ok: boolean; info?: string; sdp?: string }> {
  const res = await signedFetch(secret, sidecar.url + p, {
    method: "POST",
    body: JSON.stringify(body),
    // A reader that hung on the file would never answer: fail instead of waiting for the test runner.
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as { ok: boolean; info?: string; sdp?: string };
}

test("truncated, empty, huge-box, 2^32-sample and corrupt-avcC files get FAILED with a clear info; sample.mp4 still plays", async () => {
  const viewer = await createWeriftViewer();
  try {
    const cases: [string, string][] = [
      ["truncated.mp4", Info.FILE_HAS_WRONG_FORMAT],
      ["empty.mp4", Info.FILE_HAS_WRONG_FORMAT],
      ["huge-box.mp4", Info.FILE_HAS_WRONG_FORMAT],
      ["four-billion-samples.mp4", Info.FILE_HAS_WRONG_FORMAT],
      ["corrupt-avcc.mp4", Info.FILE_HAS_WRONG_FORMAT],
    ];
    assert.equal(Info.FILE_HAS_WRONG_FORMAT, "File has wrong format");
    for (const [file, info] of cases) {
      const answer = await call(SIDECAR_PATHS.play, { sessionRef: "bad-mp4", eventsUrl, mediaSessionId: randomUUID(), name: `vod://${file}`, sdp: viewer.offerSdp });
      assert.deepEqual({ ok: answer.ok, info: answer.info }, { ok: false, info }, file);
    }

    // Afterwards a good file is answered and its video arrives.
    const mediaSessionId = randomUUID();
    const answer = await call(SIDECAR_PATHS.play, { sessionRef: "bad-mp4", eventsUrl, mediaSessionId, name: "vod://sample.mp4", sdp: viewer.offerSdp });
    assert.equal(answer.ok, true, answer.info);
    await viewer.setAnswer(answer.sdp!);
    for (let i = 0; i < 200 && viewer.received.videoFrameTimestamps.length < 10; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(viewer.received.videoFrameTimestamps.length >= 10, `${viewer.received.videoFrameTimestamps.length} frames of sample.mp4 arrived`);
    assert.deepEqual(await call(SIDECAR_PATHS.stop, { sessionRef: "bad-mp4", mediaSessionId }), { ok: true, found: true });
  } finally {
    await viewer.close();
  }
});
