// Personal `vod://` playbacks on this sidecar, keyed by the edge session (sessionRef) and the SDK's mediaSessionId.
import { Info, parseStreamName, type PlayRequest, type PlayResponse } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";
import type { EventSink } from "../events/edge-notifier.ts";
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
import { VodViewer } from "./vod-viewer.ts";

export interface VodServiceOptions {
  publicIp: string | undefined;
  iceTimeoutMs: number;
  /** Packetized samples shared by the playbacks of a file. */
  store?: PacketStore;
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
      );
      this.viewers.add(req.sessionRef, req.mediaSessionId, viewer, streamMeta(req));
      return { ok: true, sdp };
    } catch (err) {
      await Promise.allSettled([media.close(), pc.close()]);
      return { ok: false, info: answerFailureInfo(err, `vod ${req.mediaSessionId}`) };
    }
  }
}
