// Fuzzes the MP4 reader with a few thousand mutants of small ffmpeg files: each must open and play, or fail with one
// of the clear infos the opener answers FAILED with. Nothing may throw past the reader or the packet source, hang, or
// make memory grow without bound. Reproduce a failure with MP4_FUZZ_SEED (printed) and MP4_FUZZ_COUNT.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { Info } from "@edge-vod/shared";
import { MediaError } from "../../sidecar/src/files/file-access.ts";
import { IndexGuard } from "../../sidecar/src/mp4/index-guard.ts";
import { fixtures, makeFixture, type Fixtures } from "../helpers/fixtures.ts";
import { namedMutants } from "../helpers/mp4-mutate.ts";
import type { FuzzJob, FuzzMessage } from "../helpers/mp4-fuzz-worker.ts";

const RUN_SEED = Number(process.env.MP4_FUZZ_SEED ?? 0x5eed_2024);
const RANDOM_MUTANTS = Number(process.env.MP4_FUZZ_COUNT ?? 3000);
/** A mutant still running after this long has hung the reader (a normal one takes milliseconds). */
const HANG_MS = 20_000;
/** The worker's heap cap: a reader allocating per claimed sample (2^32 of them) runs into it at once. */
const WORKER_HEAP_MB = 1024;
const HEAP_GROWTH_LIMIT = 300 * 1024 * 1024;

let tmp: string;
let fx: Fixtures;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "mp4-fuzz-"));
  fx = fixtures(tmp);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const lavfi = (spec: string) => ["-f", "lavfi", "-i", spec];
const video1s = lavfi("testsrc2=size=160x90:rate=30:duration=1");
const sine1s = lavfi("sine=frequency=440:sample_rate=48000:duration=1");
const baseline = ["-c:v", "libx264", "-threads:v", "1", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "15"];

/** Small seeds, one per layout the reader handles: moov last, moov first, Opus, fragmented. */
async function seeds(): Promise<FuzzJob["seeds"]> {
  const files = {
    "h264-aac-moov-last": await makeFixture(tmp, "h264-aac.mp4", [...video1s, ...sine1s, ...baseline, "-c:a", "aac", "-b:a", "32k"]),
    "h264-aac-faststart": await fx.co64Source(),
    "h264-opus": await makeFixture(tmp, "h264-opus.mp4", [...video1s, ...sine1s, ...baseline, "-c:a", "libopus", "-b:a", "32k"]),
    fragmented: await fx.fragmented(),
  };
  return Promise.all(Object.entries(files).map(async ([name, file]) => ({ name, bytes: new Uint8Array(await fs.readFile(file)) })));
}

interface RunResult {
  total: number;
  outcomes: Map<number, { desc: string; outcome: string }>;
  crashes: { desc: string; crash: string }[];
  /** Mutants that hung the worker or ran it out of memory. */
  stopped: { desc: string; why: string }[];
  memory: Extract<FuzzMessage, { t: "done" }> | undefined;
}

/** Runs every mutant in a worker; one that hangs or exhausts the worker is recorded and the rest run in a new one. */
async function fuzz(job: Omit<FuzzJob, "from">): Promise<RunResult> {
  const result: RunResult = { total: Infinity, outcomes: new Map(), crashes: [], stopped: [], memory: undefined };
  let from = 0;
  while (from < result.total) {
    let current: { i: number; desc: string; since: number } | undefined;
    const worker = new Worker(new URL("../helpers/mp4-fuzz-worker.ts", import.meta.url), {
      workerData: { ...job, from } satisfies FuzzJob,
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
      stdout: true,
      stderr: true,
    });
    // mp4box logs every malformed box: thousands of lines that would bury the test's own output.
    worker.stdout.resume();
    worker.stderr.resume();
    const stop = await new Promise<{ why: string } | undefined>((resolve) => {
      const watchdog = setInterval(() => {
        if (current && performance.now() - current.since > HANG_MS) {
          clearInterval(watchdog);
          void worker.terminate();
          resolve({ why: `still running after ${HANG_MS} ms` });
        }
      }, 500);
      worker.on("message", (m: FuzzMessage) => {
        if (m.t === "plan") result.total = m.total;
        else if (m.t === "begin") current = { i: m.i, desc: m.desc, since: performance.now() };
        else if (m.t === "end") {
          result.outcomes.set(m.i, { desc: current!.desc, outcome: m.outcome });
          if (m.crash) result.crashes.push({ desc: current!.desc, crash: m.crash });
          current = undefined;
        } else if (m.t === "done") {
          result.memory = m;
        }
      });
      worker.on("error", (err) => {
        clearInterval(watchdog);
        resolve({ why: `worker died: ${err.message}` });
      });
      worker.on("exit", () => {
        clearInterval(watchdog);
        resolve(undefined);
      });
    });
    if (!stop) break;
    const at = current ?? { i: from, desc: `#${from} (before it started)` };
    result.stopped.push({ desc: at.desc, why: stop.why });
    from = at.i + 1;
    result.memory = undefined;
  }
  return result;
}

test(`a few thousand mutated MP4s each play or fail with a clear info (seed ${RUN_SEED})`, { timeout: 600_000 }, async () => {
  const started = performance.now();
  const result = await fuzz({ seeds: await seeds(), runSeed: RUN_SEED, random: RANDOM_MUTANTS });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const tally = new Map<string, number>();
  for (const { outcome } of result.outcomes.values()) {
    const key = outcome.startsWith("ok") ? "played" : outcome;
    tally.set(key, (tally.get(key) ?? 0) + 1);
  }
  console.log(`mp4 fuzz: seed ${RUN_SEED}, ${result.outcomes.size} mutants in ${seconds} s: ${JSON.stringify(Object.fromEntries(tally))}`);
  if (result.memory) {
    const mb = (n: number) => (n / 1048576).toFixed(0);
    const m = result.memory;
    console.log(`mp4 fuzz: worker heap ${mb(m.heapBefore)} -> ${mb(m.heapAfter)} MB, process RSS ${mb(m.rssBefore)} -> ${mb(m.rssAfter)} MB`);
  }

  const problems = [
    ...result.stopped.map((x) => `  ${x.desc}\n    ${x.why}`),
    ...result.crashes.map((x) => `  ${x.desc}\n    ${x.crash.split("\n").slice(0, 4).join("\n    ")}`),
  ];
  assert.deepEqual(problems, [], `seed ${RUN_SEED}: mutants that hung, exhausted or crashed the reader:\n${problems.join("\n")}`);
  assert.equal(result.outcomes.size, result.total, "every mutant ran");
  assert.ok(result.total >= RANDOM_MUTANTS, `${result.total} mutants`);
  // The mutations must both break files and leave some playable, or the fuzz tests nothing.
  assert.ok((tally.get("played") ?? 0) > result.total / 20, "some mutants still play");
  assert.ok((tally.get(Info.FILE_HAS_WRONG_FORMAT) ?? 0) > result.total / 20, "many mutants are refused as wrong format");

  const named = [...result.outcomes.values()];
  const byDesc = (pattern: RegExp) => named.filter((o) => pattern.test(o.desc));
  for (const [what, pattern] of [
    ["a moov claiming 2^32 samples", /stsz@\d+ count 0xffffffff constant size 1$/],
    ["a zero-length file", /zero-length file$/],
    ["a corrupt avcC (NAL length size 3)", /avcC NAL length size 3$/],
    ["a corrupt avcC (no SPS)", /avcC no SPS$/],
    ["a corrupt avcC (SPS past its box)", /avcC SPS length 0xffff$/],
  ] as const) {
    const cases = byDesc(pattern);
    assert.ok(cases.length > 0, `${what}: in the run`);
    for (const c of cases) assert.equal(c.outcome, Info.FILE_HAS_WRONG_FORMAT, `${what}: ${c.desc}`);
  }
  for (const c of byDesc(/: unchanged$/)) assert.match(c.outcome, /^ok, \d+ packets$/, `a seed plays: ${c.desc}`);

  assert.ok(result.memory, "the last worker finished");
  const growth = result.memory.heapAfter - result.memory.heapBefore;
  assert.ok(growth < HEAP_GROWTH_LIMIT, `worker heap grew by ${(growth / 1048576).toFixed(0)} MB over the run`);
});

test("the index guard follows boxes split across any reads, and catches a 2^32-sample moov split too", async () => {
  for (const seed of await seeds()) {
    const bytes = seed.bytes;
    const feed = (b: Uint8Array) => {
      const guard = new IndexGuard(seed.name);
      // 997: a prime, so box headers and tables land across read boundaries everywhere.
      for (let at = 0; at < b.length; at += 997) guard.see(b.subarray(at, at + 997), at, b.length, true);
    };
    feed(bytes);
    for (const m of namedMutants(bytes).filter((x) => /^(stsz|stts|stsc|stco|co64|ctts|stss|elst|trun)@\d+ count 0xffffffff/.test(x.desc))) {
      assert.throws(
        () => feed(m.bytes),
        (err: unknown) => err instanceof MediaError && err.info === Info.FILE_HAS_WRONG_FORMAT,
        `${seed.name}: ${m.desc}`,
      );
    }
  }
});
