// The catch-up's clock: after a seek the media runs fast from the keyframe before the position up to it, then in
// real time; every frame's output time (what its RTP timestamp follows) keeps presentation order, B-frames included.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PlayClock } from "../../sidecar/src/vod/play-clock.ts";

test("identity until moved: media time is output time and packets keep their own times", () => {
  const c = new PlayClock();
  assert.equal(c.isIdentity, true);
  assert.equal(c.mediaAt(1234.5), 1234.5);
  assert.equal(c.outputOf(1000, 66), 1066);
});

test("a catch-up from the keyframe at 10 s to 14.3 s at 30x reaches the position 143.3 ms later, then runs in real time", () => {
  const c = new PlayClock();
  c.catchUp(10_000, 14_300, 5_000, 30);
  assert.equal(c.isIdentity, false);
  assert.equal(c.mediaAt(5_000), 10_000);
  assert.ok(c.mediaAt(4_990) < 10_000, "nothing of the segment is due before it starts");
  assert.ok(Math.abs(c.mediaAt(5_000 + 4_300 / 30) - 14_300) < 1e-6);
  assert.ok(Math.abs(c.mediaAt(5_000 + 4_300 / 30 + 1000) - 15_300) < 1e-6);
  // Output times: squeezed 30x before the knot, one to one after it, continuous at it.
  assert.ok(Math.abs(c.outputOf(10_000, 0) - 5_000) < 1e-9);
  assert.ok(Math.abs(c.outputOf(11_000, 0) - (5_000 + 1000 / 30)) < 1e-9);
  assert.ok(Math.abs(c.outputOf(14_300, 0) - (5_000 + 4_300 / 30)) < 1e-9);
  assert.ok(Math.abs(c.outputOf(14_333, 0) - (5_000 + 4_300 / 30 + 33)) < 1e-9);
  // Every packet is due (in output time) when its media time comes: mediaAt and outputOf are inverses.
  for (const m of [10_000, 12_345, 14_299, 14_300, 20_000]) assert.ok(Math.abs(c.mediaAt(c.outputOf(m, 0)) - m) < 1e-6, `at ${m}`);
});

test("B-frames keep presentation order across the knot: output times sort as presentation times do", () => {
  const c = new PlayClock();
  c.catchUp(0, 1000, 0, 30);
  // Decode order I0 P3 B1 B2 P6 B4 B5 ... at 30 fps around the knot at 1 s: (dts, pts) in ms.
  const frames: [number, number][] = [];
  for (let g = 0; g < 20; g++) {
    const base = g * 100;
    frames.push([base, base + 100], [base + 33.3, base + 33.3], [base + 66.7, base + 66.7]);
  }
  const out = frames.map(([dts, pts]) => ({ pts, out: c.outputOf(dts, pts - dts) }));
  const byPts = [...out].sort((a, b) => a.pts - b.pts).map((f) => f.out);
  for (let i = 1; i < byPts.length; i++) assert.ok(byPts[i]! > byPts[i - 1]!, `frame ${i} in presentation order`);
});

test("a resume goes on from the held position at the output time given, in real time", () => {
  const c = new PlayClock();
  c.identity();
  c.resumeAt(4_000, 9_000);
  assert.equal(c.mediaAt(9_000), 4_000);
  assert.equal(c.mediaAt(9_500), 4_500);
  assert.equal(c.outputOf(4_100, 20), 9_120);
  assert.throws(() => c.catchUp(0, 10, 0, 0.5), RangeError);
});
