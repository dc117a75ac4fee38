// What the process holds, for GET /v1/health: memory by kind (RSS against V8's heap and the memory outside it) and
// the active handles and timers by type, so that a leak of sockets or timers across viewers shows as a count that
// does not come back down.

import fs from "node:fs";

export interface ProcessStats {
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** C++ objects bound to JS ones (Buffers' memory among them). */
  externalBytes: number;
  arrayBuffersBytes: number;
  /**
   * process.getActiveResourcesInfo() counted by type: Timeout, TCPSocketWrap, ... (only what keeps the process
   * alive: werift's UDP sockets are unref'd and do not show here; `fds` counts them).
   */
  resources: Record<string, number>;
  /** Open file descriptors (sockets, files, pipes), from /proc/self/fd; undefined where there is none. */
  fds: number | undefined;
}

function openFds(): number | undefined {
  try {
    return fs.readdirSync("/proc/self/fd").length;
  } catch {
    return undefined;
  }
}

export function processStats(): ProcessStats {
  const m = process.memoryUsage();
  const resources: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
    resources,
    fds: openFds(),
  };
}
