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
import { FleetPrepare } from "./prepare/fleet.ts";
import { preparedRoutes } from "./api/prepared.ts";
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
import { recoverRecordings, type RecordingConfig } from "./publish/recording.ts";
import { createRecordHook } from "./record/record-hook.ts";
import { UploadQueue } from "./record/upload-queue.ts";
import { peerFactory } from "./webrtc/peer-factory.ts";
import { Heartbeat } from "./registry/heartbeat.ts";
import { Storage } from "./store/storage.ts";
import type { FileAccess } from "./files/file-access.ts";
import { MAX_HELD_RECORDS, MAX_WARM_FILES } from "@edge-vod/shared";
import { setMediaSendBuffer } from "./streams/rtp-out.ts";

export async function createSidecar(cfg: SidecarConfig) {
  await fs.mkdir(cfg.cacheDir, { recursive: true });
  await fs.mkdir(cfg.recordDir, { recursive: true });
  const storage = cfg.storage ? new Storage(cfg.storage) : undefined;
  await storage?.start();
  // Prepared once for the fleet: needs the bucket to share copies in, and the edge to hold the leases.
  const fleet =
    storage && cfg.registry
      ? new FleetPrepare({ storage, edgeUrl: cfg.registry.edgeUrl, secret: cfg.secret, self: { id: cfg.registry.id, url: cfg.registry.publicUrl } })
      : undefined;
  const prepare = new PrepareCache({
    dir: cfg.cacheDir,
    maxBytes: cfg.cacheMaxBytes,
    maxRunning: cfg.prepareConcurrency,
    ...(cfg.ffmpegPath ? { ffmpegPath: cfg.ffmpegPath } : {}),
    ...(fleet ? { fleet } : {}),
  });
  // The local folders first, then the bucket: a file on this host's disk never costs a GET.
  const layers: FileAccess[] = [new LocalDiskAccess(cfg.mediaDir)];
  if (cfg.recordDir !== cfg.mediaDir) layers.push(new LocalDiskAccess(cfg.recordDir));
  if (storage) layers.push(storage.media);
  const media = layers.length === 1 ? layers[0]! : new LayeredAccess(layers);
  const opener = new MediaOpener(media, new LocalDiskAccess(cfg.cacheDir), prepare);
  startGcStats();
  const scheduler = new Scheduler(cfg.tickMs);
  setMediaSendBuffer(cfg.rtpSendBufferBytes);
  const metrics = new SidecarMetrics(cfg.metricsToken);
  const notifier = new EdgeNotifier(cfg.secret, (event) => metrics.event(event));
  const makePeer = peerFactory(cfg);
  const store = new PacketStore(cfg.packetStoreBytes);
  const vod = new VodService(opener, makePeer, scheduler, notifier.send, {
    store,
    catchUpSpeed: cfg.catchUpSpeed,
    pauseTimeoutMs: cfg.pauseTimeoutMs,
    onState: notifier.sendState,
    publicIp: cfg.publicIp,
    iceTimeoutMs: cfg.iceTimeoutMs,
  });
  const broadcasts = new BroadcastService(opener, makePeer, scheduler, notifier.send, {
    store,
    catchUpSpeed: cfg.catchUpSpeed,
    publicIp: cfg.publicIp,
    iceTimeoutMs: cfg.iceTimeoutMs,
    spread: { slots: Math.max(1, Math.round(cfg.vodLiveSpreadMs / cfg.tickMs)), perSlot: cfg.vodLiveViewersPerSlot, stepMs: cfg.tickMs },
  });
  const hook = createRecordHook(cfg.recordHookUrl, cfg.secret);
  // Set once the heartbeat exists (below): a recording that waits for its upload is announced with an extra beat.
  let heartbeat: Heartbeat | undefined;
  const uploads = storage
    ? new UploadQueue({ dir: cfg.recordDir, store: storage.store, prefix: storage.prefix, hook, onChange: () => void heartbeat?.beatNow() })
    : undefined;
  const recording: RecordingConfig = {
    dir: cfg.recordDir,
    template: cfg.recordTemplate,
    ffmpegPath: findFfmpeg(cfg.ffmpegPath),
    hook,
    finalizeTimeoutMs: 15_000,
    ...(uploads && storage
      ? {
          uploads,
          // UNPUBLISHED waits for the edge to know where the recording is, but never long: the next beat tells it too.
          announce: () => Promise.race([heartbeat?.beatNow(), new Promise<void>((r) => setTimeout(r, 2000))]),
          // A name the bucket has would be overwritten by the upload; unknown (the bucket down) is free.
          // Asked within a second at most: a bucket that does not answer must not hold the publish up.
          taken: async (name: string) =>
            uploads.has(name) ||
            (await Promise.race([
              storage.store.head(uploads.keyOf(name)).then((h) => h !== undefined, () => false),
              new Promise<boolean>((r) => setTimeout(() => r(false), 1000).unref()),
            ])),
        }
      : {}),
  };
  const publish = new PublishService(makePeer, notifier.send, {
    publicIp: cfg.publicIp,
    iceTimeoutMs: cfg.iceTimeoutMs,
    rtpActivityTimeoutMs: cfg.rtpActivityTimeoutMs,
    recording,
  });
  const live = new LiveService(publish, makePeer, notifier.send, { publicIp: cfg.publicIp, iceTimeoutMs: cfg.iceTimeoutMs });
  // Streams live in this process only: a new id per run lets the edge tell a restart from the run it placed them on.
  const instance = randomUUID();
  metrics.observe({ vod, live, publish, broadcasts, prepare, store, storage, uploads });
  const app = controlApi(cfg.secret, { vod, live, publish, broadcasts, prepare, metrics, storage, uploads }, { maxViewers: cfg.maxViewers }, instance);
  recordsRoutes(app, cfg.recordDir, storage);
  preparedRoutes(app, prepare);
  operationsRoutes(app, { vod, live, publish, broadcasts, prepare }, { opener, recordDir: cfg.recordDir, storage, uploads });
  const registry = cfg.registry;
  heartbeat = registry
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
          ...(uploads ? { holds: uploads.pendingNames().slice(0, MAX_HELD_RECORDS) } : {}),
          warm: opener.warmNames(MAX_WARM_FILES),
        }),
      })
    : undefined;
  await uploads?.start();
  heartbeat?.start();
  // In the background: a backlog of cut-off recordings must not keep the control API from starting.
  void recoverRecordings(recording).catch((err: unknown) => console.error("record recovery failed:", err));
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
      await uploads?.stop();
      storage?.stop();
      await prepare.close();
    },
  };
}
