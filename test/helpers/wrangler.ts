// Runs the edge under `wrangler dev` (local workerd, offline) for integration and end-to-end tests.
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { prepareAssets } from "../../scripts/prepare-assets.ts";
import { freePort } from "./ports.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const WRANGLER_BIN = path.join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
/** Enough of the tail to see why it failed, without holding every request log of a long run. */
const MAX_OUTPUT_CHARS = 256 * 1024;

export interface WranglerOptions {
  /** The sidecar's control API as the edge should call it. */
  sidecarUrl: string;
  /** SIDECAR_SECRET; leave it out to run the edge without one. */
  secret?: string;
  /** More `--var`s, e.g. { KEEPALIVE_INTERVAL_MS: "200" }. */
  vars?: Record<string, string>;
  /** Default "info", so a failure report shows requests and the Worker's console output. */
  logLevel?: "debug" | "info" | "log" | "warn" | "error";
  /** Default 60 s: the first start bundles the Worker and boots workerd. */
  startTimeoutMs?: number;
  /** Listen on this port instead of a free one (e.g. to put it in a var beforehand). */
  port?: number;
  /**
   * Keep the Durable Objects' storage (and their alarms) in this folder, kept after stop(), so a later start on the
   * same folder finds them: what an edge restart or an evicted object looks like. Default: a temporary folder.
   */
  persistTo?: string;
}

export interface WranglerDev {
  /** http://127.0.0.1:<port> */
  url: string;
  /** ws://127.0.0.1:<port>/ — what the SDK is given as urlServer. */
  wsUrl: string;
  port: number;
  /** Everything wrangler printed so far (the tail when it is long). */
  output(): string;
  stop(): Promise<void>;
}

export async function startWrangler(opts: WranglerOptions): Promise<WranglerDev> {
  await prepareAssets();
  const port = opts.port ?? (await freePort());
  const inspectorPort = await freePort();
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-wrangler-"));
  // An explicit (empty) env file stops wrangler from reading the developer's .dev.vars or .env: a test that runs
  // the edge without a secret, or with default keep-alive, must not pick one up from there.
  const envFile = path.join(tmp, "empty.env");
  await fs.writeFile(envFile, "");

  const vars: Record<string, string> = { SIDECAR_URL: opts.sidecarUrl, ...opts.vars };
  if (opts.secret !== undefined) vars.SIDECAR_SECRET = opts.secret;
  const args = [
    WRANGLER_BIN,
    "dev",
    "--ip", "127.0.0.1",
    "--port", String(port),
    "--inspector-port", String(inspectorPort),
    "--persist-to", opts.persistTo ?? path.join(tmp, "state"),
    "--env-file", envFile,
    "--log-level", opts.logLevel ?? "info",
    "--show-interactive-dev-session=false",
    ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];

  let out = "";
  const append = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > MAX_OUTPUT_CHARS) out = out.slice(-MAX_OUTPUT_CHARS);
  };
  // Its own process group, so stop() also reaches workerd, which wrangler starts as a child.
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      // Otherwise miniflare tries to download the Request.cf placeholder on every start (3 s timeout offline).
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_LOG_PATH: path.join(tmp, "logs"),
      NO_COLOR: "1",
      FORCE_COLOR: "0",
    },
  });
  child.stdout.on("data", append);
  child.stderr.on("data", append);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      /* gone */
    }
  };
  // A crashed test run must not leave workerd listening.
  const onExit = () => killGroup("SIGKILL");
  process.once("exit", onExit);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener("exit", onExit);
    if (child.exitCode === null && child.signalCode === null) {
      killGroup("SIGTERM");
      const timer = setTimeout(() => killGroup("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    // workerd may outlive wrangler by a moment; make sure the group is gone before its files are removed.
    killGroup("SIGKILL");
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => {});
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error("wrangler dev exited early");
      try {
        const res = await fetch(`${url}/player.html`, { redirect: "manual", signal: AbortSignal.timeout(2000) });
        await res.body?.cancel();
        if (res.status === 200) break;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error("wrangler dev did not answer in time");
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n--- wrangler output ---\n${out}`);
  }

  return { url, wsUrl: `ws://127.0.0.1:${port}/`, port, output: () => out, stop };
}
