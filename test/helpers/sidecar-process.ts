// Starts the real sidecar as a child process, as `npm start` does, for end-to-end tests.
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { PrepareStats } from "../../sidecar/src/prepare/prepare-cache.ts";
import type { MediaSendStats } from "../../sidecar/src/native/send-batch.ts";
import { freePort } from "./ports.ts";
import { signedFetch } from "./signed-fetch.ts";

export interface SidecarProcess {
  url: string;
  /** Process id of the sidecar itself (a shell prefix execs into it). */
  pid: number;
  secret: string;
  cacheDir: string;
  output(): string;
  /** The prepare cache's counters from the sidecar's health (hits, prepares, failures, running). */
  prepareStats(): Promise<PrepareStats>;
  /** Which media send the sidecar uses and its counters, from its health. */
  mediaSend(): Promise<MediaSendStats>;
  /** Kills the process with `signal` (no clean shutdown for SIGKILL) and resolves once it exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

/** The media send a sidecar started by the tests must use: native, unless the run chose the JS path. */
export const EXPECTED_MEDIA_SEND: MediaSendStats["mode"] = process.env.EDGE_VOD_NATIVE === "0" ? "js" : "native";

export async function startSidecar(opts: {
  secret: string;
  mediaDir?: string;
  env?: Record<string, string>;
  /** Options for node itself, before the script (e.g. `--single-threaded-gc`). */
  nodeArgs?: string[];
  /** Runs the sidecar through `sh -c` with this prefix, e.g. `ulimit -f 800;` to limit file sizes. */
  shellPrefix?: string;
  /** Listen on this port instead of a free one (e.g. to restart a sidecar where the edge expects it). */
  port?: number;
  /** A command the sidecar runs under, e.g. `ip netns exec <ns>` (it must exec, keeping the pid). */
  wrap?: string[];
  /** Where its API is reached (default 127.0.0.1): with SIDECAR_HOST in `env` where it listens elsewhere. */
  host?: string;
}): Promise<SidecarProcess> {
  const port = opts.port ?? (await freePort());
  const cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-cache-"));
  let out = "";
  const argv = [...(opts.wrap ?? []), process.execPath, ...(opts.nodeArgs ?? []), "--import", "tsx", "sidecar/src/main.ts"];
  const [cmd, args] = opts.shellPrefix
    ? ["/bin/sh", ["-c", `${opts.shellPrefix} exec "$@"`, "sh", ...argv]]
    : [argv[0]!, argv.slice(1)];
  const child = spawn(cmd, args, {
    env: {
      ...process.env,
      SIDECAR_SECRET: opts.secret,
      SIDECAR_PORT: String(port),
      MEDIA_DIR: opts.mediaDir ?? "media",
      CACHE_DIR: cacheDir,
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const url = `http://${opts.host ?? "127.0.0.1"}:${port}`;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`sidecar exited early:\n${out}`);
    try {
      const res = await signedFetch(opts.secret, `${url}/v1/health`);
      if (res.ok) break;
    } catch {
      /* not up yet */
    }
    if (i > 150) throw new Error(`sidecar did not come up:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid!,
    secret: opts.secret,
    cacheDir,
    output: () => out,
    async prepareStats() {
      const res = await signedFetch(opts.secret, `${url}/v1/health`);
      const body = (await res.json()) as { prepare?: PrepareStats };
      if (!body.prepare) throw new Error(`health has no prepare stats: ${JSON.stringify(body)}`);
      return body.prepare;
    },
    async mediaSend() {
      const res = await signedFetch(opts.secret, `${url}/v1/health`);
      const body = (await res.json()) as { mediaSend?: MediaSendStats };
      if (!body.mediaSend) throw new Error(`health has no mediaSend: ${JSON.stringify(body)}`);
      return body.mediaSend;
    },
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      await fs.rm(cacheDir, { recursive: true, force: true });
    },
  };
}
