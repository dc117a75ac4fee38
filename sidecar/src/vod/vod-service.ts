// Personal `vod://` playbacks on this sidecar, keyed by the edge session (sessionRef) and the SDK's mediaSessionId.
import { Info, StreamStatus, parseStreamName, type PlayRequest, type PlayResponse } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";
import type { EventSink } from "../events/edge-notifier.ts";
import { StreamRegistry } from "../streams/registry.ts";
import { answerAsSender, answerFailureInfo } from "../webrtc/answer.ts";
import type { PeerFactory } from "../webrtc/peer-factory.ts";
import type { MediaOpener } from "./media-opener.ts";
import { createVodPacketSource } from "./packet-source.ts";
import type { Scheduler } from "./scheduler.ts";
import { VodViewer } from "./vod-viewer.ts";

export interface VodServiceOptions {
  publicIp: string | undefined;
  iceTimeoutMs: number;
  maxViewers: number;
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
    if (this.viewers.size >= this.opts.maxViewers) return { ok: false, info: Info.SERVER_OVERLOADED };
    const name = parseStreamName(req.name);
    if (name.kind === "live") return { ok: false, info: Info.STREAM_NOT_FOUND };
    if (name.kind === "vod-live") return { ok: false, info: Info.NOT_SUPPORTED };

    let media;
    try {
      media = await this.opener.open(name.file);
    } catch (err) {
      if (err instanceof MediaError) return { ok: false, info: err.info };
      console.error(`vod: opening ${name.file} failed`, err);
      return { ok: false, info: Info.FAILED_TO_READ_FILE };
    }
    const pc = this.makePeer();
    try {
      const answer = await answerAsSender(pc, req.sdp, { video: !!media.video, audio: !!media.audio, profileIdc: media.profileIdc }, this.opts.publicIp);
      const video = answer.video ? media.video : undefined;
      const audio = answer.audio ? media.audio : undefined;
      const sdp = answer.sdp;

      const source = createVodPacketSource({ ...(video ? { video } : {}), ...(audio ? { audio } : {}) });
      const sourceClose = source.close.bind(source);
      // The files belong to this playback: closing the source closes them.
      source.close = async () => {
        await sourceClose();
        await media.close();
      };
      const notify = (status: typeof StreamStatus.PLAYING | typeof StreamStatus.STOPPED | typeof StreamStatus.FAILED, info?: string) =>
        this.notify(req.eventsUrl, {
          sessionRef: req.sessionRef,
          mediaSessionId: req.mediaSessionId,
          status,
          ...(info !== undefined ? { info } : {}),
        });
      const viewer = new VodViewer(
        pc,
        source,
        VodViewer.track(answer.video?.sender, answer.video?.payloadType),
        VodViewer.track(answer.audio?.sender, answer.audio?.payloadType),
        this.scheduler,
        {
          playing: () => notify(StreamStatus.PLAYING),
          ended: (status, info) => {
            this.viewers.forget(req.sessionRef, req.mediaSessionId, viewer);
            notify(status, info);
          },
        },
        this.opts.iceTimeoutMs,
      );
      this.viewers.add(req.sessionRef, req.mediaSessionId, viewer);
      return { ok: true, sdp };
    } catch (err) {
      await Promise.allSettled([media.close(), pc.close()]);
      return { ok: false, info: answerFailureInfo(err, `vod ${req.mediaSessionId}`) };
    }
  }
}
