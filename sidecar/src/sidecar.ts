// Wires the sidecar's parts together; main.ts and the tests both start it from here.
import fs from "node:fs/promises";
import type { SidecarConfig } from "./config.ts";
import { controlApi } from "./api/control.ts";
import { OpusCache } from "./audio/opus-cache.ts";
import { EdgeNotifier } from "./events/edge-notifier.ts";
import { LocalDiskAccess } from "./files/local-disk.ts";
import { MediaOpener } from "./vod/media-opener.ts";
import { Scheduler } from "./vod/scheduler.ts";
import { VodService } from "./vod/vod-service.ts";
import { peerFactory } from "./webrtc/peer-factory.ts";

export async function createSidecar(cfg: SidecarConfig) {
  await fs.mkdir(cfg.cacheDir, { recursive: true });
  const opus = new OpusCache({ dir: cfg.cacheDir, ...(cfg.ffmpegPath ? { ffmpegPath: cfg.ffmpegPath } : {}) });
  const opener = new MediaOpener(new LocalDiskAccess(cfg.mediaDir), new LocalDiskAccess(cfg.cacheDir), opus);
  const scheduler = new Scheduler(cfg.tickMs);
  const notifier = new EdgeNotifier(cfg.secret);
  const vod = new VodService(opener, peerFactory(cfg), scheduler, notifier.send, {
    publicIp: cfg.publicIp,
    iceTimeoutMs: cfg.iceTimeoutMs,
    maxViewers: cfg.maxViewers,
  });
  const app = controlApi(cfg.secret, vod);
  return {
    app,
    vod,
    async close() {
      await vod.closeAll();
      scheduler.stop();
    },
  };
}
