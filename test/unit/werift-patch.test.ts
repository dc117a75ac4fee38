// sidecar/patches/werift+0.24.4.patch, applied at npm ci: werift's events keep their methods on the prototype (no
// closures per instance) and behave as before. Fails if the patch was not applied.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Event, RTCPeerConnection } from "werift";

test("werift's Event has no per-instance methods, and subscribe, once, asPromise, complete and the bound triggers work as before", async () => {
  const e = new Event<[number]>();
  assert.deepEqual(Object.keys(e).sort(), ["ended", "event", "onended"], "only state on the instance");
  const got: string[] = [];
  const { unSubscribe } = e.subscribe((n) => got.push(`a${n}`));
  e.once((n) => got.push(`once${n}`));
  const next = e.asPromise();
  const { execute } = e.returnTrigger;
  execute(1);
  unSubscribe();
  e.execute(2);
  assert.deepEqual(await next, [1]);
  let queued = 0;
  e.queuingSubscribe(async (n) => void (queued += n));
  e.execute(5);
  await new Promise((r) => setImmediate(r));
  assert.equal(queued, 5, "an asynchronous subscriber still runs");
  let completed = false;
  e.subscribe(() => {}, () => void (completed = true));
  e.complete();
  e.execute(3);
  assert.deepEqual(got, ["a1", "once1"]);
  assert.equal(completed, true);
  assert.equal(e.ended, true);
});

test("a peer connection's events are the patched class", async () => {
  const pc = new RTCPeerConnection();
  assert.equal(Object.hasOwn(pc.onTrack, "execute"), false);
  assert.equal(Object.hasOwn(pc.onTrack, "subscribe"), false);
  await pc.close();
});
