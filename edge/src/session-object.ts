// One Durable Object per WebSocket connection: the Web SDK's session and its streams. It uses the hibernation API,
// so the object may be evicted between any two events; everything that has to outlive that lives in ctx.storage.
//
// Storage layout (KV API of the SQLite-backed object):
//   "meta"              SessionMeta: where the sidecar posts events, and the session id once `connection` came
//   "missedPings"       number of server pings sent since the client's last frame
//   "stream:<msid>"     StoredStream for every stream that is not over yet (terminal streams are deleted)
//   "healthMisses"      SIDECAR_URL sidecars (by URL) that missed health checks in a row, while streams run there
//   alarm               the keep-alive tick, which also fails streams stuck in PENDING
// All of it is removed when the socket ends. A published stream also holds its name in the name's StreamObject, and a
// `vod-live://` viewer is counted in the broadcast's BroadcastObject; both are let go when the stream ends, however
// it ends (streamGone).
import { DurableObject } from "cloudflare:workers";
import {
  EDGE_EVENTS_PATH,
  FRAME_LIMITS,
  Info,
  StreamStatus,
  TERMINAL_STATUSES,
  checkFileName,
  checkPublishName,
  parseClientFrame,
  parseStreamName,
  serverFrames,
  RestHookMethod,
  VOD_STATE_EVENT_TYPE,
  isVodPayload,
  parseVodCommand,
  startPositionOf,
  verifyAuthToken,
  safeEqual,
  toHex,
  type ConnectionData,
  type ParseResult,
  type PlayStreamData,
  type SendDataData,
  type StopStreamData,
  type VodStateEvent,
  type StreamEvent,
  type StreamStatusEvent,
  type StreamHookBody,
} from "@edge-vod/shared";
import { frameLimits, keepAliveConfig, restHookConfig, sidecarHealthMisses, streamStartTimeoutMs, vodLiveLoops, type Env } from "./config.ts";
import type { BroadcastObject, Joined } from "./broadcast-object.ts";
import { FrameLimiter } from "./frame-limiter.ts";
import { authorize, notify } from "./rest-hooks.ts";
import { REFUSED_CLOSE_CODE, refuseSession } from "./session-refusal.ts";
import { SidecarClient, type OfferResult } from "./sidecar-client.ts";
import { STATIC_SIDECAR_ID, type Placement } from "./sidecar-registry.ts";
import { choose, elsewhere, lost as lostOf, markDownAll, registryView } from "./registry-view.ts";
import type { RestVodEntry, StreamObject } from "./stream-object.ts";

const META_KEY = "meta";
const MISSED_PINGS_KEY = "missedPings";
const STREAM_PREFIX = "stream:";
const HEALTH_MISSES_KEY = "healthMisses";

/** 1001 "going away": the server gives up on this connection; not 1011, nothing went wrong on our side. */
const KEEPALIVE_CLOSE_CODE = 1001;

interface SessionMeta {
  eventsUrl: string;
  /** Set by the client's `connection`; until then the session is not ESTABLISHED. */
  sessionId?: string;
  /** `connection`'s appKey, for the REST hooks. */
  appKey?: string;
  /** Host of the WebSocket upgrade: the REST hooks' nodeId. */
  nodeId?: string;
  /** Set for a WHEP/WHIP resource: a session without a socket, holding one stream, reached by its URL's secret. */
  resource?: { kind: "whep" | "whip"; secret: string; mediaSessionId: string; ufrag?: string };
}

interface StoredStream {
  name: string;
  published: boolean;
  /** A publish with `record: true`: its events carry `record` and, at the end, `recordName`. */
  record?: boolean;
  status: StreamStatus;
  /** Identifies one play request, so a slow sidecar answer never lands on a later stream that reused the id. */
  attempt: string;
  /** When the request came (ms since epoch), for the PENDING watchdog. */
  since: number;
  /** The sidecar it runs on (absent in streams stored before sidecars were placed: the static one). */
  sidecar?: Placement;
}

/** A WHEP or WHIP POST, checked by the Worker (content type, size, name). */
export interface ResourceRequest {
  kind: "whep" | "whip";
  /** The stream name as the SDK would send it: `vod://f.mp4`, `vod-live://f.mp4`, a published name. */
  name: string;
  sdp: string;
  record: boolean;
  /** The Bearer token, checked as the SDK's authToken. */
  authToken?: string;
  /** The POST's URL: its origin receives the sidecar's events, its host is the hooks' nodeId. */
  url: string;
}

export type ResourceOutcome = { ok: true; sdp: string; secret: string } | { ok: false; info: string };

/** What a play or publish request came to: the SDP answer sent, or the info of its FAILED. */
export type StreamOutcome = { ok: true; sdp: string } | { ok: false; info: string };

/** Tries of other sidecars after one refused the connection, per stream request. */
const MAX_PLACEMENT_RETRIES = 2;

/** Fields of `connection` worth handing back in getUserData; SIP credentials and the like stay out. */
const ECHOED_CONNECTION_FIELDS = [
  "appKey",
  "clientVersion",
  "clientOSVersion",
  "clientBrowserVersion",
  "msePacketizationVersion",
  "custom",
] as const;

function eventsOrigin(env: Env, upgradeUrl: string): string {
  if (env.EDGE_EVENTS_ORIGIN) {
    try {
      return new URL(env.EDGE_EVENTS_ORIGIN).origin;
    } catch {
      console.warn(`EDGE_EVENTS_ORIGIN is not a URL (${env.EDGE_EVENTS_ORIGIN}); using the upgrade's origin`);
    }
  }
  return new URL(upgradeUrl).origin;
}

export class SessionObject extends DurableObject<Env> {
  async fetch(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Expected a WebSocket upgrade", { status: 426 });
    }
    if (this.ctx.getWebSockets().length > 0) {
      // Ids come from newUniqueId(); a second upgrade here is a routing bug, not a client to serve.
      return new Response("Session already has a connection", { status: 409 });
    }
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    const meta: SessionMeta = { eventsUrl: eventsOrigin(this.env, request.url) + EDGE_EVENTS_PATH, nodeId: new URL(request.url).host };
    await this.ctx.storage.put(META_KEY, meta);
    await this.ctx.storage.setAlarm(Date.now() + keepAliveConfig(this.env).intervalMs);
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    // Closing (refused, or over its rate): what it still sent is not read.
    if (ws.readyState !== WebSocket.OPEN) return;
    if (!this.frameLimiter().take()) return this.closeOverRate(ws);
    try {
      await this.onFrame(message);
    } catch (err) {
      console.error(`session ${this.sessionRef}: frame handler failed:`, err);
    }
  }

  async webSocketClose(ws: WebSocket, _code: number, _reason: string, _wasClean: boolean): Promise<void> {
    // Before compatibility date 2026-04-07 the runtime does not answer the peer's Close frame by itself.
    try {
      ws.close(1000, "");
    } catch {
      /* already closed */
    }
    await this.endSession();
  }

  async webSocketError(_ws: WebSocket, err: unknown): Promise<void> {
    console.warn(`session ${this.sessionRef}: socket error:`, err);
    await this.endSession();
  }

  async alarm(): Promise<void> {
    try {
      await this.keepAliveTick();
    } catch (err) {
      console.error(`session ${this.sessionRef}: keep-alive tick failed:`, err);
      // Without a next tick a dead client would keep the sidecar streams forever.
      if (this.ctx.getWebSockets().length > 0) {
        await this.ctx.storage.setAlarm(Date.now() + keepAliveConfig(this.env).intervalMs).catch(() => {});
      }
    }
  }

  /**
   * A stream event from the sidecar, delivered by the Worker (RPC). Returns whether it reached a live stream.
   */
  async streamEvent(event: StreamEvent): Promise<boolean> {
    try {
      if (event.sessionRef !== this.sessionRef || !(await this.isOpen())) return false;
      const stream = await this.getStream(event.mediaSessionId);
      if (!stream || TERMINAL_STATUSES.has(stream.status)) return false;
      if (TERMINAL_STATUSES.has(event.status)) {
        await this.deleteStream(event.mediaSessionId);
        await this.streamGone(event.mediaSessionId, stream);
        // A WHEP/WHIP resource is its one stream: gone with it (later calls on its URL get 404).
        if (await this.isResource()) await this.endSession();
      } else {
        await this.putStream(event.mediaSessionId, { ...stream, status: event.status });
      }
      this.sendStatus({
        mediaSessionId: event.mediaSessionId,
        name: stream.name,
        published: stream.published,
        status: event.status,
        ...(stream.record ? { record: true } : {}),
        ...(event.info !== undefined ? { info: event.info } : {}),
        ...(event.recordName !== undefined ? { recordName: event.recordName } : {}),
      });
      return true;
    } catch (err) {
      console.error(`session ${this.sessionRef}: stream event failed:`, err);
      return false;
    }
  }

  /** A `vod://` playback's state from its sidecar: the page hears it as a stream event. */
  async vodStateEvent(event: VodStateEvent): Promise<boolean> {
    if (event.sessionRef !== this.sessionRef || this.ctx.getWebSockets().length === 0) return false;
    const stream = await this.getStream(event.mediaSessionId);
    if (!stream || TERMINAL_STATUSES.has(stream.status)) return false;
    this.send(serverFrames.streamEvent({ mediaSessionId: event.mediaSessionId, type: VOD_STATE_EVENT_TYPE, payload: { edgeVod: event.edgeVod } }));
    return true;
  }

  /** Asked by a StreamObject whose name this session holds: is that publish still going on here? */
  async hasStream(mediaSessionId: string): Promise<boolean> {
    if (!(await this.isOpen())) return false;
    const stream = await this.getStream(mediaSessionId);
    return stream !== undefined && !TERMINAL_STATUSES.has(stream.status);
  }

  // ---- WHEP / WHIP resources (whip-whep.ts): a session without a socket, its stream started from the POST

  /**
   * Opens a WHEP playback or WHIP publish in this (new) object: admission as for `connection` (the Bearer token is
   * the SDK's authToken, the `connect` hook is asked), then the same stream request as the SDK's playStream or
   * publishStream. Resolves with the answer and the resource's secret, or the refusal's info.
   */
  async openResource(req: ResourceRequest): Promise<ResourceOutcome> {
    if (this.ctx.getWebSockets().length > 0 || (await this.getMeta())) return { ok: false, info: Info.FAILED_BY_ERROR };
    const secret = toHex(crypto.getRandomValues(new Uint8Array(16)));
    const mediaSessionId = crypto.randomUUID();
    const sessionId = crypto.randomUUID();
    // The offer's ICE user fragment: a PATCH with another one asks for an ICE restart, not a trickle.
    const ufrag = /^a=ice-ufrag:(\S+)/m.exec(req.sdp)?.[1];
    const resource = { kind: req.kind, secret, mediaSessionId, ...(ufrag ? { ufrag } : {}) };
    const meta = { eventsUrl: eventsOrigin(this.env, req.url) + EDGE_EVENTS_PATH, nodeId: new URL(req.url).host, sessionId, appKey: req.kind, resource } satisfies SessionMeta;
    const refusal = await this.admission({ appKey: req.kind, ...(req.authToken !== undefined ? { authToken: req.authToken } : {}), mediaProviders: ["WebRTC"] }, meta);
    if (refusal !== undefined) return { ok: false, info: refusal };
    await this.ctx.storage.put(META_KEY, meta);
    await this.ctx.storage.setAlarm(Date.now() + keepAliveConfig(this.env).intervalMs);
    const published = req.kind === "whip";
    const outcome = await this.onStreamRequest({ mediaSessionId, name: req.name, sdp: req.sdp, record: req.record, hasVideo: true, hasAudio: true }, published);
    if (!outcome.ok) {
      await this.endSession();
      return outcome;
    }
    return { ok: true, sdp: outcome.sdp, secret };
  }

  /**
   * A call on a resource's URL: `look` (PATCH: whether it exists, and the offer's ICE user fragment), `delete`
   * (DELETE: the stream ends as by stopStream or unPublishStream). Undefined when there is no such resource.
   */
  async resourceCall(op: "look" | "delete", secret: string): Promise<{ ufrag?: string } | undefined> {
    const meta = await this.getMeta();
    const resource = meta?.resource;
    if (!resource || !safeEqual(secret, resource.secret)) return undefined;
    if (!(await this.getStream(resource.mediaSessionId))) return undefined;
    if (op === "delete") {
      // A WHIP DELETE waits for the recording to be finalized, as UNPUBLISHED does.
      await this.onStop({ mediaSessionId: resource.mediaSessionId });
      await this.endSession();
    }
    return resource.ufrag !== undefined ? { ufrag: resource.ufrag } : {};
  }

  private async isResource(): Promise<boolean> {
    return (await this.getMeta())?.resource !== undefined;
  }

  /** A client is there to hear about its streams: its socket, or (a WHEP/WHIP resource) its URL. */
  private async isOpen(): Promise<boolean> {
    return this.ctx.getWebSockets().length > 0 || (await this.isResource());
  }

  // ---- client frames

  private async onFrame(message: string | ArrayBuffer): Promise<void> {
    // Any frame proves the client is alive, like the SDK's own WSPingReceiver.success().
    await this.resetMissedPings();
    if (typeof message !== "string") {
      this.send(serverFrames.fail("Binary frames are not supported"));
      return;
    }
    const parsed = parseClientFrame(message, frameLimits(this.env).maxFrameBytes);
    if (!parsed.ok) {
      await this.onBadFrame(parsed);
      return;
    }
    const frame = parsed.frame;
    switch (frame.message) {
      case "connection":
        return this.onConnection(frame.data[0]);
      case "ping":
        this.send(serverFrames.pong());
        return;
      case "pong":
        return;
      case "playStream":
        await this.onStreamRequest(frame.data[0], false);
        return;
      case "publishStream":
        await this.onStreamRequest(frame.data[0], true);
        return;
      case "stopStream":
      case "unPublishStream":
        return this.onStop(frame.data[0]);
      case "sendData":
        return this.onSendData(frame.data[0]);
    }
  }

  /**
   * session.sendData(): an `edgeVod` payload seeks, pauses or resumes one of this session's `vod://` playbacks; any
   * other is the application's, ACCEPTED as a WCS without a backend does, or decided by the OnDataEvent hook.
   */
  private async onSendData(data: SendDataData): Promise<void> {
    const { operationId, payload } = data;
    const answer = (status: "ACCEPTED" | "FAILED", extra: { info?: string; payload?: unknown } = {}) =>
      this.send(serverFrames.dataStatus({ operationId, status, ...extra }));
    const meta = await this.getMeta();
    if (!meta?.sessionId) return answer("FAILED", { info: Info.SESSION_NOT_READY });
    if (!isVodPayload(payload)) {
      const hooks = restHookConfig(this.env);
      if (!hooks) return answer("ACCEPTED");
      const verdict = await authorize(hooks, RestHookMethod.OnDataEvent, { ...this.hookCommon(meta), operationId, payload });
      return verdict.ok ? answer("ACCEPTED") : answer("FAILED", { info: verdict.info });
    }
    const command = parseVodCommand(payload);
    if (!command) return answer("FAILED", { info: Info.BAD_VOD_OPERATION });
    // Only this session's streams: another session's id is not found here, whoever it belongs to.
    const stream = await this.getStream(command.mediaSessionId);
    if (!stream || TERMINAL_STATUSES.has(stream.status)) return answer("FAILED", { info: Info.STREAM_NOT_FOUND });
    if (stream.published || parseStreamName(stream.name).kind !== "vod") return answer("FAILED", { info: Info.NOT_SUPPORTED });
    const res = await this.sidecarOf(stream).vod({
      sessionRef: this.sessionRef,
      mediaSessionId: command.mediaSessionId,
      op: command.op,
      ...(command.op === "seek" ? { positionMs: command.positionMs } : {}),
    });
    if (!res.ok) return answer("FAILED", { info: res.info });
    answer("ACCEPTED", { payload: { edgeVod: res.edgeVod } });
  }

  private async onBadFrame(parsed: Extract<ParseResult, { ok: false }>): Promise<void> {
    // A token that is not even a string is as bad as a forged one.
    if (parsed.message === "connection" && this.env.AUTH_TOKEN_SECRET && !(await this.getMeta())?.sessionId) {
      return this.refuse(Info.AUTH_TOKEN_INVALID);
    }
    this.send(serverFrames.fail(parsed.reason));
    const isStreamRequest = parsed.message === "playStream" || parsed.message === "publishStream";
    const id = parsed.id;
    if (!isStreamRequest || id === undefined || id.length === 0 || id.length > FRAME_LIMITS.maxMediaSessionIdLength) return;
    // A live stream under that id is not the one that was malformed; failing it would tear it down on the client.
    if (await this.getStream(id)) return;
    const info = parsed.field === "sdp" ? Info.SDP_INVALID : parsed.field === "name" ? Info.BAD_URI : Info.FAILED_BY_ERROR;
    this.sendStatus({
      mediaSessionId: id,
      name: parsed.name ?? "",
      published: parsed.message === "publishStream",
      status: StreamStatus.FAILED,
      info,
    });
  }

  private async onConnection(data: ConnectionData): Promise<void> {
    const meta = await this.getMeta();
    if (!meta) return;
    let sessionId = meta.sessionId;
    if (!sessionId) {
      const candidate = crypto.randomUUID();
      const appKey = data.appKey ?? "defaultApp";
      const refusal = await this.admission(data, { ...meta, sessionId: candidate, appKey });
      if (refusal !== undefined) return this.refuse(refusal);
      // Read again: the session may have ended, or another `connection` been admitted, while the backend answered.
      const now = await this.getMeta();
      if (!now) return;
      sessionId = now.sessionId ?? candidate;
      await this.ctx.storage.put(META_KEY, { ...now, sessionId, appKey } satisfies SessionMeta);
    }
    const echo: Record<string, unknown> = {};
    for (const key of ECHOED_CONNECTION_FIELDS) if (data[key] !== undefined) echo[key] = data[key];
    // WCS documents authToken as "the same as session Id"; the SDK hands it back on MSE/WSPlayer media sockets.
    this.send(
      serverFrames.getUserData({
        ...echo,
        sessionId,
        authToken: sessionId,
        status: "ESTABLISHED",
        mediaProviders: ["WebRTC"],
      }),
    );
  }

  /**
   * A play or publish, from the SDK's frame or a WHEP/WHIP POST: the client is sent FAILED or the answer (when it
   * has a socket), and the outcome is returned (what a WHEP/WHIP resource answers its POST with).
   */
  private async onStreamRequest(data: PlayStreamData, published: boolean): Promise<StreamOutcome> {
    const id = data.mediaSessionId;
    const record = published && data.record === true;
    const fail = (info: string): StreamOutcome => {
      this.sendStatus({
        mediaSessionId: id,
        name: data.name,
        published,
        status: StreamStatus.FAILED,
        info,
        ...(record ? { record: true } : {}),
      });
      return { ok: false, info };
    };

    const meta = await this.getMeta();
    if (!meta?.sessionId) return fail(Info.SESSION_NOT_READY);
    if (await this.getStream(id)) return fail(Info.MEDIASESSION_ID_ALREADY_IN_USE);
    if ((await this.listStreams()).size >= frameLimits(this.env).maxStreams) return fail(Info.TOO_MANY_STREAMS);

    const target = parseStreamName(data.name);
    // A published name is played where its publisher sends (media is not relayed between sidecars).
    let publisherAt: Placement | undefined;
    // A name started by /rest-api/vod/startup: its players get that file's broadcast, on its clock, on any sidecar.
    let restVod: RestVodEntry | undefined;
    if (published) {
      if (checkPublishName(data.name) !== null) return fail(Info.BAD_URI);
    } else if (target.kind === "live") {
      if (checkPublishName(data.name) !== null) return fail(Info.BAD_URI);
      const source = await this.streamName(data.name).source();
      if (!source) return fail(Info.STREAM_NOT_FOUND);
      if ("vod" in source) restVod = source.vod;
      else publisherAt = source.publisher.sidecar ?? this.staticSidecar();
    } else if (checkFileName(target.file) !== null) {
      return fail(Info.BAD_URI);
    }
    // createStream({custom: {edgeVod: {startMs}}}): where a `vod://` playback starts; the page then hears its state.
    const startMs = target.kind === "vod" && !published ? startPositionOf(data.custom) : 0;
    if (startMs === undefined) return fail(Info.BAD_VOD_OPERATION);
    const vodStart = target.kind === "vod" && !published && isVodPayload(data.custom) ? { reportState: true, ...(startMs > 0 ? { startMs } : {}) } : {};
    const hooks = restHookConfig(this.env);
    if (hooks) {
      const asked = { mediaSessionId: id, name: data.name, published, status: StreamStatus.PENDING, record, hasVideo: data.hasVideo, hasAudio: data.hasAudio, custom: data.custom };
      const verdict = await authorize(hooks, published ? RestHookMethod.publishStream : RestHookMethod.playStream, this.hookBody(meta, asked));
      if (!verdict.ok) return fail(verdict.info);
      // The backend took its time: the session may have ended, or the id been taken, meanwhile.
      if (!(await this.getMeta())?.sessionId) return { ok: false, info: Info.SESSION_NOT_READY };
      if (await this.getStream(id)) return fail(Info.MEDIASESSION_ID_ALREADY_IN_USE);
    }

    const tried: string[] = [];
    const file = target.kind === "live" ? undefined : target.file;
    let placement = publisherAt ?? (await this.place(tried, file));
    if (!placement) return fail(Info.MEDIA_SERVER_UNAVAILABLE);
    const attempt = crypto.randomUUID();
    // Stored before any call that yields: a stop, a duplicate or the sidecar's own events may arrive meanwhile.
    const stored: StoredStream = { name: data.name, published, record, status: StreamStatus.PENDING, attempt, since: Date.now(), sidecar: placement };
    await this.putStream(id, stored);
    const claim = (sidecar: Placement) => this.streamName(data.name).claim({ sessionRef: this.sessionRef, mediaSessionId: id, since: Date.now(), sidecar });
    if (published && !(await claim(placement))) {
      await this.deleteStream(id);
      return fail(Info.STREAM_NAME_ALREADY_IN_USE);
    }
    let broadcast: Joined | undefined = restVod
      ? { startedAt: restVod.startTime, loop: restVod.loop, ...(restVod.seek ? { seek: restVod.seek } : {}) }
      : undefined;
    const join = (file: string, sidecar: Placement) =>
      this.broadcast(file).join({ sessionRef: this.sessionRef, mediaSessionId: id }, vodLiveLoops(this.env, file), sidecar.id);
    if (target.kind === "vod-live") {
      try {
        broadcast = await join(target.file, placement);
      } catch (err) {
        console.error(`session ${this.sessionRef}: joining broadcast ${target.file} failed:`, err);
        await this.deleteStream(id);
        return fail(Info.FAILED_BY_ERROR);
      }
    }
    const common = {
      sessionRef: this.sessionRef,
      eventsUrl: meta.eventsUrl,
      mediaSessionId: id,
      sdp: data.sdp,
      ...(restVod ? { name: restVod.uri, alias: data.name } : { name: data.name }),
    };
    let answer: OfferResult;
    for (;;) {
      const sidecar = this.sidecarClient(placement);
      answer = published
        ? await sidecar.publish({ ...common, record, login: "" })
        : await sidecar.play({ ...common, ...vodStart, ...(broadcast ? { broadcast } : {}) });
      if (answer.ok || publisherAt || placement.id === STATIC_SIDECAR_ID) break;
      const unreachable = "unreachable" in answer && answer.unreachable === true;
      // No such file there: a recording finished a moment ago on another host, or a file only another host has,
      // is known to the registry by now even if this isolate's snapshot is older.
      const missing = answer.info === Info.FILE_NOT_FOUND && target.kind === "vod" && file !== undefined;
      // Refused outright: nothing runs there, so the stream may go to another sidecar (not a live name's viewer,
      // whose media is only on its publisher's sidecar).
      if (!unreachable && !missing) break;
      if (unreachable) await markDownAll(this.env, placement.id).catch(() => {});
      tried.push(placement.id);
      let next: Placement | null | undefined = null;
      if (missing) next = await registryView(this.env, { fresh: true }).then((v) => elsewhere(v, file, tried), () => undefined);
      else if (tried.length <= MAX_PLACEMENT_RETRIES) next = await this.place(tried, file);
      const current = await this.getStream(id);
      if (!next || current?.attempt !== attempt) break;
      console.warn(`session ${this.sessionRef}: sidecar ${placement.id} ${unreachable ? "unreachable" : "has no such file"}, placing ${id} on ${next.id}`);
      placement = next;
      await this.putStream(id, { ...current, sidecar: next });
      if (published) await claim(next);
      if (target.kind === "vod-live") await join(target.file, next).catch(() => {});
    }
    if (broadcast && target.kind === "vod-live" && answer.ok && answer.durationMs !== undefined) {
      await this.broadcast(target.file)
        .setDuration(broadcast.startedAt, answer.durationMs)
        .catch((err) => console.warn(`session ${this.sessionRef}: broadcast duration not stored: ${String(err)}`));
    }

    const current = await this.getStream(id);
    if (current?.attempt !== attempt) {
      // Stopped, failed by an event, or the session ended while the sidecar worked: do not leak its stream.
      if (answer.ok) await this.sidecarClient(placement).stop({ sessionRef: this.sessionRef, mediaSessionId: id });
      return { ok: false, info: Info.STOPPED_BY_USER };
    }
    if (!answer.ok) {
      await this.deleteStream(id);
      await this.streamGone(id, stored);
      return fail(answer.info);
    }
    // The run that holds the stream: the keep-alive tick fails it once that sidecar answers as another run.
    if (answer.instance) await this.putStream(id, { ...current, sidecar: { ...placement, instance: answer.instance } });
    // Still PENDING: the sidecar reports PLAYING / PUBLISHING once ICE and DTLS are up (and, publishing, media flows).
    this.send(serverFrames.setRemoteSDP(id, answer.sdp));
    this.report(RestHookMethod.StreamStatusEvent, { mediaSessionId: id, name: data.name, published, status: StreamStatus.PENDING, ...(record ? { record: true } : {}) });
    return { ok: true, sdp: answer.sdp };
  }

  private async onStop(data: StopStreamData): Promise<void> {
    const id = data.mediaSessionId;
    const stream = await this.getStream(id);
    // The SDK may stop a stream the server already ended (end of file, failure): nothing to do.
    if (!stream) return;
    // Deleted first: the sidecar's own events for this stream (it is being torn down) must not reach the client.
    await this.deleteStream(id);
    this.report(stream.published ? RestHookMethod.unPublishStream : RestHookMethod.stopStream, {
      mediaSessionId: id,
      name: stream.name,
      published: stream.published,
      status: stream.status,
      ...(stream.record ? { record: true } : {}),
    });
    if (!stream.published) {
      this.sendStatus({ mediaSessionId: id, name: stream.name, published: false, status: StreamStatus.STOPPED, info: Info.STOPPED_BY_USER });
      await this.sidecarOf(stream).stop({ sessionRef: this.sessionRef, mediaSessionId: id });
      await this.streamGone(id, stream);
      return;
    }
    // UNPUBLISHED waits for the sidecar: it carries the record name, and the file is complete once it is sent.
    const res = await this.sidecarOf(stream).stop({ sessionRef: this.sessionRef, mediaSessionId: id }, { recording: stream.record === true });
    await this.streamGone(id, stream);
    this.sendStatus({
      mediaSessionId: id,
      name: stream.name,
      published: true,
      status: StreamStatus.UNPUBLISHED,
      info: res?.info ?? Info.STOPPED_BY_USER,
      ...(stream.record ? { record: true } : {}),
      ...(res?.recordName !== undefined ? { recordName: res.recordName } : {}),
    });
  }

  // ---- admission, REST hooks, limits

  /** Why this `connection` is refused (AUTH_TOKEN_SECRET, then REST_HOOK_URL's connect), or undefined to admit it. */
  private async admission(data: ConnectionData, meta: SessionMeta & { sessionId: string; appKey: string }): Promise<string | undefined> {
    if (this.env.AUTH_TOKEN_SECRET) {
      const token = await verifyAuthToken(this.env.AUTH_TOKEN_SECRET, data.authToken);
      if (!token.ok) return token.info;
    }
    const hooks = restHookConfig(this.env);
    if (!hooks) return undefined;
    const verdict = await authorize(hooks, RestHookMethod.connect, {
      nodeId: meta.nodeId ?? "edge-vod",
      appKey: meta.appKey,
      sessionId: meta.sessionId,
      ...(data.authToken !== undefined ? { authToken: data.authToken } : {}),
      clientVersion: data.clientVersion,
      clientOSVersion: typeof data.clientOSVersion === "string" ? data.clientOSVersion : undefined,
      clientBrowserVersion: typeof data.clientBrowserVersion === "string" ? data.clientBrowserVersion : undefined,
      mediaProviders: data.mediaProviders,
      custom: data.custom,
      status: "PENDING",
    });
    return verdict.ok ? undefined : verdict.info;
  }

  /** The SDK reports SESSION_STATUS.FAILED (see session-refusal.ts), the socket closes with `info`. */
  private async refuse(info: string): Promise<void> {
    console.warn(`session ${this.sessionRef}: refused: ${info}`);
    refuseSession(this.ctx.getWebSockets(), info);
    await this.endSession();
  }

  private limiter?: FrameLimiter;

  private frameLimiter(): FrameLimiter {
    if (!this.limiter) {
      const { framesPerSecond, burst } = frameLimits(this.env);
      this.limiter = new FrameLimiter(framesPerSecond, burst);
    }
    return this.limiter;
  }

  /** A socket over MAX_FRAMES_PER_SECOND: closed 1008, its streams released; other sessions never notice. */
  private async closeOverRate(ws: WebSocket): Promise<void> {
    console.warn(`session ${this.sessionRef}: over ${frameLimits(this.env).framesPerSecond} frames/s, closing`);
    try {
      ws.close(REFUSED_CLOSE_CODE, Info.TOO_MANY_FRAMES);
    } catch {
      /* already closing */
    }
    await this.endSession();
  }

  private hookBody(meta: SessionMeta, event: StreamStatusEvent & Partial<Pick<StreamHookBody, "hasVideo" | "hasAudio" | "custom">>): StreamHookBody {
    const { record, ...rest } = event;
    return { ...this.hookCommon(meta), ...rest, record: record === true, mediaProvider: "WebRTC" };
  }

  /** What every hook body carries. */
  private hookCommon(meta: SessionMeta): { nodeId: string; appKey: string; sessionId: string } {
    return { nodeId: meta.nodeId ?? "edge-vod", appKey: meta.appKey ?? "defaultApp", sessionId: meta.sessionId ?? "" };
  }

  /** Tells REST_HOOK_URL without making anyone wait; nothing before the session is ESTABLISHED or after it ended. */
  private report(method: RestHookMethod, event: StreamStatusEvent): void {
    const hooks = restHookConfig(this.env);
    if (!hooks) return;
    this.ctx.waitUntil(
      (async () => {
        const meta = await this.getMeta();
        if (meta?.sessionId) await notify(hooks, method, this.hookBody(meta, event));
      })().catch((err) => console.warn(`session ${this.sessionRef}: REST hook ${method}: ${String(err)}`)),
    );
  }

  // ---- keep-alive and teardown

  private async keepAliveTick(): Promise<void> {
    const sockets = this.ctx.getWebSockets();
    const meta = await this.getMeta();
    if (meta?.resource) return this.resourceTick();
    if (sockets.length === 0 || !meta) {
      await this.endSession();
      return;
    }
    const { intervalMs, probes } = keepAliveConfig(this.env);
    const missed = (await this.ctx.storage.get<number>(MISSED_PINGS_KEY)) ?? 0;
    if (missed >= probes) {
      for (const ws of sockets) {
        try {
          ws.close(KEEPALIVE_CLOSE_CODE, Info.TERMINATED_BY_KEEP_ALIVE);
        } catch {
          /* already closing */
        }
      }
      // An unresponsive peer may never complete the close handshake, so webSocketClose cannot be relied on.
      await this.endSession();
      return;
    }
    this.send(serverFrames.ping());
    await this.ctx.storage.put(MISSED_PINGS_KEY, missed + 1);
    await this.ctx.storage.setAlarm(Date.now() + intervalMs);
    await this.failStalledStreams();
    await this.failLostStreams();
  }

  /**
   * Streams whose sidecar is gone, FAILED so the player can play again: a registered one the registry calls down or
   * that beats as another run, SIDECAR_URL's one that answers its health as another run (it restarted: the streams
   * lived in the old process) or does not answer SIDECAR_HEALTH_MISSES ticks in a row.
   * Cost: only sessions with streams check, on the tick that already wakes them for the ping; one registry call for
   * all registered sidecars and one health GET per distinct SIDECAR_URL sidecar (a few in-memory counters there), so
   * the sidecar sees (sessions with streams) / KEEPALIVE_INTERVAL_MS cheap requests, not one per stream.
   */
  private async failLostStreams(): Promise<void> {
    const streams = [...(await this.listStreams())].flatMap(([key, s]) => {
      const at = this.placementOf(s);
      return at ? [{ id: key.slice(STREAM_PREFIX.length), stream: s, at }] : [];
    });
    const lost = new Set<string>();
    const registered = streams.filter((s) => s.at.id !== STATIC_SIDECAR_ID);
    if (registered.length > 0) {
      try {
        const verdicts = lostOf(await registryView(this.env), registered.map((s) => s.at));
        registered.forEach((s, i) => verdicts[i] && lost.add(s.id));
      } catch (err) {
        // Unknown is not down: streams are only failed on the registry's word.
        console.warn(`session ${this.sessionRef}: sidecar registry unavailable: ${String(err)}`);
      }
    }
    for (const id of await this.lostOnStaticSidecars(streams.filter((s) => s.at.id === STATIC_SIDECAR_ID))) lost.add(id);
    for (const s of streams) if (lost.has(s.id)) await this.failStream(s.id, s.stream, Info.MEDIA_SERVER_LOST);
  }

  /** The ids of `streams` (all on SIDECAR_URL sidecars) whose sidecar restarted or stopped answering. */
  private async lostOnStaticSidecars(streams: readonly { id: string; at: Placement }[]): Promise<string[]> {
    const before = (await this.ctx.storage.get<Record<string, number>>(HEALTH_MISSES_KEY)) ?? {};
    const misses: Record<string, number> = {};
    const lost: string[] = [];
    for (const url of new Set(streams.map((s) => s.at.url))) {
      const on = streams.filter((s) => s.at.url === url);
      const health = await new SidecarClient(url, this.env.SIDECAR_SECRET).health();
      if (!health.reachable) {
        misses[url] = (before[url] ?? 0) + 1;
        if (misses[url] >= sidecarHealthMisses(this.env)) {
          lost.push(...on.map((s) => s.id));
          delete misses[url];
        }
        continue;
      }
      for (const s of on) if (s.at.instance && health.instance && s.at.instance !== health.instance) lost.push(s.id);
    }
    // Written only when it changed: a healthy tick costs no storage write.
    if (JSON.stringify(misses) !== JSON.stringify(before)) {
      if (Object.keys(misses).length > 0) await this.ctx.storage.put(HEALTH_MISSES_KEY, misses);
      else await this.ctx.storage.delete(HEALTH_MISSES_KEY);
    }
    return lost;
  }

  /**
   * A WHEP/WHIP resource has no socket to ping: its stream is watched as any other (stalled, lost sidecar), and the
   * resource ends with it. A client that vanishes without a DELETE is noticed by the sidecar (ICE consent), whose
   * FAILED ends the stream.
   */
  private async resourceTick(): Promise<void> {
    await this.failStalledStreams();
    await this.failLostStreams();
    if ((await this.listStreams()).size === 0) {
      await this.endSession();
      return;
    }
    await this.ctx.storage.setAlarm(Date.now() + keepAliveConfig(this.env).intervalMs);
  }

  /** Ends a stream from the server's side: forgotten here, let go outside, FAILED to the client. */
  private async failStream(id: string, stream: StoredStream, info: string): Promise<void> {
    await this.deleteStream(id);
    await this.streamGone(id, stream);
    this.sendStatus({
      mediaSessionId: id,
      name: stream.name,
      published: stream.published,
      status: StreamStatus.FAILED,
      info,
      ...(stream.record ? { record: true } : {}),
    });
  }

  /** The backstop that keeps the promise that no stream stays PENDING (see STREAM_START_TIMEOUT_MS). */
  private async failStalledStreams(): Promise<void> {
    const deadline = Date.now() - streamStartTimeoutMs(this.env);
    for (const [key, stream] of await this.listStreams()) {
      if (stream.status !== StreamStatus.PENDING || stream.since > deadline) continue;
      const id = key.slice(STREAM_PREFIX.length);
      await this.failStream(id, stream, Info.MEDIA_SERVER_UNAVAILABLE);
      await this.sidecarOf(stream).stop({ sessionRef: this.sessionRef, mediaSessionId: id });
    }
  }

  private async resetMissedPings(): Promise<void> {
    // Reads are served from the storage cache; writing only on change keeps a pong from costing a write.
    if (((await this.ctx.storage.get<number>(MISSED_PINGS_KEY)) ?? 0) !== 0) {
      await this.ctx.storage.put(MISSED_PINGS_KEY, 0);
    }
  }

  /** Idempotent: close, error and the keep-alive may all end the same session. */
  private async endSession(): Promise<void> {
    const meta = await this.getMeta();
    const streams = [...(await this.listStreams())];
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    await Promise.all(streams.map(([key, s]) => this.streamGone(key.slice(STREAM_PREFIX.length), s)));
    if (!meta) return;
    const urls = new Set(streams.map(([, s]) => this.placementOf(s)?.url));
    await Promise.all([...urls].map((url) => new SidecarClient(url, this.env.SIDECAR_SECRET).release({ sessionRef: this.sessionRef })));
  }

  // ---- helpers

  private get sessionRef(): string {
    return this.ctx.id.toString();
  }

  private streamName(name: string): DurableObjectStub<StreamObject> {
    return this.env.STREAMS.get(this.env.STREAMS.idFromName(name));
  }

  private broadcast(file: string): DurableObjectStub<BroadcastObject> {
    return this.env.BROADCASTS.get(this.env.BROADCASTS.idFromName(`vod-live://${file}`));
  }

  /** What a stream holds outside this session, let go once it is over: a published name, a broadcast's viewer slot. */
  private async streamGone(mediaSessionId: string, stream: StoredStream): Promise<void> {
    if (stream.published) return this.releaseName(stream.name, mediaSessionId);
    const target = parseStreamName(stream.name);
    if (target.kind !== "vod-live") return;
    try {
      await this.broadcast(target.file).leave({ sessionRef: this.sessionRef, mediaSessionId });
    } catch (err) {
      // A viewer slot left behind only keeps the broadcast's clock running (it costs no media anywhere).
      console.warn(`session ${this.sessionRef}: leaving broadcast failed: ${String(err)}`);
    }
  }

  /** Never throws: a name left held is taken over by the next publisher once this session no longer has the stream. */
  private async releaseName(name: string, mediaSessionId: string): Promise<void> {
    try {
      await this.streamName(name).release({ sessionRef: this.sessionRef, mediaSessionId });
    } catch (err) {
      console.warn(`session ${this.sessionRef}: releasing stream name failed: ${String(err)}`);
    }
  }

  /** SIDECAR_URL's sidecar, when one is configured. */
  private staticSidecar(): Placement | undefined {
    return this.env.SIDECAR_URL ? { id: STATIC_SIDECAR_ID, url: this.env.SIDECAR_URL } : undefined;
  }

  /**
   * A registered sidecar not in `exclude` (the one holding `file` if it is a recording not uploaded yet, else the
   * least loaded, or one with `file` warm); SIDECAR_URL's when none is registered and healthy.
   */
  private async place(exclude: readonly string[], file?: string): Promise<Placement | undefined> {
    try {
      const picked = choose(await registryView(this.env), { exclude, ...(file !== undefined ? { file } : {}) });
      if (picked) return picked;
    } catch (err) {
      console.warn(`session ${this.sessionRef}: sidecar registry unavailable: ${String(err)}`);
    }
    return exclude.includes(STATIC_SIDECAR_ID) ? undefined : this.staticSidecar();
  }

  /** Where a stored stream runs; streams stored before placements existed run on SIDECAR_URL's sidecar. */
  private placementOf(stream: StoredStream): Placement | undefined {
    return stream.sidecar ?? this.staticSidecar();
  }

  /** A client that fails every call as "Media server unavailable" when there is no placement. */
  private sidecarClient(placement: Placement | undefined): SidecarClient {
    return new SidecarClient(placement?.url, this.env.SIDECAR_SECRET);
  }

  private sidecarOf(stream: StoredStream): SidecarClient {
    return this.sidecarClient(this.placementOf(stream));
  }

  private send(text: string): void {
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(text);
      } catch {
        /* closing: the close handler cleans up */
      }
    }
  }

  private sendStatus(event: StreamStatusEvent): void {
    this.send(serverFrames.streamStatus(event));
    this.report(RestHookMethod.StreamStatusEvent, event);
  }

  private getMeta(): Promise<SessionMeta | undefined> {
    return this.ctx.storage.get<SessionMeta>(META_KEY);
  }

  private getStream(id: string): Promise<StoredStream | undefined> {
    return this.ctx.storage.get<StoredStream>(STREAM_PREFIX + id);
  }

  private putStream(id: string, stream: StoredStream): Promise<void> {
    return this.ctx.storage.put(STREAM_PREFIX + id, stream);
  }

  private async deleteStream(id: string): Promise<void> {
    await this.ctx.storage.delete(STREAM_PREFIX + id);
  }

  private listStreams(): Promise<Map<string, StoredStream>> {
    return this.ctx.storage.list<StoredStream>({ prefix: STREAM_PREFIX });
  }
}
