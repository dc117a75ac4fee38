// Publishes on this sidecar, keyed by the edge session (sessionRef) and the SDK's mediaSessionId, and by stream
// name for the viewers of the live stream. The edge guarantees one publisher per name; the map here re-checks it.
import {
  Info,
  StreamStatus,
  checkPublishName,
  type PlayResponse,
  type PublishRequest,
  type RecorderStartResponse,
  type StreamEvent,
} from "@edge-vod/shared";
import type { EventSink } from "../events/edge-notifier.ts";
import { StreamRegistry, streamMeta, type RegistryEntry } from "../streams/registry.ts";
import { answerAsReceiver, answerFailureInfo } from "../webrtc/answer.ts";
import type { PeerFactory } from "../webrtc/peer-factory.ts";
import { Publisher } from "./publisher.ts";
import type { RecorderTracks } from "../record/types.ts";
import type { VideoCodec } from "../rtp/video-codec.ts";
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
          recordedTracks(answer.audio !== undefined, answer.video?.codec ?? "h264"),
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
          unpublished: (info, recordName) => event(StreamStatus.UNPUBLISHED, info, recordName),
          closed: () => this.forget(req.sessionRef, req.mediaSessionId, publisher),
        },
        this.opts.iceTimeoutMs,
      );
      this.publishers.add(req.sessionRef, req.mediaSessionId, publisher, { ...streamMeta(req), login: req.login });
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

  entries(): IterableIterator<RegistryEntry<Publisher>> {
    return this.publishers.entries();
  }

  /** Ends a publish on an operator's request; the client hears UNPUBLISHED with `info` (and the record name). */
  async terminate(sessionRef: string, mediaSessionId: string, info: string): Promise<boolean> {
    const publisher = this.publishers.get(sessionRef, mediaSessionId)?.stream;
    if (!publisher) return false;
    await publisher.terminate(info);
    return true;
  }

  /**
   * Records a running publish on demand into a file named by `fileTemplate` (else RECORD_TEMPLATE). Returns the
   * file's name while it records, or why not.
   */
  async startRecording(sessionRef: string, mediaSessionId: string, fileTemplate: string | undefined): Promise<RecorderStartResponse | null> {
    const entry = this.publishers.get(sessionRef, mediaSessionId);
    if (!entry || !entry.stream.live) return null;
    const publisher = entry.stream;
    let recording: Recording;
    try {
      recording = await Recording.start(
        fileTemplate !== undefined ? { ...this.opts.recording, template: fileTemplate } : this.opts.recording,
        { streamName: publisher.name, mediaSessionId, login: entry.meta.login ?? "" },
        recordedTracks(publisher.hasAudio, publisher.videoCodec),
      );
    } catch (err) {
      console.error(`publish ${mediaSessionId}: cannot create the record file:`, err);
      return { ok: false, error: Info.RECORD_WRITE_FAILED };
    }
    try {
      await publisher.startRecording(recording);
    } catch {
      return null;
    }
    return { ok: true, fileName: recording.fileName };
  }

  async stopRecording(sessionRef: string, mediaSessionId: string): Promise<{ found: boolean; recordName?: string }> {
    const publisher = this.publishers.get(sessionRef, mediaSessionId)?.stream;
    return publisher ? publisher.stopRecording() : { found: false };
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

/** What a publish's recording holds: its video, and its Opus (always stereo from a browser) when it sends audio. */
function recordedTracks(hasAudio: boolean, videoCodec: VideoCodec): RecorderTracks {
  return { video: true, videoCodec, audio: hasAudio ? { channels: 2 } : undefined };
}

function isFsError(err: unknown): boolean {
  return typeof err === "object" && err !== null && typeof (err as { code?: unknown }).code === "string";
}
