// A Node stand-in for the Web SDK's signalling: the same frames, field for field and in the same key order, as
// @flashphoner/websdk 2.0.276 sends them (src/flashphoner-core.js: connection ~615, playStream ~2100,
// publishStream ~2182, stopStream/unPublishStream ~2376, pong ~654). Media is someone else's job (werift viewer).
import { randomUUID } from "node:crypto";

export interface ServerFrame {
  message: string;
  data: unknown[];
  raw: string;
}

/** data[0] of notifyStreamStatusEvent, as far as the SDK reads it. */
export interface StatusEvent {
  mediaSessionId: string;
  name?: string;
  published?: boolean;
  status: string;
  info?: string;
  recordName?: string;
  [key: string]: unknown;
}

export interface SdkClientOptions {
  /** Answer server pings with pong as the SDK always does. Turn off to play a dead client. Default true. */
  answerPings?: boolean;
  /** Default 10 s. */
  connectTimeoutMs?: number;
}

export interface PlayOptions {
  name: string;
  sdp: string;
  /** The SDK makes a UUID (v1); any unique string works. */
  mediaSessionId?: string;
  /** createStream({custom}): sent as the frame's `custom`, as the SDK does. */
  custom?: unknown;
}

export interface PublishOptions extends PlayOptions {
  record?: boolean;
  hasAudio?: boolean;
  hasVideo?: boolean;
}

const DEFAULT_TIMEOUT_MS = 10_000;

interface LocalStream {
  name: string;
  published: boolean;
  /** What the SDK keeps as status_: PENDING after play/publish, then whatever the server says. */
  status: string;
}

interface Waiter {
  predicate: (f: ServerFrame) => boolean;
  resolve: (f: ServerFrame) => void;
}

export class SdkClient {
  /** Every frame the server sent, in order. Frames that are not JSON are kept with message "<invalid>". */
  readonly frames: ServerFrame[] = [];
  /** Frames that were not text (the SDK would see them as binaryData). */
  binaryFrames = 0;
  answerPings: boolean;
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly streams = new Map<string, LocalStream>();
  private waiters = new Set<Waiter>();

  private constructor(
    private readonly ws: WebSocket,
    opts: SdkClientOptions,
  ) {
    this.answerPings = opts.answerPings ?? true;
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason }));
    });
    ws.addEventListener("message", (e) => this.onMessage(e.data));
  }

  /** Opens the socket (as `new WebSocket(urlServer)`); does not send `connection` yet. */
  static async open(url: string, opts: SdkClientOptions = {}): Promise<SdkClient> {
    const ws = new WebSocket(url);
    const client = new SdkClient(ws, opts);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.close();
        reject(new Error(`WebSocket to ${url} did not open`));
      }, opts.connectTimeoutMs ?? DEFAULT_TIMEOUT_MS);
      ws.addEventListener("open", () => {
        clearTimeout(timer);
        resolve();
      });
      ws.addEventListener("error", () => {
        clearTimeout(timer);
        reject(new Error(`WebSocket to ${url} failed`));
      });
    });
    return client;
  }

  /** Opens the socket and completes the handshake (connection → getUserData), like createSession → ESTABLISHED. */
  static async connect(url: string, opts: SdkClientOptions = {}): Promise<SdkClient> {
    const client = await SdkClient.open(url, opts);
    await client.establish();
    return client;
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  /** The SDK's send(): one object wrapped in `data`, nothing sent unless the socket is open. */
  send(message: string, data: unknown): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ message, data: [data] }));
  }

  /** Anything at all, for malformed-input tests. */
  sendRaw(data: string | ArrayBuffer | Uint8Array): void {
    this.ws.send(data);
  }

  /** The `connection` frame as the SDK sends it with default createSession options. */
  sendConnection(extra: Record<string, unknown> = {}): void {
    this.send("connection", {
      appKey: "defaultApp",
      mediaProviders: ["WebRTC"],
      clientVersion: "2.0",
      clientOSVersion: "5.0 (X11; Linux x86_64)",
      clientBrowserVersion: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36",
      msePacketizationVersion: 2,
      ...extra,
    });
  }

  /** Sends `connection` and resolves with getUserData's object (the SDK's ESTABLISHED). */
  async establish(extra: Record<string, unknown> = {}, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Record<string, unknown>> {
    const from = this.frames.length;
    this.sendConnection(extra);
    const frame = await this.waitFor((f) => f.message === "getUserData", { from, timeoutMs, label: "getUserData" });
    return frame.data[0] as Record<string, unknown>;
  }

  /** stream.play(): the playStream frame with a recvonly offer. Returns the mediaSessionId. */
  playStream(opts: PlayOptions): string {
    const id = opts.mediaSessionId ?? randomUUID();
    this.streams.set(id, { name: opts.name, published: false, status: "PENDING" });
    this.send("playStream", {
      mediaSessionId: id,
      name: opts.name,
      published: false,
      hasVideo: true,
      hasAudio: true,
      status: "PENDING",
      record: false,
      width: 0,
      height: 0,
      mediaProvider: "WebRTC",
      sdp: opts.sdp,
      bitrate: 0,
      minBitrate: 0,
      maxBitrate: 0,
      quality: 0,
      ...(opts.custom !== undefined ? { custom: opts.custom } : {}),
    });
    return id;
  }

  /**
   * session.sendData(payload): the frame the SDK sends, and the DataStatusEvent that settles its promise (data[0],
   * operationId included).
   */
  async sendData(payload: unknown, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ operationId: string; status: string; info?: string; payload?: unknown }> {
    const operationId = randomUUID();
    const from = this.frames.length;
    this.send("sendData", { operationId, payload });
    const frame = await this.waitFor(
      (f) => f.message === "DataStatusEvent" && (f.data[0] as { operationId?: unknown } | undefined)?.operationId === operationId,
      { from, timeoutMs, label: `DataStatusEvent of ${operationId}` },
    );
    return frame.data[0] as { operationId: string; status: string; info?: string; payload?: unknown };
  }

  /** stream.publish(). Returns the mediaSessionId. */
  publishStream(opts: PublishOptions): string {
    const id = opts.mediaSessionId ?? randomUUID();
    this.streams.set(id, { name: opts.name, published: true, status: "PENDING" });
    this.send("publishStream", {
      mediaSessionId: id,
      name: opts.name,
      published: true,
      hasVideo: opts.hasVideo ?? true,
      hasAudio: opts.hasAudio ?? true,
      status: "PENDING",
      record: opts.record ?? false,
      mediaProvider: "WebRTC",
      sdp: opts.sdp,
      bitrate: 0,
      minBitrate: 0,
      maxBitrate: 0,
    });
    return id;
  }

  /**
   * stream.stop() of a player. Unlike the SDK (which re-tries every 200 ms while PENDING and sends nothing once
   * FAILED) it always sends, so tests can also stop streams the server does not know.
   */
  stopStream(mediaSessionId: string): void {
    this.sendStop("stopStream", mediaSessionId, false);
  }

  /** stream.stop() of a publisher. */
  unPublishStream(mediaSessionId: string): void {
    this.sendStop("unPublishStream", mediaSessionId, true);
  }

  private sendStop(message: string, id: string, published: boolean): void {
    const local = this.streams.get(id);
    this.send(message, {
      mediaSessionId: id,
      name: local?.name ?? "",
      published: local?.published ?? published,
      hasVideo: true,
      hasAudio: true,
      status: local?.status ?? "PENDING",
      record: false,
    });
  }

  /** Local status of a stream, as `stream.status()` would report it. */
  streamStatus(mediaSessionId: string): string | undefined {
    return this.streams.get(mediaSessionId)?.status;
  }

  /**
   * The first frame (at index `from` or later, default 0: frames already received count) that matches.
   * Rejects after `timeoutMs` with the frames seen so far in the message.
   */
  waitFor(
    predicate: (f: ServerFrame) => boolean,
    opts: { from?: number; timeoutMs?: number; label?: string } = {},
  ): Promise<ServerFrame> {
    const seen = this.frames.slice(opts.from ?? 0).find(predicate);
    if (seen) return Promise.resolve(seen);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (f) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const recent = this.frames.slice(-10).map((f) => f.raw.slice(0, 300)).join("\n  ");
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${opts.label ?? "a frame"}; last frames:\n  ${recent}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** The status event of a stream, optionally with a given status (or one of several). */
  async waitForStatus(
    mediaSessionId: string,
    status?: string | string[],
    opts: { from?: number; timeoutMs?: number } = {},
  ): Promise<StatusEvent> {
    const wanted = status === undefined ? undefined : Array.isArray(status) ? status : [status];
    const frame = await this.waitFor(
      (f) => {
        const ev = statusEventOf(f);
        return ev?.mediaSessionId === mediaSessionId && (wanted === undefined || wanted.includes(ev.status));
      },
      { ...opts, label: `${wanted?.join("|") ?? "a status"} of ${mediaSessionId}` },
    );
    return statusEventOf(frame)!;
  }

  /** Every status event received for a stream, in order. */
  statusEvents(mediaSessionId: string): StatusEvent[] {
    return this.frames.map(statusEventOf).filter((ev): ev is StatusEvent => ev?.mediaSessionId === mediaSessionId);
  }

  /** Closes the socket and resolves once it is closed. */
  async close(code = 1000, reason = ""): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    return this.closed;
  }

  private onMessage(data: unknown): void {
    if (typeof data !== "string") {
      this.binaryFrames++;
      return;
    }
    let frame: ServerFrame;
    try {
      const json = JSON.parse(data) as { message?: unknown; data?: unknown };
      frame = {
        message: typeof json.message === "string" ? json.message : "<invalid>",
        data: Array.isArray(json.data) ? json.data : [],
        raw: data,
      };
    } catch {
      frame = { message: "<invalid>", data: [], raw: data };
    }
    this.frames.push(frame);
    if (frame.message === "ping" && this.answerPings) this.send("pong", null);
    const ev = statusEventOf(frame);
    if (ev) {
      const local = this.streams.get(ev.mediaSessionId);
      if (local) local.status = ev.status;
    }
    for (const w of [...this.waiters]) if (w.predicate(frame)) w.resolve(frame);
  }
}

/** data[0] of a notifyStreamStatusEvent frame, or undefined for any other frame. */
export function statusEventOf(frame: ServerFrame): StatusEvent | undefined {
  if (frame.message !== "notifyStreamStatusEvent") return undefined;
  const ev = frame.data[0] as StatusEvent | undefined;
  return ev && typeof ev === "object" && typeof ev.mediaSessionId === "string" ? ev : undefined;
}
