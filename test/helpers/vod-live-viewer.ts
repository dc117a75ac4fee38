// A werift viewer that joins a stream through the edge with the SDK's frames: one session, one playStream, the
// answer applied, PLAYING awaited. Shared by the vod-live tests.
import { SdkClient } from "./sdk-client.ts";
import { createWeriftViewer } from "./werift-viewer.ts";

export type JoinedViewer = Awaited<ReturnType<typeof joinViewer>>;

export async function joinViewer(wsUrl: string, name: string, opts: { timeoutMs?: number } = {}) {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const client = await SdkClient.connect(wsUrl);
  const viewer = await createWeriftViewer();
  const id = client.playStream({ name, sdp: viewer.offerSdp });
  const frame = await client.waitFor(
    (f) => (f.message === "setRemoteSDP" && f.data[0] === id) || (f.message === "notifyStreamStatusEvent" && (f.data[0] as { status?: string }).status === "FAILED"),
    { timeoutMs, label: `answer for ${name}` },
  );
  if (frame.message !== "setRemoteSDP") {
    await Promise.allSettled([viewer.close(), client.close()]);
    throw new Error(`${name}: ${frame.raw}`);
  }
  await viewer.setAnswer(String(frame.data[1]));
  await client.waitForStatus(id, "PLAYING", { timeoutMs });
  return {
    id,
    client,
    viewer,
    received: viewer.received,
    async close() {
      await Promise.allSettled([viewer.close(), client.close()]);
    },
  };
}

/**
 * The wall-clock time at which media time 0 of what this viewer received was due, ms since epoch: the smallest
 * arrival minus media time over its video frames (the least delayed frame bounds the clock offset best).
 */
export function mediaZeroAt(received: { videoFrameTimestamps: number[]; videoFrameArrivals: number[] }, fromIndex = 0): number {
  let best = Infinity;
  for (let i = fromIndex; i < received.videoFrameTimestamps.length; i++) {
    best = Math.min(best, received.videoFrameArrivals[i]! - received.videoFrameTimestamps[i]! / 90);
  }
  return best;
}
