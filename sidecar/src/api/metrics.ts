// `GET /metrics`: Prometheus text for this sidecar. Its own prom-client Registry (not the global one, so two
// sidecars in one test process do not share metrics), Node's default process metrics, and edge_vod_* metrics read
// from the services at scrape time. Nothing here runs per packet: the media path bumps plain numbers
// (runtime/media-counters.ts) that the collect() callbacks copy in.
//
// Auth: a bearer METRICS_TOKEN when configured, else open. Never the control API's signature: Prometheus cannot
// sign, and nothing here is secret (counts, no stream names, no addresses).
import type { Handler } from "hono";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { Info, StreamStatus, bearerOk, type ErrorBody, type StreamEvent, type StreamName } from "@edge-vod/shared";
import type { LiveService } from "../live/live-service.ts";
import type { PrepareCache } from "../prepare/prepare-cache.ts";
import type { PublishService } from "../publish/publish-service.ts";
import { mediaCounters } from "../runtime/media-counters.ts";
import { mediaSendStats } from "../native/send-batch.ts";
import type { BroadcastService } from "../vod/broadcast-service.ts";
import type { PacketStore } from "../vod/packet-store.ts";
import type { Storage } from "../store/storage.ts";
import type { UploadQueue } from "../record/upload-queue.ts";
import type { VodService } from "../vod/vod-service.ts";

export const METRICS_PATH = "/metrics";

type StreamKind = StreamName["kind"];

export interface MetricsSources {
  vod: VodService;
  live: LiveService;
  broadcasts: BroadcastService;
  publish: PublishService;
  prepare?: PrepareCache;
  store?: PacketStore;
  storage?: Storage;
  uploads?: UploadQueue;
}

const KNOWN_INFO: ReadonlySet<string> = new Set(Object.values(Info));

/** A label value from the fixed Info list: a free-text info must not make a new time series per message. */
function infoLabel(info: string | undefined): string {
  return info !== undefined && KNOWN_INFO.has(info) ? info : "other";
}

/** A counter that mirrors a number kept elsewhere (it only ever grows there). */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A gauge read from `read` at each scrape. */
function readGauge(registry: Registry, name: string, help: string, read: () => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

export class SidecarMetrics {
  readonly registry = new Registry();
  private sources: MetricsSources | undefined;
  private readonly plays: Counter<"kind">;
  private readonly refusals: Counter<"info">;
  private readonly failures: Counter<"info">;
  private readonly controlRefusals: Counter<"reason">;

  constructor(private readonly token: string | undefined) {
    const registers = [this.registry];
    // Event-loop lag sampled every 5 ms (prom-client's default, 10 ms, cannot see the stalls that make a frame late).
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 5 });
    const metrics = this;

    new Gauge({
      name: "edge_vod_viewers",
      help: "Viewers on this sidecar by kind (vod://, vod-live://, a published stream).",
      labelNames: ["kind"],
      registers,
      collect() {
        const s = metrics.sources;
        this.set({ kind: "vod" }, s?.vod.viewerCount ?? 0);
        this.set({ kind: "vod-live" }, s?.broadcasts.viewerCount ?? 0);
        this.set({ kind: "live" }, s?.live.viewerCount ?? 0);
      },
    });
    readGauge(this.registry, "edge_vod_publishers", "Streams published to this sidecar.", () => metrics.sources?.publish.publisherCount ?? 0);
    readGauge(
      this.registry,
      "edge_vod_broadcasts",
      "vod-live:// broadcasts with viewers on this sidecar (one file reader each).",
      () => metrics.sources?.broadcasts.broadcastCount ?? 0,
    );
    mirroredCounter(this.registry, "edge_vod_rtp_packets_sent_total", "RTP packets sent to viewers, retransmissions included.", () => mediaCounters.rtpPackets);
    mirroredCounter(this.registry, "edge_vod_rtp_bytes_sent_total", "RTP header and payload bytes sent to viewers (before SRTP).", () => mediaCounters.rtpBytes);
    mirroredCounter(this.registry, "edge_vod_catchup_packets_sent_total", "RTP packets of catch-ups (frames before a seek's position or a vod-live join, sent fast).", () => mediaCounters.catchUpPackets);
    mirroredCounter(this.registry, "edge_vod_catchup_bytes_sent_total", "Their payload bytes.", () => mediaCounters.catchUpBytes);
    mirroredCounter(this.registry, "edge_vod_live_catchups_from_broadcast_total", "vod-live catch-ups sent from the broadcast's own last GOP.", () => mediaCounters.liveCatchUpsFromBroadcast);
    mirroredCounter(this.registry, "edge_vod_live_catchups_from_file_total", "vod-live catch-ups that read the file (just after a start or seek, or a GOP too long to keep).", () => mediaCounters.liveCatchUpsFromFile);
    readGauge(this.registry, "edge_vod_native_send", "1 when the native send (SRTP and sendmmsg/GSO in C) sends, 0 on the JS path.", () => (mediaSendStats().mode === "native" ? 1 : 0));
    mirroredCounter(this.registry, "edge_vod_native_send_syscalls_total", "sendmmsg calls of the native send (one per viewer per tick when all goes well).", () => mediaSendStats().syscalls ?? 0);
    mirroredCounter(this.registry, "edge_vod_native_gso_datagrams_total", "GSO datagrams the native send made (a frame's equal-size packets in one).", () => mediaSendStats().gsoDatagrams ?? 0);
    mirroredCounter(this.registry, "edge_vod_native_send_queued_total", "Packets the kernel had no room for at once, sent by Node's queue in order instead.", () => mediaSendStats().queued ?? 0);
    mirroredCounter(this.registry, "edge_vod_native_send_dropped_total", "Packets a send error dropped (a peer gone: ICMP unreachable); NACK may recover them.", () => mediaSendStats().dropped ?? 0);
    readGauge(this.registry, "edge_vod_recordings_active", "Recordings being written.", () => mediaCounters.recordingsActive);
    mirroredCounter(this.registry, "edge_vod_recording_bytes_written_total", "Bytes written to record files.", () => mediaCounters.recordBytes);

    const prepare = () => metrics.sources?.prepare?.stats;
    mirroredCounter(this.registry, "edge_vod_prepare_cache_hits_total", "Plays of a file whose prepared copy was already cached.", () => prepare()?.hits ?? 0);
    mirroredCounter(this.registry, "edge_vod_prepares_total", "ffmpeg prepares started (files that needed a WebRTC-ready copy).", () => prepare()?.prepares ?? 0);
    mirroredCounter(this.registry, "edge_vod_prepare_failures_total", "Prepares that failed.", () => prepare()?.failures ?? 0);
    readGauge(
      this.registry,
      "edge_vod_prepares_running",
      "Prepares in flight (started, not finished; those waiting for a slot included).",
      () => prepare()?.running ?? 0,
    );
    const store = () => metrics.sources?.store;
    readGauge(this.registry, "edge_vod_packet_store_bytes", "Bytes of packetized samples held for playbacks of the same file to share.", () => store()?.bytes ?? 0);
    mirroredCounter(this.registry, "edge_vod_packet_store_hits_total", "Samples a playback took packetized from the store.", () => store()?.hits ?? 0);
    mirroredCounter(this.registry, "edge_vod_packet_store_misses_total", "Samples a playback read and packetized itself.", () => store()?.misses ?? 0);
    readGauge(this.registry, "edge_vod_prepares_waiting", "Prepares waiting for a slot (PREPARE_CONCURRENCY).", () => prepare()?.waiting ?? 0);
    const storage = () => metrics.sources?.storage;
    readGauge(this.registry, "edge_vod_storage_up", "0 while the bucket (S3_ENDPOINT) refuses access or does not answer, else 1 (also without a bucket).", () =>
      storage()?.status.ok === false ? 0 : 1,
    );
    readGauge(this.registry, "edge_vod_storage_block_cache_bytes", "Bytes of bucket blocks held for this host's readers.", () => storage()?.blocks.stats.bytes ?? 0);
    mirroredCounter(this.registry, "edge_vod_storage_block_hits_total", "Bucket blocks served from the block cache (or a fetch already in flight).", () => storage()?.blocks.stats.hits ?? 0);
    mirroredCounter(this.registry, "edge_vod_storage_block_misses_total", "Bucket blocks fetched from the store.", () => storage()?.blocks.stats.misses ?? 0);
    const uploads = () => metrics.sources?.uploads?.stats;
    readGauge(this.registry, "edge_vod_uploads_pending", "Finished recordings waiting for (or in) their upload to the bucket.", () => uploads()?.pending ?? 0);
    mirroredCounter(this.registry, "edge_vod_uploads_total", "Recordings uploaded to the bucket and checked.", () => uploads()?.uploaded ?? 0);
    mirroredCounter(this.registry, "edge_vod_upload_failures_total", "Failed upload attempts (each is retried).", () => uploads()?.failures ?? 0);
    mirroredCounter(this.registry, "edge_vod_upload_bytes_total", "Bytes of recordings uploaded.", () => uploads()?.bytes ?? 0);
    mirroredCounter(this.registry, "edge_vod_storage_read_bytes_total", "Bytes read from the bucket for media (block fetches).", () => storage()?.blocks.stats.fetchedBytes ?? 0);

    this.plays = new Counter({
      name: "edge_vod_plays_total",
      help: "Plays this sidecar accepted (answered with SDP), by kind.",
      labelNames: ["kind"],
      registers,
    });
    this.refusals = new Counter({
      name: "edge_vod_play_refusals_total",
      help: "Plays this sidecar refused, by the info the client got.",
      labelNames: ["info"],
      registers,
    });
    this.failures = new Counter({
      name: "edge_vod_stream_failures_total",
      help: "Streams (plays and publishes) that ended FAILED after they started, by info.",
      labelNames: ["info"],
      registers,
    });
    this.controlRefusals = new Counter({
      name: "edge_vod_control_refused_total",
      help: "Control API requests refused before any route ran (unsigned, bad signature, stale, replayed), by reason.",
      labelNames: ["reason"],
      registers,
    });
    // Series at 0 from the first scrape, so rate() and alerts see them before the first event.
    for (const kind of ["vod", "vod-live", "live"] satisfies StreamKind[]) this.plays.inc({ kind }, 0);
  }

  /** The services whose state the gauges read; until then they read 0. */
  observe(sources: MetricsSources): void {
    this.sources = sources;
  }

  playAnswered(kind: StreamKind, answer: { ok: true } | { ok: false; info: string }): void {
    if (answer.ok) this.plays.inc({ kind });
    else this.refusals.inc({ info: infoLabel(answer.info) });
  }

  /** Every event sent to the edge passes here; only failures are counted. */
  event(event: StreamEvent): void {
    if (event.status === StreamStatus.FAILED) this.failures.inc({ info: infoLabel(event.info) });
  }

  controlRefused(reason: string): void {
    this.controlRefusals.inc({ reason });
  }

  readonly route: Handler = async (c) => {
    if (this.token && !bearerOk(c.req.header("authorization"), this.token)) {
      return c.json({ error: "Unauthorized" } satisfies ErrorBody, 401);
    }
    return c.body(await this.registry.metrics(), 200, { "content-type": this.registry.contentType });
  };
}
