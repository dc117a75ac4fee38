import assert from "node:assert/strict";
import test from "node:test";
import { newSampleTable } from "../../sidecar/src/mp4/reader.ts";
import type { MediaPacket } from "../../sidecar/src/vod/packet-source.ts";
import { PacketStore } from "../../sidecar/src/vod/packet-store.ts";

const packets = (bytes: number): MediaPacket[] => [
  { kind: "video", timestamp: 0, marker: true, payload: new Uint8Array(bytes), dueMs: 0, keyframeStart: false },
];

test("the packet store drops the least recently used samples once past its budget, and a hit counts as a use", () => {
  const t = newSampleTable(10);
  const store = new PacketStore(3000);
  for (let i = 0; i < 3; i++) store.put(t, i, 0, packets(1000), 1000);
  assert.equal(store.bytes, 3000);
  assert.ok(store.get(t, 0, 0), "sample 0 is held");
  store.put(t, 3, 0, packets(1000), 1000);
  assert.equal(store.size, 3);
  assert.equal(store.bytes, 3000, "never more than the budget");
  assert.equal(store.get(t, 1, 0), undefined, "sample 1, the least recently used, went first");
  assert.ok(store.get(t, 0, 0), "sample 0 stays: it was used after sample 1 and 2 were stored");
  assert.ok(store.get(t, 2, 0) && store.get(t, 3, 0));
  assert.equal(store.hits, 4);
  assert.equal(store.misses, 1);
});

test("the packet store keys a sample by its table and the playback's time 0", () => {
  const a = newSampleTable(2);
  const b = newSampleTable(2);
  const store = new PacketStore(1 << 20);
  const p = packets(10);
  store.put(a, 0, 0, p, 10);
  assert.equal(store.get(a, 0, 0), p);
  assert.equal(store.get(b, 0, 0), undefined, "another file version's table");
  assert.equal(store.get(a, 0, 90), undefined, "another time 0 (other tracks played)");
  assert.equal(store.get(a, 1, 0), undefined);
  store.put(a, 0, 0, packets(20), 20);
  assert.equal(store.bytes, 20, "a sample stored again replaces its bytes");
});

test("a packet store without a budget, or a sample larger than it, holds nothing", () => {
  const t = newSampleTable(1);
  const none = new PacketStore(0);
  none.put(t, 0, 0, packets(10), 10);
  assert.equal(none.get(t, 0, 0), undefined);
  assert.equal(none.bytes, 0);
  const small = new PacketStore(100);
  small.put(t, 0, 0, packets(101), 101);
  assert.equal(small.size, 0);
});
