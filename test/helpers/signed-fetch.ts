// Requests on the control channel as the edge (to a sidecar) or a sidecar (to the edge) sends them: signed with the
// shared secret (shared/src/signing.ts), never carrying it.
import http from "node:http";
import { signRequest, verifyRequest } from "@edge-vod/shared";

export interface SignedInit extends Omit<RequestInit, "body"> {
  body?: string;
  /** Sign as of this time (ms since epoch) instead of now: a stale request. */
  signedAt?: number;
}

/** The headers of a signed request: `init.headers` plus the signature of method, path, body and time. */
export async function signedHeaders(secret: string, url: string, init: SignedInit = {}): Promise<Headers> {
  const headers = new Headers(init.headers);
  const signature = await signRequest(secret, { method: init.method ?? "GET", url, body: init.body }, init.signedAt);
  for (const [k, v] of Object.entries(signature)) headers.set(k, v);
  return headers;
}

/** fetch() with a fresh signature; a JSON body gets its content-type unless one is given. */
export async function signedFetch(secret: string, url: string, init: SignedInit = {}): Promise<Response> {
  const headers = await signedHeaders(secret, url, init);
  if (init.body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
  const { signedAt: _signedAt, ...rest } = init;
  return fetch(url, { ...rest, method: init.method ?? "GET", headers });
}

/** One request a StandInEdge received, with the verification of its signature. */
export interface VerifiedRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  verified: Awaited<ReturnType<typeof verifyRequest>>;
}

/**
 * Stands in for the edge's intake (events, heartbeats): answers every request 200 `{ok: true}` and hands it over
 * with whether its signature verifies with `secret`.
 */
export async function startStandInEdge(secret: string, onRequest: (r: VerifiedRequest) => void): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
      const body = Buffer.concat(chunks);
      void verifyRequest(secret, { method: req.method!, url: req.url!, headers, body }).then((verified) => {
        onRequest({ path: req.url!, headers: req.headers, body, verified });
        res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
