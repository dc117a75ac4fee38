// The media sidecar: demuxes MP4 and serves WebRTC playbacks for the edge.
import { serve } from "@hono/node-server";
import { ConfigError, loadConfig } from "./config.ts";
import { createSidecar } from "./sidecar.ts";
import { nativeStatus } from "./native/addon.ts";

let cfg;
try {
  cfg = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`sidecar: ${err.message}`);
    process.exit(2);
  }
  throw err;
}
const sidecar = await createSidecar(cfg);
const server = serve({ fetch: sidecar.app.fetch, hostname: cfg.host, port: cfg.port }, (info) => {
  console.log(`sidecar: listening on http://${cfg.host}:${info.port}, media folder ${cfg.mediaDir}`);
  console.log(nativeStatus.mode === "native" ? "sidecar: media send native (SRTP and sendmmsg/GSO in C)" : `sidecar: media send in JS: ${nativeStatus.reason}`);
});

const shutdown = async () => {
  server.close();
  await sidecar.close();
  process.exit(0);
};
process.on("SIGINT", () => void shutdown());
process.on("SIGTERM", () => void shutdown());
