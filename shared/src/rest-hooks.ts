// The REST hooks the edge POSTs to an operator's backend (REST_HOOK_URL), as WCS does to its app's URL:
// POST <REST_HOOK_URL>/<method>, a JSON body, signed as in hook-signature.ts when REST_HOOK_SECRET is set.
// `connect`, `publishStream` and `playStream` authorize: anything but 200 refuses the action. The others only report.
import type { StreamStatus } from "./status.ts";

export const RestHookMethod = {
  connect: "connect",
  publishStream: "publishStream",
  playStream: "playStream",
  stopStream: "stopStream",
  unPublishStream: "unPublishStream",
  StreamStatusEvent: "StreamStatusEvent",
  /** session.sendData() with a payload that is not ours (no `edgeVod`): the answer decides ACCEPTED or FAILED. */
  OnDataEvent: "OnDataEvent",
} as const;
export type RestHookMethod = (typeof RestHookMethod)[keyof typeof RestHookMethod];

/** The methods whose answer decides: the edge waits for them (REST_HOOK_TIMEOUT_MS) and refuses on anything but 200. */
export const AUTHORIZING_HOOKS: ReadonlySet<RestHookMethod> = new Set([
  RestHookMethod.connect,
  RestHookMethod.publishStream,
  RestHookMethod.playStream,
  RestHookMethod.OnDataEvent,
]);

/** What every hook body carries. */
interface HookCommon {
  /** Which edge sent it (WCS: `<id>@<ip>`); here the host of the WebSocket upgrade. */
  nodeId: string;
  /** From `connection` (the SDK's createSession({appKey}), "defaultApp" by default). */
  appKey: string;
  /** The session id the client is (or is about to be) given in getUserData. */
  sessionId: string;
}

/** `connect`: a client sent `connection`. WCS's ConnectRequest fields, as far as the SDK sends them. */
export interface ConnectHookBody extends HookCommon {
  /** What the client presented (createSession({authToken})), as it came. */
  authToken?: string;
  clientVersion?: string;
  clientOSVersion?: string;
  clientBrowserVersion?: string;
  mediaProviders?: string[];
  /** createSession({custom}): free data the application passes to its backend. */
  custom?: unknown;
  status: "PENDING";
}

/** `publishStream`, `playStream`, `stopStream`, `unPublishStream`, `StreamStatusEvent`. */
export interface StreamHookBody extends HookCommon {
  mediaSessionId: string;
  name: string;
  published: boolean;
  status: StreamStatus;
  hasVideo?: boolean;
  hasAudio?: boolean;
  record: boolean;
  mediaProvider: "WebRTC";
  /** createStream({custom}) for the requests; absent in events. */
  custom?: unknown;
  info?: string;
  recordName?: string;
}

/** `OnDataEvent`: WCS's body for a client's sendData, the SDK's operationId and the application's payload as sent. */
export interface DataHookBody extends HookCommon {
  operationId: string;
  payload: unknown;
}
