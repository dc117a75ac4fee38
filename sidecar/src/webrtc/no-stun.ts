// werift's ICE falls back to stun.l.google.com:19302 when no STUN server is configured, which sends traffic off the
// machine on every gather and stalls setLocalDescription ~5 s where packets are dropped. A media server answers
// with host candidates (plus an announced public address) and learns the browser's address from its checks, so
// the fallback is switched off: gathering uses a STUN server only when one was configured explicitly.
import { Connection } from "werift";

type Gatherer = { options: { stunServer?: unknown }; stunServer: unknown; getCandidatePromises(...a: unknown[]): unknown };

let installed = false;

export function disableImplicitStun(): void {
  if (installed) return;
  installed = true;
  const proto = Connection.prototype as unknown as Gatherer;
  const original = proto.getCandidatePromises;
  proto.getCandidatePromises = function (this: Gatherer, ...args: unknown[]) {
    if (!this.options.stunServer) this.stunServer = undefined;
    return original.apply(this, args);
  };
}
