// Refusing a session (bad authToken, or the REST hook's `connect` said no) so that the Web SDK reports
// SESSION_STATUS.FAILED, not DISCONNECTED.
//
// In @flashphoner/websdk 2.0.276 (src/flashphoner-core.js ~607-613, ~885) FAILED comes only from the socket's
// `error` event (or from missed server pings, which an application has to turn on); a close, however it is sent,
// is DISCONNECTED. A browser fires `error` on an open socket only when it must fail the connection for a protocol
// violation. The one violation a Worker can cause: a text frame that is not valid UTF-8. workerd sends a lone
// UTF-16 surrogate as its raw three-byte encoding (measured: Chromium 156 then fires `error`, the SDK reports
// FAILED; a close with any code, 1014-2999 included, is DISCONNECTED). The `fail` frame before it carries the
// reason to the SDK's WARN handler. The close after it (1008, the reason) reaches clients that do not check UTF-8;
// one that does fails the connection first and sees 1006, unless it read the close frame in the same go.
import { SessionStatus, serverFrames } from "@edge-vod/shared";

/** A text frame every conforming client must refuse (RFC 6455 §8.1): a lone high surrogate. */
const NOT_UTF8 = "\uD800";

/** 1008 "policy violation": the client was refused, not the server broken. */
export const REFUSED_CLOSE_CODE = 1008;

export function refuseSession(sockets: readonly WebSocket[], info: string): void {
  for (const ws of sockets) {
    try {
      ws.send(serverFrames.fail(info, { status: SessionStatus.FAILED }));
      ws.send(NOT_UTF8);
      ws.close(REFUSED_CLOSE_CODE, info);
    } catch {
      /* the client went first: nothing left to tell it */
    }
  }
}
