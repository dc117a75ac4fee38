// Personal `vod://` playbacks on this sidecar, keyed by the edge session (sessionRef) and the SDK's mediaSessionId,
// and their seek, pause and resume (the edge's VodControlRequest).
import { Info, parseStreamName, type PlayRequest, type PlayResponse, type VodControlRequest, type VodControlResponse } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";
import type { EventSink, StateSink } from "../events/edge-notifier.ts";
import { StreamRegistry, streamMeta } from "../streams/registry.ts";
import { RtpOut } from "../streams/rtp-out.ts";
import { viewerEvents } from "../streams/viewer-events.ts";
import { answerAsSender, answerFailureInfo } from "../webrtc/answer.ts";
import { offeredVideoCodecs, offersVideoOrientation } from "../webrtc/offer.ts";
import type { PeerFactory } from "../webrtc/peer-factory.ts";
import type { MediaOpener } from "./media-opener.ts";
import { deferredPacketSource } from "./deferred-source.ts";
import { createVodPacketSource } from "./packet-source.ts";
import type { PacketStore } from "./packet-store.ts";
import type { Scheduler } from "./scheduler.ts";
import { DEFAULT_CATCH_UP_SPEED, seekSide } from "./play-clock.ts";
import { VodViewer, type VodControlOptions } from "./vod-viewer.ts";

export interface VodServiceOptions {
  publicIp: string | undefined;
  iceTimeoutMs: number;
  /** Packetized samples shared by the playbacks of a file. */
  store?: PacketStore;
  /** See SidecarConfig.catchUpSpeed (default 45). */
  catchUpSpeed?: number;
  /** See SidecarConfig.pauseTimeoutMs (default 10 min). */
  pauseTimeoutMs?: number;
  /** Where state reports go (the edge's events URL); none: nowhere. */
  onState?: StateSink;
}

export class VodService {
  readonly viewers = new StreamRegistry<VodViewer>();

  constructor(
    private readonly opener: MediaOpener,
    private readonly makePeer: PeerFactory,
    private readonly scheduler: Scheduler,
    private readonly notify: EventSink,
    private readonly opts: VodServiceOptions,
  ) {}

  get viewerCount(): number {
    return this.viewers.size;
  }

  async play(req: PlayRequest): Promise<PlayResponse> {
    if (this.viewers.has(req.sessionRef, req.mediaSessionId)) return { ok: false, info: Info.MEDIASESSION_ID_ALREADY_IN_USE };
    const name = parseStreamName(req.name);
    if (name.kind !== "vod") return { ok: false, info: Info.BAD_URI };

    let media;
    try {
      media = await this.opener.open(name.file, { orientation: offersVideoOrientation(req.sdp), videoCodecs: offeredVideoCodecs(req.sdp) });
    } catch (err) {
      if (err instanceof MediaError) return { ok: false, info: err.info };
      console.error(`vod: opening ${name.file} failed`, err);
      return { ok: false, info: Info.FAILED_TO_READ_FILE };
    }
    const durationMs = Math.round(media.durationSec * 1000);
    const startMs = req.startMs ?? 0;
    if (startMs > 0 && startMs >= durationMs) {
      await media.close();
      return { ok: false, info: Info.POSITION_PAST_END };
    }
    const catchUpSpeed = this.opts.catchUpSpeed ?? DEFAULT_CATCH_UP_SPEED;
    const onState = this.opts.onState;
    const control: VodControlOptions = {
      durationMs,
      startMs,
      catchUpSpeed,
      pauseTimeoutMs: this.opts.pauseTimeoutMs ?? 600_000,
      reportState: req.reportState === true,
      onState: (state) => onState?.(req.eventsUrl, { sessionRef: req.sessionRef, mediaSessionId: req.mediaSessionId, edgeVod: state }),
    };
    const pc = this.makePeer();
    try {
      const answer = await answerAsSender(pc, req.sdp, media.have, this.opts.publicIp);
      const sdp = answer.sdp;
      // A copy still being prepared has its tracks later: ICE and DTLS run meanwhile.
      const source = deferredPacketSource(
        media.tracks.then(({ video, audio }) =>
          createVodPacketSource({
            ...(answer.video && video ? { video } : {}),
            ...(answer.audio && audio ? { audio } : {}),
            ...(this.opts.store ? { store: this.opts.store } : {}),
            ...(startMs > 0 ? { startMs, startSide: seekSide(catchUpSpeed) } : {}),
          }),
        ),
      );
      const sourceClose = source.close.bind(source);
      // The files belong to this playback: closing the source closes them.
      source.close = async () => {
        await sourceClose();
        await media.close();
      };
      const viewer = new VodViewer(
        pc,
        source,
        RtpOut.of(answer.video),
        RtpOut.of(answer.audio),
        this.scheduler,
        viewerEvents(this.notify, req, () => this.viewers.forget(req.sessionRef, req.mediaSessionId, viewer)),
        this.opts.iceTimeoutMs,
        control,
      );
      this.viewers.add(req.sessionRef, req.mediaSessionId, viewer, streamMeta(req));
      return { ok: true, sdp };
    } catch (err) {
      await Promise.allSettled([media.close(), pc.close()]);
      return { ok: false, info: answerFailureInfo(err, `vod ${req.mediaSessionId}`) };
    }
  }

  /** A seek, pause, resume or state query of one playback here; every change is also reported as an event. */
  control(req: VodControlRequest): VodControlResponse {
    const viewer = this.viewers.get(req.sessionRef, req.mediaSessionId)?.stream;
    if (!viewer) return { ok: false, info: Info.STREAM_NOT_FOUND };
    switch (req.op) {
      case "seek": {
        if (req.positionMs === undefined) return { ok: false, info: Info.BAD_VOD_OPERATION };
        const refused = viewer.seek(req.positionMs);
        if (refused !== undefined) return { ok: false, info: refused };
        break;
      }
      case "pause":
        viewer.pause();
        break;
      case "resume":
        viewer.resume();
        break;
      case "state":
        return { ok: true, edgeVod: viewer.vodState() };
    }
    // A page that moves its playback shows where it is.
    viewer.reportStates();
    viewer.report();
    return { ok: true, edgeVod: viewer.vodState() };
  }
}
