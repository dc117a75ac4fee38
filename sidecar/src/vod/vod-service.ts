import { randomUUID } from "node:crypto";
// Personal `vod://` playbacks on this sidecar, keyed by the edge session (sessionRef) and the SDK's mediaSessionId.
import { Info, StreamStatus, parseStreamName, type PlayRequest, type PlayResponse } from "@edge-vod/shared";
import { MediaError } from "../files/file-access.ts";
import type { EventSink } from "../events/edge-notifier.ts";
import { OfferError, finishAnswer, shapeOffer } from "../webrtc/offer.ts";
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

const key = (sessionRef: string, mediaSessionId: string) => `${sessionRef}\u0000${mediaSessionId}`;

export class VodService {
  private readonly viewers = new Map<string, VodViewer>();

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
    const k = key(req.sessionRef, req.mediaSessionId);
    if (this.viewers.has(k)) return { ok: false, info: Info.MEDIASESSION_ID_ALREADY_IN_USE };
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
      const offer = shapeOffer(req.sdp, media.profileIdc);
      const video = media.video && offer.h264Pt !== undefined ? media.video : undefined;
      const audio = media.audio && offer.opusPt !== undefined ? media.audio : undefined;
      if (!video && !audio) {
        await Promise.allSettled([media.close(), pc.close()]);
        return { ok: false, info: Info.NO_COMMON_CODECS };
      }
      await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      // Transceivers made from a recvonly offer default to inactive in werift until told they send.
      // One msid for both tracks: the SDK attaches `event.streams[0]` to its <video>, which needs a stream id.
      const streamId = `vod-${randomUUID()}`;
      for (const t of pc.getTransceivers()) {
        const sends = (t.kind === "video" && video) || (t.kind === "audio" && audio);
        t.setDirection(sends ? "sendonly" : "inactive");
        t.sender.streamId = streamId;
      }
      const senderOf = (kind: string) => pc.getTransceivers().find((t) => t.kind === kind)?.sender;
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      const sdp = finishAnswer(pc.localDescription?.sdp ?? "", this.opts.publicIp);

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
        VodViewer.track(video ? senderOf("video") : undefined, offer.h264Pt),
        VodViewer.track(audio ? senderOf("audio") : undefined, offer.opusPt),
        this.scheduler,
        {
          playing: () => notify(StreamStatus.PLAYING),
          ended: (status, info) => {
            if (this.viewers.get(k) === viewer) this.viewers.delete(k);
            notify(status, info);
          },
        },
        this.opts.iceTimeoutMs,
      );
      this.viewers.set(k, viewer);
      return { ok: true, sdp };
    } catch (err) {
      await Promise.allSettled([media.close(), pc.close()]);
      if (err instanceof OfferError) return { ok: false, info: Info.SDP_INVALID };
      // werift throws plain Errors for offers it cannot answer (no codec, broken m-lines).
      console.warn(`vod: answering offer for ${req.mediaSessionId} failed: ${String(err)}`);
      return { ok: false, info: /codec/i.test(String(err)) ? Info.NO_COMMON_CODECS : Info.SDP_INVALID };
    }
  }

  async stop(sessionRef: string, mediaSessionId: string): Promise<boolean> {
    const k = key(sessionRef, mediaSessionId);
    const viewer = this.viewers.get(k);
    if (!viewer) return false;
    this.viewers.delete(k);
    await viewer.close();
    return true;
  }

  async release(sessionRef: string): Promise<number> {
    const prefix = `${sessionRef}\u0000`;
    const mine = [...this.viewers.entries()].filter(([k]) => k.startsWith(prefix));
    for (const [k] of mine) this.viewers.delete(k);
    await Promise.allSettled(mine.map(([, v]) => v.close()));
    return mine.length;
  }

  async closeAll(): Promise<void> {
    const all = [...this.viewers.values()];
    this.viewers.clear();
    await Promise.allSettled(all.map((v) => v.close()));
  }
}
