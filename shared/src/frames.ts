// The Web SDK's WebSocket frames: `{message, data: [...]}` both ways. Ground truth: @flashphoner/websdk 2.0.276
// src/flashphoner-core.js (send() ~808, onmessage switch ~651, play ~2100, publish ~2177, stop ~2376).
import { z } from "zod";
import { Info, StreamStatus } from "./status.ts";

/** Limits on what a client may send; a frame over them is refused before JSON.parse. */
export const FRAME_LIMITS = {
  maxFrameBytes: 256 * 1024,
  maxSdpBytes: 128 * 1024,
  maxNameBytes: 1024,
  maxMediaSessionIdLength: 128,
} as const;

const mediaSessionId = z.string().min(1).max(FRAME_LIMITS.maxMediaSessionIdLength);
const streamName = z.string().max(FRAME_LIMITS.maxNameBytes);

// Loose objects: the SDK adds fields over versions (custom, constraints, cvoExtension, localMediaInfo...).
export const ConnectionData = z.looseObject({
  appKey: z.string().max(256).optional(),
  authToken: z.string().max(4096).optional(),
  clientVersion: z.string().max(64).optional(),
  mediaProviders: z.array(z.string().max(32)).max(16).optional(),
});

const streamBase = {
  mediaSessionId,
  name: streamName,
  published: z.boolean().optional(),
  hasVideo: z.boolean().optional(),
  hasAudio: z.boolean().optional(),
  record: z.boolean().optional(),
  mediaProvider: z.string().max(32).optional(),
};

export const PlayStreamData = z.looseObject({
  ...streamBase,
  sdp: z.string().min(1).max(FRAME_LIMITS.maxSdpBytes),
});
export const PublishStreamData = PlayStreamData;
export const StopStreamData = z.looseObject({ ...streamBase, name: streamName.optional() });
/** session.sendData(payload): the SDK's own operationId (a uuid) and the application's payload, which is any JSON. */
export const SendDataData = z.looseObject({
  operationId: z.string().min(1).max(128),
  payload: z.unknown(),
});

const frame = <M extends string, D extends z.ZodType>(message: M, data: D) =>
  z.object({ message: z.literal(message), data: z.tuple([data]).rest(z.unknown()) });

export const ClientFrame = z.discriminatedUnion("message", [
  frame("connection", ConnectionData),
  frame("pong", z.unknown()),
  frame("ping", z.unknown()),
  frame("playStream", PlayStreamData),
  frame("publishStream", PublishStreamData),
  frame("stopStream", StopStreamData),
  frame("unPublishStream", StopStreamData),
  frame("sendData", SendDataData),
]);
export type ClientFrame = z.infer<typeof ClientFrame>;
export type PlayStreamData = z.infer<typeof PlayStreamData>;
export type StopStreamData = z.infer<typeof StopStreamData>;
export type ConnectionData = z.infer<typeof ConnectionData>;
export type SendDataData = z.infer<typeof SendDataData>;

export type ParseResult =
  | { ok: true; frame: ClientFrame }
  | {
      ok: false;
      reason: string;
      message?: string;
      /** data[0].mediaSessionId when it is a string, so a server can fail that stream instead of leaving it PENDING. */
      id?: string;
      /** data[0].name when it is a string, for the status event of that stream. */
      name?: string;
      /** Top field of data[0] that failed validation (e.g. "sdp"), to pick the info of that FAILED event. */
      field?: string;
    };

/**
 * Parses and validates one text frame from a client. Never throws. `maxFrameBytes` is checked against the UTF-16
 * length, which never exceeds the UTF-8 byte count: an oversize frame is caught before anything is decoded.
 */
export function parseClientFrame(text: string, maxFrameBytes: number = FRAME_LIMITS.maxFrameBytes): ParseResult {
  if (text.length > maxFrameBytes) return { ok: false, reason: Info.FRAME_TOO_LARGE };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: "Frame is not valid JSON" };
  }
  const head = z.object({ message: z.string().max(64), data: z.array(z.unknown()) }).safeParse(json);
  if (!head.success) return { ok: false, reason: "Frame must be {message: string, data: [...]}" };
  const known = ClientFrame.options.some((o) => o.shape.message.value === head.data.message);
  if (!known) return { ok: false, reason: `Unknown message '${head.data.message}'`, message: head.data.message };
  const parsed = ClientFrame.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first ? first.path.filter((p) => p !== "data" && p !== 0).join(".") : "";
    const d0 = head.data.data[0] as { mediaSessionId?: unknown; name?: unknown } | null | undefined;
    const id = typeof d0?.mediaSessionId === "string" ? d0.mediaSessionId : undefined;
    const name = typeof d0?.name === "string" ? d0.name.slice(0, FRAME_LIMITS.maxNameBytes) : undefined;
    const field = first?.path[0] === "data" && first.path[1] === 0 && typeof first.path[2] === "string" ? first.path[2] : undefined;
    return {
      ok: false,
      reason: `Invalid '${head.data.message}': ${where ? where + ": " : ""}${first?.message ?? "bad data"}`,
      message: head.data.message,
      ...(id !== undefined ? { id } : {}),
      ...(name !== undefined ? { name } : {}),
      ...(field !== undefined ? { field } : {}),
    };
  }
  return { ok: true, frame: parsed.data };
}

// ---- Server -> client frames. Every one carries a `data` array: the SDK reads data[0] before it dispatches.

export interface StreamStatusEvent {
  mediaSessionId: string;
  name: string;
  published: boolean;
  status: StreamStatus;
  info?: string;
  recordName?: string;
  record?: boolean;
}

export const serverFrames = {
  getUserData: (data: Record<string, unknown>) => JSON.stringify({ message: "getUserData", data: [data] }),
  ping: () => '{"message":"ping","data":[]}',
  /** The answer to a client `ping`, byte for byte what the SDK itself sends for a server ping. */
  pong: () => '{"message":"pong","data":[null]}',
  // The third element is WCS's isInitiator; the Web SDK ignores it, the Android SDK reads it.
  setRemoteSDP: (mediaSessionId: string, sdp: string) =>
    JSON.stringify({ message: "setRemoteSDP", data: [mediaSessionId, sdp, true] }),
  streamStatus: (event: StreamStatusEvent) => JSON.stringify({ message: "notifyStreamStatusEvent", data: [event] }),
  /** Routed by the SDK to the stream `id` when apiMethod is StreamStatusEvent; always reaches the session's WARN. */
  /** Settles the page's session.sendData() promise: resolves on ACCEPTED, rejects on FAILED (with `info`). */
  dataStatus: (event: { operationId: string; status: "ACCEPTED" | "FAILED"; info?: string; payload?: unknown }) =>
    JSON.stringify({ message: "DataStatusEvent", data: [event] }),
  /** Fires the stream's STREAM_EVENT handler with {type, payload}; `type` always set (see vod-control.ts). */
  streamEvent: (event: { mediaSessionId: string; type: string; payload: unknown }) =>
    JSON.stringify({ message: "notifyStreamEvent", data: [event] }),
  fail: (info: string, extra: { apiMethod?: string; id?: string; status?: string } = {}) =>
    JSON.stringify({ message: "fail", data: [{ info, ...extra }] }),
};
