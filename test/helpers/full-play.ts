// Plays a file to the end through the edge with a werift viewer, as the Web SDK would, and checks what arrived
// against the file itself: every video frame with the file's presentation times, Opus for the file's length.
import assert from "node:assert/strict";
import path from "node:path";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { SdkClient, type StatusEvent } from "./sdk-client.ts";
import { createWeriftViewer, playOnSidecar, type Received } from "./werift-viewer.ts";

/** Plays `name` until STOPPED or FAILED; resolves with what the viewer got and the last status. */
export async function playToEnd(wsUrl: string, name: string, opts: { timeoutMs?: number; onPlaying?: () => Promise<void> } = {}): Promise<{ received: Received; last: StatusEvent }> {
  const client = await SdkClient.connect(wsUrl);
  const viewer = await createWeriftViewer();
  try {
    const id = client.playStream({ name, sdp: viewer.offerSdp });
    const first = await client.waitFor(
      (f) => f.message === "setRemoteSDP" || (f.message === "notifyStreamStatusEvent" && (f.data[0] as StatusEvent).status === "FAILED"),
      { timeoutMs: 20_000, label: `answer for ${name}` },
    );
    if (first.message === "notifyStreamStatusEvent") return { received: viewer.received, last: first.data[0] as StatusEvent };
    await viewer.setAnswer(String(first.data[1]));
    await client.waitForStatus(id, "PLAYING", { timeoutMs: 20_000 });
    await opts.onPlaying?.();
    const end = await client.waitFor(
      (f) => f.message === "notifyStreamStatusEvent" && (f.data[0] as StatusEvent).mediaSessionId === id && ["STOPPED", "FAILED"].includes((f.data[0] as StatusEvent).status),
      { timeoutMs: opts.timeoutMs ?? 40_000, label: `end of ${name}` },
    );
    // The last packets may still be on their way.
    await new Promise((r) => setTimeout(r, 300));
    return { received: viewer.received, last: end.data[0] as StatusEvent };
  } finally {
    await viewer.close();
    await client.close();
  }
}

/** Asserts that `received` is all of `file` (a local MP4): every frame at its presentation time, audio for its length. */
export async function assertWholeFile(received: Received, file: string): Promise<void> {
  const f = await new LocalDiskAccess(path.dirname(file)).open(path.basename(file));
  const index = await openMp4(f);
  await f.close();
  const video = index.video!;
  const s = video.samples;
  const expected = Array.from({ length: s.count }, (_, i) => Math.round(((s.dts[i]! + s.ctsOffset[i]! - s.dts[0]! - s.ctsOffset[0]!) * 90000) / video.timescale));
  const got = received.videoFrameTimestamps;
  assert.equal(got.length, s.count, "every video frame arrives");
  const t0 = got[0]!;
  assert.deepEqual(
    got.map((t) => (t - t0) >>> 0),
    expected,
    "RTP timestamps follow the file's presentation times",
  );
  const audio = received.audioTimestamps;
  assert.ok(audio.length > 0, "audio arrives");
  const audioSec = ((audio[audio.length - 1]! - audio[0]! + 960) >>> 0) / 48000;
  assert.ok(Math.abs(audioSec - index.durationSec) <= 0.2, `audio covers ${audioSec} s of ${index.durationSec} s`);
}

/**
 * Plays `name` straight on one sidecar (no edge: the test picks the host) until `frames` video frames arrived, or
 * the file's length plus a margin passed; what arrived.
 */
export async function playOnHost(sidecar: { url: string; secret: string }, name: string, frames: number, seconds: number): Promise<Received> {
  const viewer = await createWeriftViewer();
  try {
    await playOnSidecar(sidecar, viewer.pc, name);
    const deadline = Date.now() + (seconds + 20) * 1000;
    while (viewer.received.videoFrameTimestamps.length < frames && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    // The last audio packets may still be on their way.
    await new Promise((r) => setTimeout(r, 500));
    return viewer.received;
  } finally {
    await viewer.close();
  }
}
