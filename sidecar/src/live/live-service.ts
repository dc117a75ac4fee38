// Viewers of published streams (a plain stream name), keyed like every playback by sessionRef + mediaSessionId.
import { Info, type PlayRequest, type PlayResponse } from "@edge-vod/shared";
import type { EventSink } from "../events/edge-notifier.ts";
import type { PublishService } from "../publish/publish-service.ts";
import { StreamRegistry, streamMeta } from "../streams/registry.ts";
import { viewerEvents } from "../streams/viewer-events.ts";
import { answerAsSender, answerFailureInfo } from "../webrtc/answer.ts";
import type { PeerFactory } from "../webrtc/peer-factory.ts";
import { offeredVideoCodecs } from "../webrtc/offer.ts";
import { LiveViewer } from "./live-viewer.ts";

export interface LiveServiceOptions {
  publicIp: string | undefined;
  iceTimeoutMs: number;
}

export class LiveService {
  readonly viewers = new StreamRegistry<LiveViewer>();

  constructor(
    private readonly publishers: PublishService,
    private readonly makePeer: PeerFactory,
    private readonly notify: EventSink,
    private readonly opts: LiveServiceOptions,
  ) {}

  get viewerCount(): number {
    return this.viewers.size;
  }

  async play(req: PlayRequest): Promise<PlayResponse> {
    if (this.viewers.has(req.sessionRef, req.mediaSessionId)) return { ok: false, info: Info.MEDIASESSION_ID_ALREADY_IN_USE };
    const publisher = this.publishers.find(req.name);
    if (!publisher) return { ok: false, info: Info.STREAM_NOT_FOUND };
    const codec = publisher.videoCodec;
    const offered = offeredVideoCodecs(req.sdp);
    // A browser that takes another of our codecs, not this one: say so (No common codecs is for offers we take nothing of).
    if (offered.size > 0 && !offered.has(codec)) return { ok: false, info: Info.STREAM_CODEC_NOT_SUPPORTED };
    const pc = this.makePeer();
    try {
      const have = { video: true, audio: publisher.hasAudio, videoCodec: codec, profileIdc: publisher.profileIdc };
      const answer = await answerAsSender(pc, req.sdp, have, this.opts.publicIp);
      const viewer: LiveViewer = new LiveViewer(
        pc,
        publisher,
        answer,
        viewerEvents(this.notify, req, () => this.viewers.forget(req.sessionRef, req.mediaSessionId, viewer)),
        this.opts.iceTimeoutMs,
      );
      this.viewers.add(req.sessionRef, req.mediaSessionId, viewer, streamMeta(req));
      return { ok: true, sdp: answer.sdp };
    } catch (err) {
      await pc.close().catch(() => {});
      return { ok: false, info: answerFailureInfo(err, `live ${req.mediaSessionId}`) };
    }
  }
}
