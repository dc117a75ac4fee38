// The shared source of a vod-live broadcast spreads its viewers over scheduler ticks: each gets every packet, in
// order, a fixed number of ticks late; the broadcast ends for everyone only once the last slot had the last packet.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { MediaPacket, PacketSource } from "../../sidecar/src/vod/packet-source.ts";
import { LiveSource, MAX_GOP_PACKETS, type BroadcastSink, type CatchingUp } from "../../sidecar/src/vod/live-source.ts";
import { mediaCounters } from "../../sidecar/src/runtime/media-counters.ts";
import type { Paced, Scheduler } from "../../sidecar/src/vod/scheduler.ts";

/** One video packet every 10 ms of media, `count` of them. */
function fakeSource(count: number): PacketSource {
  let next = 0;
  return {
    take(untilMs: number, out: MediaPacket[]): number {
      let n = 0;
      while (next < count && next * 10 <= untilMs) {
        out.push({ kind: "video", timestamp: next * 900, marker: true, payload: new Uint8Array([next & 0xff]), dueMs: next * 10, keyframeStart: next % 10 === 0 });
        next++;
        n++;
      }
      return n;
    },
    get ended() {
      return next >= count;
    },
    ready: () => Promise.resolve(),
    skipVideoToNextKeyframe() {},
    onError: undefined,
    close: () => Promise.resolve(),
  };
}

/** A scheduler the test ticks by hand; `members` is what is registered with it. */
function manualScheduler(): Scheduler & { readonly registered: Set<Paced> } {
  const registered = new Set<Paced>();
  return { registered, add: (m: Paced) => void registered.add(m), remove: (m: Paced) => void registered.delete(m) } as unknown as Scheduler & {
    readonly registered: Set<Paced>;
  };
}

class RecordingSink implements BroadcastSink {
  /** [tick, packet index] per delivered packet. */
  readonly got: [number, number][] = [];
  endedAt: number | undefined;
  constructor(private readonly clock: { tick: number }) {}
  deliver(packets: readonly MediaPacket[]): void {
    for (const p of packets) this.got.push([this.clock.tick, p.timestamp / 900]);
  }
  sourceEnded(): void {
    this.endedAt = this.clock.tick;
  }
}

test("spread over 3 slots 10 ms apart, viewer k of the broadcast gets every packet (k mod 3) ticks after it was due, and all end after the last slot", () => {
  const scheduler = manualScheduler();
  // Started now: position = (tick index) * 10 ms when pumped at now + 10 ms steps.
  const origin = performance.now();
  const live = new LiveSource(fakeSource(20), Date.now(), scheduler, { slots: 3, perSlot: 1, stepMs: 10 });
  const clock = { tick: 0 };
  const sinks = Array.from({ length: 6 }, () => new RecordingSink(clock));
  for (const s of sinks) live.add(s);
  assert.equal(live.sinkCount, 6);
  for (clock.tick = 0; clock.tick < 40 && !live.ended; clock.tick++) live.pump(origin + clock.tick * 10 + 1);

  sinks.forEach((s, k) => {
    const lag = k % 3;
    assert.deepEqual(
      s.got.map(([, i]) => i),
      Array.from({ length: 20 }, (_, i) => i),
      `viewer ${k} gets every packet once, in order`,
    );
    for (const [tick, i] of s.got) assert.equal(tick - i, lag, `viewer ${k}: packet ${i} ${lag} ticks after it was due`);
    // The last packet (19) was due at tick 19; the last slot has it at tick 21, and only then does it end for all.
    assert.equal(s.endedAt, 21, `viewer ${k} hears the end once every slot had the last packet`);
  });
  assert.equal(scheduler.registered.size, 0, "an ended broadcast leaves the scheduler");
});

test("a viewer removed from its slot gets nothing more; one joining later takes the first slot with room", () => {
  const scheduler = manualScheduler();
  const origin = performance.now();
  const live = new LiveSource(fakeSource(100), Date.now(), scheduler, { slots: 4, perSlot: 1, stepMs: 10 });
  const clock = { tick: 0 };
  const a = new RecordingSink(clock);
  const b = new RecordingSink(clock);
  live.add(a);
  live.add(b);
  for (; clock.tick < 10; clock.tick++) live.pump(origin + clock.tick * 10 + 1);
  live.remove(a);
  const gotA = a.got.length;
  const c = new RecordingSink(clock);
  live.add(c);
  for (; clock.tick < 20; clock.tick++) live.pump(origin + clock.tick * 10 + 1);
  assert.equal(a.got.length, gotA, "a removed viewer gets no more packets");
  assert.equal(live.sinkCount, 2);
  // c took slot 0, which a left: its packets arrive as they are due, from where the broadcast was.
  assert.ok(c.got.length > 0);
  for (const [tick, i] of c.got) assert.equal(tick - i, 0);
  for (const [tick, i] of b.got) assert.equal(tick - i, 1);
});

test("viewers fill a slot (perSlot) before the next is used, so a small audience is in step; when all are full the emptiest takes more", () => {
  const scheduler = manualScheduler();
  const origin = performance.now();
  const live = new LiveSource(fakeSource(100), Date.now(), scheduler, { slots: 3, perSlot: 2, stepMs: 10 });
  const clock = { tick: 0 };
  const sinks = Array.from({ length: 8 }, () => new RecordingSink(clock));
  for (const s of sinks) live.add(s);
  for (; clock.tick < 20; clock.tick++) live.pump(origin + clock.tick * 10 + 1);
  const lags = sinks.map((s) => {
    const [tick, i] = s.got[0]!;
    return tick - i;
  });
  // Slots 0, 0, 1, 1, 2, 2 fill; then the emptiest (the first of equals) takes the 7th and 8th: 0, 1.
  assert.deepEqual(lags, [0, 0, 1, 1, 2, 2, 0, 1]);
});

/** A joiner catching up: logs its calls next to every delivery, and is done after `ticks` calls (or throws). */
class CatchingSink extends RecordingSink implements CatchingUp {
  readonly positions: number[] = [];
  constructor(
    clock: { tick: number },
    private readonly log: string[],
    private readonly ticks: number,
    private readonly throws = false,
  ) {
    super(clock);
  }
  catchUp(positionMs: number): boolean {
    this.log.push("catchUp");
    this.positions.push(positionMs);
    if (this.throws) throw new Error("broken joiner");
    return this.positions.length >= this.ticks;
  }
}

test("catch-ups run after every slot had the tick's batch: the other viewers get the same packets at the same ticks, in the same order, as without them", () => {
  const run = (withJoiners: boolean) => {
    const scheduler = manualScheduler();
    const origin = performance.now();
    const live = new LiveSource(fakeSource(60), Date.now(), scheduler, { slots: 2, perSlot: 1, stepMs: 10 });
    const clock = { tick: 0 };
    const log: string[] = [];
    const logged = (s: RecordingSink) => {
      const deliver = s.deliver.bind(s);
      s.deliver = (packets) => {
        log.push("deliver");
        deliver(packets);
      };
      return s;
    };
    const others = [logged(new RecordingSink(clock)), logged(new RecordingSink(clock)), logged(new RecordingSink(clock))];
    for (const s of others) live.add(s);
    const joiners = withJoiners ? [new CatchingSink(clock, log, 5), new CatchingSink(clock, log, 1000, true), new CatchingSink(clock, log, 8)] : [];
    const ticksLog: string[][] = [];
    for (; clock.tick < 50 && !live.ended; clock.tick++) {
      if (clock.tick === 10) {
        for (const j of joiners) {
          live.add(j);
          live.addCatchUp(j);
        }
      }
      log.length = 0;
      live.pump(origin + clock.tick * 10 + 1);
      ticksLog.push([...log]);
    }
    return { others, joiners, ticksLog };
  };
  const alone = run(false);
  const joined = run(true);
  joined.others.forEach((s, k) => assert.deepEqual(s.got, alone.others[k]!.got, `viewer ${k}: same packets, same ticks`));
  for (const [t, calls] of joined.ticksLog.entries()) {
    const lastDeliver = calls.lastIndexOf("deliver");
    const firstCatchUp = calls.indexOf("catchUp");
    assert.ok(firstCatchUp === -1 || lastDeliver < firstCatchUp, `tick ${t}: ${calls.join(",")}`);
  }
  const [five, broken, eight] = joined.joiners;
  assert.equal(five!.positions.length, 5, "called each tick until it says it is done");
  assert.equal(eight!.positions.length, 8);
  assert.equal(broken!.positions.length, 1, "a catch-up that throws is dropped, the others go on");
  // Each is given its own slot's position: slot j is j x 10 ms behind.
  const slotLag = five!.positions[0]! - eight!.positions[0]!;
  assert.ok(Math.abs(Math.abs(slotLag) - 10) < 1e-6 || Math.abs(slotLag) < 1e-6, `slot lag ${slotLag}`);
});

test("an operator's seek moves the shared source, drops batches not sent yet, tells every viewer, and shifts the timestamps so that they carry on; an older seek is ignored", () => {
  const scheduler = manualScheduler();
  const origin = performance.now();
  const startedAt = Date.now();
  const seeks: [number, string][] = [];
  const source = { ...fakeSource(1000), videoStartMs: 0, seek: (ms: number, side: string) => void seeks.push([ms, side]) };
  const live = new LiveSource(source, startedAt, scheduler, { slots: 3, perSlot: 1, stepMs: 10 });
  const clock = { tick: 0 };
  const moved: number[] = [];
  const sinks = [0, 1, 2].map((k) => Object.assign(new RecordingSink(clock), { moved: () => void moved.push(k) }));
  for (const s of sinks) live.add(s);
  for (; clock.tick < 10; clock.tick++) live.pump(origin + clock.tick * 10 + 1);
  const before = sinks.map((s) => s.got.length);

  // At 0.1 s of output time the broadcast goes to 5 s: media is 4.9 s ahead of output from then on.
  assert.equal(live.seekTo({ at: startedAt + 100, positionMs: 5000 }), true);
  assert.deepEqual(moved, [0, 1, 2]);
  assert.equal(seeks.length, 1);
  assert.equal(seeks[0]![1], "after");
  assert.ok(Math.abs(seeks[0]![0] - (5000 + (Date.now() - startedAt - 100))) < 50, `the shared source goes to the position now: ${seeks[0]![0]}`);
  assert.equal(live.shift90, 4900 * 90);
  assert.equal(live.shift48, 4900 * 48);
  assert.ok(Math.abs(live.positionOf(sinks[0]!) - (5000 + (performance.now() - origin - 100))) < 20);
  // Slots 1 and 2 had batches of the old position still to come: none of them reach their viewers.
  live.pump(origin + clock.tick * 10 + 1);
  clock.tick++;
  const oldAfter = sinks.map((s, k) => s.got.slice(before[k]).filter(([, i]) => i < 10));
  assert.deepEqual(oldAfter, [[], [], []]);
  assert.equal(live.seekTo({ at: startedAt + 50, positionMs: 1000 }), false, "an older seek");
  assert.equal(live.seekTo({ at: startedAt + 100, positionMs: 5000 }), false, "the same seek again");
  assert.equal(moved.length, 3);
});

/** Everything `replay` gives up to `untilMs`, as packet indexes. */
function drain(replay: { take(untilMs: number, out: MediaPacket[]): number }, untilMs: number): number[] {
  const out: MediaPacket[] = [];
  replay.take(untilMs, out);
  return out.map((p) => p.timestamp / 900);
}

test("a joiner catches up from the broadcast's own packets: the GOP from the last keyframe at or before its position, going on into the next GOP, the same packet objects the viewers got", () => {
  const scheduler = manualScheduler();
  const origin = performance.now();
  // A keyframe every 10 packets (100 ms); 2 slots 10 ms apart.
  const live = new LiveSource(fakeSource(100), Date.now(), scheduler, { slots: 2, perSlot: 1, stepMs: 10 });
  const seen = new Map<number, MediaPacket>();
  const sink: BroadcastSink = { deliver: (ps) => ps.forEach((p) => seen.set(p.timestamp / 900, p)), sourceEnded() {} };
  live.add(sink);
  for (let tick = 0; tick <= 25; tick++) live.pump(origin + tick * 10 + 1);
  // Taken so far: packets 0..25; kept: the GOP of keyframe 20 and the one of keyframe 10 before it.
  const replaysBefore = mediaCounters.liveCatchUpsFromBroadcast;
  const replay = live.replayFrom(253)!;
  assert.ok(replay, "a position after a kept keyframe is served from the broadcast");
  assert.equal(mediaCounters.liveCatchUpsFromBroadcast, replaysBefore + 1);
  assert.equal(replay.videoStartMs, 200);
  assert.deepEqual(drain(replay, 230), [20, 21, 22, 23]);
  assert.equal(replay.ended, false);
  // A slot still behind keyframe 20 (position 195 ms) starts at keyframe 10 and runs on into the GOP after it.
  const behind = live.replayFrom(195)!;
  assert.equal(behind.videoStartMs, 100);
  const got: MediaPacket[] = [];
  behind.take(250, got);
  assert.deepEqual(got.map((p) => p.timestamp / 900), Array.from({ length: 16 }, (_, i) => 10 + i));
  for (const p of got) assert.equal(p, seen.get(p.timestamp / 900), "the broadcast's packet objects, not copies");
  // The broadcast goes on: the replay follows it into the GOP of keyframe 30.
  for (let tick = 26; tick <= 34; tick++) live.pump(origin + tick * 10 + 1);
  assert.deepEqual(drain(replay, 340), [24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34]);
  assert.equal(live.replayFrom(95), undefined, "no kept GOP starts before 100 ms any more: the file is read");
  void replay.close();
  assert.deepEqual(drain(replay, 1000), [], "a closed replay gives nothing");
});

test("after an operator's seek no GOP of the old moment is replayed; a GOP longer than MAX_GOP_PACKETS is not kept, and a replay of it ends where keeping stopped", () => {
  const scheduler = manualScheduler();
  const origin = performance.now();
  const startedAt = Date.now();
  const source = { ...fakeSource(1000), videoStartMs: 0, seek() {} };
  const live = new LiveSource(source, startedAt, scheduler);
  for (let tick = 0; tick <= 15; tick++) live.pump(origin + tick * 10 + 1);
  assert.ok(live.replayFrom(150));
  live.seekTo({ at: startedAt + 150, positionMs: 5000 });
  assert.equal(live.replayFrom(live.positionOf({ deliver() {}, sourceEnded() {} })), undefined);

  // One keyframe, then no other: past MAX_GOP_PACKETS the GOP is dropped from what joiners get.
  let next = 0;
  const endless: PacketSource = {
    take(untilMs: number, out: MediaPacket[]): number {
      let n = 0;
      while (next <= untilMs) {
        out.push({ kind: "video", timestamp: next * 90, marker: true, payload: new Uint8Array(1), dueMs: next, keyframeStart: next === 0 });
        next++;
        n++;
      }
      return n;
    },
    ended: false,
    ready: () => Promise.resolve(),
    skipVideoToNextKeyframe() {},
    onError: undefined,
    close: () => Promise.resolve(),
  };
  const long = new LiveSource(endless, Date.now(), manualScheduler());
  const o = performance.now();
  long.pump(o + 100);
  const early = long.replayFrom(50)!;
  assert.ok(early);
  long.pump(o + MAX_GOP_PACKETS + 100);
  assert.equal(long.replayFrom(MAX_GOP_PACKETS + 50), undefined, "a capped GOP is not offered");
  const got: MediaPacket[] = [];
  early.take(Infinity, got);
  assert.equal(got.length, MAX_GOP_PACKETS, "the replay has what was kept");
  assert.equal(early.ended, true, "and then ends (the viewer hands over to the shared packets)");
});
