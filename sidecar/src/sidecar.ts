// Wires the sidecar's parts together; main.ts and the tests both start it from here.
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import type { SidecarConfig } from "./config.ts";
import { controlApi, totalViewers } from "./api/control.ts";
import { SidecarMetrics } from "./api/metrics.ts";
import { startGcStats } from "./runtime/gc-stats.ts";
import { recordsRoutes } from "./api/records.ts";
import { operationsRoutes } from "./api/operations.ts";
import { PrepareCache } from "./prepare/prepare-cache.ts";
import { findFfmpeg } from "./tools/ffmpeg.ts";
import { EdgeNotifier } from "./events/edge-notifier.ts";
import { LayeredAccess } from "./files/layered-access.ts";
import { LocalDiskAccess } from "./files/local-disk.ts";
import { MediaOpener } from "./vod/media-opener.ts";
import { Scheduler } from "./vod/scheduler.ts";
import { VodService } from "./vod/vod-service.ts";
import { BroadcastService } from "./vod/broadcast-service.ts";
import { PacketStore } from "./vod/packet-store.ts";
import { LiveService } from "./live/live-service.ts";
import { PublishService } from "./publish/publish-service.ts";
import { createRecordHook } from "./record/record-hook.ts";
import { peerFactory } from "./webrtc/peer-factory.ts";
import { Heartbeat } from "./registry/heartbeat.ts";

export async function createSidecar(cfg: SidecarConfig) {
  await fs.mkdir(cfg.cacheDir, { recursive: true });
  await fs.mkdir(cfg.recordDir, { recursive: true });
  const prepare = new PrepareCache({
    dir: cfg.cacheDir,
    maxBytes: cfg.cacheMaxBytes,
    maxRunning: cfg.prepareConcurrency,
    ...(cfg.ffmpegPath ? { ffmpegPath: cfg.ffmpegPath } : {}),
  });
  const media =
    cfg.recordDir === cfg.mediaDir
      ? new LocalDiskAccess(cfg.mediaDir)
      : new LayeredAccess([new LocalDiskAccess(cfg.mediaDir), new LocalDiskAccess(cfg.recordDir)]);
  const opener = new MediaOpener(media, new LocalDiskAccess(cfg.cacheDir), prepare);
  startGcStats();
  const scheduler = new Scheduler(cfg.tickMs);
  const metrics = new SidecarMetrics(cfg.metricsToken);
  const notifier = new EdgeNotifier(cfg.secret, (event) => metrics.event(event));
  const makePeer = peerFactory(cfg);
  const store = new PacketStore(cfg.packetStoreBytes);
  const vod = new VodService(opener, makePeer, scheduler, notifier.send, {
    store,
    publicIp: cfg.publicIp,
    iceTimeoutMs: cfg.iceTimeoutMs,
  });
  const broadcasts = new BroadcastService(opener, makePeer, scheduler, notifier.send, {
    store,
    publicIp: cfg.publicIp,
    iceTimeoutMs: cfg.iceTimeoutMs,
    spread: { slots: Math.max(1, Math.round(cfg.vodLiveSpreadMs / cfg.tickMs)), perSlot: cfg.vodLiveViewersPerSlot, stepMs: cfg.tickMs },
  });
  const publish = new PublishService(makePeer, notifier.send, {
    publicIp: cfg.publicIp,
    iceTimeoutMs: cfg.iceTimeoutMs,
    rtpActivityTimeoutMs: cfg.rtpActivityTimeoutMs,
    recording: {
      dir: cfg.recordDir,
      template: cfg.recordTemplate,
      ffmpegPath: findFfmpeg(cfg.ffmpegPath),
      hook: createRecordHook(cfg.recordHookUrl, cfg.secret),
      finalizeTimeoutMs: 15_000,
    },
  });
  const live = new LiveService(publish, makePeer, notifier.send, { publicIp: cfg.publicIp, iceTimeoutMs: cfg.iceTimeoutMs });
  // Streams live in this process only: a new id per run lets the edge tell a restart from the run it placed them on.
  const instance = randomUUID();
  metrics.observe({ vod, live, publish, broadcasts, prepare, store });
  const app = controlApi(cfg.secret, { vod, live, publish, broadcasts, prepare, metrics }, { maxViewers: cfg.maxViewers }, instance);
  recordsRoutes(app, cfg.recordDir);
  operationsRoutes(app, { vod, live, publish, broadcasts, prepare }, { opener, recordDir: cfg.recordDir });
  const registry = cfg.registry;
  const heartbeat = registry
    ? new Heartbeat({
        edgeUrl: registry.edgeUrl,
        secret: cfg.secret,
        intervalMs: registry.intervalMs,
        describe: () => ({
          id: registry.id,
          url: registry.publicUrl,
          viewers: totalViewers({ vod, live, broadcasts }),
          publishers: publish.publisherCount,
          maxViewers: cfg.maxViewers,
          instance,
        }),
      })
    : undefined;
  heartbeat?.start();
  return {
    app,
    instance,
    vod,
    broadcasts,
    async close() {
      // First: the edge stops placing streams here while they are being closed.
      await heartbeat?.stop();
      // Publishes first: finishing their recordings must not wait behind anything else.
      await Promise.allSettled([publish.closeAll(), live.viewers.closeAll(), vod.viewers.closeAll(), broadcasts.viewers.closeAll()]);
      scheduler.stop();
      await prepare.close();
    },
  };
}
