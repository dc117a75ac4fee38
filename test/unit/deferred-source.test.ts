import { test } from "node:test";
import assert from "node:assert/strict";
import { Info } from "@edge-vod/shared";
import { MediaError } from "../../sidecar/src/files/file-access.ts";
import { deferredPacketSource } from "../../sidecar/src/vod/deferred-source.ts";
import type { MediaPacket, SeekableSource } from "../../sidecar/src/vod/packet-source.ts";

/** A source with one packet due at 0, recording what is done to it. */
function fakeSource() {
  const calls: string[] = [];
  let ended = false;
  const source: SeekableSource = {
    periodSec: 3,
    videoStartMs: 0,
    seek: (positionMs: number, side: string) => calls.push(`seek ${positionMs} ${side}`),
    get ended() {
      return ended;
    },
    onError: undefined,
    ready: async () => {
      calls.push("ready");
    },
    take(untilMs: number, out: MediaPacket[]) {
      if (ended || untilMs < 0) return 0;
      out.push({ kind: "video", timestamp: 0, marker: true, payload: new Uint8Array(1), dueMs: 0, keyframeStart: true });
      ended = true;
      return 1;
    },
    skipVideoToNextKeyframe: () => calls.push("skip"),
    close: async () => {
      calls.push("close");
    },
  };
  return { source, calls };
}

test("takes nothing until its source is there, then is that source (a PLI asked for meanwhile is passed on)", async () => {
  const { source, calls } = fakeSource();
  let resolve!: (s: SeekableSource) => void;
  const d = deferredPacketSource(new Promise((r) => (resolve = r)));
  const out: MediaPacket[] = [];
  assert.equal(d.take(1000, out), 0);
  assert.equal(d.ended, false);
  assert.equal(d.periodSec, 0);
  d.skipVideoToNextKeyframe();
  resolve(source);
  await d.ready();
  assert.deepEqual(calls, ["skip", "ready"]);
  assert.equal(d.periodSec, 3);
  assert.equal(d.take(1000, out), 1);
  assert.equal(d.ended, true);
  await d.close();
  assert.deepEqual(calls, ["skip", "ready", "close"]);
});

test("a source that cannot be made fails the playback with its info, delivered even to a late handler", async () => {
  const d = deferredPacketSource(Promise.reject(new MediaError(Info.PREPARE_FAILED, "ffmpeg exit code 1")));
  await d.ready();
  assert.equal(d.ended, true);
  const got = await new Promise<MediaError>((r) => (d.onError = r));
  assert.equal(got.info, Info.PREPARE_FAILED);
});

test("closed before its source arrives: the source is closed as soon as it does, and nothing is taken", async () => {
  const { source, calls } = fakeSource();
  let resolve!: (s: SeekableSource) => void;
  const d = deferredPacketSource(new Promise((r) => (resolve = r)));
  const closing = d.close();
  resolve(source);
  await closing;
  assert.deepEqual(calls, ["close"]);
  assert.equal(d.take(1000, []), 0);
  assert.equal(d.ended, true);
});
