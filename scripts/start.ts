// `npm start`: the whole system on one machine — the edge under `wrangler dev` and a sidecar beside it, sharing a
// secret made for this run (or SIDECAR_SECRET from the environment) — then prints the Player URL.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { prepareAssets } from "./prepare-assets.ts";

const EDGE_PORT = Number(process.env.EDGE_PORT ?? 8787);
const SIDECAR_PORT = Number(process.env.SIDECAR_PORT ?? 8790);
const HOST = "127.0.0.1";
const secret = process.env.SIDECAR_SECRET ?? randomBytes(24).toString("base64url");
const sidecarUrl = process.env.SIDECAR_URL ?? `http://${HOST}:${SIDECAR_PORT}`;
// The REST API's key: REST_API_KEY from the environment, or one made for this run and printed below.
const restApiKey = process.env.REST_API_KEY ?? randomBytes(18).toString("base64url");

await prepareAssets();

const children: ChildProcess[] = [];
let stopping = false;
function stopAll(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  setTimeout(() => process.exit(code), 1500).unref();
}
function run(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "inherit", "inherit"] });
  child.on("exit", (code, signal) => {
    if (!stopping) {
      console.error(`${name} exited (${signal ?? code}); stopping`);
      stopAll(1);
    }
  });
  children.push(child);
  return child;
}

run("sidecar", process.execPath, ["--import", "tsx", "sidecar/src/main.ts"], {
  SIDECAR_SECRET: secret,
  SIDECAR_PORT: String(SIDECAR_PORT),
});
run("edge", process.execPath, [
  "node_modules/wrangler/bin/wrangler.js",
  "dev",
  "--ip", HOST,
  "--port", String(EDGE_PORT),
  "--var", `SIDECAR_SECRET:${secret}`,
  "--var", `SIDECAR_URL:${sidecarUrl}`,
  "--var", `REST_API_KEY:${restApiKey}`,
  // Pin where the sidecar posts events (with the secret) instead of trusting the Host header of the upgrade.
  "--var", `EDGE_EVENTS_ORIGIN:http://${HOST}:${EDGE_PORT}`,
  "--show-interactive-dev-session=false",
], {});

process.on("SIGINT", () => stopAll(0));
process.on("SIGTERM", () => stopAll(0));

async function waitFor(url: string, init?: RequestInit): Promise<void> {
  for (let i = 0; i < 600 && !stopping; i++) {
    try {
      const res = await fetch(url, { ...init, redirect: "manual", signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${url} did not come up`);
}
await waitFor(`${sidecarUrl}/v1/health`);
await waitFor(`http://${HOST}:${EDGE_PORT}/player.html`);
console.log(`\nedge-vod is up.\n  Player:    http://${HOST}:${EDGE_PORT}/player.html?stream=vod://sample.mp4\n  Recording: http://${HOST}:${EDGE_PORT}/recording.html\n  Signalling: ws://${HOST}:${EDGE_PORT}\n  REST API:  export REST_API_KEY=${restApiKey}\n             curl -X POST -H "Authorization: Bearer $REST_API_KEY" http://${HOST}:${EDGE_PORT}/rest-api/stream/find_all\n  Ctrl-C stops both.\n`);
