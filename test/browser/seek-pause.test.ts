// Seek, pause and resume of `vod://` in Debian Chromium with the unmodified Web SDK, through the real edge (wrangler
// dev) and sidecar: the page sends session.sendData({edgeVod: ...}) as the Player does, and what it shows is read off
// the picture of a file that draws its own frame number (test/helpers/clock-fixture.ts). After a seek the RTP
// timestamps follow the wall clock, so the picture is the only witness of which moment of the file is on screen.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { launchChromium, newWindowPage, openPlayer as openPlayerOn } from "../helpers/chromium.ts";
import { CLOCK_DURATION_MS, CLOCK_FRAME_MS, clockMark, clockReader, clockReads, makeClockFixture, readClockMs, type ClockRead } from "../helpers/clock-fixture.ts";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { startWrangler } from "../helpers/wrangler.ts";

const CLOCK_FILE = "clock.mp4";
const VOD = `vod://${CLOCK_FILE}`;
const VOD_LIVE = `vod-live://${CLOCK_FILE}`;
/** A read within two frames of a position is that position's picture (the encoder's rounding, a frame in flight). */
const EXACT_MS = 2 * CLOCK_FRAME_MS + 1;
/** How long a pause is watched for a frozen picture. */
const FROZEN_WATCH_MS = 3000;
/** Generous: the 2-core machine is shared with workerd, the sidecar, its ffmpeg prepares and Chromium. */
const WAIT_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

let mediaDir: string;
let sidecar: SidecarProcess;
let edge: Awaited<ReturnType<typeof startWrangler>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;

before(async () => {
  mediaDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-seek-pause-"));
  await makeClockFixture(mediaDir, CLOCK_FILE);
  const secret = randomBytes(24).toString("hex");
  // Every vod-live:// viewer gets each packet at once, so two viewers are compared without a spread between them.
  sidecar = await startSidecar({ secret, mediaDir, env: { VOD_LIVE_SPREAD_MS: "0" } });
  edge = await startWrangler({ sidecarUrl: sidecar.url, secret });
  browser = await launchChromium();
  browser.context.setDefaultTimeout(WAIT_MS);
  browser.context.setDefaultNavigationTimeout(WAIT_MS);
});

after(async () => {
  await browser?.close();
  await edge?.stop();
  await sidecar?.stop();
  if (mediaDir) await fs.rm(mediaDir, { recursive: true, force: true });
});

/** Every text #status has shown, in `window.__statuses`, so a test can say no STOPPED or FAILED came in between. */
const recordStatuses = `
  (() => {
    window.__statuses = [];
    document.addEventListener("DOMContentLoaded", () => {
      const el = document.getElementById("status");
      new MutationObserver(() => window.__statuses.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
    });
  })();
`;


const openPlayer = async (stream: string): Promise<Page> => openPlayerOn(await newWindowPage(browser.context), edge.url, stream, [clockReader, recordStatuses]);

/** What the page shows, for failure messages. */
async function describe(page: Page): Promise<string> {
  const text = (sel: string) => page.locator(sel).innerText().catch(() => "?");
  const state = await page.evaluate(() => JSON.stringify((window as unknown as { player?: { vod?: unknown } }).player?.vod ?? null)).catch(() => "?");
  const reads = await clockReads(page).catch(() => [] as ClockRead[]);
  const statuses = await page.evaluate(() => (window as unknown as { __statuses: string[] }).__statuses).catch(() => []);
  return (
    `status "${(await text("#status")).trim()}", info "${(await text("#info")).trim()}", player.vod ${state}, ` +
    `statuses ${JSON.stringify(statuses)}, last reads ${JSON.stringify(reads.slice(-8).map((r) => r.ms))}\n` +
    `sidecar output:\n${sidecar.output().slice(-3000)}`
  );
}

/** Waits for `fn` in the page; on timeout says what was awaited and what the page shows. Returns fn's (truthy) value. */
async function waitIn<A, R>(page: Page, label: string, fn: (arg: A) => R, arg: A, timeoutMs = WAIT_MS): Promise<Exclude<R, null | undefined | false>> {
  try {
    const handle = await page.waitForFunction(fn as (arg: unknown) => R, arg, { timeout: timeoutMs, polling: 50 });
    return (await handle.jsonValue()) as Exclude<R, null | undefined | false>;
  } catch (err) {
    throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${label}: ${await describe(page)}`, { cause: err });
  }
}

/** Presses Start and waits for PLAYING and a first readable picture. */
async function play(page: Page): Promise<void> {
  await page.click("#playBtn");
  await waitIn(page, "PLAYING or FAILED", () => /PLAYING|FAILED/.test(document.querySelector("#status")?.textContent ?? ""), undefined);
  assert.match(await page.locator("#status").innerText(), /PLAYING/, await describe(page));
  await waitIn(page, "a readable picture", () => (window as unknown as { __clockMs(): number | null }).__clockMs() !== null, undefined);
}

/** Waits for the picture to show at least `ms` of media time; returns the read. */
function waitForPicture(page: Page, label: string, ms: number): Promise<number> {
  return waitIn(
    page,
    label,
    (min) => {
      const now = (window as unknown as { __clockMs(): number | null }).__clockMs();
      return now !== null && now >= min ? now : null;
    },
    ms,
  );
}

/** The first presented frame since `mark` whose read passes `test` (min <= ms <= max), waited for. */
function waitForRead(page: Page, label: string, mark: number, min: number, max = Number.MAX_SAFE_INTEGER): Promise<ClockRead> {
  return waitIn(
    page,
    label,
    ({ mark, min, max }) =>
      (window as unknown as { __clockReads: ClockRead[] }).__clockReads.slice(mark).find((r) => r.ms !== null && r.ms >= min && r.ms <= max) ?? null,
    { mark, min, max },
  );
}

/** What session.sendData's promise gave the page: `resolved` (ACCEPTED) or not (FAILED), and the value as it is. */
interface Answer {
  resolved: boolean;
  value: { status?: string; info?: string; payload?: unknown } & Record<string, unknown>;
}

function sendData(page: Page, payload: unknown): Promise<Answer> {
  return page.evaluate(
    (payload) =>
      (window as unknown as { player: { session: { sendData(p: unknown): Promise<Answer["value"]> } } }).player.session
        .sendData(payload)
        .then(
          (value) => ({ resolved: true, value }),
          (value) => ({ resolved: false, value }),
        ),
    payload,
  );
}

/** One edgeVod op on the page's own stream (its mediaSessionId is stream.id()). */
function vodOp(page: Page, op: "seek" | "pause" | "resume" | "state", positionMs?: number): Promise<Answer> {
  return page.evaluate(
    ({ op, positionMs }) => {
      const player = (window as unknown as { player: { session: { sendData(p: unknown): Promise<Answer["value"]> }; stream: { id(): string } } }).player;
      const edgeVod: Record<string, unknown> = { op, mediaSessionId: player.stream.id() };
      if (positionMs !== undefined) edgeVod.positionMs = positionMs;
      return player.session.sendData({ edgeVod }).then(
        (value) => ({ resolved: true, value }),
        (value) => ({ resolved: false, value }),
      );
    },
    { op, positionMs },
  );
}

interface VodState {
  state: "playing" | "paused";
  positionMs: number;
  durationMs: number;
}

/** The VodState of an ACCEPTED answer, checked for its exact shape. */
function acceptedState(answer: Answer, what: string): VodState {
  assert.equal(answer.resolved, true, `${what}: the promise resolves (${JSON.stringify(answer.value)})`);
  assert.equal(answer.value.status, "ACCEPTED", `${what}: ${JSON.stringify(answer.value)}`);
  const payload = answer.value.payload as { edgeVod?: VodState } | undefined;
  assert.deepEqual(Object.keys(payload ?? {}), ["edgeVod"], `${what}: payload ${JSON.stringify(payload)}`);
  const state = payload!.edgeVod!;
  assert.deepEqual(Object.keys(state).sort(), ["durationMs", "positionMs", "state"], `${what}: ${JSON.stringify(state)}`);
  assert.ok(state.state === "playing" || state.state === "paused", `${what}: state ${state.state}`);
  for (const k of ["positionMs", "durationMs"] as const) assert.ok(Number.isInteger(state[k]) && state[k] >= 0, `${what}: ${k} ${state[k]}`);
  // The file's length as ffprobe has it (30 s of video, the AAC track a frame longer).
  assert.ok(Math.abs(state.durationMs - CLOCK_DURATION_MS) <= 100, `${what}: durationMs ${state.durationMs}`);
  assert.ok(state.positionMs <= state.durationMs, `${what}: position ${state.positionMs} within the file`);
  return state;
}

function assertFailed(answer: Answer, info: string, what: string): void {
  assert.equal(answer.resolved, false, `${what}: the promise rejects (${JSON.stringify(answer.value)})`);
  assert.equal(answer.value.status, "FAILED", `${what}: ${JSON.stringify(answer.value)}`);
  assert.equal(answer.value.info, info, `${what}: ${JSON.stringify(answer.value)}`);
}

/** Clean reads in order of presentation, each at least the one before (a picture never goes back). */
function assertNonDecreasing(reads: ClockRead[], what: string): void {
  const ms = reads.flatMap((r) => (r.ms === null ? [] : [r.ms]));
  for (let i = 1; i < ms.length; i++) assert.ok(ms[i]! >= ms[i - 1]!, `${what}: the picture went back from ${ms[i - 1]} to ${ms[i]} (${JSON.stringify(ms)})`);
}

/**
 * Watches a paused page for FROZEN_WATCH_MS after letting frames in flight land: returns the picture it froze on,
 * after checking it never changed, no frame was presented meanwhile, and the stream stayed PLAYING and paused.
 */
async function assertFrozen(page: Page, what: string): Promise<number> {
  // The jitter buffer still holds the last frames sent before the pause.
  await sleep(1500);
  const frozen = await readClockMs(page);
  assert.ok(frozen !== null, `${what}: a readable picture while paused: ${await describe(page)}`);
  const mark = await clockMark(page);
  const seen = new Set<number | null>();
  for (const until = Date.now() + FROZEN_WATCH_MS; Date.now() < until; ) {
    seen.add(await readClockMs(page));
    await sleep(200);
  }
  assert.deepEqual([...seen], [frozen], `${what}: the picture stays at ${frozen} ms while paused`);
  const presented = await clockReads(page, mark);
  assert.ok(presented.every((r) => r.ms === frozen), `${what}: frames presented while paused: ${JSON.stringify(presented.map((r) => r.ms))}`);
  assert.match(await page.locator("#status").innerText(), /PLAYING/, `${what}: a paused stream stays PLAYING`);
  const statuses = await page.evaluate(() => (window as unknown as { __statuses: string[] }).__statuses);
  assert.ok(!statuses.some((s) => /STOPPED|FAILED/.test(s)), `${what}: no STOPPED or FAILED: ${JSON.stringify(statuses)}`);
  const state = await page.evaluate(() => (window as unknown as { player: { vod: VodState | null } }).player.vod);
  assert.equal(state?.state, "paused", `${what}: the page's last state report says paused (${JSON.stringify(state)})`);
  return frozen;
}

/**
 * After a resume (or a seek) from `from` ms: the first new picture comes right after `from`, not later by how long the
 * page waited, and the picture then runs on past from + 2 s without going back.
 */
async function assertRunsOnFrom(page: Page, mark: number, from: number, what: string): Promise<void> {
  const first = await waitForRead(page, `${what}: a new picture after ${from} ms`, mark, from + 1);
  assert.ok(first.ms! <= from + 1000, `${what}: the first new picture is ${first.ms} ms, right after ${from} ms (not jumped ahead)`);
  await waitForPicture(page, `${what}: the picture running on past ${from + 2000} ms`, from + 2000);
  assertNonDecreasing(await clockReads(page, mark), what);
}

test("the clock file's picture says the media time: plain vod:// playback reads 0 s onwards, at about real time", async (t) => {
  const page = await openPlayer(VOD);
  try {
    await play(page);
    const first = await waitForRead(page, "a first picture", 0, 0);
    assert.ok(first.ms! <= 1000, `playback starts at the file's start: first picture ${first.ms} ms`);
    const a = await waitForPicture(page, "the picture at 2 s", 2000);
    const aAt = Date.now();
    await sleep(3000);
    const b = (await readClockMs(page))!;
    const wall = Date.now() - aAt;
    t.diagnostic(`picture ${a} ms then ${b} ms, ${wall} ms of wall clock apart`);
    // Only what tells the reading from nonsense: frames counted at a wrong bit, or a frozen or racing picture.
    assert.ok(b - a > wall * 0.5 && b - a < wall * 1.5, `readings advance at about real time: ${b - a} ms of media in ${wall} ms`);
    const reads = await clockReads(page);
    assert.ok(reads.length > 60, `frames presented: ${reads.length}`);
    // Chromium's first presentation of a new track sometimes draws as plain black into a canvas (seen in plain
    // playback, before any seek): from the second on, every frame must read.
    const unclean = reads.flatMap((r, i) => (r.ms === null && i > 0 ? [`#${i} of ${reads.length} (between ${reads[i - 1]?.ms} and ${reads[i + 1]?.ms})`] : []));
    assert.deepEqual(unclean, [], "every presented frame reads clean");
    assertNonDecreasing(reads, "plain playback");
  } finally {
    await page.close();
  }
});

test("a seek to 14.3 s, between keyframes, shows the picture of 14.3 s and plays on from there", async (t) => {
  const page = await openPlayer(VOD);
  try {
    await play(page);
    await waitForPicture(page, "the picture at 2 s", 2000);
    const mark = await clockMark(page);
    const target = 14_300;
    const state = acceptedState(await vodOp(page, "seek", target), "seek");
    assert.equal(state.state, "playing");
    assert.ok(Math.abs(state.positionMs - target) <= EXACT_MS, `the answer's position ${state.positionMs} is the seek's`);
    // The old playback never got near 9 s: anything from there on is the seek's picture.
    await waitForRead(page, "the seek's first picture", mark, 9000);
    const reached = await waitForRead(page, "the picture at 14.3 s", mark, target - EXACT_MS, target + EXACT_MS).catch(() => undefined);
    await waitForPicture(page, "the picture running on past 17.3 s", target + 3000);
    const after = (await clockReads(page, mark)).filter((r) => r.ms !== null && r.ms >= 9000);
    const start = after.findIndex((r) => Math.abs(r.ms! - target) <= EXACT_MS);
    // What Chromium presents of the burst from the keyframe at 10 s on its way to the target (frames it shows
    // rather than only decodes): a fast-forward flash before the exact picture.
    const flash = after.slice(0, Math.max(0, start));
    t.diagnostic(
      `first pictures after the seek: ${JSON.stringify(after.slice(0, start + 3).map((r) => r.ms))}; ` +
        `${flash.length} of them before the target, over ${flash.length ? after[start]!.at - flash[0]!.at : 0} ms`,
    );
    assert.ok(reached, `a picture within two frames of ${target} ms is shown (first ones: ${JSON.stringify(after.slice(0, 10).map((r) => r.ms))})`);
    assert.ok(flash.every((r) => r.ms! >= 10_000 - EXACT_MS), "nothing before the keyframe at 10 s is shown on the way");
    assertNonDecreasing(after, "after the seek");
    assert.match(await page.locator("#status").innerText(), /PLAYING/);
  } finally {
    await page.close();
  }
});

test("pause freezes the picture with the stream still PLAYING; resume goes on from the paused picture", async (t) => {
  const page = await openPlayer(VOD);
  try {
    await play(page);
    await waitForPicture(page, "the picture at 2 s", 2000);
    const paused = acceptedState(await vodOp(page, "pause"), "pause");
    assert.equal(paused.state, "paused");
    const frozen = await assertFrozen(page, "pause");
    t.diagnostic(`paused at ${paused.positionMs} ms by the answer; the picture froze at ${frozen} ms`);
    assert.ok(Math.abs(frozen - paused.positionMs) <= 500, `the frozen picture (${frozen} ms) is where the answer says the pause is (${paused.positionMs} ms)`);
    const state = acceptedState(await vodOp(page, "state"), "state while paused");
    assert.deepEqual(state, paused, "the position does not move while paused");

    const mark = await clockMark(page);
    const resumed = acceptedState(await vodOp(page, "resume"), "resume");
    assert.equal(resumed.state, "playing");
    assert.ok(Math.abs(resumed.positionMs - paused.positionMs) <= EXACT_MS, `resume at ${resumed.positionMs} ms, paused at ${paused.positionMs} ms`);
    await assertRunsOnFrom(page, mark, frozen, "resume");
  } finally {
    await page.close();
  }
});

test("a seek while paused shows the new picture and stays paused; resume plays on from it", async () => {
  const page = await openPlayer(VOD);
  try {
    await play(page);
    await waitForPicture(page, "the picture at 2 s", 2000);
    assert.equal(acceptedState(await vodOp(page, "pause"), "pause").state, "paused");
    const target = 21_700;
    const state = acceptedState(await vodOp(page, "seek", target), "seek while paused");
    assert.equal(state.state, "paused", "a seek does not resume");
    assert.ok(Math.abs(state.positionMs - target) <= EXACT_MS, `the answer's position ${state.positionMs} is the seek's`);
    await waitIn(
      page,
      `the picture at ${target} ms while paused`,
      ({ target, exact }) => {
        const now = (window as unknown as { __clockMs(): number | null }).__clockMs();
        return now !== null && Math.abs(now - target) <= exact;
      },
      { target, exact: EXACT_MS },
    );
    const frozen = await assertFrozen(page, "paused after the seek");
    assert.ok(Math.abs(frozen - target) <= EXACT_MS, `still the seek's picture: ${frozen} ms`);

    const mark = await clockMark(page);
    assert.equal(acceptedState(await vodOp(page, "resume"), "resume").state, "playing");
    await assertRunsOnFrom(page, mark, frozen, "resume after the seek");
  } finally {
    await page.close();
  }
});

test("a vod-live:// viewer joining mid-GOP shows the broadcast's current picture at once and stays in step", async (t) => {
  const pages: Page[] = [];
  try {
    // One after the other: each new window is told apart only by being the next "page" event.
    pages.push(await openPlayer(VOD_LIVE));
    pages.push(await openPlayer(VOD_LIVE));
    const [early, late] = pages as [Page, Page];
    await play(early);
    // Keyframes are at 0, 10 and 20 s: joining at 6 s is 4 s before the next one.
    await waitForPicture(early, "the earlier viewer at 6 s", 6000);
    await late.click("#playBtn");
    const first = await waitForRead(late, "the joiner's first picture", 0, 0);
    // Well past the broadcast's moment when the joiner came in, so whatever it showed on the way is recorded.
    const earlyNow = (await readClockMs(early)) ?? 0;
    await waitForPicture(late, "the joiner 3 s on", earlyNow + 3000);
    const allReads = await clockReads(late);
    // As in plain playback, the very first presentation may draw black (Chromium); any later one may not.
    const lateReads = allReads.slice(allReads.indexOf(allReads.find((r) => r.ms !== null)!));
    const earlyReads = (await clockReads(early)).filter((r) => r.ms !== null);
    const nearest = (at: number) => earlyReads.reduce((best, r) => (Math.abs(r.at - at) < Math.abs(best.at - at) ? r : best));
    const gapOf = (r: ClockRead) => r.ms! - nearest(r.at).ms!;
    const inStep = lateReads.findIndex((r) => r.ms !== null && Math.abs(gapOf(r)) <= 500);
    t.diagnostic(
      `the joiner's first pictures (ms, and the earlier viewer's at the same moment): ` +
        JSON.stringify(lateReads.slice(0, Math.max(inStep, 0) + 3).map((r) => [r.ms, r.ms === null ? null : nearest(r.at).ms])) +
        `; in step from its picture #${inStep}, ${inStep > 0 ? lateReads[inStep]!.at - first.at : 0} ms after its first`,
    );
    assert.match(await late.locator("#status").innerText(), /PLAYING/, await describe(late));
    assert.ok(allReads.indexOf(lateReads[0]!) <= 1, `the first picture is readable, not black: ${JSON.stringify(allReads.slice(0, 10).map((r) => r.ms))}`);
    assert.ok(lateReads.every((r) => r.ms !== null), `no black or unreadable picture after the first: ${JSON.stringify(lateReads.map((r) => r.ms))}`);
    // Not held back until the keyframe at 10 s: the joiner shows a picture while the broadcast is still before it.
    const earlyThen = nearest(first.at).ms!;
    assert.ok(earlyThen < 10_000 - EXACT_MS, `the joiner's first picture came while the broadcast was at ${earlyThen} ms, before the next keyframe`);
    assert.ok(inStep >= 0, `the joiner comes in step: ${JSON.stringify(lateReads.slice(0, 20).map((r) => r.ms))}`);

    // In step: the joiner's frames over its last 2 s against what the earlier viewer showed at the same moment.
    const settled = lateReads.filter((r) => r.ms !== null && r.at >= lateReads.at(-1)!.at - 2000);
    const gaps = settled.map(gapOf).sort((a, b) => a - b);
    const median = gaps[gaps.length >> 1]!;
    t.diagnostic(`joiner minus earlier viewer, same moment, over its last 2 s: median ${median} ms (from ${gaps[0]} to ${gaps.at(-1)})`);
    assert.ok(Math.abs(median) <= 500, `the two viewers show the same moment: median gap ${median} ms`);
    assertNonDecreasing(lateReads, "the joiner");
    for (const page of pages) assert.match(await page.locator("#status").innerText(), /PLAYING/, await describe(page));

    // At once: in step with the broadcast while it is still before the keyframe at 10 s that a joiner without the
    // catch-up waits for (the frames from the keyframe before the join go by fast on the way, a fraction of a second).
    const inStepAt = nearest(lateReads[inStep]!.at).ms!;
    assert.ok(inStepAt < 10_000 - EXACT_MS, `the joiner shows the broadcast's moment at ${inStepAt} ms, before its next keyframe`);
  } finally {
    await Promise.allSettled(pages.map((p) => p.close()));
  }
});

test("the DataStatusEvent answers as the page sees them: ACCEPTED with the state, FAILED with the reason", async () => {
  const vod = await openPlayer(VOD);
  const live = await openPlayer(VOD_LIVE);
  try {
    await play(vod);
    await waitForPicture(vod, "the picture at 1 s", 1000);
    const state = acceptedState(await vodOp(vod, "state"), "state");
    assert.equal(state.state, "playing");

    assertFailed(await vodOp(vod, "seek", 60_000), "Position is past the end of the file", "a seek past the end");
    // The refusal leaves the playback as it was.
    const mark = await clockMark(vod);
    const now = (await readClockMs(vod))!;
    await waitForRead(vod, "the picture running on after the refused seek", mark, now + 1000, now + 5000);
    assert.match(await vod.locator("#status").innerText(), /PLAYING/);

    // Not ours: an application's payload is accepted as WCS accepts it (no REST app here to refuse it).
    const hello = await sendData(vod, { hello: 1 });
    assert.equal(hello.resolved, true, `{hello: 1}: ${JSON.stringify(hello.value)}`);
    assert.equal(hello.value.status, "ACCEPTED", `{hello: 1}: ${JSON.stringify(hello.value)}`);

    await play(live);
    for (const op of ["pause", "seek", "resume", "state"] as const) {
      assertFailed(await vodOp(live, op, op === "seek" ? 5000 : undefined), "Operation not supported", `${op} of a vod-live:// stream`);
    }
    assert.match(await live.locator("#status").innerText(), /PLAYING/, "a refused op leaves the vod-live:// stream playing");
  } finally {
    await Promise.allSettled([vod.close(), live.close()]);
  }
});
