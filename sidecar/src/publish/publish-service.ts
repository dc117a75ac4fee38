// Publishes on this sidecar, keyed by the edge session (sessionRef) and the SDK's mediaSessionId, and by stream
// name for the viewers of the live stream. The edge guarantees one publisher per name; the map here re-checks it.
import { Info, StreamStatus, checkPublishName, type PlayResponse, type PublishRequest, type StreamEvent } from "@edge-vod/shared";
import type { EventSink } from "../events/edge-notifier.ts";
import { StreamRegistry } from "../streams/registry.ts";
import { answerAsReceiver, answerFailureInfo } from "../webrtc/answer.ts";
import type { PeerFactory } from "../webrtc/peer-factory.ts";
import { Publisher } from "./publisher.ts";
import { Recording, type RecordingConfig } from "./recording.ts";

export interface PublishServiceOptions {
  publicIp: string | undefined;
  iceTimeoutMs: number;
  rtpActivityTimeoutMs: number;
  recording: RecordingConfig;
}

export interface StopResult {
  found: boolean;
  recordName?: string;
}

export class PublishService {
  private readonly publishers = new StreamRegistry<Publisher>();
  private readonly byName = new Map<string, Publisher>();
  /** One timer for every publisher's inactivity check. */
  private readonly watchdog: NodeJS.Timeout;

  constructor(
    private readonly makePeer: PeerFactory,
    private readonly notify: EventSink,
    private readonly opts: PublishServiceOptions,
  ) {
    this.watchdog = setInterval(() => {
      const now = performance.now();
      for (const p of this.publishers.values()) p.checkActivity(now, opts.rtpActivityTimeoutMs);
    }, 1000);
    this.watchdog.unref();
  }

  get publisherCount(): number {
    return this.publishers.size;
  }

  /** The live publisher of a stream name, for its viewers. */
  find(name: string): Publisher | undefined {
    const p = this.byName.get(name);
    return p?.live ? p : undefined;
  }

  async publish(input: PublishRequest): Promise<PlayResponse> {
    const req = { ...input, login: input.login ?? "" };
    if (this.publishers.has(req.sessionRef, req.mediaSessionId)) return { ok: false, info: Info.MEDIASESSION_ID_ALREADY_IN_USE };
    if (checkPublishName(req.name) !== null) return { ok: false, info: Info.BAD_URI };
    if (this.find(req.name)) return { ok: false, info: Info.STREAM_NAME_ALREADY_IN_USE };

    const pc = this.makePeer();
    let recording: Recording | undefined;
    try {
      const answer = await answerAsReceiver(pc, req.sdp, this.opts.publicIp);
      if (req.record) {
        recording = await Recording.start(
          this.opts.recording,
          { streamName: req.name, mediaSessionId: req.mediaSessionId, login: req.login },
          { video: true, audio: answer.audio ? { channels: 2 } : undefined },
        );
      }
      const event = (status: StreamEvent["status"], info?: string, recordName?: string) =>
        this.notify(req.eventsUrl, {
          sessionRef: req.sessionRef,
          mediaSessionId: req.mediaSessionId,
          status,
          ...(info !== undefined ? { info } : {}),
          ...(recordName !== undefined ? { recordName } : {}),
        });
      const publisher: Publisher = new Publisher(
        req.name,
        pc,
        answer,
        recording,
        {
          publishing: () => event(StreamStatus.PUBLISHING),
          failed: (info, recordName) => event(StreamStatus.FAILED, info, recordName),
          closed: () => this.forget(req.sessionRef, req.mediaSessionId, publisher),
        },
        this.opts.iceTimeoutMs,
      );
      this.publishers.add(req.sessionRef, req.mediaSessionId, publisher);
      this.byName.set(req.name, publisher);
      return { ok: true, sdp: answer.sdp };
    } catch (err) {
      await Promise.allSettled([pc.close(), recording?.finish()]);
      if (recording === undefined && req.record && isFsError(err)) {
        console.error(`publish ${req.mediaSessionId}: cannot create the record file:`, err);
        return { ok: false, info: Info.RECORD_WRITE_FAILED };
      }
      return { ok: false, info: answerFailureInfo(err, `publish ${req.mediaSessionId}`) };
    }
  }

  /** Ends a publish on the edge's request; the edge tells the client (UNPUBLISHED with the record name). */
  async stop(sessionRef: string, mediaSessionId: string): Promise<StopResult> {
    const publisher = this.publishers.take(sessionRef, mediaSessionId);
    if (!publisher) return { found: false };
    const recordName = await publisher.stop();
    return recordName !== undefined ? { found: true, recordName } : { found: true };
  }

  /** Publishers of a session that is gone: their recordings are finished and announced to the hook as usual. */
  release(sessionRef: string): Promise<number> {
    return this.publishers.release(sessionRef);
  }

  async closeAll(): Promise<void> {
    clearInterval(this.watchdog);
    await this.publishers.closeAll();
  }

  private forget(sessionRef: string, mediaSessionId: string, publisher: Publisher): void {
    this.publishers.forget(sessionRef, mediaSessionId, publisher);
    if (this.byName.get(publisher.name) === publisher) this.byName.delete(publisher.name);
  }
}

function isFsError(err: unknown): boolean {
  return typeof err === "object" && err !== null && typeof (err as { code?: unknown }).code === "string";
}
