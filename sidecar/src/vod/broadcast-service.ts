// Shared `vod-live://` broadcasts on this sidecar and their viewers. A broadcast is identified by what the edge
// holds for it (file, start time, loop), so a restarted broadcast (new start time) never joins the old one here.
// It opens its file once when its first viewer comes and closes it when its last viewer leaves: the position is
// wall-clock time, so a later viewer simply opens it again where the broadcast is by then.
import { Info, broadcastPositionMs, parseStreamName, type BroadcastSeekRequest, type PlayRequest, type PlayResponse } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";
import type { EventSink } from "../events/edge-notifier.ts";
import { StreamRegistry, streamMeta } from "../streams/registry.ts";
import { RtpOut } from "../streams/rtp-out.ts";
import { viewerEvents } from "../streams/viewer-events.ts";
import { answerAsSender, answerFailureInfo } from "../webrtc/answer.ts";
import type { PeerFactory } from "../webrtc/peer-factory.ts";
import { offeredVideoCodecs } from "../webrtc/offer.ts";
import type { VideoCodec } from "../rtp/video-codec.ts";
import { BroadcastViewer, type CatchUpOptions } from "./broadcast-viewer.ts";
import { mediaCounters } from "../runtime/media-counters.ts";
import { LiveSource, type Spread } from "./live-source.ts";
import type { PacketStore } from "./packet-store.ts";
import type { MediaOpener, OpenedMedia } from "./media-opener.ts";
import { deferredPacketSource } from "./deferred-source.ts";
import { createVodPacketSource } from "./packet-source.ts";
import { DEFAULT_CATCH_UP_SPEED } from "./play-clock.ts";
import type { Scheduler } from "./scheduler.ts";

export interface BroadcastServiceOptions {
  publicIp: string | undefined;
  iceTimeoutMs: number;
  /** How a broadcast's viewers are spread over time (LiveSource); none: all get each packet at once. */
  spread?: Spread;
  /** Packetized samples shared by the playbacks of a file (a broadcast's first pass). */
  store?: PacketStore;
  /** See SidecarConfig.catchUpSpeed (default 45; 1: joiners wait for the next keyframe). */
  catchUpSpeed?: number;
}

interface Broadcast {
  readonly live: LiveSource;
  readonly media: OpenedMedia;
  readonly durationMs: number;
  /** A joiner's private reader of the video, to catch up with the broadcast (see broadcast-viewer.ts). */
  readonly catchUp: CatchUpOptions | undefined;
}

interface Entry {
  readonly key: string;
  readonly opening: Promise<Broadcast>;
  /** Viewers from their play request on (not from connect), so a broadcast is not closed under a negotiating one. */
  refs: number;
}

export class BroadcastService {
  readonly viewers = new StreamRegistry<BroadcastViewer>();
  private readonly broadcasts = new Map<string, Entry>();

  constructor(
    private readonly opener: MediaOpener,
    private readonly makePeer: PeerFactory,
    private readonly scheduler: Scheduler,
    private readonly notify: EventSink,
    private readonly opts: BroadcastServiceOptions,
  ) {}

  get viewerCount(): number {
    return this.viewers.size;
  }

  /** Broadcasts running here now (each with one reader), for health and tests. */
  get broadcastCount(): number {
    return this.broadcasts.size;
  }

  async play(req: PlayRequest): Promise<PlayResponse> {
    if (this.viewers.has(req.sessionRef, req.mediaSessionId)) return { ok: false, info: Info.MEDIASESSION_ID_ALREADY_IN_USE };
    const name = parseStreamName(req.name);
    if (name.kind !== "vod-live" || !req.broadcast) return { ok: false, info: Info.BAD_URI };
    const { startedAt, loop, seek } = req.broadcast;
    // One packet source per video codec the broadcast is watched in, each at the broadcast's position: H.264 and VP8
    // viewers see the same moment.
    let codec: VideoCodec;
    try {
      codec = (await this.opener.videoCodecOf(name.file, offeredVideoCodecs(req.sdp))) ?? "h264";
    } catch (err) {
      if (err instanceof MediaError) return { ok: false, info: err.info };
      console.error(`vod-live: opening ${name.file} failed`, err);
      return { ok: false, info: Info.FAILED_TO_READ_FILE };
    }
    const key = `${name.file}\u0000${startedAt}\u0000${loop}\u0000${codec}`;

    let entry = this.broadcasts.get(key);
    if (!entry) {
      entry = { key, opening: this.open(name.file, startedAt, loop, codec, seek), refs: 0 };
      this.broadcasts.set(key, entry);
    }
    // Counted before the wait, so a viewer that fails meanwhile cannot close the broadcast under this one.
    entry.refs++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.release(entry);
    };
    let broadcast: Broadcast;
    try {
      broadcast = await entry.opening;
    } catch (err) {
      release();
      if (err instanceof MediaError) return { ok: false, info: err.info };
      console.error(`vod-live: opening ${name.file} failed`, err);
      return { ok: false, info: Info.FAILED_TO_READ_FILE };
    }
    // A seek this sidecar missed (it was unreachable when the operator sought): the viewer's clock is the edge's.
    if (seek) broadcast.live.seekTo(seek);
    if (broadcast.live.ended) {
      // Joined after the end of a broadcast that does not loop (the edge starts a new one from then on).
      release();
      return { ok: false, info: Info.STREAM_NOT_FOUND };
    }

    const pc = this.makePeer();
    try {
      const media = broadcast.media;
      const answer = await answerAsSender(pc, req.sdp, media.have, this.opts.publicIp);
      const viewer: BroadcastViewer = new BroadcastViewer(
        pc,
        broadcast.live,
        RtpOut.of(answer.video),
        RtpOut.of(answer.audio),
        viewerEvents(this.notify, req, () => this.viewers.forget(req.sessionRef, req.mediaSessionId, viewer)),
        this.opts.iceTimeoutMs,
        release,
        broadcast.catchUp,
      );
      this.viewers.add(req.sessionRef, req.mediaSessionId, viewer, streamMeta(req));
      return { ok: true, sdp: answer.sdp, durationMs: broadcast.durationMs };
    } catch (err) {
      release();
      await pc.close().catch(() => {});
      return { ok: false, info: answerFailureInfo(err, `vod-live ${req.mediaSessionId}`) };
    }
  }

  /** Moves the broadcasts of `req` running here (one per codec) to the operator's seek; how many viewers moved. */
  seek(req: BroadcastSeekRequest): number {
    const prefix = `${req.file}\u0000${req.startedAt}\u0000${req.loop}\u0000`;
    let moved = 0;
    for (const entry of this.broadcasts.values()) {
      if (!entry.key.startsWith(prefix)) continue;
      void entry.opening.then((b) => b.live.seekTo(req.seek)).catch(() => undefined);
      moved += entry.refs;
    }
    return moved;
  }

  private async open(file: string, startedAt: number, loop: boolean, codec: VideoCodec, seek: BroadcastSeekRequest["seek"] | undefined): Promise<Broadcast> {
    const media = await this.opener.open(file, { videoCodecs: new Set([codec]) });
    try {
      // The position is taken when the tracks are there: a copy being prepared has them a moment later.
      const source = deferredPacketSource(
        media.tracks.then(({ video, audio }) =>
          createVodPacketSource({
            ...(video ? { video } : {}),
            ...(audio ? { audio } : {}),
            startMs: Math.max(0, broadcastPositionMs({ startedAt, seek }, Date.now())),
            loop,
            ...(this.opts.store ? { store: this.opts.store } : {}),
          }),
        ),
      );
      const live = new LiveSource(source, startedAt, this.scheduler, this.opts.spread, seek);
      const speed = this.opts.catchUpSpeed ?? DEFAULT_CATCH_UP_SPEED;
      const store = this.opts.store;
      const catchUp: CatchUpOptions | undefined =
        speed > 1 && media.have.video
          ? {
              speed,
              open: (positionMs) => {
                const replay = live.replayFrom(positionMs);
                if (replay) return replay;
                mediaCounters.liveCatchUpsFromFile++;
                return deferredPacketSource(
                  media.tracks.then(({ video }) =>
                    createVodPacketSource({ ...(video ? { video } : {}), startMs: positionMs, startSide: "before", loop, ...(store ? { store } : {}) }),
                  ),
                );
              },
            }
          : undefined;
      // The source file's length: the deferred source knows its tracks only later, and a copy still being prepared
      // has no known length until it is finished.
      return { live, media, durationMs: Math.round(media.durationSec * 1000), catchUp };
    } catch (err) {
      await media.close();
      throw err;
    }
  }

  private release(entry: Entry): void {
    if (--entry.refs > 0) return;
    if (this.broadcasts.get(entry.key) === entry) this.broadcasts.delete(entry.key);
    entry.opening
      .then(async (b) => {
        await b.live.close();
        await b.media.close();
      })
      .catch(() => {
        /* a failed open closed its files itself and was reported to its viewers */
      });
  }

}
