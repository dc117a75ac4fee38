// CPU time and resident memory of a process from /proc (Linux), for tests that report what a load costs and for
// the benchmarks.
import fs from "node:fs/promises";

// USER_HZ: 100 on every Linux build Node supports.
const TICKS = 100;

/** User + system CPU time the process has used so far, ms. */
export async function cpuMs(pid: number): Promise<number> {
  const { user, system } = await cpuSplitMs(pid);
  return user + system;
}

/** User and system (kernel) CPU time the process has used so far, ms. */
export async function cpuSplitMs(pid: number): Promise<{ user: number; system: number }> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: (Number(fields[11]) * 1000) / TICKS, system: (Number(fields[12]) * 1000) / TICKS };
}

export async function rssMb(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** CPU use over a window of `ms` as a percentage of one core, and RSS at its end. */
export async function measureProcess(pid: number, ms: number): Promise<{ cpuPct: number; rss: number }> {
  const c0 = await cpuMs(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const c1 = await cpuMs(pid);
  return { cpuPct: ((c1 - c0) / (performance.now() - t0)) * 100, rss: await rssMb(pid) };
}

/** One core's time so far from /proc/stat, ms: busy (everything but idle and iowait) and, of that, softirq. */
export async function coreMs(cpu: number): Promise<{ busy: number; softirq: number }> {
  const line = (await fs.readFile("/proc/stat", "utf8")).split("\n").find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) throw new Error(`no cpu${cpu} in /proc/stat`);
  // user nice system idle iowait irq softirq steal ...
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: ((total - f[3]! - f[4]!) * 1000) / TICKS, softirq: (f[6]! * 1000) / TICKS };
}
