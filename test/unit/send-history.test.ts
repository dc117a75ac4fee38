// A track's NACK history: what it answers for, across the sequence-number wrap, and that going deep for a burst and
// back to shallow after it keeps the newest packets and drops only what no longer fits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SendHistory } from "../../sidecar/src/streams/send-history.ts";

const payload = (seq: number) => Uint8Array.of(seq & 0xff, seq >> 8);

function sendRun(h: SendHistory, from: number, count: number, nowMs: number): number {
  let seq = from;
  for (let i = 0; i < count; i++, seq = (seq + 1) & 0xffff) h.keep(seq, seq * 3000, i % 4 === 3, payload(seq), nowMs);
  return seq;
}

const kept = (h: SendHistory, seqs: number[]) => seqs.filter((s) => h.payloadOf(s) !== undefined);

test("a shallow history answers for its last packets, across the wrap, with their timestamp and marker", () => {
  const h = new SendHistory(8, 32, 1000);
  sendRun(h, 65530, 12, 0); // 65530 .. 65535, 0 .. 5
  assert.deepEqual(kept(h, [65530, 65531, 65532, 65533, 65534, 65535, 0, 5, 6]), [65534, 65535, 0, 5]);
  assert.deepEqual(h.payloadOf(2), payload(2));
  assert.equal(h.timestampOf(2), 6000);
  assert.equal(h.markerOf(65534), false);
  assert.equal(h.markerOf(1), true, "the 8th packet of the run (i = 7) had the marker");
});

test("a burst keeps every packet it sends until burstEnded + hold, then the newest that fit stay", () => {
  const h = new SendHistory(8, 32, 1000);
  sendRun(h, 100, 8, 0);
  h.burst();
  assert.equal(h.size, 32);
  assert.deepEqual(kept(h, [100, 107]), [100, 107], "what was kept before the burst stays");
  const next = sendRun(h, 108, 24, 10); // 108 .. 131
  assert.deepEqual(kept(h, [99, 100, 131]), [100, 131]);
  h.burstEnded(20);
  sendRun(h, next, 4, 500); // 132 .. 135, still inside the hold
  assert.equal(h.size, 32);
  assert.deepEqual(kept(h, [104, 135]), [104, 135]);
  sendRun(h, 136, 1, 1020); // past the hold: shallow again, from this packet on
  assert.equal(h.size, 8);
  assert.deepEqual(kept(h, [128, 129, 130, 136]), [129, 130, 136]);
  assert.equal(h.timestampOf(130), 390_000);
  assert.deepEqual(h.payloadOf(129), payload(129));
});

test("a new burst while the hold runs stays deep; burstEnded without a burst changes nothing", () => {
  const h = new SendHistory(8, 32, 1000);
  h.burstEnded(0);
  sendRun(h, 0, 20, 5000);
  assert.equal(h.size, 8);
  h.burst();
  h.burstEnded(5000);
  h.burst();
  sendRun(h, 20, 30, 9000);
  assert.equal(h.size, 32, "the second burst cancelled the first one's hold");
});
