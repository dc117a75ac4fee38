// Where a sidecar's CPU goes, by stage of the media path, from a V8 CPU profile (`--cpu-prof`; the bench writes one
// per sidecar with BENCH_CPU_PROF_DIR). Each sample goes to the first frame from the leaf up that names a stage, so
// Node's internals count for whoever called them (a crypto call under SrtpProtector is "protect", under werift's
// DTLS it is "werift").
//
//   node --import tsx bench/profile-stages.ts <file.cpuprofile> [packets sent in the profile]
import fs from "node:fs/promises";
import { isMain } from "./is-main.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** "native": the native send's staging and its addon call (SRTP and sendmmsg in C, one profile frame for both). */
export type Stage = "packetize" | "rewrite" | "protect" | "send" | "native" | "gc" | "werift" | "scheduler" | "other" | "idle";

/** In order of precedence from the leaf: the first frame whose url matches names the stage. */
const RULES: [Stage, RegExp][] = [
  // connected-socket.ts calls Node's UDP handle itself: the native send shows under its frames.
  ["send", /(^|\/)(dgram|internal\/dgram)(\.js)?$|node:dgram|connected-socket\.ts/],
  ["protect", /srtp-protect\.ts/],
  ["native", /send-batch\.ts|native-srtp\.ts/],
  ["rewrite", /rtp-out\.ts|rtp-header\.ts/],
  ["packetize", /h264-packetizer\.ts|packet-source\.ts|live-source\.ts|\/mp4\/|h264-rtp\.ts/],
  ["scheduler", /scheduler\.ts|broadcast-viewer\.ts|vod-viewer\.ts|live-viewer\.ts/],
  ["werift", /node_modules\/werift|node_modules\/@shinyoshiaki/],
];

export interface StageBreakdown {
  /** Busy ms (idle excluded) per stage, and its share of busy time. */
  stages: Record<Stage, { ms: number; share: number }>;
  busyMs: number;
  wallMs: number;
}

/**
 * `window`: only samples taken within [from, to] on CLOCK_MONOTONIC in µs (V8's profile clock, and
 * process.hrtime's: a bench process can mark its measurement window on the profile of another process).
 */
export function stagesOf(profile: CpuProfile, window?: { fromUs: number; toUs: number }): StageBreakdown {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const stageOfNode = new Map<number, Stage>();
  const classify = (id: number): Stage => {
    const known = stageOfNode.get(id);
    if (known) return known;
    const leaf = byId.get(id)!.callFrame.functionName;
    let stage: Stage = "other";
    if (leaf === "(garbage collector)") stage = "gc";
    else if (leaf === "(idle)") stage = "idle";
    else {
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const url = byId.get(at)!.callFrame.url;
        const rule = RULES.find(([, re]) => re.test(url));
        if (rule) {
          stage = rule[0];
          break;
        }
      }
    }
    stageOfNode.set(id, stage);
    return stage;
  };
  const ms: Record<Stage, number> = { packetize: 0, rewrite: 0, protect: 0, send: 0, native: 0, gc: 0, werift: 0, scheduler: 0, other: 0, idle: 0 };
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    ms[classify(profile.samples[i]!)] += delta / 1000;
  }
  const busyMs = Object.entries(ms).reduce((a, [k, v]) => (k === "idle" ? a : a + v), 0);
  const stages = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, { ms: v, share: k === "idle" ? 0 : v / busyMs }])) as StageBreakdown["stages"];
  return { stages, busyMs, wallMs: window ? (window.toUs - window.fromUs) / 1000 : (profile.endTime - profile.startTime) / 1000 };
}

export const STAGE_ORDER: readonly Stage[] = ["packetize", "scheduler", "rewrite", "protect", "send", "native", "gc", "werift", "other"];

/** µs of CPU per packet sent, per stage (and in all). */
export function usPerPacket(b: StageBreakdown, packets: number): Record<Stage | "total", number> {
  const out = { total: (b.busyMs * 1000) / packets } as Record<Stage | "total", number>;
  for (const s of [...STAGE_ORDER, "idle"] as Stage[]) out[s] = (b.stages[s].ms * 1000) / packets;
  return out;
}

/** One line per stage: share of busy time and, given the packets sent, µs per packet. */
export function formatStages(b: StageBreakdown, packets?: number): string {
  return STAGE_ORDER
    .map((s) => {
      const { ms, share } = b.stages[s];
      const perPacket = packets ? `, ${((ms * 1000) / packets).toFixed(2)} µs per packet` : "";
      return `    ${s.padEnd(9)} ${(share * 100).toFixed(1).padStart(5)} % of busy time${perPacket}`;
    })
    .join("\n");
}

if (isMain(import.meta.url)) {
  const [file, packets] = process.argv.slice(2);
  if (!file) throw new Error("usage: profile-stages.ts <file.cpuprofile> [packets]");
  const b = stagesOf(JSON.parse(await fs.readFile(file, "utf8")) as CpuProfile);
  console.log(`busy ${b.busyMs.toFixed(0)} ms of ${b.wallMs.toFixed(0)} ms profiled`);
  console.log(formatStages(b, packets ? Number(packets) : undefined));
}
