// A werift client speaking the Web SDK's frames plays vod:// through the real edge (wrangler dev) and sidecar.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { SdkClient } from "../helpers/sdk-client.ts";
import { EXPECTED_MEDIA_SEND, startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler, type WranglerDev } from "../helpers/wrangler.ts";
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80 } from "werift";
import { videoPayloadTypes } from "../helpers/sdp.ts";
import { createWeriftViewer, interceptIncomingRtp } from "../helpers/werift-viewer.ts";
import { until } from "../helpers/rtp-record.ts";

let sidecar: SidecarProcess;
let edge: WranglerDev;
let mediaDir: string;

before(async () => {
  // A media folder of our own: sample.mp4 plus files that must be refused.
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-media-"));
  await fs.copyFile("media/sample.mp4", path.join(mediaDir, "sample.mp4"));
  await fs.writeFile(path.join(mediaDir, "garbage.mp4"), randomBytes(50_000));
  const whole = await fs.readFile("media/sample.mp4");
  await fs.writeFile(path.join(mediaDir, "truncated.mp4"), whole.subarray(0, 4000));
  await fs.symlink("/etc/passwd", path.join(mediaDir, "escape.mp4"));
  const secret = randomBytes(24).toString("hex");
  sidecar = await startSidecar({ secret, mediaDir });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
});

after(async () => {
  await edge?.stop();
  await sidecar?.stop();
  await fs.rm(mediaDir, { recursive: true, force: true });
});

test("vod://sample.mp4 delivers every video frame with the file's timestamps, Opus audio for its duration, then STOPPED", async () => {
  const file = await new LocalDiskAccess("media").open("sample.mp4");
  const index = await openMp4(file);
  await file.close();
  const video = index.video!;
  const expectedTs = Array.from({ length: video.samples.count }, (_, i) =>
    Math.round(((video.samples.dts[i]! + video.samples.ctsOffset[i]! - video.samples.dts[0]! - video.samples.ctsOffset[0]!) * 90000) / video.timescale),
  );

  const client = await SdkClient.connect(edge.wsUrl);
  const viewer = await createWeriftViewer();
  try {
    const id = client.playStream({ name: "vod://sample.mp4", sdp: viewer.offerSdp });
    const sdpFrame = await client.waitFor((f) => f.message === "setRemoteSDP", { timeoutMs: 20_000, label: "setRemoteSDP" });
    const data = sdpFrame.data as unknown[];
    assert.equal(data[0], id);
    assert.equal(data[2], true);
    await viewer.setAnswer(String(data[1]));
    await client.waitForStatus(id, "PLAYING", { timeoutMs: 20_000 });
    await client.waitForStatus(id, "STOPPED", { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 300));

    const got = viewer.received.videoFrameTimestamps;
    assert.equal(got.length, video.samples.count, "every video frame arrives");
    const t0 = got[0]!;
    const rel = got.map((t) => (t - t0) >>> 0);
    assert.deepEqual(rel, expectedTs, "RTP timestamps follow the file's presentation times");
    const audio = viewer.received.audioTimestamps;
    const audioSec = ((audio[audio.length - 1]! - audio[0]! + 960) >>> 0) / 48000;
    assert.ok(Math.abs(audioSec - index.durationSec) <= 0.2, `audio covers ${audioSec} s of ${index.durationSec} s`);
  } finally {
    await viewer.close();
    await client.close();
  }
});

/** The SRTP profile a viewer offering Chromium's list gets: AES-GCM where the sidecar is the DTLS server (native path). */
const CHROMIUM_PROFILE = EXPECTED_MEDIA_SEND === "native" ? ProtectionProfileAeadAes128Gcm : ProtectionProfileAes128CmHmacSha1_80;

const srtpProfileOf = (viewer: Awaited<ReturnType<typeof createWeriftViewer>>) =>
  (viewer.pc.dtlsTransports[0] as unknown as { dtls?: { srtp: { srtpProfile?: number } } }).dtls?.srtp.srtpProfile;

test("a viewer that loses video packets gets them back by NACK: every frame arrives, on the SRTP profile Chromium gets", async () => {
  const file = await new LocalDiskAccess("media").open("sample.mp4");
  const frames = (await openMp4(file)).video!.samples.count;
  await file.close();
  const client = await SdkClient.connect(edge.wsUrl);
  const viewer = await createWeriftViewer();
  // Loss on the way in, before werift sees the packet: the first copy of every 20th video packet is dropped, so only
  // a retransmission can fill the gap. Sequence numbers are in the clear in SRTP.
  let videoPts = new Set<number>();
  const dropped = new Set<number>();
  let videoSeen = 0;
  interceptIncomingRtp(viewer.pc, (data) => {
    if (!videoPts.has(data[1]! & 0x7f)) return false;
    const seq = data.readUInt16BE(2);
    if (dropped.has(seq) || ++videoSeen % 20 !== 0) return false;
    dropped.add(seq);
    return true;
  });
  try {
    const id = client.playStream({ name: "vod://sample.mp4", sdp: viewer.offerSdp });
    const sdpFrame = await client.waitFor((f) => f.message === "setRemoteSDP", { timeoutMs: 20_000, label: "setRemoteSDP" });
    const answer = String((sdpFrame.data as unknown[])[1]);
    videoPts = videoPayloadTypes(answer);
    await viewer.setAnswer(answer);
    await client.waitForStatus(id, "STOPPED", { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(srtpProfileOf(viewer), CHROMIUM_PROFILE, "the SRTP profile Chromium gets");
    assert.ok(dropped.size >= 20, `${dropped.size} packets dropped`);
    // Frames, not marker packets: werift asks again for a packet whose retransmission is still on its way, and the
    // second copy of a frame's last packet is the same frame.
    assert.equal(new Set(viewer.received.videoFrameTimestamps).size, frames, `every frame arrives despite ${dropped.size} lost packets`);
  } finally {
    await viewer.close();
    await client.close();
  }
});

for (const setup of ["active", "passive"] as const) {
  test(`an offer that says a=setup:${setup} gets the other DTLS role and plays`, async () => {
    const client = await SdkClient.connect(edge.wsUrl);
    const viewer = await createWeriftViewer();
    try {
      // A client that chose its role: werift's own answer to setup:active would say active too.
      const id = client.playStream({ name: "vod://sample.mp4", sdp: viewer.offerSdp.replace(/^a=setup:actpass$/gm, `a=setup:${setup}`) });
      const sdpFrame = await client.waitFor((f) => f.message === "setRemoteSDP", { timeoutMs: 20_000, label: "setRemoteSDP" });
      const answer = String((sdpFrame.data as unknown[])[1]);
      assert.match(answer, new RegExp(`^a=setup:${setup === "active" ? "passive" : "active"}$`, "m"));
      await viewer.setAnswer(answer);
      await client.waitForStatus(id, "PLAYING", { timeoutMs: 20_000 });
      await until("30 video frames", () => viewer.received.videoFrameTimestamps.length >= 30, 20_000);
      // The viewer as the DTLS server picks from its own list, AES-CM first; as the client it gets the sidecar's pick.
      assert.equal(srtpProfileOf(viewer), setup === "passive" ? ProtectionProfileAes128CmHmacSha1_80 : ProtectionProfileAeadAes128Gcm);
    } finally {
      await viewer.close();
      await client.close();
    }
  });
}

test("bad names and bad files get FAILED with a clear info, and the sidecar keeps serving", async () => {
  const client = await SdkClient.connect(edge.wsUrl);
  const viewer = await createWeriftViewer();
  try {
    const cases: [string, string][] = [
      ["vod://nothing.mp4", "File not found"],
      ["vod://../etc/passwd", "Bad URI"],
      ["vod://escape.mp4", "Restricted access"],
      ["vod://garbage.mp4", "File has wrong format"],
      ["vod://truncated.mp4", "File has wrong format"],
    ];
    for (const [name, info] of cases) {
      const id = client.playStream({ name, sdp: viewer.offerSdp });
      const ev = await client.waitForStatus(id, "FAILED", { timeoutMs: 20_000 });
      assert.equal(ev.info, info, name);
    }
    const garbage = client.playStream({ name: "vod://sample.mp4", sdp: "this is not sdp" });
    assert.equal((await client.waitForStatus(garbage, "FAILED", { timeoutMs: 20_000 })).info, "Invalid SDP offer");
    // After all that, a good playback still gets an answer.
    const ok = client.playStream({ name: "vod://sample.mp4", sdp: viewer.offerSdp });
    await client.waitFor((f) => f.message === "setRemoteSDP" && (f.data as unknown[])[0] === ok, { timeoutMs: 20_000 });
    client.stopStream(ok);
    assert.equal((await client.waitForStatus(ok, "STOPPED")).info, "Stopped by user");
  } finally {
    await viewer.close();
    await client.close();
  }
});
