// Time spent in garbage-collection pauses since start (perf_hooks "gc" entries), for the health endpoint: a media
// server's GC pauses are the stalls its viewers see, so operators and the bench watch their share of the CPU.
import { PerformanceObserver } from "node:perf_hooks";

let totalMs = 0;
let observer: PerformanceObserver | undefined;

/** Starts counting (idempotent): one entry per collection, not per allocation. */
export function startGcStats(): void {
  if (observer) return;
  observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) totalMs += e.duration;
  });
  observer.observe({ entryTypes: ["gc"] });
}

/** Milliseconds spent in GC since startGcStats(). */
export function gcTotalMs(): number {
  return totalMs;
}
